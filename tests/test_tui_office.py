"""The office's dashboard at 80x24: the whole fortnight of filings and the
evaluations are on the first screen, with no scrolling, in Chinese and in
English (real town home, frozen clock)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from daiban import i18n
from daiban.node.applications import Node
from daiban.tui.app import DaibanApp
from tests.conftest import filing
from tests.tui_helpers import add_agent, login, screen_text

SIZE = (80, 24)


@pytest.mark.parametrize(("language", "score_label"), [("zh", "5 分"), ("en", "score 5")])
def test_the_fortnight_fits_one_screen(make_node, clock, language: str, score_label: str) -> None:
    town: Node = make_node("town", "370303101", "南定镇便民服务中心")
    town.actor = "刘窗口"
    for n, day in enumerate(("2026-11-16", "2026-11-20", "2026-11-27")):
        clock.set(f"{day}T09:00:00")
        town.file(
            filing(
                item="MZ001",
                id_number=("370303195603120020", "370303196208150048", "370303197511200030")[n],
                region="370303101201",
                fields={"family_size": "3", "monthly_income": "420"},
            )
        )
    add_agent(town.home, "刘窗口", clock)
    i18n.set_language(language)

    async def scenario() -> str:
        app = DaibanApp(town.home, clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            await login(pilot, "刘窗口")
            await pilot.press("d")
            await pilot.pause()
            return screen_text(app)

    text = asyncio.run(scenario())
    lines = text.splitlines()
    assert len(lines) == 24
    today = dt.date(2026, 11, 27)
    days = [(today - dt.timedelta(days=k)).strftime("%m-%d") for k in range(14)]
    for day in days:  # every day of the fortnight is on the screen, in order
        assert sum(1 for line in lines if day in line) == 1, (day, text)
    rows = [next(i for i, line in enumerate(lines) if day in line) for day in reversed(days)]
    assert rows == sorted(rows) and rows[-1] - rows[0] == 13
    assert score_label in text  # the evaluations beside them
    for day in ("11-16", "11-20", "11-27"):  # the days with a filing have a bar
        assert "█" in next(line for line in lines if day in line)
    assert sum("█" in line for line in lines) == 3
