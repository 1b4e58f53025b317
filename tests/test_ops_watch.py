"""Unattended sync: a real ``daiban sync --watch`` process at a village keeps
syncing with its town's real ``daiban serve`` through the fault-injecting
proxy; the link is cut while applications are filed, and once it returns
they reach the town within a minute. The loop's back-off is checked on a
real node whose parent cannot be reached, with the sleep injected."""

from __future__ import annotations

import asyncio
import random
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from daiban.node.applications import Node
from daiban.sync.backoff import Backoff
from daiban.sync.client import SyncFailed
from daiban.sync.watch import STOP_GRACE, Watcher
from tests.conftest import DAIBAN
from tests.fault_net import (
    TOWN,
    VILLAGE,
    Processes,
    build_tree,
    enroll,
    env_for,
    event_counts,
    file_ledger,
    free_port,
    outbox_count,
    write_ledger,
)
from tests.faultproxy import FaultProxy

WITHIN = 60.0  # the promise: queued applications arrive within a minute of the link returning
LINE = re.compile(
    r"^\d\d:\d\d:\d\d Sent (\d+) \(already there: \d+\), received (\d+), refused 0, still queued \d+\.$"
)


@pytest.fixture
def procs() -> Iterator[Processes]:
    p = Processes()
    try:
        yield p
    finally:
        p.stop_all()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll until ``condition`` holds (bounded); the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)
    return time.monotonic() - started


def test_watch_delivers_within_a_minute_of_the_link_returning(procs: Processes, tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "tree", procs)
    town = procs.serve(tree.town)
    with FaultProxy(town.port) as proxy:
        enroll(tree.village, VILLAGE, tree.town, proxy.url)
        first = file_ledger(tree.village, write_ledger(tmp_path / "first.csv", 1))
        out, err = tmp_path / "watch.out", tmp_path / "watch.err"
        with out.open("wb") as fo, err.open("wb") as fe:
            watch = procs.track(
                subprocess.Popen(
                    [DAIBAN, "sync", "--watch", "--interval", "2"],
                    stdout=fo,
                    stderr=fe,
                    stdin=subprocess.DEVNULL,
                    env=env_for(tree.village),
                )
            )
        at_town = lambda: set(event_counts(tree.town, "filed"))  # noqa: E731
        lines = lambda: out.read_text(encoding="utf-8").splitlines()  # noqa: E731
        sent = lambda: sum(int(m.group(1)) for m in map(LINE.match, lines()) if m)  # noqa: E731
        # The first sync has ended (its line is out), the application at the town.
        wait_for(lambda: sent() == 1, 30, "the first sync's line")
        assert set(first) <= at_town()

        # The link goes; the agent files on; the watcher fails and backs off.
        proxy.cut_link()
        queued = file_ledger(tree.village, write_ledger(tmp_path / "offline.csv", 3, start=100))
        refused = proxy.stats["refused"]
        wait_for(lambda: proxy.stats["refused"] >= refused + 4, 40, "four failed attempts while cut")
        assert not set(queued) & at_town()
        assert watch.poll() is None, err.read_text()

        proxy.restore_link()
        took = wait_for(lambda: set(queued) <= at_town(), WITHIN + 15, "the queued applications")
        assert took < WITHIN, f"arrived {took:.1f} s after the link returned"
        # The town's receipts come back in the pull that follows; then
        # nothing waits at the village, and each receipt is there once.
        receipts = lambda: event_counts(tree.village, "received")  # noqa: E731
        wait_for(lambda: set(first + queued) <= set(receipts()), 30, "the receipts at the village")
        assert outbox_count(tree.village) == 0
        assert all(receipts()[t] == 1 for t in first + queued), receipts()
        wait_for(lambda: sent() == 4, 30, "the second sync's line")

        # SIGTERM stops it cleanly.
        watch.send_signal(signal.SIGTERM)
        assert watch.wait(timeout=STOP_GRACE + 15) == 0
    assert len(lines()) >= 2 and all(LINE.match(line) for line in lines()), lines()
    notes = err.read_text(encoding="utf-8")
    assert "cannot be reached" in notes and "reachable again" in notes and "Traceback" not in notes
    # Its JSON log in the village home says the same, one object a line.
    log = (tree.village / "logs" / "daiban-watch.log").read_text(encoding="utf-8")
    assert '"message": "sync failed"' in log and '"message": "stopped watching"' in log


def test_backoff_grows_with_jitter_and_never_passes_a_minute(make_node: Callable[..., Node]) -> None:
    node = make_node()
    with node.store.transaction():  # a parent that is never there: a port nobody listens on
        node.store.put_peer(TOWN, "parent")
        node.store.set_setting("parent_url", f"http://127.0.0.1:{free_port()}")
    delays: list[float] = []
    downs: list[bool] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        if len(delays) == 12:
            watcher.stop()

    watcher = Watcher(node, sleep=sleep, rng=random.Random(7), on_reachable=lambda up, _m: downs.append(up))
    asyncio.run(watcher.run())
    assert len(delays) == 12 and watcher.state.failures == 12
    assert downs == [False]  # told once that the link is down
    backoff = Backoff()
    for failures, delay in enumerate(delays, start=1):
        step = backoff.step(failures)
        assert step / 2 <= delay <= step <= 60.0, (failures, delay)
    assert delays[-1] >= 30.0  # capped: between half and all of a minute
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered


def test_watch_stops_at_once_on_a_failure_no_retry_mends(make_node: Callable[..., Node]) -> None:
    node = make_node()  # never enrolled

    async def sleep(seconds: float) -> None:
        raise AssertionError("a permanent failure must not be retried")

    with pytest.raises(SyncFailed) as info:
        asyncio.run(Watcher(node, sleep=sleep).run())
    assert info.value.code == "not_enrolled"
