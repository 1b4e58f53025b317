"""The papers an agent hands a resident: the receipt (受理回执) with the
tracking number, what was handed in and what is owed, and the expected
completion date; the one-time notice (一次性告知单) of everything an office
asks to be supplied. Plain text laid out for 80 columns, Chinese characters
counted at their double width (rich does the counting), saved in the node
home's receipts/ folder and sent to the system printer where there is one.

Only masked personal values are printed: a village keeps personal data
sealed, and a text file in its home is not sealed."""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from daiban.i18n import _
from daiban.node import tracking as tracking_mod
from daiban.node.text import clean_text

WIDTH = 80
FOLDER = "receipts"


def _render(title: str, rows: Sequence[tuple[str, str]], footer: Sequence[str]) -> str:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    buffer = io.StringIO()
    console = Console(file=buffer, width=WIDTH, color_system=None, markup=False, emoji=False, highlight=False)
    console.print(Text(title, justify="center"))
    console.print("─" * WIDTH)
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in rows:
        grid.add_row(Text(label), Text(clean_text(value)))
    console.print(grid)
    console.print("─" * WIDTH)
    for line in footer:
        console.print(Text(clean_text(line)))
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


def _numbered(items: Sequence[str]) -> str:
    return "\n".join(f"{n}. {m}" for n, m in enumerate(items, start=1)) or _("(none)")


def receipt(view: Mapping[str, Any], *, node: str, agent: str, expected: str) -> str:
    """The receipt for a filed application (``view`` as ``Node.show`` gives it)."""
    a = view["applicant"]
    rows = [
        (_("Tracking number:"), tracking_mod.grouped(view["tracking"])),
        (_("Item:"), f"{view['item_name']} ({view['item']})"),
        (_("Applicant:"), f"{a['name']}  {a['id_number']}  {a['phone']}"),
        (_("Filed at:"), f"{node}  {agent}  {str(view['filed_at'])[:16].replace('T', ' ')}"),
        (_("Office:"), view["office"]),
        (_("Materials received:"), _numbered(view.get("materials") or [])),
        (_("Owed (容缺):"), _numbered(view.get("owed") or [])),
        (_("Expected completion:"), expected),
    ]
    footer = [
        _("Keep this receipt. Ask at the agency point about progress with the tracking number."),
    ]
    if view.get("owed"):
        footer.append(_("Bring the owed materials to the agency point as soon as you can."))
    return _render(_("Acceptance receipt (受理回执)"), rows, footer)


def supplement_notice(view: Mapping[str, Any], *, node: str) -> str:
    """The one-time notice of everything the office asks to be supplied."""
    request: Mapping[str, Any] = {}
    for event in view.get("history", []):
        if event["kind"] == "supplement_requested":
            request = event
    body = request.get("body") or {}
    a = view["applicant"]
    rows = [
        (_("Tracking number:"), tracking_mod.grouped(view["tracking"])),
        (_("Item:"), f"{view['item_name']} ({view['item']})"),
        (_("Applicant:"), f"{a['name']}  {a['id_number']}"),
        (_("Office:"), f"{view['office']}  {request.get('actor', '')}"),
        (_("Asked on:"), str(request.get("at", ""))[:10]),
        (_("Supply all of these:"), _numbered(list(body.get("missing") or view.get("missing") or []))),
        (_("Office's note:"), str(body.get("note") or "-")),
    ]
    footer = [
        _("This notice lists everything missing, all at once (一次性告知)."),
        _("Bring it all to the agency point: {node}.").format(node=node),
    ]
    return _render(_("One-time notice of materials to supplement (一次性告知单)"), rows, footer)


def save(home: Path, name: str, text: str) -> Path:
    """Save a paper under the node home's receipts/ folder."""
    folder = home / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def print_file(path: Path, timeout: float = 30.0) -> str:
    """Send a saved paper to the system printer (CUPS ``lp``) if there is one;
    says what happened, in a sentence."""
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
