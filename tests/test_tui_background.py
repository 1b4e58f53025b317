"""The app's background sync on a real network (tests/sync_net.py: real
`daiban serve` processes on 127.0.0.1): an application filed in the app
reaches the town without "Sync now", Home shows the parent reachable and the
last sync, "Sync now" holds the same lock (no two syncs at once), a parent
gone away shows as not reachable, and leaving the app leaves no thread. With
a replica configured the app runs `daiban backup` beside it and stops it. An
office's Home and dashboard name the children gone stale."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daiban import i18n
from daiban.node import backup
from daiban.node.clock import CST
from daiban.tui.app import DaibanApp
from tests.conftest import DAIBAN, FrozenClock, filing
from tests.sync_net import Network, network_at
from tests.tui_helpers import add_agent, login, screen_text

SIZE = (80, 24)
WITHIN = 20.0  # seconds: a filing goes up at once (the watcher wakes on a growing outbox)
THREAD = "daiban-background-sync"


@pytest.fixture(autouse=True)
def _chinese() -> Iterator[None]:
    i18n.set_language("zh")
    yield


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    with network_at(tmp_path / "net") as net:
        yield net


async def _until(pilot: Any, condition: Any, timeout: float, what: str) -> float:
    """Let the app run until ``condition()`` holds (bounded); the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {what}\n{screen_text(pilot.app)}")
        await pilot.pause(0.2)
    return time.monotonic() - started


def _state(app: DaibanApp) -> Any:
    """The background sync's state (an empty one until its loop runs)."""
    from daiban.sync.watch import WatchState

    assert app.background is not None
    return app.background.state or WatchState()


def _town_has(net: Network, name_masked: str) -> bool:
    rows = net.query("town", "SELECT 1 FROM applications WHERE name_masked = ?", (name_masked,))
    return bool(rows)


async def _file_in_app(pilot: Any) -> None:
    """File a minimum-living-allowance application through the form."""
    app = pilot.app
    await pilot.press("n", *"zdsh")
    await pilot.pause()
    await pilot.press("enter", "enter")
    await pilot.pause()
    form = app.screen
    form.widgets["name"].value = "李建国"
    form.widgets["id_number"].value = "370303196208150048"
    form.widgets["phone"].value = "0533-2281234"
    form.widgets["family_size"].value = "3"
    form.widgets["monthly_income"].value = "420"
    await pilot.pause()
    await pilot.press("ctrl+s")
    await pilot.pause()
    await pilot.press("ctrl+s")
    await pilot.pause()
    assert "收件回执" in screen_text(app), screen_text(app)
    await pilot.press("escape")
    await pilot.pause()


