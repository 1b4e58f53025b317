"""The papers an agent or an office hands a resident, one for each state an
application reaches: the 收件回执 at filing (handed in, not yet accepted),
the 受理通知书 when the office accepts, the 补正材料一次性告知单 listing
everything still missing, the 不予受理通知书 with the reason and the
resident's remedies, and the 办结通知 with the delivery.

Each notice is built once (``compose``) as plain values, then laid out as
80-column text (Chinese characters counted at their double width: rich does
the counting) or as a printable A4 page (reportlab, with its built-in CID
font STSong-Light, so no font file is needed on the machine). Papers are
saved in the node home's receipts/ folder and sent to the system printer
where there is one (``lp``; the default printer on Windows).

Only masked personal values are printed: a village keeps personal data
sealed, and a file in its home is not sealed."""

from __future__ import annotations

import datetime as dt
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daiban.errors import DaibanError, NotFound
from daiban.i18n import _
from daiban.node import tracking as tracking_mod
from daiban.node.lifecycle import status_label
from daiban.node.text import clean_text

if TYPE_CHECKING:
    from daiban.node.applications import Node

WIDTH = 80
FOLDER = "receipts"
KINDS = ("receipt", "accepted", "supplement", "rejected", "completed")
BLANK = "_" * 24
"""Printed where the catalog does not say: filled in by hand."""
SUPPLEMENT_DAYS = 10
"""Working days to hand in a supplement when the office sets no date."""
LICENSING_ART_32 = "《中华人民共和国行政许可法》第三十二条"
RECONSIDERATION_LAW = "《中华人民共和国行政复议法》第二十条"
LITIGATION_LAW = "《中华人民共和国行政诉讼法》第四十六条"

# The event each notice answers to; a notice exists once its event does.
_EVENT = {
    "receipt": "filed",
    "accepted": "accepted",
    "supplement": "supplement_requested",
    "rejected": "rejected",
    "completed": "completed",
}
_FOR_STATUS = {
    "submitted": "receipt",
    "received": "receipt",
    "withdrawn": "receipt",
    "accepted": "accepted",
    "needs_supplement": "supplement",
    "rejected": "rejected",
    "completed": "completed",
}


@dataclass(frozen=True)
class Notice:
    """One notice, laid out neither as text nor as a page yet."""

    kind: str
    tracking: str
    title: str
    issuer: str
    rows: tuple[tuple[str, str], ...]
    paragraphs: tuple[str, ...]
    signatures: tuple[str, ...]
    dated: str

    @property
    def stem(self) -> str:
        return f"{self.tracking}-{self.kind}"


def titles() -> dict[str, str]:
    return {
        "receipt": _("Receipt of materials (收件回执)"),
        "accepted": _("Notice of acceptance (受理通知书)"),
        "supplement": _("One-time notice of materials to supplement (补正材料一次性告知单)"),
        "rejected": _("Notice of non-acceptance (不予受理通知书)"),
        "completed": _("Notice of completion (办结通知)"),
    }


def kind_for(view: Mapping[str, Any]) -> str:
    """The notice for the application's state now."""
    return _FOR_STATUS.get(str(view.get("status")), "receipt")


def available(view: Mapping[str, Any]) -> list[str]:
    """The notices this application has reached (its events say so)."""
    kinds = {e["kind"] for e in view.get("history", [])}
    return [k for k in KINDS if k == "receipt" or _EVENT[k] in kinds]


