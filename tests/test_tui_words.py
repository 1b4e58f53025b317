"""The terminal app in people's words, at 80x24 in Chinese, on real node
homes: the search box keeps the focus and finds what people say (低保, db),
digits are never a name, an office finds by the full name, a date is never
cut; staff are staff; offices by name; the full ID number only while a
detail is open."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest
from textual.widgets import Input

from daiban import i18n
from daiban.i18n import _
from daiban.node.applications import Node
from daiban.tui.app import DaibanApp
from tests.conftest import filing
from tests.tui_helpers import add_agent, login, screen_text

SIZE = (80, 24)
MZ = {"family_size": "3", "monthly_income": "420", "has_disabled_member": "否"}
LI_ID = "370303196208150048"


@pytest.fixture(autouse=True)
def _chinese() -> Iterator[None]:
    i18n.set_language("zh")
    yield


@pytest.fixture
def village(make_node, clock) -> Node:
    node: Node = make_node()
    node.actor = "张代办"
    node.file(filing(name="王秀兰", id_number="370303195603120020"))
    node.file(filing(item="MZ001", name="李建国", id_number=LI_ID, fields=MZ))
    add_agent(node.home, "张代办", clock)
    return node


@pytest.fixture
def town(make_node, clock) -> Node:
    node: Node = make_node("town", "370303101", "南定镇便民服务中心")
    node.actor = "刘窗口"
    region = "370303101201"
    li = node.file(filing(item="MZ001", name="李建国", id_number=LI_ID, region=region, fields=MZ))
    node.review(li.tracking, "accept")
    node.file(filing(item="MZ001", name="王秀兰", id_number="370303195603120020", region=region, fields=MZ))
    node.file(filing(item="MZ001", name="王桂兰", id_number="370303197511200030", region=region, fields=MZ))
    add_agent(node.home, "刘窗口", clock)
    return node


def run(node: Node, clock: Any, name: str, scenario: Any) -> Any:
    async def go() -> Any:
        app = DaibanApp(node.home, clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            await login(pilot, name)
            return await scenario(app, pilot)

    return asyncio.run(go())


def rows_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.search(r"\d{20}", line)]


def test_the_search_box_keeps_the_focus_and_finds_what_people_say(village: Node, clock) -> None:
    async def scenario(app: DaibanApp, pilot: Any) -> list[tuple[str, bool]]:
        await pilot.press("f")
        await pilot.pause()
        seen = []
        for query in ("低保", "db", "0045", "王秀兰"):
            box = app.screen.query_one(Input)
            await pilot.press(*["backspace"] * len(box.value), *query, "enter")  # no Shift+Tab between
            await pilot.pause()
            seen.append((screen_text(app), app.focused is box))
        return seen

    (dibao, dibao_focus), (db, _db_focus), (digits, _d), (name, _n) = run(village, clock, "张代办", scenario)
    assert dibao_focus
    for text in (dibao, db):
        [row] = rows_of(text)
        assert "最低生活保障" in row and "李*国" in row
    assert rows_of(digits) == [] and "0045" in digits and "0*" not in digits  # digits, never a name
    assert len(rows_of(name)) == 1 and "王*兰" in name


def test_enter_again_or_down_opens_what_was_found(village: Node, clock) -> None:
    async def scenario(app: DaibanApp, pilot: Any) -> str:
        await pilot.press("f", *"0048", "enter")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        return screen_text(app)

    text = run(village, clock, "张代办", scenario)
    assert "最低生活保障审核确认 (MZ001)" in text


def test_an_office_finds_by_the_full_name(town: Node, clock) -> None:
    async def scenario(app: DaibanApp, pilot: Any) -> str:
        await pilot.press("f", *"王秀兰", "enter")
        await pilot.pause()
        return screen_text(app)

    text = run(town, clock, "刘窗口", scenario)
    assert len(rows_of(text)) == 1  # 王桂兰 (also 王*兰) is not her
    assert "王秀兰" in text


def test_the_find_table_never_cuts_a_date(town: Node, clock) -> None:
    async def scenario(app: DaibanApp, pilot: Any) -> str:
        await pilot.press("f", *"db", "enter")
        await pilot.pause()
        return screen_text(app)

    text = run(town, clock, "刘窗口", scenario)
    [accepted] = [row for row in rows_of(text) if "已受理" in row]
    assert re.search(r"2027-01-\d\d\b", accepted), accepted  # the provisional due date, whole


def test_staff_and_offices_by_name_and_the_full_id_only_in_the_detail(town: Node, clock) -> None:
    async def scenario(app: DaibanApp, pilot: Any) -> tuple[str, str, str]:
        home = screen_text(app)
        await pilot.press("i")
        await pilot.pause()
        inbox = screen_text(app)
        await pilot.press("enter")  # the most urgent: 李建国's, accepted
        await pilot.pause()
        detail = screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
        return home, inbox, detail + "\n====\n" + screen_text(app)

    home, inbox, detail_then_inbox = run(town, clock, "刘窗口", scenario)
    detail, back = detail_then_inbox.split("\n====\n")
    staff = _("staff: {name}").format(name="刘窗口")
    assert staff in home and "代办员" not in home
    assert "南定镇便民服务中心 待办：3 件" in inbox  # the office by name
    for text in (inbox, back):
        assert LI_ID not in text and "李*国" in text
    assert LI_ID in detail and "李建国" in detail  # opened while the detail is open
    assert "本机构解密" not in detail and "@" not in detail
    assert "否" in detail and "False" not in detail
    assert re.search(r": 420(\s|$)", detail, re.M) and "420.0" not in detail
    assert "南定镇便民服务中心 (370303101)" in detail or "南定镇便民服务中心（370303101）" in detail


def test_a_village_detail_names_the_office_and_its_people(village: Node, clock) -> None:
    async def scenario(app: DaibanApp, pilot: Any) -> str:
        await pilot.press("f", *"db", "enter", "enter")
        await pilot.pause()
        return screen_text(app)

    text = run(village, clock, "张代办", scenario)
    assert "南定镇便民服务中心" in text  # the office that handles 低保, from the catalog, by name
    assert "370303101 " in text or "370303101)" in text or "370303101）" in text  # its code beside
    assert "张代办" in text and "@" not in text
    assert LI_ID not in text  # a village keeps it sealed


@pytest.mark.parametrize("query", ["低保", "db"])
def test_the_item_chooser_knows_what_people_call_an_item(village: Node, clock, query: str) -> None:
    async def scenario(app: DaibanApp, pilot: Any) -> str:
        await pilot.press("n", *query)
        await pilot.pause()
        return screen_text(app)

    text = run(village, clock, "张代办", scenario)
    listed = [line for line in text.splitlines() if re.search(r"\b[A-Z]{2}\d{3}\b", line)]
    assert listed and "MZ001" in listed[0] and "最低生活保障审核确认" in listed[0], text


def test_the_full_id_is_dropped_when_the_detail_is_covered_and_read_again_on_return(
    town: Node, clock
) -> None:
    async def scenario(app: DaibanApp, pilot: Any) -> tuple[str, bool, str]:
        await pilot.press("i", "enter")  # 李建国's, accepted: a decision (complete) may be recorded
        await pilot.pause()
        detail = app.screen
        await pilot.press("d")
        await pilot.pause()
        covered = screen_text(app)
        kept = "personal" in detail.view  # type: ignore[attr-defined]
        await pilot.press("escape")
        await pilot.pause()
        return covered, kept, screen_text(app)

    covered, kept, back = run(town, clock, "刘窗口", scenario)
    assert LI_ID not in covered and not kept
    assert LI_ID in back  # the detail open again: opened again


def test_the_office_login_names_its_staff(town: Node, clock) -> None:
    async def go() -> str:
        app = DaibanApp(town.home, clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            return screen_text(app)

    text = asyncio.run(go())
    assert _("Staff here: {names}").format(names="刘窗口") in text and "代办员" not in text


def test_typing_in_the_results_starts_the_next_search(village: Node, clock) -> None:
    async def scenario(app: DaibanApp, pilot: Any) -> tuple[bool, str]:
        await pilot.press("f", *"db", "enter", "down")  # down: to the results
        await pilot.pause()
        on_table = app.focused is not app.screen.query_one(Input)
        await pilot.press(*"0020", "enter")  # straight on, no Shift+Tab
        await pilot.pause()
        return on_table, screen_text(app)

    on_table, text = run(village, clock, "张代办", scenario)
    assert on_table
    [row] = rows_of(text)
    assert "王*兰" in row and "0020" in text, text


def test_the_next_search_is_typed_over_the_last(village: Node, clock) -> None:
    async def scenario(app: DaibanApp, pilot: Any) -> str:
        await pilot.press("f", *"db", "enter", *"0020", "enter")
        await pilot.pause()
        return screen_text(app)

    text = run(village, clock, "张代办", scenario)
    [row] = rows_of(text)
    assert "王*兰" in row and "db0020" not in text


def test_an_id_number_searched_for_is_kept_masked_in_the_box(town: Node, clock) -> None:
    async def scenario(app: DaibanApp, pilot: Any) -> tuple[str, str]:
        await pilot.press("f", *LI_ID, "enter")
        await pilot.pause()
        found = screen_text(app)
        await pilot.press("enter")  # Enter again opens it
        await pilot.pause()
        return found, screen_text(app)

    found, detail = run(town, clock, "刘窗口", scenario)
    assert LI_ID not in found and "3703**********0048" in found
    assert len(rows_of(found)) == 1
    assert LI_ID in detail  # in the open detail, in full
