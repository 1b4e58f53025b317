"""Find an application by tracking number, resident ID number or name. A
village keeps personal data only sealed: it finds by ID number through the
keyed hash, and by name through the masked name it keeps (王秀兰 finds 王*兰,
so a namesake pattern may show too)."""

from __future__ import annotations

import re
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Input

from daiban.errors import DaibanError
from daiban.i18n import _
from daiban.node import masking, tracking
from daiban.node.lifecycle import status_label
from daiban.render import due_text
from daiban.tui.base import Base
from daiban.tui.safe import N_, Plain, SafeInput, cell

ID_SHAPE = re.compile(r"^\d{17}[\dXx]$")


def kind_of(query: str) -> str:
    """What a search box holds: a tracking number, an ID number or a name."""
    compact = re.sub(r"[\s-]", "", query)
    if compact.isdigit() and len(compact) == 20:
        return "tracking"
    if ID_SHAPE.match(compact):
        return "id_number"
    return "name"


class FindScreen(Base):
    BINDINGS = [
        Binding("escape", "app.pop_screen", N_("Back")),
        Binding("down", "to_table", N_("Results"), show=False),
    ]

    def compose(self) -> ComposeResult:
        yield self.header()
        yield Plain(
            _("Find by tracking number, resident ID number or name; Enter searches."), classes="title"
        )
        yield SafeInput(id="query", compact=True, max_length=40)
        yield Plain("", id="summary", classes="hint")
        table: DataTable[object] = DataTable(id="results", cursor_type="row")
        yield table
        yield self.footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(_("tracking"), _("item"), _("applicant"), _("status"), _("due"))
        self.query_one(Input).focus()

    def action_to_table(self) -> None:
        self.query_one(DataTable).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.search(event.value.strip())

    def search(self, query: str) -> None:
        summary = self.query_one("#summary", Plain)
        table = self.query_one(DataTable)
        table.clear()
        if not query:
            summary.show("")
            return
        kind = kind_of(query)
        node = self.node
        rows: list[dict[str, Any]]
        unopenable = 0
        try:
            if kind == "tracking":
                rows = [node.show(tracking.parse(query))]
            elif kind == "id_number":
                rows = node.list(id_number=query, limit=200)
                unopenable = len(node.unopenable())
            else:
                rows = [
                    _public(r)
                    for r in node.store.find_by_masked_name(node.code, masking.mask_name(query.strip()))
                ]
        except DaibanError as exc:
            summary.show(exc.message)
            return
        for r in rows:
            table.add_row(
                cell(r["tracking"]),
                cell(r["item_name"]),
                cell(r["applicant"]["name"]),
                cell(status_label(r["status"])),
                cell(due_text(r, short=True)),
                key=r["tracking"],
            )
        if kind == "name":
            summary.show(
                _("{n} found by the masked name {masked} (names are kept masked here).").format(
                    n=len(rows), masked=masking.mask_name(query.strip())
                )
            )
        elif unopenable:
            summary.show(
                _(
                    "{n} found; {m} more here are sealed to this node's previous key and cannot be "
                    "searched until their filing point sends them again."
                ).format(n=len(rows), m=unopenable)
            )
        else:
            summary.show(_("{n} found.").format(n=len(rows)))
        if rows:
            table.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        from daiban.tui.detail import DetailScreen

        if event.row_key.value:
            self.app.push_screen(DetailScreen(event.row_key.value))


def _public(row: dict[str, Any]) -> dict[str, Any]:
    from daiban.node.applications import public_view

    return public_view(row)
