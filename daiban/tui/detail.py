"""One application: its summary and its whole history (who did what, when,
where). At the office that handles it, its personal data is opened here, in
memory. The actions the application's state allows: the resident's
evaluation, materials handed in, withdrawal, the receipt and the one-time
notice; at the office, the decision."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Input, SelectionList
from textual.widgets.selection_list import Selection

from daiban.errors import DaibanError
from daiban.i18n import _
from daiban.node import places
from daiban.node.applications import POOR_SCORE, withdraw_reason_label
from daiban.node.lifecycle import kind_label, status_label
from daiban.node.validation import field_label
from daiban.render import (
    actor_text,
    applicant_line,
    attention_lines,
    correction_lines,
    due_text,
    event_detail,
    place_lines,
    score_label,
    value_text,
    who_text,
)
from daiban.tui.base import Base, Modal
from daiban.tui.safe import N_, Plain, cell, short
from daiban.tui.widgets import CheckList

OPEN_AT_OFFICE = ("received", "needs_supplement", "accepted")


class DetailScreen(Base):
    BINDINGS = [
        Binding("d", "decide", N_("Decide")),
        Binding("e", "evaluate", N_("Evaluate")),
        Binding("m", "supplied", N_("Materials in")),
        Binding("w", "withdraw", N_("Withdraw")),
        Binding("r", "receipt", N_("Receipt")),
        Binding("o", "notice", N_("Notice")),
        Binding("t", "told", N_("Resident told")),
        Binding("c", "correct", N_("Correct")),
        Binding("escape", "app.pop_screen", N_("Back")),
    ]

    def __init__(self, tracking: str) -> None:
        super().__init__()
        self.tracking = tracking
        self.view: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        yield self.header()
        with Vertical(classes="panel"):
            yield Plain("", id="summary")
        table: DataTable[object] = DataTable(id="history", cursor_type="row")
        yield table
        yield self.footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(_("when"), _("what"), _("who"), _("detail"))

    def on_screen_suspend(self) -> None:
        """Another screen over this one (a decision, the receipt): nothing
        personal stays drawn under it; it is read again on return."""
        if self.view.get("personal"):
            self.view = {k: v for k, v in self.view.items() if k != "personal"}
            self.query_one("#summary", Plain).show("\n".join(summary_lines(self.view, self.node)))

    def on_screen_resume(self) -> None:
        self.load()  # also when first shown: Textual resumes a screen it pushes, after its mount

    def load(self) -> None:
        self.view = view = self.node.show(self.tracking)
        names = places.names(self.node)
        self.query_one("#summary", Plain).show("\n".join(summary_lines(view, self.node, names)))
        table = self.query_one(DataTable)
        table.clear()
        for e in view["history"]:
            table.add_row(
                cell(str(e["at"])[5:16].replace("T", " ")),
                cell(kind_label(e["kind"])),
                # Who, and where when not here (by name, cut to fit 80 columns).
                short(who_text(e, names) if e["origin"] != self.node.code else actor_text(e["actor"]), 24),
                cell(event_detail(e["kind"], e["body"])),
            )
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        v = self.view
        if not v:
            return True
        here = self.node.code
        status = v["status"]
        if action == "decide":
            return v["office"] == here and status in OPEN_AT_OFFICE
        if action == "evaluate":  # the resident evaluates at the point that filed, never the office
            return status == "completed" and not v.get("evaluation") and v["origin"] == here
        if action == "supplied":
            return status == "needs_supplement" or bool(v.get("owed") and status != "completed")
        if action == "withdraw":
            return status in ("submitted", "received", "needs_supplement") and v["origin"] == here
        if action == "notice":  # the notice for the state now, wherever it is looked at
            return True
        if action == "receipt":
            return v["origin"] == here
        if action == "correct":  # what was typed, before the office accepts, at the filing point
            return status in ("submitted", "received", "needs_supplement") and v["origin"] == here
        if action == "told":
            return status == "rejected" and v["origin"] == here and not v.get("told_at")
        return True

    def action_decide(self) -> None:
        from daiban.tui.decide import DecideScreen

        self.app.push_screen(DecideScreen(self.view["tracking"]))

    def action_evaluate(self) -> None:
        self.app.push_screen(EvaluateModal(self.view["tracking"]))

    def action_supplied(self) -> None:
        outstanding = self.view["missing"] if self.view["status"] == "needs_supplement" else self.view["owed"]
        self.app.push_screen(SuppliedModal(self.view["tracking"], list(outstanding)))

    def action_withdraw(self) -> None:
        self.app.push_screen(WithdrawModal(self.view["tracking"]))

    def action_receipt(self) -> None:
        from daiban.tui.receipt import ReceiptScreen

        self.app.push_screen(ReceiptScreen(self.view["tracking"], "receipt"))

    def action_correct(self) -> None:
        self.app.push_screen(CorrectModal(self.view["tracking"]))

    def action_told(self) -> None:
        """The agent has told the resident of the rejection: off the to-do list."""
        self.node.mark_told(self.view["tracking"])
        self.dapp.info(_("Noted: the resident has been told."))
        self.load()

    def action_notice(self) -> None:
        from daiban.tui.receipt import ReceiptScreen

        self.app.push_screen(ReceiptScreen(self.view["tracking"]))


def summary_lines(view: dict[str, Any], node: Any, names: dict[str, str] | None = None) -> list[str]:
    """The application at a glance: offices by name (with the code), the
    applicant in full only where this office opened the personal data (while
    this screen is open), masked everywhere else; values in people's words."""
    names = places.names(node) if names is None else names
    lines = [
        f"{view['tracking']}  {view['item_name']} ({view['item']})",
        _("Status: {status}   Due: {due}").format(status=status_label(view["status"]), due=due_text(view)),
        applicant_line(view),
        *place_lines(view, names),
    ]
    lines.extend(attention_lines(view))
    lines.extend(correction_lines(view.get("corrections") or []))
    if view.get("evaluation"):
        lines.append(_("Evaluation: {level}").format(level=score_label(int(view["evaluation"]))))
    personal = view.get("personal")
    if personal:
        try:
            props = node.filed_item(str(view["tracking"])).fields.get("properties", {})
        except DaibanError:
            props = {}
        fields = [
            f"{field_label(k, props.get(k, {}))}: {value_text(v)}"
            for k, v in (personal.get("fields") or {}).items()
        ]
        if fields:
            lines.append("  ".join(fields))
    elif view.get("personal_problem"):
        lines.append(str(view["personal_problem"]))
    return lines


