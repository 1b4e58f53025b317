"""Unattended sync (``daiban sync --watch``, and the TUI in the background):
sync with the parent, then again every ``interval`` seconds while the link
is up; when the parent cannot be reached, retry with exponential back-off and
jitter, never waiting longer than the back-off's cap (60 s), so a returning
link is used within a minute.

The sleep is an argument (tests drive the loop without real waiting), and
``stop()`` ends the loop: at once when waiting; a sync under way gets a few
seconds to finish (so its line is printed), then is cut off — which stores
nothing half-done (custody ends only on the parent's acknowledgement), so
the next run picks up where this one stopped."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from daiban.sync.backoff import Backoff
from daiban.sync.client import Report, SyncFailed, sync_once

if TYPE_CHECKING:
    from daiban.node.applications import Node

log = logging.getLogger("daiban.watch")

INTERVAL = 30.0
STOP_GRACE = 10.0  # seconds a sync under way may take to finish once stop() is called
BACKOFF = Backoff(base=1.0, cap=60.0)
# Failures no retry can mend: the operator must act (enroll again).
PERMANENT = frozenset({"not_enrolled", "revoked", "parent_revoked", "unknown_node", "bad_signature"})

Sleep = Callable[[float], Awaitable[Any]]


def moved(report: Report) -> bool:
    """Whether a sync carried anything either way."""
    return bool(report.pushed or report.pulled or report.duplicates or report.quarantined)


@dataclass
class WatchState:
    """What a UI can show about the watcher."""

    reachable: bool | None = None
    """None until the first attempt ends."""
    failures: int = 0
    """Failed attempts in a row."""
    last_success: dt.datetime | None = None
    last_error: str = ""
    next_in: float = 0.0
    """Seconds until the next attempt."""
    syncs: int = 0
    """Successful syncs since the start."""


class Watcher:
    """Keeps a node in sync with its parent until stopped."""

    def __init__(
        self,
        node: Node,
        *,
        interval: float = INTERVAL,
        backoff: Backoff = BACKOFF,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        on_report: Callable[[Report], None] | None = None,
        on_reachable: Callable[[bool, str], None] | None = None,
        sync: Callable[[Node], Awaitable[Report]] = sync_once,
    ) -> None:
        self.node = node
        self.sync = sync  # the TUI wraps it so its own "Sync now" never overlaps
        self.interval = interval
        self.backoff = backoff
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.on_report = on_report
        self.on_reachable = on_reachable
        self.state = WatchState()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """End the loop (from the loop's thread, e.g. a signal handler)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def _until_stopped(self, work: Awaitable[Any], grace: float = 0.0) -> tuple[bool, Any]:
        """Run ``work`` unless stop() comes first (then give it ``grace``
        seconds more): (finished, its result)."""
        task = asyncio.ensure_future(work)
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done() and grace > 0:
                await asyncio.wait({task}, timeout=grace)
        finally:
            for pending in (task, stopper):
                if not pending.done():
                    pending.cancel()
            await asyncio.gather(task, stopper, return_exceptions=True)
        if task.cancelled():
            return False, None
        return True, task.result()

    def _reachable(self, up: bool, message: str) -> None:
        if self.state.reachable is not up and self.on_reachable is not None:
            self.on_reachable(up, message)
        self.state.reachable = up

    async def attempt(self) -> float:
        """One sync; the seconds to wait before the next. Raises SyncFailed
        for a failure no retry can mend."""
        try:
            finished, report = await self._until_stopped(self.sync(self.node), STOP_GRACE)
        except SyncFailed as exc:
            if exc.code in PERMANENT:
                log.error("sync refused for good", extra={"error": exc.code})
                raise
            return self._failed(exc.code, exc.message)
        except sqlite3.OperationalError as exc:
            # Busy (a big ledger being filed): the database is fine, try later.
            return self._failed("database", str(exc))
        if not finished:
            return 0.0
        self.state.failures, self.state.last_error = 0, ""
        self.state.last_success = self.node.clock()
        self.state.syncs += 1
        self._reachable(True, "")
        if moved(report):
            log.info(
                "synced",
                extra={
                    "pushed": report.pushed,
                    "pulled": report.pulled,
                    "refused": len(report.quarantined),
                    "left": report.left,
                },
            )
            if self.on_report is not None:
                self.on_report(report)
        # Something still queued (new filings while we synced): go again soon.
        return min(1.0, self.interval) if report.left else self.interval

    def _failed(self, code: str, message: str) -> float:
        self.state.failures += 1
        self.state.last_error = message
        delay = self.backoff.delay(self.state.failures, self.rng)
        log.warning(
            "sync failed", extra={"error": code, "failures": self.state.failures, "retry_in": round(delay, 2)}
        )
        self._reachable(False, message)
        return delay

    async def run(self) -> None:
        """Sync until stop(); raises SyncFailed for a permanent failure."""
        log.info("watching", extra={"interval": self.interval, "max_backoff": self.backoff.cap})
        while not self.stopping:
            delay = await self.attempt()
            self.state.next_in = delay
            if delay > 0 and not self.stopping:
                await self._until_stopped(self.sleep(delay))
        log.info("stopped watching", extra={"syncs": self.state.syncs})


def start_in_background(node: Node, **options: Any) -> tuple[Watcher, asyncio.Task[None]]:
    """A Watcher running as a task on the current event loop (the TUI runs
    it on a loop of its own in a thread of its own, daiban/tui/background.py).
    Call ``watcher.stop()`` and await the task to end it; read
    ``watcher.state`` to show the link's state."""
    watcher = Watcher(node, **options)
    return watcher, asyncio.get_running_loop().create_task(watcher.run(), name="daiban-watch")
