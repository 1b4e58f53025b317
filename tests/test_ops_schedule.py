"""The district's scheduled forward to the city, driven through two nights
of fake time: the scheduler's clock and sleep are injected, the forward is
the real one (its own database connection, a real sync with a real
``daiban serve`` of the city through the fault-injecting proxy). Also the
pure rules: daily windows, durations, stale children."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daiban.node.children import child_statuses, parse_duration, stale_children
from daiban.node.clock import CST
from daiban.sync.schedule import FORWARD_BACKOFF, ForwardScheduler, Window, forward_once, parse_window
from tests.fault_net import (
    CITY,
    DISTRICT,
    Processes,
    Tree,
    build_tree,
    copy_tree,
    daiban,
    ok,
    query,
    set_parent_url,
)
from tests.faultproxy import FaultProxy


class FakeTime:
    """The scheduler's clock and sleep: sleeping moves the clock at once."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start
        self.naps: list[float] = []

    def clock(self) -> dt.datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.naps.append(seconds)
        self.now += dt.timedelta(seconds=seconds)
        await asyncio.sleep(0)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=CST)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tree]:
    """City, district, town (enrolled) and a village home, built once."""
    procs = Processes()
    try:
        yield build_tree(tmp_path_factory.mktemp("schedule-tree") / "tree", procs)
    finally:
        procs.stop_all()


@pytest.fixture
def procs() -> Iterator[Processes]:
    p = Processes()
    try:
        yield p
    finally:
        p.stop_all()


def file_city_item(home: Path) -> str:
    """At the district, an application the city handles (YB003, city level)."""
    out = ok(
        daiban(
            home, "apply", "--item", "YB003", "--name", "王秀兰", "--id-number", "370303198001010012",
            "--phone", "13805331234", "--field", "filing_type=异地长期居住",
            "--field", "destination=北京市", "--field", "start_date=2026-12-01", "--json",
        )
    )  # fmt: skip
    filed = json.loads(out)
    assert filed["office"] == CITY
    return str(filed["tracking"])


def test_district_forwards_to_the_city_in_its_nightly_window_with_retries(
    template: Tree, procs: Processes, tmp_path: Path
) -> None:
    tree = copy_tree(template, tmp_path / "tree")
    district = tree.homes[DISTRICT]
    city = procs.serve(tree.homes[CITY])
    tracking = file_city_item(district)
    time = FakeTime(at("2026-11-27T22:30:00"))
    attempts: list[dt.datetime] = []
    results: list[tuple[bool, dt.datetime]] = []

    with FaultProxy(city.port) as proxy:
        set_parent_url(district, proxy.url)
        proxy.cut_link()  # the city's link is down when the night starts

        async def forward() -> Any:
            attempts.append(time.clock())
            return await asyncio.to_thread(forward_once, district)

        def on_result(success: bool, outcome: Any, when: dt.datetime) -> None:
            results.append((success, when))
            if len(results) == 2:
                proxy.restore_link()  # back after two failed attempts

        scheduler = ForwardScheduler(
            forward,
            parse_window("01:00-05:00") or Window(0, 0),
            clock=time.clock,
            sleep=time.sleep,
            rng=random.Random(5),
            on_result=on_result,
        )

        async def two_nights() -> None:
            for _step in range(400):  # bounded: about 300 naps of 5 minutes make a day
                await scheduler.step()
                if len([r for r in results if r[0]]) == 2:
                    return
            raise AssertionError(f"did not forward on two nights: {results}")

        asyncio.run(two_nights())
        assert proxy.stats["refused"] >= 2

    # Nothing before the window; the first try at 01:00 sharp, two failures,
    # retries spaced by the back-off, then success.
    assert attempts[0] == at("2026-11-28T01:00:00")
    assert [r[0] for r in results] == [False, False, True, True]
    for failures, (before, after) in enumerate(itertools.pairwise(attempts[:3]), start=1):
        step = FORWARD_BACKOFF.step(failures)
        assert step / 2 <= (after - before).total_seconds() <= step + 1, (failures, before, after)
    assert all(at("2026-11-28T01:00:00") <= a < at("2026-11-28T05:00:00") for a in attempts[:3])
    # Once done, nothing more that night: the next try is the next night's start.
    assert attempts[3] == at("2026-11-29T01:00:00")
    assert scheduler.last_success is not None and scheduler.last_success >= attempts[3]
    # The application reached the city, exactly once.
    sql = "SELECT COUNT(*) FROM events WHERE tracking = ? AND kind = 'filed'"
    rows = query(tree.homes[CITY], sql, (tracking,))
    assert rows[0][0] == 1
    assert query(district, "SELECT COUNT(*) FROM outbox")[0][0] == 0