class EvaluateModal(Modal):
    """The resident's evaluation (好差评) in GB/T 39734's five levels: a digit
    chooses the level, then it is confirmed — with the resident's reason,
    required for 不满意 and 非常不满意 — before it is recorded, once."""

    BINDINGS = [
        *(Binding(str(n), f"score({n})", str(n), show=False) for n in (1, 2, 3, 4, 5)),
        Binding("escape", "back", N_("Cancel")),
    ]

    def __init__(self, tracking: str) -> None:
        super().__init__()
        self.tracking = tracking
        self.score: int | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Plain(
                _("The resident's evaluation of {tracking}").format(tracking=self.tracking), classes="title"
            )
            yield Plain(
                "  ".join(f"{n} {score_label(n)}" for n in (5, 4, 3, 2, 1)),
                id="levels",
            )
            yield Plain(_("Press the digit of the resident's choice; Esc cancels."), id="ask")
            # Disabled (and so never focused) until a level is chosen: the
            # digits choose the level, they are not typed into it.
            yield Input(id="reason", placeholder=_("the resident's reason"), max_length=200, disabled=True)
        yield self.footer()

    def on_mount(self) -> None:
        self.query_one("#reason", Input).display = False

    def action_score(self, score: int) -> None:
        """A level chosen: ask to confirm it (and for the reason)."""
        self.score = score
        poor = score <= POOR_SCORE
        ask = (
            _("{level}: type the resident's reason (required), Enter records it, Esc goes back.")
            if poor
            else _("{level}: Enter records it (a reason may be typed), Esc goes back.")
        )
        self.query_one("#ask", Plain).show(ask.format(level=score_label(score)))
        reason = self.query_one("#reason", Input)
        reason.disabled = False
        reason.display = True
        reason.focus()

    def action_back(self) -> None:
        if self.score is None:
            self.dismiss()
            return
        self.score = None
        reason = self.query_one("#reason", Input)
        reason.display = False
        reason.disabled = True
        self.query_one("#ask", Plain).show(_("Press the digit of the resident's choice; Esc cancels."))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if self.score is None:
            return
        try:
            self.node.evaluate(self.tracking, self.score, comment=event.value)
        except DaibanError as exc:
            self.dapp.error(exc.message)
            return
        self.dapp.info(_("Evaluation recorded: {level}.").format(level=score_label(self.score)))
        self.dismiss()


