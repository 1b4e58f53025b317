"""Find an application from one search box (node/finding.py): a tracking
number, an ID number, a few digits of either, an item as people name it
(低保, 医保, ``db``) or a resident's name — the full name at the office that
handles it, the masked name at a village (which keeps personal data only
sealed). The box keeps the focus after a search, so the next one is typed
straight away; Enter again on the same words (or Down) goes to the results."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Input

from daiban.errors import DaibanError
from daiban.i18n import _
from daiban.node import finding, masking
from daiban.node.finding import Found
from daiban.node.lifecycle import status_label
from daiban.render import due_text
from daiban.tui.base import Base
from daiban.tui.safe import N_, Plain, SafeInput, cell, short

kind_of = finding.kind_of
ITEMS_SHOWN = 2
WIDTH = 80
# What the table takes besides its cells: two cells of padding per column,
# and the scroll bar.
PADDING = 2 * 5 + 2


def item_width(rows: list[list[str]]) -> int:
    """Only the item's name gives up width at 80 columns: a tracking number,
    a status or a due date (~2026-12-01, 预计2026-12-01) is never cut."""
    from rich.cells import cell_len

    others = sum(max((cell_len(r[i]) for r in rows), default=0) for i in (0, 2, 3, 4))
    return max(6, WIDTH - PADDING - others)


class FindScreen(Base):
    BINDINGS = [
        Binding("escape", "app.pop_screen", N_("Back")),
        Binding("down", "to_table", N_("Results"), show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.searched: str | None = None

    def compose(self) -> ComposeResult:
        yield self.header()
        yield Plain(
            _("Find by tracking number, ID number, item or name; Enter searches."),
            classes="title",
        )
        # Not selected on focus: a character typed in the results comes here
        # as the first of the next search, and must not be overtyped.
        yield SafeInput(id="query", compact=True, max_length=40, select_on_focus=False)
        yield Plain("", id="summary", classes="hint")
        table: DataTable[object] = DataTable(id="results", cursor_type="row")
        yield table
        yield self.footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column(_("tracking"))
        table.add_column(_("item"))
        table.add_column(_("applicant"))
        table.add_column(_("status"))
        table.add_column(_("due"))
        self.query_one(Input).focus()

    def action_to_table(self) -> None:
        self.query_one(DataTable).focus()

    def on_key(self, event: events.Key) -> None:
        """Typing while the results have the focus starts the next search:
        the characters go to the box (no Shift+Tab back to it)."""
        box = self.query_one(Input)
        if self.focused is box or not event.is_printable or not event.character or event.character.isspace():
            return
        box.focus()
        box.value = ""
        box.insert_text_at_cursor(event.character)
        event.stop()
        event.prevent_default()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        query = event.value.strip()
        table = self.query_one(DataTable)
        if query and query == self.searched and table.row_count:
            self.open_row(table.cursor_row)  # Enter again: open what it found
            return
        self.search(query)

    def search(self, query: str) -> None:
        summary = self.query_one("#summary", Plain)
        table = self.query_one(DataTable)
        table.clear()
        self.searched = query
        if not query:
            summary.show("")
            return
        try:
            found = finding.find(self.node, query)
        except DaibanError as exc:
            summary.show(exc.message)
            return
        rows = [
            [
                r["tracking"],
                r["item_name"],
                r["applicant"]["name"],
                status_label(r["status"]),
                due_text(r, short=True),
            ]
            for r in found.rows
        ]
        width = item_width([[_("tracking"), "", _("applicant"), _("status"), _("due")], *rows])
        for r in rows:
            table.add_row(cell(r[0]), short(r[1], width), cell(r[2]), cell(r[3]), cell(r[4]), key=r[0])
        summary.show(summary_text(found, query, village=self.node.role == "village"))
        box = self.query_one(Input)
        if found.kind == "id_number":
            # A full ID number stays on screen only in an open detail: the
            # box keeps it masked once it has been searched for.
            box.value = self.searched = masking.mask_id_number(finding.compact_query(query))
        box.focus()
        box.select_all()  # the next search is typed over this one

    def open_row(self, row: int) -> None:
        from daiban.tui.detail import DetailScreen

        key = self.query_one(DataTable).coordinate_to_cell_key(Coordinate(row, 0)).row_key.value
        if key:
            self.app.push_screen(DetailScreen(key))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        from daiban.tui.detail import DetailScreen

        if event.row_key.value:
            self.app.push_screen(DetailScreen(event.row_key.value))


def summary_text(found: Found, query: str, *, village: bool) -> str:
    """What was found, and how (so a namesake is not a surprise)."""
    n = len(found.rows)
    if found.kind == "digits":
        return _("{n} found with {digits} in the tracking number or at the end of the ID number.").format(
            n=n, digits=query
        )
    if found.unopenable:
        return _(
            "{n} found; {m} more here are sealed to this node's previous key and cannot be "
            "searched until their filing point sends them again."
        ).format(n=n, m=found.unopenable)
    if found.kind not in ("item", "name"):
        return _("{n} found.").format(n=n)
    said = []
    named = found.kind == "name" and (found.by_name or not found.items)  # 低保 is no one's name
    if named and village:
        said.append(
            _("{n} found by the masked name {masked} (names are kept masked here).").format(
                n=found.by_masked_name, masked=found.masked
            )
        )
    elif named:
        said.append(_("{n} found by the full name {name}.").format(n=found.by_full_name, name=query))
        if found.by_masked_name:
            said.append(
                _("{n} more, filed here for other offices, by the masked name {masked}.").format(
                    n=found.by_masked_name, masked=found.masked
                )
            )
    if found.items:
        names = _("、").join(found.items[:ITEMS_SHOWN]) + ("…" if len(found.items) > ITEMS_SHOWN else "")
        said.append(_("{n} found for {items}.").format(n=n - found.by_name, items=names))
    elif found.kind == "item":
        said.append(_("No item is called {query}.").format(query=query))
    return " ".join(said)
