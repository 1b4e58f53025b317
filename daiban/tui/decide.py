"""Decide at the office: accept (受理, with materials still owed under
容缺受理), ask for a supplement listing everything missing at once (补正), reject
with the reason (不予受理), or complete (办结) with the delivery — pickup, or
post with its tracking number. The screen shows only what the chosen
decision needs; the library checks it all again."""

from __future__ import annotations

import re
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Input, RadioSet, Select, SelectionList
from textual.widgets.selection_list import Selection

from daiban.errors import DaibanError
from daiban.i18n import _
from daiban.tui.base import Guarded
from daiban.tui.safe import N_, Plain
from daiban.tui.widgets import CheckList, Field, Form, Radio

ACTIONS = (
    ("accept", N_("Accept (受理)")),
    ("supplement", N_("Ask for a supplement (补正)")),
    ("reject", N_("Reject (不予受理)")),
    ("complete", N_("Complete (办结)")),
)
# Which parts of the form each decision uses.
PARTS = {
    "accept": {"owed", "note"},
    "supplement": {"missing", "other", "by", "note"},
    "reject": {"note"},
    "complete": {"delivery", "post", "note"},
}


class DecideScreen(Guarded):
    BINDINGS = [
        Binding("ctrl+s", "decide", N_("Record the decision")),
        Binding("escape", "leave", N_("Back")),
    ]

    def __init__(self, tracking: str) -> None:
        super().__init__()
        self.tracking = tracking

    def compose(self) -> ComposeResult:
        view = self.node.show(self.tracking)
        self.view = view
        item = self.node.filed_item(self.tracking)
        status = view["status"]
        allowed = {"accept", "supplement", "reject"} if status in ("received",) else set()
        if status == "needs_supplement":
            allowed = {"reject"}
        if status == "accepted":
            allowed = {"complete"}
        self.allowed = [a for a, _label in ACTIONS if a in allowed]
        yield self.header()
        with Form():
            yield Plain(f"{view['tracking']}  {view['item_name']}", classes="title")
            with RadioSet(id="action", compact=True):
                for n, (action, label) in enumerate(ACTIONS):
                    if action in allowed:
                        yield Radio(_(label), value=n == 0 or action == self.allowed[0], id=f"a-{action}")
            yield Plain(_("Materials that may still be owed (tick those owed):"), classes="part-owed hint")
            yield CheckList[str](
                *[Selection(Text(m), m, False) for m in item.owable],
                id="owed",
                classes="part-owed",
                compact=True,
            )
            yield Plain(_("Tick everything missing, all at once:"), classes="part-missing hint")
            yield CheckList[str](
                *[Selection(Text(m), m, False) for m in item.material_names],
                id="missing",
                classes="part-missing",
                compact=True,
            )
            with Horizontal(classes="row part-other"):
                yield Plain(_("Also missing"), classes="label")
                yield Field(
                    id="other", compact=True, placeholder=_("others, separated by ；"), max_length=300
                )
            with Horizontal(classes="row part-by"):
                yield Plain(_("Hand in by"), classes="label")
                yield Field(
                    id="by",
                    compact=True,
                    placeholder=_("YYYY-MM-DD (default: 10 working days)"),
                    max_length=10,
                )
            with Horizontal(classes="row part-delivery"):
                yield Plain(_("Delivery"), classes="label")
                yield Select(
                    [(_("pickup"), "pickup"), (_("post"), "post")],
                    id="delivery",
                    compact=True,
                    allow_blank=False,
                )
            with Horizontal(classes="row part-post"):
                yield Plain(_("Postal number"), classes="label")
                yield Field(id="post", compact=True, max_length=40)
            with Horizontal(classes="row part-post"):
                yield Plain(_("Address"), classes="label")
                yield Field(
                    id="address",
                    compact=True,
                    max_length=120,
                    placeholder=_("if not given at filing"),
                )
            with Horizontal(classes="row part-note"):
                yield Plain(_("Note / reason"), id="note-label", classes="label")
                yield Field(id="note", compact=True, max_length=500)
        yield self.footer()

    def on_mount(self) -> None:
        if not self.allowed:
            self.dapp.error(_("{tracking} has no decision left to make here.").format(tracking=self.tracking))
        self.show_parts()
        self.query_one(RadioSet).focus()
        self.remember_untouched()

    def typed(self) -> tuple[Any, ...]:
        """Everything the officer can change here, to see whether they did."""
        return (
            self.query_one(RadioSet).pressed_index,
            *(widget.value for widget in self.query(Input)),
            self.query_one("#delivery", Select).value,
            *(tuple(widget.selected) for widget in self.query(CheckList)),
        )

    def chosen(self) -> str:
        pressed = self.query_one(RadioSet).pressed_button
        if pressed is None or pressed.id is None:
            return self.allowed[0] if self.allowed else ""
        return pressed.id.removeprefix("a-")

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        self.show_parts()

    def show_parts(self) -> None:
        parts = PARTS.get(self.chosen(), set())
        for name in ("owed", "missing", "other", "by", "delivery", "post", "note"):
            for widget in self.query(f".part-{name}"):
                widget.display = name in parts
        label = {"reject": _("Reason*"), "complete": _("Result")}.get(self.chosen(), _("Note"))
        self.query_one("#note-label", Plain).show(label)

    def action_decide(self) -> None:
        action = self.chosen()
        if not action:
            return
        note = self.query_one("#note", Input).value
        missing: list[str] = []
        if action == "accept":
            missing = list(self.query_one("#owed", SelectionList).selected)
        elif action == "supplement":
            missing = list(self.query_one("#missing", SelectionList).selected)
            other = self.query_one("#other", Input).value
            missing += [m.strip() for m in re.split(r"[;；,，、\n]", other) if m.strip()]
            if not missing:
                self.dapp.error(_("List everything that is missing (tick or type it)."))
                return
        delivery = str(self.query_one("#delivery", Select).value or "pickup")
        try:
            row = self.node.review(
                self.tracking,
                action,
                note=note,
                missing=missing,
                delivery=delivery,
                post_tracking=self.query_one("#post", Input).value,
                supplement_by=self.query_one("#by", Input).value if action == "supplement" else "",
                address=self.query_one("#address", Input).value,
            )
        except DaibanError as exc:
            self.dapp.error(exc.message)
            return
        from daiban.node.lifecycle import status_label

        self.dapp.info(
            _("{tracking}: now {status}.").format(
                tracking=row["tracking"], status=status_label(row["status"])
            )
        )
        self.app.pop_screen()
