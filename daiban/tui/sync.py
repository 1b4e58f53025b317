"""Sync now: push what waits and pull what came, in a worker thread with its
own database connection, so the screen never freezes. The bar follows the
queue going up (read on the UI's own connection), then pulses while what the
parent holds comes down, with the counts sent and received so far (the
sync's report, filled as it goes); the summary says what moved, and a
failure says why and what to do.

The background sync (background.py) holds the same lock, so the two never
run at once: "Sync now" waits for one under way to end."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import ProgressBar

from daiban.errors import DaibanError
from daiban.i18n import _
from daiban.node import routing
from daiban.node.clock import Clock
from daiban.tui.base import Base
from daiban.tui.safe import N_, Plain

HINTS = {
    "unreachable": N_("Check the network cable or the parent's server, then press S to try again."),
    "not_enrolled": N_("Ask the town or district for an enrollment code, then run `daiban enroll URL CODE`."),
    "revoked": N_("Call the town or district: this node must be enrolled again before it can sync."),
}


LOCK_WAIT = 120.0  # seconds "Sync now" waits for a background sync under way


def sync_in_thread(
    home: Path, clock: Clock, actor: str, lock: threading.Lock | None = None, report: Any = None
) -> Any:
    """One sync on a connection of the calling thread's own, holding ``lock``
    (the app's: no other sync at the same time); the report (``report``, if
    given, filled as the sync goes)."""
    from daiban.node.home import open_node
    from daiban.sync.client import sync_once

    if lock is not None and not lock.acquire(timeout=LOCK_WAIT):
        raise DaibanError(_("A background sync is still running; try again in a minute."), code="busy")
    try:
        node = open_node(home, clock=clock, actor=actor)
        try:
            return asyncio.run(sync_once(node, report))
        finally:
            node.close()
    finally:
        if lock is not None:
            lock.release()


class SyncScreen(Base):
    BINDINGS = [
        Binding("s", "sync", N_("Sync again")),
        Binding("escape", "app.pop_screen", N_("Back")),
    ]

    def compose(self) -> ComposeResult:
        yield self.header()
        with Vertical(classes="panel"):
            yield Plain(_("Sync with the parent"), classes="title")
            yield ProgressBar(id="bar", show_eta=False)
            yield Plain("", id="state")
            yield Plain("", id="result")
        yield self.footer()

    def on_mount(self) -> None:
        self.running = False
        self.action_sync()

    def action_sync(self) -> None:
        if self.running:
            return
        self.running = True
        self.start_waiting = self.node.store.outbox_count(routing.UP)
        bar = self.query_one(ProgressBar)
        bar.update(total=self.start_waiting or None, progress=0)
        self.query_one("#state", Plain).show(
            _("Syncing… {n} envelopes to send.").format(n=self.start_waiting)
        )
        self.query_one("#result", Plain).show("")
        self.report: Any = None  # the worker's, filled as it goes; poll() reads its counts
        self.timer = self.set_interval(0.2, self.poll)
        self.run_sync(self.dapp.home, self.dapp.clock, self.node.actor)

    def poll(self) -> None:
        if not self.running:  # a tick queued before finished() stopped the timer
            return
        left = self.node.store.outbox_count(routing.UP) if self.start_waiting else 0
        bar = self.query_one(ProgressBar)
        if left:  # sending
            bar.update(progress=max(0, self.start_waiting - left))
        elif bar.total is not None:  # sent: what comes down has no known size, so the bar pulses
            bar.update(total=None)
        report = self.report
        if report is not None:
            self.query_one("#state", Plain).show(
                _("Syncing… sent {pushed}, received {pulled}; {left} still to send.").format(
                    pushed=report.pushed + report.duplicates, pulled=report.pulled, left=left
                )
            )

    @work(thread=True, exclusive=True, group="sync")
    def run_sync(self, home: Path, clock: Clock, actor: str) -> None:
        from daiban.sync.client import Report  # here: aiohttp loads off the UI thread

        self.report = Report()
        try:
            report = sync_in_thread(home, clock, actor, self.dapp.sync_lock, self.report)
        except DaibanError as exc:
            self.app.call_from_thread(self.finished, None, exc)
            return
        self.app.call_from_thread(self.finished, report, None)

    def finished(self, report: Any, error: DaibanError | None) -> None:
        self.running = False
        self.timer.stop()
        bar = self.query_one(ProgressBar)
        state = self.query_one("#state", Plain)
        result = self.query_one("#result", Plain)
        if error is not None:
            bar.update(total=1, progress=0)
            state.show(_("Sync failed."))
            hint = HINTS.get(error.code)
            result.show(error.message + ("\n" + _(hint) if hint else ""))
            return
        bar.update(total=1, progress=1)
        lines = [
            _(
                "Sent {pushed} (already there: {dup}), received {pulled}, refused {q}, still queued {left}."
            ).format(
                pushed=report.pushed,
                dup=report.duplicates,
                pulled=report.pulled,
                q=len(report.quarantined),
                left=report.left,
            )
        ]
        for q in report.quarantined:
            lines.append(_("refused: {id} {reason}").format(id=q.get("id"), reason=q.get("reason")))
        state.show(_("Sync done.") if report.left == 0 else _("Sync done; some envelopes still wait."))
        result.show("\n".join(lines))