def test_a_night_that_never_connects_waits_for_the_next(
    template: Tree, procs: Processes, tmp_path: Path
) -> None:
    tree = copy_tree(template, tmp_path / "tree")
    district = tree.homes[DISTRICT]
    city = procs.serve(tree.homes[CITY])
    time = FakeTime(at("2026-11-27T12:00:00"))
    attempts: list[dt.datetime] = []
    with FaultProxy(city.port) as proxy:
        set_parent_url(district, proxy.url)
        proxy.cut_link()

        async def forward() -> Any:
            attempts.append(time.clock())
            return await asyncio.to_thread(forward_once, district)

        window = Window(60, 62)  # 01:00-01:02: room for a few retries only
        scheduler = ForwardScheduler(
            forward, window, clock=time.clock, sleep=time.sleep, rng=random.Random(1)
        )

        async def until_second_night() -> None:
            for _step in range(600):
                await scheduler.step()
                if time.clock() > at("2026-11-29T01:00:30"):
                    return
            raise AssertionError("the fake clock did not reach the second night")

        asyncio.run(until_second_night())
    first = [a for a in attempts if a.date() == dt.date(2026, 11, 28)]
    second = [a for a in attempts if a.date() == dt.date(2026, 11, 29)]
    assert len(first) >= 3 and first[0] == at("2026-11-28T01:00:00")
    assert all(at("2026-11-28T01:00:00") <= a < at("2026-11-28T01:02:00") for a in first)
    assert second[0] == at("2026-11-29T01:00:00")
    assert len(first) + len(second) == len(attempts)  # never outside the window


def test_serve_takes_the_window_from_the_role_or_the_flag(
    template: Tree, procs: Processes, tmp_path: Path
) -> None:
    tree = copy_tree(template, tmp_path / "tree")
    server = procs.serve(tree.homes[DISTRICT])
    procs.stop(server.proc)
    log = (tree.homes[DISTRICT] / "logs" / "daiban-serve.log").read_text(encoding="utf-8")
    scheduled = [json.loads(line) for line in log.splitlines() if '"forward scheduled"' in line]
    assert scheduled and scheduled[-1]["window"] == "01:00-05:00"
    bad = daiban(tree.homes[DISTRICT], "serve", "--forward-window", "25:00-01:00")
    assert bad.returncode == 2 and "01:00-05:00" in bad.stderr and "Traceback" not in bad.stderr
    city = daiban(tree.homes[CITY], "serve", "--port", "0", "--forward-window", "01:00-05:00")
    assert city.returncode == 2 and "no parent" in city.stderr


# -- the pure rules ---------------------------------------------------------------------------


def test_windows_parse_and_wrap_past_midnight() -> None:
    night = parse_window("22:00-02:00")
    assert night == Window(22 * 60, 2 * 60) and night.length == 240 and str(night) == "22:00-02:00"
    assert night.current(at("2026-11-28T01:30:00")) == at("2026-11-27T22:00:00")
    assert night.current(at("2026-11-27T23:00:00")) == at("2026-11-27T22:00:00")
    assert night.current(at("2026-11-28T02:00:00")) is None
    assert night.next_start(at("2026-11-28T02:00:00")) == at("2026-11-28T22:00:00")
    assert night.next_start(at("2026-11-27T22:00:00")) == at("2026-11-28T22:00:00")
    whole = parse_window("00:00-24:00")
    assert whole is not None and whole.length == 24 * 60
    assert whole.current(at("2026-11-28T13:14:00")) == at("2026-11-28T00:00:00")
    late = parse_window("22:00-24:00")
    assert late is not None and late.length == 120
    assert parse_window("off") is None and parse_window(" OFF ") is None
    for bad in ("25:00-01:00", "01:60-02:00", "1-5", "", "01:00-24:30", "01:00"):
        with pytest.raises(ValueError):
            parse_window(bad)
    # A UTC moment is read in China Standard Time.
    assert Window(60, 300).current(dt.datetime(2026, 11, 27, 17, 30, tzinfo=dt.UTC)) is not None


def test_durations() -> None:
    assert parse_duration("48h") == dt.timedelta(hours=48)
    assert parse_duration("2d") == parse_duration("48") == dt.timedelta(days=2)
    assert parse_duration("1d12h30m") == dt.timedelta(hours=36, minutes=30)
    assert parse_duration("90s") == dt.timedelta(seconds=90)
    for bad in ("", "soon", "0h", "h", "12x", "-3h"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_stale_children_counts_from_the_last_sync_or_else_enrollment() -> None:
    now = at("2026-11-30T12:00:00")
    never = {"last_sync_at": None}
    rows = [
        {"code": "370303101201", "name": "大张村", "last_sync_at": "2026-11-30T11:00:00+08:00", "queued": 0},
        {"code": "370303101202", "name": "小张村", "last_sync_at": "2026-11-27T11:00:00+08:00", "queued": 4},
        {"code": "370303101203", "name": "新村", **never, "enrolled_at": "2026-11-30T08:00:00+08:00"},
        {"code": "370303101204", "name": "旧村", **never, "enrolled_at": "2026-11-20T08:00:00+08:00"},
        {"code": "370303101205", "name": "无名", "last_sync_at": None, "enrolled_at": None},
    ]
    statuses = child_statuses(rows, now, dt.timedelta(hours=48))
    assert [c.stale for c in statuses] == [False, True, False, True, True]
    assert statuses[0].silent_seconds == 3600 and statuses[1].queued == 4
    stale = stale_children(rows, now, dt.timedelta(hours=48))
    # Unknown first, then the longest silent.
    assert [c.code for c in stale] == ["370303101205", "370303101204", "370303101202"]
    assert stale_children(rows, now, dt.timedelta(days=30))[0].code == "370303101205"
    assert stale[0].as_dict()["silent_seconds"] is None
