"""The app's background sync: the ``sync --watch`` loop (sync/watch.py,
``start_in_background``) on an event loop of its own, in a thread of its own,
with a node and SQLite connection of its own. The app's connection stays on
the UI thread, and the screen never waits on the network or on the database
work a sync does. Started for a village or town that has a parent; stopped
and joined when the app exits.

Syncs never overlap: the watcher's and "Sync now"'s both hold the app's
``sync_lock``. Between syncs the watcher also wakes when the outbox grows
(something was filed or decided in the app), so new work goes up within
about a second instead of at the next interval — except while the parent is
failing, when the back-off is kept."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daiban.i18n import _
from daiban.node import routing
from daiban.node.clock import Clock

if TYPE_CHECKING:
    # Imported in the thread: aiohttp and cryptography load there, after the
    # first screen, not while the app starts.
    from daiban.node.applications import Node
    from daiban.sync.client import Report
    from daiban.sync.watch import Watcher, WatchState

log = logging.getLogger("daiban.tui.background")

STOP_WAIT = 15.0  # seconds: the watcher's grace for a sync under way (10 s), and some
POLL = 0.5  # seconds between looks at the outbox while waiting
LOCK_POLL = 0.1  # seconds between tries of the sync lock


class BackgroundSync:
    """The watcher in its thread; ``state`` is what the Home screen shows
    (plain attribute reads from the UI thread)."""

    def __init__(
        self,
        home: Path,
        clock: Clock,
        lock: threading.Lock,
        *,
        interval: float | None = None,
        poll: float = POLL,
    ) -> None:
        self.home = home
        self.clock = clock
        self.lock = lock
        self.interval = interval
        self.poll = poll
        self.state: WatchState | None = None
        """None until the loop runs."""
        self.stopped_because = ""
        """The message of a failure no retry mends (revoked, not enrolled): the loop has ended."""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watcher: Watcher | None = None
        self._stopping = False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._stopping or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="daiban-background-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = STOP_WAIT) -> bool:
        """End the loop and wait for its thread (bounded); whether it ended."""
        self._stopping = True
        loop, watcher = self._loop, self._watcher
        if loop is not None and watcher is not None:
            try:
                loop.call_soon_threadsafe(watcher.stop)
            except RuntimeError:  # the loop has already closed
                pass
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- in the thread ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as exc:  # a thread's error would vanish: log it; the app carries on
            log.exception("background sync ended")
            self.stopped_because = _("an internal error ({kind})").format(kind=type(exc).__name__)

    async def _main(self) -> None:
        from daiban.node.home import open_node
        from daiban.sync.client import SyncFailed
        from daiban.sync.watch import start_in_background

        node = open_node(self.home, clock=self.clock)
        try:
            options = {} if self.interval is None else {"interval": self.interval}
            watcher, task = start_in_background(
                node, sleep=self._waiter(node), sync=self._locked_sync, **options
            )
            self._watcher, self.state = watcher, watcher.state
            self._loop = asyncio.get_running_loop()
            if self._stopping:  # stop() came before the loop was known
                watcher.stop()
            try:
                await task
            except SyncFailed as exc:
                self.stopped_because = exc.message
        finally:
            node.close()

    async def _locked_sync(self, node: Node) -> Report:
        from daiban.sync.client import sync_once

        while not self.lock.acquire(blocking=False):  # "Sync now" is under way
            await asyncio.sleep(LOCK_POLL)
        try:
            return await sync_once(node)
        finally:
            self.lock.release()

    def _waiter(self, node: Node) -> Any:
        async def wait(delay: float) -> None:
            """Sleep ``delay`` seconds, or less once more waits to go up."""
            loop = asyncio.get_running_loop()
            until = loop.time() + delay
            queued = node.store.outbox_count(routing.UP)
            while (left := until - loop.time()) > 0:
                await asyncio.sleep(min(self.poll, left))
                failing = self.state is None or self.state.failures > 0
                if not failing and node.store.outbox_count(routing.UP) > queued:
                    return

        return wait