def test_filed_in_the_app_reaches_the_town_without_sync_now(network: Network, clock) -> None:
    net = network.build(("city", "district", "town", "village"))
    village = net.home("village")
    add_agent(village, "张代办", clock)

    async def scenario() -> None:
        app = DaibanApp(village, clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            background = app.background
            assert background is not None
            await _until(pilot, lambda: background.running, 5, "the background sync started")
            await login(pilot, "张代办")
            # The first sync happens by itself; Home says the parent answers.
            await _until(pilot, lambda: _state(app).syncs >= 1, WITHIN, "a first background sync")
            await _until(pilot, lambda: "连通正常" in screen_text(app), 3, "Home shows the link")
            assert "从未" not in screen_text(app)  # the last successful sync is shown
            assert "南定镇" in screen_text(app) and "370303101：" not in screen_text(app)  # by name

            # "Sync now" and the background share one lock: while it is held
            # (as during a "Sync now"), nothing goes up by itself.
            with app.sync_lock:
                await _file_in_app(pilot)
                await pilot.pause(2.0)
                assert not _town_has(net, "李*国")
            took = await _until(pilot, lambda: _town_has(net, "李*国"), WITHIN, "the filing at the town")
            assert took < WITHIN
            assert app.node.store.outbox_count("up") == 0

            # Sync now still works beside it; its screen read the sync's own
            # report as it was filled, and the summary gives the same counts.
            await pilot.press("s")
            await app.workers.wait_for_complete()
            await pilot.pause()
            text = screen_text(app)
            assert "同步完成" in text, text
            report = app.screen.report
            assert f"已接收 {report.pulled} 件" in text and f"已上传 {report.pushed} 件" in text
            # While something comes down, the bar pulses and the count grows.
            sync_screen = app.screen
            sync_screen.running, sync_screen.start_waiting = True, 0
            report.pulled = 7
            sync_screen.poll()
            await pilot.pause()
            assert "已接收 7 件" in screen_text(app) and sync_screen.query_one("#bar").total is None
            sync_screen.running = False
            await pilot.press("escape")

            # The town goes away: the next attempt (woken by a filing from the
            # command line) finds it unreachable, and Home says so.
            net.stop("town")
            net.run(
                "village",
                "apply",
                "--item",
                "SF002",
                "--name",
                "王秀兰",
                "--id-number",
                "370303195603120020",
                "--phone",
                "13805331234",
                "--field",
                "dispute_type=邻里",
                "--field",
                "other_party=赵某",
            ).ok()
            await _until(pilot, lambda: _state(app).reachable is False, WITHIN, "the link seen down")
            await _until(pilot, lambda: "当前无法连通" in screen_text(app), 3, "Home shows the link down")
        # Leaving the app stopped the watcher's thread.
        assert not background.running
        assert THREAD not in {t.name for t in threading.enumerate()}

    asyncio.run(scenario())


def test_no_background_sync_without_a_parent(make_node, clock) -> None:
    node = make_node()
    home = node.home
    node.close()

    async def scenario() -> None:
        app = DaibanApp(home, clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert app.background is None
            assert THREAD not in {t.name for t in threading.enumerate()}

    asyncio.run(scenario())


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_app_runs_the_backup_alongside_and_stops_it(
    make_node, clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A configured replica on a PC without Litestream: the app starts
    `daiban backup` (snapshot mode), which writes a snapshot holding what
    was filed; leaving the app stops that process."""
    i18n.set_language("en")
    monkeypatch.setenv(backup.LITESTREAM_ENV, "none")
    replica = tmp_path / "usb"
    node = make_node()
    filed = node.file(filing()).tracking
    with node.store.transaction():
        node.store.set_setting(backup.SETTING, backup.replica_url(str(replica)))
    home = node.home
    add_agent(home, "张代办", clock)
    snap = replica / backup.SNAPSHOT_NAME
    pids: list[int] = []

    async def scenario() -> None:
        app = DaibanApp(home, clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            [notice] = app.backup_notices
            assert "Backup runs alongside" in notice
            pids.append(int(notice.split("(process ", 1)[1].split(")", 1)[0]))
            assert _alive(pids[0])
            await _until(pilot, snap.is_file, WITHIN, "the first snapshot")
            # A second backup of the same node (say, `daiban serve` beside the app) is refused.
            second = subprocess.run(
                [DAIBAN, "--home", str(home), "--lang", "en", "backup", "--once"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert second.returncode == 1 and "already running" in second.stderr, second.stderr
            assert second.stderr.count("\n") == 1 and second.stdout == ""
            await login(pilot, "张代办")  # the app works as usual beside it
            assert "Needs your attention" in screen_text(app)

    asyncio.run(scenario())
    deadline = time.monotonic() + 20
    while _alive(pids[0]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pids[0])
    with contextlib.closing(sqlite3.connect(f"file:{snap}?mode=ro", uri=True)) as conn:
        assert [r[0] for r in conn.execute("SELECT tracking FROM applications")] == [filed]
    log = (home / "logs" / "backup.log").read_text(encoding="utf-8", errors="replace")
    assert "SQLite 快照" in log and "未安装 Litestream" in log  # the mode, said plainly (in Chinese)


def test_no_backup_process_without_a_replica(make_node, clock) -> None:
    node = make_node()
    home = node.home
    node.close()

    async def scenario() -> None:
        app = DaibanApp(home, clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert app.backup_notices == []

    asyncio.run(scenario())
    assert not (home / "logs" / "backup.log").exists()


def test_office_home_and_dashboard_name_the_stale_children(network: Network) -> None:
    """The town enrolled the village just now: on the town's own clock three
    days later (and 48 h the limit) the village is stale on Home and on the
    dashboard; with a one-week limit, or on today's clock, it is not."""
    net = network.build(("city", "district", "town", "village"))
    town, village_code = net.home("town"), net.code("village")
    later = FrozenClock(dt.datetime.now(CST) + dt.timedelta(days=3))
    add_agent(town, "刘窗口", later)

    async def office(clock: Any, after: dt.timedelta | None) -> tuple[str, str]:
        app = DaibanApp(town, clock=clock, stale_after=after, background_sync=False)
        async with app.run_test(size=SIZE) as pilot:
            await login(pilot, "刘窗口")
            home = screen_text(app)
            await pilot.press("d")
            await pilot.pause()
            await pilot.press("end")
            await pilot.pause()
            return home, screen_text(app)

    home, board = asyncio.run(office(later, None))
    assert "下级超过 2 天未同步：1/1 个" in home and village_code in home, home
    assert "超过 2 天未同步的下级（1/1 个）" in board and village_code in board, board
    assert "3 天" in board  # silent since the enrollment

    home, board = asyncio.run(office(later, dt.timedelta(days=7)))
    assert "下级：全部 1 个均在 7 天内同步过" in home and village_code not in home, home
    home, _board = asyncio.run(office(FrozenClock(dt.datetime.now(CST)), None))
    assert "下级：全部 1 个均在 2 天内同步过" in home, home
