"""The office's inbox: the open applications it handles, by deadline —
accepted ones by due date with the working days left, overdue ones marked
(with a "!" and a word, not only a colour); then those awaiting a decision,
longest waiting first, each resident by the masked name only. Enter opens
one: its personal data (the full name and ID number) is opened there, and
only while that detail is open.

The table holds the most urgent ``PAGE`` of them: nobody scrolls through
thousands of rows on an 80x24 screen, and filling a table that large takes
seconds on an old PC. The rest are a search (F) away; the count says so."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable

from daiban.i18n import _
from daiban.node import timeliness
from daiban.node.lifecycle import status_label
from daiban.node.workdays import WorkCalendar
from daiban.tui.base import Base
from daiban.tui.safe import N_, Plain, cell, short

PAGE = 100
# The item's name gives up width so the deadline ("剩 30 个工作日（预计）")
# is never cut at 80 columns.
ITEM_WIDTH = 14


def deadline_text(
    row: Mapping[str, Any], today: dt.date, calendar: WorkCalendar, cache: dict[str, str]
) -> str:
    """Days left, overdue, or how long it has waited for a decision."""
    due = row.get("due")
    if row["status"] == "accepted":
        if not due:
            return _("due unknown")
        if due not in cache:
            # A provisional due date (no official calendar for its year yet)
            # is counted on the same estimate, and said so.
            day = dt.date.fromisoformat(due)
            if day < today:
                late = calendar.working_days_between(day, today, estimate=True)
                cache[due] = "! " + _("overdue {n} working days").format(n=late)
            else:
                left = calendar.working_days_between(today, day, estimate=True)
                cache[due] = _("{n} working days left").format(n=left)
        text = cache[due]
        return _("{text} (estimated)").format(text=text) if row.get("due_state") == "provisional" else text
    if row["status"] == "received":
        unanswered = timeliness.of_row(row, today, calendar)
        if unanswered is not None:  # the Art. 32 limit (5 working days) is near or past
            return "! " + _("no answer for {n} working days").format(n=unanswered.working_days)
    since = str(row.get("received_at") or row.get("filed_at") or "")[:10]
    try:
        waited = (today - dt.date.fromisoformat(since)).days
    except ValueError:
        waited = 0
    return _("waiting {n} days").format(n=waited)


class InboxScreen(Base):
    BINDINGS = [
        Binding("f", "find", N_("Find")),
        Binding("g", "reload", N_("Reload")),
        Binding("escape", "app.pop_screen", N_("Back")),
    ]

    def compose(self) -> ComposeResult:
        yield self.header()
        yield Plain("", id="count", classes="title")
        table: DataTable[object] = DataTable(id="inbox", cursor_type="row")
        yield table
        yield self.footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(
            _("tracking"), _("item"), _("applicant"), _("status"), _("deadline")
        )
        self.query_one(DataTable).focus()

    def on_screen_resume(self) -> None:
        self.load()  # also when first shown: Textual resumes a screen it pushes, after its mount

    def action_reload(self) -> None:
        self.load()

    def load(self) -> None:
        node = self.node
        rows = node.store.inbox(node.code, limit=PAGE)
        total = node.store.count_inbox(node.code) if len(rows) == PAGE else len(rows)
        today, calendar = node.today(), node.calendar()
        cache: dict[str, str] = {}
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        deadlines = [deadline_text(r, today, calendar, cache) for r in rows]
        table.add_rows(
            (
                cell(r["tracking"]),
                short(r["item_name"], ITEM_WIDTH),
                cell(r["name_masked"]),
                cell(status_label(r["status"]) + (" !" if r.get("sync_problem") else "")),
                cell(deadline),
            )
            for r, deadline in zip(rows, deadlines, strict=True)
        )
        self._keys = [r["tracking"] for r in rows]
        overdue = sum(1 for text in deadlines if text.startswith("!"))
        self.query_one("#count", Plain).show(
            _("Inbox of {office}: {n} open").format(office=node.name, n=total)
            + ("  " + _("overdue: {n}").format(n=overdue) if overdue else "")
            + (
                "  " + _("(the {n} most urgent shown; F finds the others)").format(n=len(rows))
                if total > len(rows)
                else ""
            )
        )
        if rows:
            table.move_cursor(row=min(cursor, len(rows) - 1))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        from daiban.tui.detail import DetailScreen

        self.app.push_screen(DetailScreen(self._keys[event.cursor_row]))

    def action_find(self) -> None:
        from daiban.tui.find import FindScreen

        self.app.push_screen(FindScreen())
