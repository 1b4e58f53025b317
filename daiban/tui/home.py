"""Home: counts by status, whether the parent answers, the last successful
sync, what waits to go up, at an office the children gone quiet, and what
needs the agent's attention (returned for supplement, completed and not yet
evaluated, refused by the parent)."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable

from daiban.i18n import _
from daiban.node import places, routing
from daiban.node.lifecycle import Status, status_label
from daiban.tui import children
from daiban.tui.base import Base
from daiban.tui.safe import N_, Plain, cell

PROBE_TIMEOUT = 3.0
LINK_EVERY = 1.0  # seconds between looks at the background sync's state


class HomeScreen(Base):
    BINDINGS = [
        Binding("n", "new", N_("New")),
        Binding("f", "find", N_("Find")),
        Binding("i", "inbox", N_("Inbox")),
        Binding("d", "dashboard", N_("Dashboard")),
        Binding("s", "sync", N_("Sync")),
        Binding("l", "app.logout", N_("Log out")),
        Binding("q", "app.quit", N_("Quit")),
    ]

    def compose(self) -> ComposeResult:
        yield self.header()
        with Vertical(classes="panel"):
            yield Plain("", id="counts")
            yield Plain("", id="parent")
            yield Plain("", id="queue")
            if self.dapp.is_office:
                yield Plain("", id="children")
            yield Plain(_("Needs your attention:"), classes="title")
        table: DataTable[object] = DataTable(id="attention", cursor_type="row", zebra_stripes=False)
        yield table
        yield self.footer()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("inbox", "dashboard"):
            return self.dapp.is_office
        return True

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(_("tracking"), _("item"), _("applicant"), _("to do"))
        parent, url = self.node.parent(), self.node.store.setting("parent_url")
        self.seen_syncs = -1
        if parent and self.dapp.background is not None:
            self.show_link()
            self.set_interval(LINK_EVERY, self.show_link)
        elif parent and url:
            self.query_one("#parent", Plain).show(_("Parent {code}: checking…").format(code=parent))
            self.probe_parent(parent, url)

    def on_screen_resume(self) -> None:
        self.refresh_view()  # also when first shown: Textual resumes a screen it shows, after its mount

    def refresh_view(self) -> None:
        node = self.node
        counts = node.store.status_counts(node.code)
        parts = [f"{status_label(s)} {counts.get(s.value, 0)}" for s in Status]
        self.query_one("#counts", Plain).show(_("Applications: ") + "  ".join(parts))
        parent = node.parent()
        peer = node.store.peer(parent) if parent else None
        last = (peer or {}).get("last_sync_at")
        waiting = node.store.outbox_count(routing.UP)
        self.query_one("#queue", Plain).show(
            _("Last successful sync: {at}   Waiting to go up: {n}").format(
                at=str(last)[:16].replace("T", " ") if last else _("never"), n=waiting
            )
        )
        if self.dapp.is_office:
            self.query_one("#children", Plain).show(children.home_line(node, self.dapp.stale_after))
        if parent is None and node.role != "city":
            self.query_one("#parent", Plain).show(_("Parent: not enrolled yet"))
        table = self.query_one(DataTable)
        table.clear()
        for row in node.to_do():
            table.add_row(
                cell(row["tracking"]),
                cell(row["item_name"]),
                cell(row["applicant"]["name"]),
                cell(_todo(row)),
                key=row["tracking"],
            )

    def show_link(self) -> None:
        """The background sync's view of the parent; the figures again after
        each of its syncs (they may have moved)."""
        background, code = self.dapp.background, self.node.parent()
        if background is None or code is None:
            return
        parent = places.place_name(places.names(self.node), code)  # by its name where known
        state = background.state
        if background.stopped_because:
            text = _("Parent {code}: background sync stopped: {why}").format(
                code=parent, why=background.stopped_because
            )
        elif state is None or state.reachable is None:
            text = _("Parent {code}: checking…").format(code=parent)
        elif state.reachable:
            text = _("Parent {code}: reachable; syncing in the background").format(code=parent)
        else:
            text = _("Parent {code}: not reachable now; retrying by itself").format(code=parent)
        self.query_one("#parent", Plain).show(text)
        if state is not None and state.syncs != self.seen_syncs:
            self.seen_syncs = state.syncs
            self.refresh_view()

    @work(thread=True, exclusive=True, group="probe")
    def probe_parent(self, parent: str, url: str) -> None:
        """Ask the parent's /v1/healthz, briefly, off the UI thread (and off
        the node's database, which belongs to the UI thread)."""
        import urllib.request

        from daiban.sync import protocol

        request = urllib.request.Request(url + protocol.HEALTH, headers=protocol.PROTOCOL_HEADERS)
        try:
            with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT) as resp:
                ok = resp.status == 200
        except (OSError, ValueError):
            ok = False
        text = (_("Parent {code}: reachable") if ok else _("Parent {code}: not reachable now")).format(
            code=parent
        )
        self.app.call_from_thread(self.query_one("#parent", Plain).show, text)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        from daiban.tui.detail import DetailScreen

        if event.row_key.value:
            self.app.push_screen(DetailScreen(event.row_key.value))

    def action_new(self) -> None:
        from daiban.tui.apply import ItemScreen

        self.app.push_screen(ItemScreen())

    def action_find(self) -> None:
        from daiban.tui.find import FindScreen

        self.app.push_screen(FindScreen())

    def action_sync(self) -> None:
        from daiban.tui.sync import SyncScreen

        self.app.push_screen(SyncScreen())

    def action_inbox(self) -> None:
        from daiban.tui.inbox import InboxScreen

        self.app.push_screen(InboxScreen())

    def action_dashboard(self) -> None:
        from daiban.tui.dashboard import DashboardScreen

        self.app.push_screen(DashboardScreen())


def _todo(row: dict[str, Any]) -> str:
    if row.get("sync_problem"):
        return _("refused by the parent: {reason}").format(reason=row["sync_problem"])
    if row["status"] == Status.NEEDS_SUPPLEMENT:
        return _("supplement: {materials}").format(materials=_("、").join(row.get("missing") or []))
    if row["status"] == Status.REJECTED:
        return _("rejected: tell the resident (t in its detail)")
    if row["status"] == Status.ACCEPTED:
        late = row.get("late") or {}
        return _("past its due date {due}: ask the office").format(due=row["due"]) if late else ""
    return _("completed: record the evaluation")
