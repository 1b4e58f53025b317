"""A serving node's own sync with its parent on a schedule: a district
forwards to the city once in a nightly window (01:00-05:00 China Standard
Time by default), retrying with back-off until it succeeds or the window
closes, then waits for the next night.

The scheduler takes its clock and its sleep as arguments, so a test drives
it through a night of fake time in milliseconds. The forward itself opens
its own connection to the node's database in a worker thread: the server's
writer thread is never held up by a slow link to the city."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daiban.node.clock import CST, Clock, system_clock
from daiban.sync.backoff import Backoff

if TYPE_CHECKING:
    from daiban.sync.client import Report

log = logging.getLogger("daiban.schedule")

DAY = 24 * 60
DEFAULT_WINDOW = "01:00-05:00"
FORWARD_BACKOFF = Backoff(base=15.0, cap=600.0)
MAX_NAP = 300.0  # look at the clock at least this often (it may be moved, or the PC may sleep)
_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class Window:
    """A daily window in China Standard Time, in minutes after midnight. An
    end before the start wraps past midnight (22:00-02:00); 00:00-24:00 is
    the whole day."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return (self.end - self.start) % DAY or DAY

    def __str__(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"

    def _starts(self, now: dt.datetime, days: tuple[int, ...]) -> list[dt.datetime]:
        midnight = now.astimezone(CST).replace(hour=0, minute=0, second=0, microsecond=0)
        return [midnight + dt.timedelta(days=d, minutes=self.start) for d in days]

    def current(self, now: dt.datetime) -> dt.datetime | None:
        """The start of the occurrence of the window ``now`` falls in, if any."""
        for start in self._starts(now, (0, -1)):
            if start <= now < start + dt.timedelta(minutes=self.length):
                return start
        return None

    def next_start(self, now: dt.datetime) -> dt.datetime:
        """The first start of the window after ``now``."""
        return next(s for s in self._starts(now, (0, 1)) if s > now)


def parse_window(text: str) -> Window | None:
    """``HH:MM-HH:MM`` (24:00 allowed as an end), or ``off`` for None."""
    if text.strip().lower() == "off":
        return None
    match = _WINDOW.match(text)
    if not match:
        raise ValueError(text)
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 23 or m1 > 59 or m2 > 59 or end > DAY:
        raise ValueError(text)
    return Window(start, end % DAY if end != DAY or start != 0 else DAY)


def default_window(role: str) -> Window | None:
    """A district forwards to the city at night; other roles only when told."""
    return parse_window(DEFAULT_WINDOW) if role == "district" else None


Forward = Callable[[], Awaitable["Report"]]
Sleep = Callable[[float], Awaitable[Any]]


class ForwardScheduler:
    """Runs ``forward`` once per occurrence of ``window``, with retries."""

    def __init__(
        self,
        forward: Forward,
        window: Window,
        *,
        clock: Clock = system_clock,
        sleep: Sleep = asyncio.sleep,
        backoff: Backoff = FORWARD_BACKOFF,
        rng: random.Random | None = None,
        on_result: Callable[[bool, Any, dt.datetime], None] | None = None,
    ) -> None:
        self.forward = forward
        self.window = window
        self.clock = clock
        self.sleep = sleep
        self.backoff = backoff
        self.rng = rng or random.Random()
        self.on_result = on_result
        self.last_success: dt.datetime | None = None
        self.failures = 0
        self.retry_at: dt.datetime | None = None
        self._occurrence: dt.datetime | None = None

    def due_in(self, now: dt.datetime) -> float:
        """Seconds until the next attempt (0: now)."""
        current = self.window.current(now)
        if current is not None and (self.last_success is None or self.last_success < current):
            if self.retry_at is not None and now < self.retry_at:
                return (self.retry_at - now).total_seconds()
            return 0.0
        return (self.window.next_start(now) - now).total_seconds()

    async def step(self) -> bool:
        """Wait a while or make one attempt; True if an attempt was made."""
        now = self.clock()
        wait = self.due_in(now)
        if wait > 0:
            await self.sleep(min(wait, MAX_NAP))
            return False
        current = self.window.current(now)
        if current != self._occurrence:  # a new night: retries start afresh
            self._occurrence, self.failures = current, 0
        try:
            report = await self.forward()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure is retried; the log says which
            self.failures += 1
            delay = self.backoff.delay(self.failures, self.rng)
            self.retry_at = self.clock() + dt.timedelta(seconds=delay)
            log.warning(
                "forward to the parent failed",
                extra={"error": getattr(exc, "code", type(exc).__name__), "retry_in": round(delay, 1)},
            )
            if self.on_result is not None:
                self.on_result(False, exc, self.clock())
            return True
        self.last_success, self.failures, self.retry_at = self.clock(), 0, None
        log.info(
            "forwarded to the parent",
            extra={"pushed": report.pushed, "pulled": report.pulled, "left": report.left},
        )
        if self.on_result is not None:
            self.on_result(True, report, self.last_success)
        return True

    async def run(self) -> None:
        """Forever (cancel the task to stop)."""
        log.info("forward scheduled", extra={"window": str(self.window)})
        while True:
            await self.step()


def forward_once(home: Path) -> Report:
    """One sync with the parent on its own database connection (blocking:
    run it in a worker thread)."""
    from daiban.node.home import open_node
    from daiban.sync.client import sync_once

    node = open_node(home, actor="server")
    try:
        return asyncio.run(sync_once(node))
    finally:
        node.close()
