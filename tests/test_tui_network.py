"""The terminal app on a real network (tests/sync_net.py: real `daiban
serve` processes on 127.0.0.1): the village syncs from the app, town staff
work the inbox and decide, statuses come back, the resident's evaluation is
recorded; a hostile office note that arrives over sync is shown literally,
without its control characters, on every screen, and clicking it does
nothing; a failed sync says why in the app."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from daiban import i18n
from daiban.node.home import open_node
from daiban.node.lifecycle import Kind
from daiban.render import score_label
from daiban.tui.app import DaibanApp
from tests.sync_net import Network, network_at
from tests.tui_helpers import EVIL, EVIL_SHOWN, add_agent, login, screen_text, settle

SIZE = (80, 24)


@pytest.fixture(autouse=True)
def _chinese() -> Iterator[None]:
    i18n.set_language("zh")
    yield


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    with network_at(tmp_path / "net") as net:
        yield net


def _apply(net: Network, *args: str) -> str:
    return str(net.run("village", "apply", *args, "--json").ok().json()["tracking"])


def test_village_and_town_work_a_case_through_the_app(network: Network, clock) -> None:
    net = network.build(("city", "district", "town", "village"))
    allowance = _apply(
        net,
        "--item",
        "MZ001",
        "--name",
        "李建国",
        "--id-number",
        "370303196208150048",
        "--phone",
        "0533-2281234",
        "--field",
        "family_size=3",
        "--field",
        "monthly_income=420",
    )
    mediation = _apply(
        net,
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
    )
    village, town = net.home("village"), net.home("town")
    add_agent(village, "张代办", clock)
    add_agent(town, "刘窗口", clock)

    async def village_syncs(expect: str) -> None:
        app = DaibanApp(village, clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            await login(pilot, "张代办")
            await pilot.press("s")
            await settle(pilot)
            assert expect in screen_text(app), screen_text(app)

    asyncio.run(village_syncs("同步完成"))
    assert {r[0] for r in net.query("town", "SELECT tracking FROM applications")} == {allowance, mediation}

    async def town_decides() -> None:
        app = DaibanApp(town, clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            await login(pilot, "刘窗口")
            await pilot.press("i")
            await pilot.pause()
            text = screen_text(app)
            assert allowance in text and "待办：2 件" in text
            app.screen.query_one("#inbox").move_cursor(row=app.screen._keys.index(allowance))
            await pilot.press("enter")
            await pilot.pause()
            assert "李建国" in screen_text(app)  # opened (decrypted) at this office
            await pilot.press("d")
            await pilot.pause()
            await pilot.press("ctrl+s")  # accept, the first choice
            await pilot.pause()
            assert "已受理" in screen_text(app)
            await pilot.press("d")
            await pilot.pause()
            screen = app.screen
            screen.query_one("#delivery").value = "post"
            screen.query_one("#post").value = "EA123456785CN"
            screen.query_one("#address").value = "山东省淄博市张店区南定镇大张村幸福路12号"
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert "已办结" in screen_text(app)
            await pilot.press("escape", "escape")
            await pilot.pause()
            await pilot.press("d")  # the dashboard
            await pilot.pause()
            assert "办结 1" in screen_text(app)

    asyncio.run(town_decides())
    [row] = net.query("town", "SELECT status, delivery FROM applications WHERE tracking = ?", (allowance,))
    assert row["status"] == "completed"
    assert json.loads(row["delivery"]) == {
        "method": "post",
        "post_tracking": "EA123456785CN",
        "address": "山东省淄博市张店区南定镇****",
    }
    actors = net.query(
        "town",
        "SELECT kind, actor FROM events WHERE tracking = ? AND origin = ?",
        (allowance, net.code("town")),
    )
    assert {(r["kind"], r["actor"]) for r in actors} >= {("accepted", "刘窗口"), ("completed", "刘窗口")}

    # A hostile note and material name from the office, signed by the town's
    # real key, bypassing the office's own cleaning: the village must clean it.
    office = open_node(town, clock=clock, actor="刘窗口")
    try:
        office._record(
            mediation, Kind.SUPPLEMENT_REQUESTED, {"missing": [EVIL], "note": EVIL}, office._require_office
        )
    finally:
        office.close()

    async def village_sees_it() -> None:
        app = DaibanApp(village, clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            await login(pilot, "张代办")
            await pilot.press("s")
            await settle(pilot)
            await pilot.press("escape")
            await pilot.pause()
            home = screen_text(app)
            assert "[@click=app.quit]" in home and "\x1b" not in home and "\x07" not in home
            table = app.screen.query_one("#attention")
            assert EVIL_SHOWN in table.get_row(mediation)[3].plain  # the whole cell, literally
            table.move_cursor(row=[k.value for k in table.rows].index(mediation))
            table.focus()
            await pilot.press("enter")
            await pilot.pause()
            detail = screen_text(app)
            assert EVIL_SHOWN in detail and "\x1b" not in detail
            await pilot.click("#summary")
            await pilot.click("#history")
            await pilot.pause()
            assert app.is_running
            await pilot.press("o")  # the one-time notice
            await pilot.pause()
            notice = screen_text(app)
            assert EVIL_SHOWN in notice and "\x1b" not in notice
            app.screen.query_one("#saved").scroll_visible(animate=False)  # below the notice
            await pilot.pause()
            await pilot.click("#saved")
            assert app.is_running
            await pilot.press("escape", "escape")
            await pilot.pause()
            # The completed one: record the resident's evaluation.
            table = app.screen.query_one("#attention")
            table.move_cursor(row=[k.value for k in table.rows].index(allowance))
            table.focus()
            await pilot.press("enter")
            await pilot.pause()
            await pilot.press("e")
            await pilot.pause()
            await pilot.press("5")  # the level, then Enter confirms it
            await pilot.pause()
            await pilot.press("enter")
            await pilot.pause()
            assert score_label(5) in screen_text(app)

    asyncio.run(village_sees_it())
    [kept] = net.query(
        "village",
        "SELECT body FROM events WHERE tracking = ? AND kind = 'supplement_requested'",
        (mediation,),
    )
    assert json.loads(kept["body"]) == {"missing": [EVIL_SHOWN], "note": EVIL_SHOWN}
    [evaluated] = net.query("village", "SELECT evaluation FROM applications WHERE tracking = ?", (allowance,))
    assert evaluated["evaluation"] == 5
    notice = (village / "receipts" / f"{mediation}-supplement.txt").read_text(encoding="utf-8")
    assert EVIL_SHOWN in notice and "\x1b" not in notice

    net.stop("town")  # the parent goes away: the app says why, and what to do

    async def sync_fails() -> None:
        app = DaibanApp(village, clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            await login(pilot, "张代办")
            await pilot.press("s")
            await settle(pilot)
            text = screen_text(app)
            assert "同步失败" in text and "网线" in text
            assert app.is_running

    asyncio.run(sync_fails())