class SuppliedModal(Modal):
    """Materials the resident handed in later (补正, or owed under 容缺受理)."""

    BINDINGS = [
        Binding("ctrl+s", "save", N_("Record")),
        Binding("escape", "app.pop_screen", N_("Cancel")),
    ]

    def __init__(self, tracking: str, outstanding: list[str]) -> None:
        super().__init__()
        self.tracking = tracking
        self.outstanding = outstanding

    def compose(self) -> ComposeResult:
        from rich.text import Text

        with Vertical(classes="dialog"):
            yield Plain(_("Tick what the resident handed in, then Ctrl+S."), classes="title")
            yield CheckList[str](
                *[Selection(Text(m), m, True) for m in self.outstanding], id="supplied", compact=True
            )
        yield self.footer()

    def action_save(self) -> None:
        chosen = list(self.query_one(SelectionList).selected)
        if not chosen:
            self.dapp.error(_("Tick at least one material."))
            return
        try:
            self.node.supplement(self.tracking, chosen)
        except DaibanError as exc:
            self.dapp.error(exc.message)
            return
        self.dapp.info(_("Recorded; it goes to the office at the next sync."))
        self.dismiss()


class WithdrawModal(Modal):
    """Withdraw before acceptance, saying why: a digit chooses the reason,
    Y withdraws."""

    REASONS = ("resident", "duplicate", "typo")
    BINDINGS = [
        *(Binding(str(n), f"reason({n})", str(n), show=False) for n in (1, 2, 3)),
        Binding("y", "yes", N_("Yes, withdraw")),
        Binding("escape", "app.pop_screen", N_("No")),
    ]

    def __init__(self, tracking: str) -> None:
        super().__init__()
        self.tracking = tracking
        self.reason: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Plain(_("Withdraw {tracking}: why?").format(tracking=self.tracking), classes="title")
            yield Plain(
                "  ".join(f"{n} {withdraw_reason_label(r)}" for n, r in enumerate(self.REASONS, start=1))
            )
            yield Plain(_("Press the reason's digit; Esc keeps the application."), id="ask")
        yield self.footer()

    def action_reason(self, n: int) -> None:
        self.reason = self.REASONS[n - 1]
        self.query_one("#ask", Plain).show(
            _("{reason}: Y withdraws, Esc keeps the application.").format(
                reason=withdraw_reason_label(self.reason)
            )
        )

    def action_yes(self) -> None:
        if self.reason is None:
            self.dapp.error(_("Press the reason's digit first."))
            return
        try:
            self.node.withdraw(self.tracking, reason=self.reason)
        except DaibanError as exc:
            self.dapp.error(exc.message)
            return
        self.dismiss()


class CorrectModal(Modal):
    """Correct what was typed, before the office accepts: only what changes,
    and why. Ctrl+S records it; it goes to the office sealed."""

    BINDINGS = [
        Binding("ctrl+s", "save", N_("Record")),
        Binding("escape", "app.pop_screen", N_("Cancel")),
    ]

    def __init__(self, tracking: str) -> None:
        super().__init__()
        self.tracking = tracking

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Plain(
                _("Correct {tracking}: fill in only what changes, and why; Ctrl+S records.").format(
                    tracking=self.tracking
                ),
                classes="title",
            )
            yield Input(id="name", placeholder=_("name, corrected"), max_length=40, compact=True)
            yield Input(id="id_number", placeholder=_("ID number, corrected"), max_length=18, compact=True)
            yield Input(id="phone", placeholder=_("phone, corrected"), max_length=20, compact=True)
            yield Input(id="reason", placeholder=_("why (required)"), max_length=200, compact=True)
        yield self.footer()

    def action_save(self) -> None:
        changes = {key: self.query_one(f"#{key}", Input).value for key in ("name", "id_number", "phone")}
        changes = {k: v for k, v in changes.items() if v.strip()}
        try:
            self.node.correct(self.tracking, changes, reason=self.query_one("#reason", Input).value)
        except DaibanError as exc:
            self.dapp.error(exc.message)
            return
        self.dapp.info(_("Corrected; the correction goes to the office at the next sync."))
        self.dismiss()