def _last(view: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    found: Mapping[str, Any] = {}
    for event in view.get("history", []):
        if event["kind"] == kind:
            found = event
    return found


def _day(stamp: Any) -> str:
    return str(stamp or "")[:10]


def _numbered(items: Sequence[str]) -> str:
    return "\n".join(f"{n}. {m}" for n, m in enumerate(items, start=1)) or _("(none)")


def _due_text(view: Mapping[str, Any]) -> str:
    if view.get("due_state") == "provisional":
        return _("{date} (预计: estimated until the {year} calendar is published)").format(
            date=view["due"], year=view.get("due_missing_year") or "?"
        )
    if view.get("due"):
        return str(view["due"])
    return _("not known yet (the working-day calendar for {year} is not published)").format(
        year=view.get("due_missing_year") or "?"
    )


def expected(node: Node, view: Mapping[str, Any]) -> str:
    """When the resident can expect the result, as far as it is known here."""
    if view.get("due_state") == "known":
        return _("by {date}").format(date=view["due"])
    if view.get("due_state") == "provisional":
        return _("by about {date} (estimated until the {year} calendar is published)").format(
            date=view["due"], year=view.get("due_missing_year") or "?"
        )
    try:
        days = node.filed_item(str(view["tracking"])).time_limit_days
    except NotFound:  # an item this node's catalog no longer lists
        return _("set when the office accepts it")
    if days == 0:
        return _("on the spot, once the office accepts it")
    guess = node.calendar().due(node.today(), days)
    about = guess.date.isoformat() + (" (预计)" if guess.provisional else "")
    return _("{n} working days after the office accepts it (about {date} if accepted today)").format(
        n=days, date=about
    )


def _supplement_by(node: Node, asked: Mapping[str, Any]) -> str:
    """The day the office set, or ``SUPPLEMENT_DAYS`` working days after it asked."""
    body = asked.get("body") or {}
    if body.get("supplement_by"):
        return str(body["supplement_by"])
    try:
        start = dt.date.fromisoformat(_day(asked.get("at")))
    except ValueError:
        start = node.today()
    due = node.calendar().due(start, SUPPLEMENT_DAYS)
    return due.date.isoformat() + (" (预计)" if due.provisional else "")


def compose(node: Node, tracking: str, kind: str | None = None, *, agent: str = "") -> Notice:
    """The notice ``kind`` (default: the one for the application's state) of
    the application ``tracking``, as this node can print it."""
    view = node.show(tracking)
    kind = kind or kind_for(view)
    if kind not in KINDS:
        raise DaibanError(
            _("Unknown notice {kind!r}; use one of: {kinds}.").format(kind=kind, kinds=", ".join(KINDS)),
            code="usage",
        )
    if kind not in available(view):
        raise DaibanError(
            _("Application {tracking} has no {title} yet: it is {status}.").format(
                tracking=view["tracking"], title=titles()[kind], status=status_label(str(view["status"]))
            ),
            code="no_notice",
        )
    return build(
        kind,
        view,
        office=_contact(node, str(view["office"])),
        point=_contact(node, str(view["origin"])),
        agent=agent,
        expected=expected(node, view) if kind == "receipt" else "",
        supplement_by=(
            _supplement_by(node, _last(view, "supplement_requested")) if kind == "supplement" else ""
        ),
        today=node.today(),
    )


def build(
    kind: str,
    view: Mapping[str, Any],
    *,
    office: Mapping[str, str],
    point: Mapping[str, str],
    agent: str,
    expected: str,
    supplement_by: str,
    today: dt.date,
) -> Notice:
    """The notice from the application's view (as ``Node.show`` gives it)
    and what the node knows: pure, no database."""
    filed = _last(view, "filed")
    filer = str(filed.get("actor") or agent or "")
    a = view["applicant"]
    rows: list[tuple[str, str]] = [
        (_("Tracking number:"), tracking_mod.grouped(view["tracking"])),
        (_("Item:"), f"{view['item_name']} ({view['item']})"),
        (_("Applicant:"), f"{a['name']}  {a['id_number']}  {a['phone']}"),
        (_("Filing point:"), f"{point['name']}  {_('agent')} {filer or BLANK}"),
        (_("Handling office:"), office["name"]),
        (_("Office address:"), office["address"]),
        (_("Enquiries:"), office["phone"]),
    ]
    paragraphs: list[str] = []
    issuer = office["name"]
    owed = list(view.get("owed") or [])
    if kind == "receipt":
        issuer = point["name"]
        rows += [
            (_("Handed in on:"), str(view["filed_at"])[:16].replace("T", " ")),
            (_("Materials received:"), _numbered(view.get("materials") or [])),
            (_("Owed (容缺):"), _numbered(owed)),
            (_("Expected completion:"), expected),
        ]
        paragraphs.append(
            _(
                "This receipt says only that the materials were handed in (收件); it is not "
                "acceptance (受理). The office decides whether to accept and sends its notice."
            )
        )
        if owed:
            paragraphs.append(
                _(
                    "Hand the owed materials in at the filing point, {point}, before the office decides."
                ).format(point=point["name"])
            )
    elif kind == "accepted":
        event = _last(view, "accepted")
        body = event.get("body") or {}
        rows += [
            (_("Accepted on:"), str(body.get("accepted_on") or _day(event.get("at")))),
            (_("Time limit:"), _("{n} working days").format(n=body.get("time_limit_days", "?"))),
            (_("Due date:"), _due_text(view)),
        ]
        if owed:
            rows.append((_("Owed (容缺):"), _numbered(owed)))
        paragraphs.append(
            _("Your application has been accepted (受理). The office will decide by the due date above.")
        )
        if owed:
            paragraphs.append(
                _("Hand the owed materials in at the filing point, {point}, before the due date.").format(
                    point=point["name"]
                )
            )
        paragraphs.append(_("Legal basis: {law}.").format(law=LICENSING_ART_32))
    elif kind == "supplement":
        event = _last(view, "supplement_requested")
        body = event.get("body") or {}
        missing = list(body.get("missing") or view.get("missing") or [])
        everything = [*missing, *(_("{material} (容缺, owed)").format(material=m) for m in owed)]
        by = supplement_by
        rows += [
            (_("Asked on:"), _day(event.get("at"))),
            (_("Hand in all of these:"), _numbered(everything)),
            (_("Hand in by:"), by),
            (_("Where:"), _("the filing point, {point}").format(point=point["name"])),
            (_("Office's note:"), str(body.get("note") or "-")),
        ]
        paragraphs += [
            _("This notice lists everything still missing, all at once (一次性告知)."),
            _(
                "If everything is not handed in by {date}, the application is treated as "
                "withdrawn (视为撤回申请) and must be filed again."
            ).format(date=by),
            _("Legal basis: {law}.").format(law=LICENSING_ART_32),
        ]
    elif kind == "rejected":
        event = _last(view, "rejected")
        body = event.get("body") or {}
        rows += [
            (_("Decided on:"), _day(event.get("at"))),
            (_("Reason:"), str(body.get("reason") or "-")),
        ]
        paragraphs += [
            _("The office does not accept this application (不予受理), for the reason above."),
            _("Legal basis: {law}.").format(law=LICENSING_ART_32),
            _(
                "If you disagree, you may apply for administrative reconsideration (行政复议) within "
                "60 days of receiving this notice ({law1}), or bring an administrative lawsuit "
                "(行政诉讼) at a people's court within 6 months ({law2})."
            ).format(law1=RECONSIDERATION_LAW, law2=LITIGATION_LAW),
        ]
    else:  # completed
        event = _last(view, "completed")
        body = event.get("body") or {}
        delivery: Mapping[str, Any] = view.get("delivery") or body.get("delivery") or {}
        rows += [
            (_("Completed on:"), _day(view.get("completed_at") or event.get("at"))),
            (_("Result:"), str(body.get("result") or "-")),
        ]
        if delivery.get("method") == "post":
            rows.append((_("Delivery:"), _("by post (免费邮寄)")))
            if delivery.get("address"):
                rows.append((_("Postal address:"), str(delivery["address"])))
            rows.append((_("Postal tracking number:"), str(delivery.get("post_tracking") or BLANK)))
        else:
            place = delivery.get("place") or " ".join(x for x in (office["name"], office["address"]) if x)
            rows += [(_("Delivery:"), _("collect in person (自取)")), (_("Pickup place:"), str(place))]
        paragraphs.append(_("Your application is completed (办结)."))
    signatures = (
        _("Signature of the official (经办人签字): {blank}").format(blank=BLANK),
        _("Signature of the resident (群众签字): {blank}").format(blank=BLANK),
        _("Seal of the office (机构印章):"),
    )
    return Notice(
        kind=kind,
        tracking=str(view["tracking"]),
        title=titles()[kind],
        issuer=issuer,
        rows=tuple(rows),
        paragraphs=tuple(paragraphs),
        signatures=signatures,
        dated=_("Date: {date}").format(date=today.isoformat()),
    )


def _contact(node: Node, code: str) -> dict[str, str]:
    """Name, address line and enquiry phone of an office or point: the
    catalog's, this node's own name, or a blank to fill in by hand."""
    found = node.office_contact(code)
    name = found.get("name") or (node.name if code == node.code else "")
    return {
        "name": f"{name} ({code})" if name else f"{BLANK} ({code})",
        "address": found.get("address") or BLANK,
        "phone": found.get("phone") or BLANK,
    }


# -- layout --------------------------------------------------------------------


def text(notice: Notice, width: int = WIDTH) -> str:
    """The notice as plain text, every line at most ``width`` (80) columns
    wide; a screen with a scroll bar asks for a little less."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, markup=False, emoji=False, highlight=False)
    console.print(Text(notice.title, justify="center"))
    console.print(Text(clean_text(notice.issuer), justify="center"))
    console.print("─" * width)
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in notice.rows:
        grid.add_row(Text(label), Text(clean_text(value)))
    console.print(grid)
    console.print("─" * width)
    for line in notice.paragraphs:
        console.print(Text(clean_text(line), overflow="fold"))
    console.print()
    for line in notice.signatures:
        console.print(Text(line, overflow="fold"))
    console.print(Text(notice.dated, justify="right"))
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


FONT = "STSong-Light"


def pdf(notice: Notice) -> bytes:
    """The notice as one printable A4 page (PDF), Chinese in STSong-Light."""
    from xml.sax.saxutils import escape

    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))

    def para(value: str, style: ParagraphStyle) -> Paragraph:
        return Paragraph(escape(clean_text(value)).replace("\n", "<br/>"), style)

    body = ParagraphStyle("body", fontName=FONT, fontSize=10.5, leading=15, wordWrap="CJK")
    title = ParagraphStyle("title", parent=body, fontSize=16, leading=22, alignment=1)
    centred = ParagraphStyle("centred", parent=body, alignment=1)
    right = ParagraphStyle("right", parent=body, alignment=2)
    width = A4[0] - 40 * mm
    table = Table(
        [[para(label, body), para(value, body)] for label, value in notice.rows],
        colWidths=[38 * mm, width - 38 * mm],
    )
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("GRID", (0, 0), (-1, -1), 0.4, "#888888"),
            ]
        )
    )
    story: list[Any] = [para(notice.title, title), para(notice.issuer, centred), Spacer(1, 5 * mm), table]
    story.append(Spacer(1, 4 * mm))
    story += [para(p, body) for p in notice.paragraphs]
    story.append(Spacer(1, 10 * mm))
    story += [para(s, body) for s in notice.signatures]
    story += [Spacer(1, 6 * mm), para(notice.dated, right)]
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title=notice.title,
        author=notice.issuer,
        invariant=True,
    )
    doc.build(story)
    return buffer.getvalue()


# -- saving and printing -------------------------------------------------------


def save(home: Path, name: str, content: str | bytes) -> Path:
    """Save a paper under the node home's receipts/ folder."""
    folder = home / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def save_notice(home: Path, notice: Notice, *, as_pdf: bool) -> Path:
    """Save a notice as ``receipts/TRACKING-KIND.txt`` or ``.pdf``."""
    if as_pdf:
        return save(home, f"{notice.stem}.pdf", pdf(notice))
    return save(home, f"{notice.stem}.txt", text(notice))


def print_file(path: Path, timeout: float = 30.0) -> str:
    """Send a saved paper to the printer: CUPS ``lp``, or the default
    printer on Windows; says what happened, in a sentence."""
    if sys.platform == "win32":
        try:
            os.startfile(str(path), "print")  # type: ignore[attr-defined,unused-ignore]
        except OSError as exc:
            return _("Printing failed ({error}); the paper is saved as {path}.").format(
                error=type(exc).__name__, path=path
            )
        return _("Sent to the printer; also saved as {path}.").format(path=path)
    lp = shutil.which("lp")
    if lp is None:
        return _("No printer command here; the paper is saved as {path}.").format(path=path)
    try:
        proc = subprocess.run([lp, str(path)], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return _("Printing failed ({error}); the paper is saved as {path}.").format(
            error=type(exc).__name__, path=path
        )
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        reason = clean_text(lines[-1] if lines else str(proc.returncode))
        return _("The printer refused it ({error}); the paper is saved as {path}.").format(
            error=reason, path=path
        )
    return _("Sent to the printer; also saved as {path}.").format(path=path)
