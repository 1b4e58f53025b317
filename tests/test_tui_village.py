"""The terminal app at a village, driven with Textual's Pilot at 80x24 on a
real node home (real SQLite): the first agent made at login, filing through
the form with the receipt, refusing a hostile name, finding and the detail's
history, withdrawal. Assertions are on what is stored."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from rich.cells import cell_len

from daiban import i18n
from daiban.node.applications import Node
from daiban.tui.app import DaibanApp
from tests.conftest import filing
from tests.tui_helpers import EVIL, PIN, add_agent, login, screen_text

SIZE = (80, 24)


@pytest.fixture(autouse=True)
def _chinese() -> Iterator[None]:
    i18n.set_language("zh")
    yield


def test_first_agent_made_at_login_files_an_application(make_node, clock) -> None:
    node: Node = make_node()
    home = node.home
    node.close()

    async def scenario() -> None:
        app = DaibanApp(home, clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert "还没有代办员" in screen_text(app)
            await pilot.press(*"张代办", "enter", *PIN, "enter", *"135791", "enter")
            await pilot.pause()
            assert "不一致" in screen_text(app)  # the two PINs differ: nothing made
            assert app.node.store.agents() == []
            await pilot.press(*PIN, "enter", *PIN, "enter")
            await pilot.pause()
            assert app.agent == "张代办"
            assert "需要处理" in screen_text(app)
            # New application: the item by pinyin initials, the form, confirm, file.
            await pilot.press("n", *"zdsh")
            await pilot.pause()
            assert "MZ001" in screen_text(app)
            await pilot.press("enter", "enter")
            await pilot.pause()
            await pilot.press(*"李建国", "enter", *"370303196208150041", "enter")
            await pilot.pause()
            assert "校验码不符" in screen_text(app)  # the reason beside the field, as typed
            form = app.screen
            form.widgets["id_number"].value = "370303196208150048"
            form.widgets["phone"].value = "0533-2281234"
            form.widgets["family_size"].value = "3"
            form.widgets["monthly_income"].value = "420"
            await pilot.pause()
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert "请与群众核对" in screen_text(app)
            assert "李建国" in screen_text(app)
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert "收件回执" in screen_text(app)

    asyncio.run(scenario())
    from daiban.node.home import open_node

    node = open_node(home, clock=clock)
    try:
        [row] = node.list()
        assert (row["item"], row["status"], row["applicant"]["name"]) == ("MZ001", "submitted", "李*国")
        shown = node.show(row["tracking"])
        assert [e["actor"] for e in shown["history"]] == ["张代办"]
        assert node.store.agent("张代办")["pin_hash"].startswith("$argon2id$")
    finally:
        node.close()
    receipt = (home / "receipts" / f"{row['tracking']}-receipt.txt").read_text(encoding="utf-8")
    assert "收件回执" in receipt and "受理回执" not in receipt and "李*国" in receipt
    assert "李建国" not in receipt and "370303196208150048" not in receipt  # only masked values on paper
    assert "3703 0310 1201 0000 0013" in receipt
    assert max(cell_len(line) for line in receipt.splitlines()) <= 80


def test_wrong_pin_is_refused_in_the_app(make_node, clock) -> None:
    node: Node = make_node()
    add_agent(node.home, "张代办", clock)

    async def scenario() -> None:
        app = DaibanApp(node.home, clock=clock, agent="张代办")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press(*"000000", "enter")
            await pilot.pause()
            assert "姓名或 PIN 码错误" in screen_text(app)
            assert app.agent == "" and app.is_running
            await pilot.press(*PIN, "enter")
            await pilot.pause()
            assert app.agent == "张代办"
            await pilot.press("l")  # log out: back at the login screen
            await pilot.pause()
            assert app.agent == "" and "PIN" in screen_text(app)

    asyncio.run(scenario())


def test_hostile_name_is_refused_at_entry_and_clicking_it_does_nothing(make_node, clock) -> None:
    node: Node = make_node()
    add_agent(node.home, "张代办", clock)

    async def scenario() -> None:
        app = DaibanApp(node.home, clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            await login(pilot, "张代办")
            await pilot.press("n", *"SB001", "enter", "enter")
            await pilot.pause()
            form = app.screen
            form.widgets["name"].value = EVIL
            await pilot.pause()
            await pilot.press("ctrl+s")
            await pilot.pause()
            text = screen_text(app)
            assert "只能包含汉字" in text or "只能" in text
            assert "\x1b" not in text
            await pilot.click("#f-name")
            await pilot.click(form.reasons["name"])
            await pilot.pause()
            assert app.is_running and app.screen is form
            assert app.node.store.count_applications(app.node.code) == 0

    asyncio.run(scenario())


def test_find_by_tracking_id_and_name_then_history_and_withdraw(make_node, clock) -> None:
    node: Node = make_node()
    node.actor = "张代办"
    first = node.file(filing())
    node.file(filing(item="SB001", name="赵德胜", id_number="370303197511200030"))
    add_agent(node.home, "李代办", clock)

    async def scenario() -> None:
        app = DaibanApp(node.home, clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            await login(pilot, "李代办")
            await pilot.press("f", *first.tracking, "enter")
            await pilot.pause()
            assert "找到 1 件" in screen_text(app)
            await pilot.press("enter")
            await pilot.pause()
            text = screen_text(app)
            # Who did what: the person (where, when not here), never user@code.
            assert first.tracking in text and "张代办" in text and "@3703" not in text
            # AB角: 李代办 carries on 张代办's case.
            await pilot.press("w")
            await pilot.pause()
            await pilot.press("y")  # no reason chosen yet: nothing is withdrawn
            await pilot.pause()
            assert node.show(first.tracking)["status"] != "withdrawn"
            await pilot.press("3", "y")  # 录入错误, then confirmed
            await pilot.pause()
            assert "已撤回" in screen_text(app)
            await pilot.press("escape")
            await pilot.pause()
            find = app.screen.query_one("#query")
            find.value = "370303198001010012"
            find.focus()
            await pilot.press("enter")
            await pilot.pause()
            assert "找到 1 件" in screen_text(app)
            find.value = "赵德胜"
            find.focus()
            await pilot.press("enter")
            await pilot.pause()
            assert "赵*胜" in screen_text(app) and "找到 1 件" in screen_text(app)

    asyncio.run(scenario())
    shown = node.show(first.tracking)
    assert shown["status"] == "withdrawn"
    assert [e["actor"] for e in shown["history"]] == ["张代办", "李代办"]
    assert shown["history"][-1]["body"]["note"] == "录入错误"  # the reason, as the agent chose it
