"""Snapshots of the key screens at 80x24 (pytest-textual-snapshot): Chinese
by default, one in English. Real node homes on a frozen clock, so the
pictures are the same on every run. After a deliberate change, look at the
new pictures and update them with `pytest --snapshot-update`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from textual.pilot import Pilot

from daiban import i18n
from daiban.node.applications import Node
from daiban.tui.app import DaibanApp
from daiban.tui.decide import DecideScreen
from tests.conftest import filing
from tests.tui_helpers import PaletteApp, add_agent, login

SIZE = (80, 24)


@pytest.fixture(autouse=True)
def _chinese() -> Iterator[None]:
    i18n.set_language("zh")
    yield


@pytest.fixture
def village(make_node, clock) -> Node:
    node: Node = make_node()
    node.actor = "张代办"
    node.file(filing())
    node.file(
        filing(
            item="MZ001",
            name="李建国",
            id_number="370303196208150048",
            phone="0533-2281234",
            fields={"family_size": "3", "monthly_income": "420"},
            missing=["承诺书"],
        )
    )
    add_agent(node.home, "张代办", clock)
    return node


@pytest.fixture
def town(make_node, clock) -> Node:
    """A town hall with walk-in filings: one overdue, one due soon, one waiting."""
    node: Node = make_node("town", "370303101", "南定镇便民服务中心")
    node.actor = "刘窗口"
    clock.set("2026-10-09T09:00:00")
    late = node.file(
        filing(
            item="MZ003",
            name="赵德胜",
            id_number="370303197511200030",
            region="370303101201",
            fields={"assistance_kind": "急难型", "hardship_reason": "因病"},
        )
    )
    node.review(late.tracking, "accept")
    clock.set("2026-11-24T09:00:00")
    soon = node.file(
        filing(
            item="LL002",
            name="王秀兰",
            id_number="370303194003190020",
            region="370303101202",
            fields={"receive_method": "本人银行卡"},
        )
    )
    node.review(soon.tracking, "accept")
    clock.set("2026-11-27T10:00:00")
    node.file(
        filing(
            item="MZ001",
            name="李建国",
            id_number="370303196208150048",
            region="370303101201",
            phone="0533-2281234",
            fields={"family_size": "3", "monthly_income": "420", "has_disabled_member": "否"},
        )
    )
    add_agent(node.home, "刘窗口", clock)
    return node


def _logged_in(name: str, *keys: str) -> Any:
    async def run_before(pilot: Pilot[Any]) -> None:
        await login(pilot, name)
        if keys:
            await pilot.press(*keys)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    return run_before


def test_login_first_agent(snap_compare, make_node, clock) -> None:
    node: Node = make_node()
    assert snap_compare(DaibanApp(node.home, clock=clock), terminal_size=SIZE)


def test_village_home(snap_compare, village: Node, clock) -> None:
    app = DaibanApp(village.home, clock=clock)
    assert snap_compare(app, terminal_size=SIZE, run_before=_logged_in("张代办"))


def test_new_application_form_with_reasons(snap_compare, village: Node, clock) -> None:
    app = DaibanApp(village.home, clock=clock)

    async def run_before(pilot: Pilot[Any]) -> None:
        await login(pilot, "张代办")
        await pilot.press("n", *"SB001", "enter", "enter")
        await pilot.pause()
        await pilot.press(*"王秀兰", "enter", *"370303195603120021", "enter", *"1380533", "ctrl+s")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_application_detail(snap_compare, village: Node, clock) -> None:
    app = DaibanApp(village.home, clock=clock)
    assert snap_compare(
        app,
        terminal_size=SIZE,
        run_before=_logged_in("张代办", "f", *"37030310120100000021", "enter", "enter"),
    )


def test_office_inbox(snap_compare, town: Node, clock) -> None:
    app = DaibanApp(town.home, clock=clock)
    assert snap_compare(app, terminal_size=SIZE, run_before=_logged_in("刘窗口", "i"))


def test_office_detail_in_people_s_words(snap_compare, town: Node, clock) -> None:
    """The detail at the office: the applicant in full (only here), offices
    by name with the code, yes/no and amounts as people write them, the
    staff by name in the history."""
    app = DaibanApp(town.home, clock=clock)
    keys = ("i", "down", "down", "enter")  # the 低保 application, the third by deadline
    assert snap_compare(app, terminal_size=SIZE, run_before=_logged_in("刘窗口", *keys))


def test_find_by_what_people_say(snap_compare, town: Node, clock) -> None:
    """低保 finds the 最低生活保障 applications; the box keeps the focus; the
    due date is whole."""
    app = DaibanApp(town.home, clock=clock)
    assert snap_compare(app, terminal_size=SIZE, run_before=_logged_in("刘窗口", "f", *"低保", "enter"))


def test_office_dashboard(snap_compare, town: Node, clock) -> None:
    """The fortnight and the evaluations side by side: all fourteen days on one screen."""
    app = DaibanApp(town.home, clock=clock)
    assert snap_compare(app, terminal_size=SIZE, run_before=_logged_in("刘窗口", "d"))


def test_village_home_in_english(snap_compare, village: Node, clock) -> None:
    i18n.set_language("en")
    app = DaibanApp(village.home, clock=clock)
    assert snap_compare(app, terminal_size=SIZE, run_before=_logged_in("张代办"))


# -- at the counter on a terminal with few colours (issue 13) ------------------------
# Ticks, choices and the focus in characters and reverse video: the pictures
# are taken as a 16-colour terminal ("standard") and NO_COLOR show them.


def _filing_form(*keys: str) -> Any:
    async def run_before(pilot: Pilot[Any]) -> None:
        await login(pilot, "张代办")
        await pilot.press("n", *"LL001", "enter", "enter")
        await pilot.pause()
        # The photo may be owed (容缺): untick it; the ID card stays ticked.
        await pilot.press(*"王秀兰", "tab", *"370303194003190020", "tab", "tab", "tab", "tab", "tab")
        await pilot.press("down", "space", "up")
        await pilot.press(*keys)
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("palette", ["standard", "nocolor"])
def test_filing_form_ticks_and_focus_in_few_colours(
    snap_compare, village: Node, clock, monkeypatch, palette: str
) -> None:
    """Focus on the materials list: [x] and [ ], the highlighted tick in reverse."""
    if palette == "nocolor":
        monkeypatch.setenv("NO_COLOR", "1")
    app = PaletteApp(village.home, clock=clock, palette=palette)
    assert snap_compare(app, terminal_size=SIZE, run_before=_filing_form())


@pytest.mark.parametrize("palette", ["standard", "nocolor"])
def test_filing_form_field_focus_in_few_colours(
    snap_compare, village: Node, clock, monkeypatch, palette: str
) -> None:
    """Focus on a field: its box drawn with heavy sides, its label in reverse."""
    if palette == "nocolor":
        monkeypatch.setenv("NO_COLOR", "1")
    app = PaletteApp(village.home, clock=clock, palette=palette)
    assert snap_compare(app, terminal_size=SIZE, run_before=_filing_form("shift+tab", "shift+tab"))


def test_discard_asks_first(snap_compare, village: Node, clock) -> None:
    app = PaletteApp(village.home, clock=clock, palette="standard")
    assert snap_compare(app, terminal_size=SIZE, run_before=_filing_form("escape"))


@pytest.mark.parametrize("palette", ["standard", "nocolor"])
def test_decide_choices_in_few_colours(snap_compare, town: Node, clock, monkeypatch, palette: str) -> None:
    """(•) and ( ) for the decision, the one highlighted in reverse."""
    if palette == "nocolor":
        monkeypatch.setenv("NO_COLOR", "1")
    [waiting] = [row for row in town.list() if row["status"] == "received"]
    app = PaletteApp(town.home, clock=clock, palette=palette)

    async def run_before(pilot: Pilot[Any]) -> None:
        await login(pilot, "刘窗口")
        await pilot.app.push_screen(DecideScreen(waiting["tracking"]))
        await pilot.pause()
        await pilot.press("down")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_filing_form_in_english(snap_compare, village: Node, clock) -> None:
    """The key hints in English too: Ctrl+S, Esc."""
    i18n.set_language("en")
    app = PaletteApp(village.home, clock=clock, palette="standard")
    assert snap_compare(app, terminal_size=SIZE, run_before=_filing_form())
