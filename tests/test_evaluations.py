"""Evaluations as GB/T 39734 defines them: five levels in words (非常满意 …
非常不满意), chosen and then confirmed in the terminal app, a reason required
for 不满意 and 非常不满意, recorded once and only at the point that filed the
application — never by the office being evaluated."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from daiban import i18n
from daiban.errors import DaibanError, ValidationFailed
from daiban.node.applications import Node
from daiban.render import application_detail, score_label
from daiban.tui.app import DaibanApp
from tests.conftest import ZIBO_ID, FrozenClock, filing
from tests.sync_net import network_at
from tests.tui_helpers import add_agent, login, screen_text

MakeNode = Callable[..., Node]
LEVELS_ZH = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}


def _completed(make_node: MakeNode) -> tuple[Node, str]:
    town = make_node("town", "370303101", "南定镇便民服务中心")  # files at its own counter
    fields = {"family_size": "3", "monthly_income": "420"}
    tracking = town.file(
        filing(item="MZ001", id_number=ZIBO_ID, region="370303101201", fields=fields)
    ).tracking
    town.review(tracking, "accept")
    town.review(tracking, "complete")
    return town, tracking


def test_the_five_levels_in_words() -> None:
    i18n.set_language("zh")
    try:
        assert {n: score_label(n) for n in LEVELS_ZH} == LEVELS_ZH
    finally:
        i18n.set_language("en")


@pytest.mark.parametrize("score", [1, 2])
def test_a_poor_level_needs_the_residents_reason(make_node: MakeNode, score: int) -> None:
    town, tracking = _completed(make_node)
    with pytest.raises(ValidationFailed):
        town.evaluate(tracking, score)
    with pytest.raises(ValidationFailed):
        town.evaluate(tracking, score, comment="   ")
    assert town.show(tracking)["evaluation"] is None
    town.evaluate(tracking, score, comment="等候时间太长")
    view = town.show(tracking)
    assert view["evaluation"] == score
    assert f"Evaluation: {score_label(score)}" in application_detail(view)


@pytest.mark.parametrize("score", [0, 6, True])
def test_only_the_five_levels(make_node: MakeNode, score: Any) -> None:
    town, tracking = _completed(make_node)
    with pytest.raises(ValidationFailed):
        town.evaluate(tracking, score, comment="x")


def test_evaluated_once(make_node: MakeNode) -> None:
    town, tracking = _completed(make_node)
    town.evaluate(tracking, 5)
    with pytest.raises(DaibanError):
        town.evaluate(tracking, 4)
    assert town.show(tracking)["evaluation"] == 5


def test_choose_then_confirm_in_the_terminal_app(make_node: MakeNode, clock: FrozenClock) -> None:
    town, tracking = _completed(make_node)
    add_agent(town.home, "刘窗口", clock)
    i18n.set_language("zh")

    async def scenario() -> tuple[str, str, str]:
        app = DaibanApp(town.home, clock=clock)
        async with app.run_test(size=(80, 24)) as pilot:
            await login(pilot, "刘窗口")
            await pilot.press("f")
            await pilot.pause()
            await pilot.press(*tracking, "enter")
            await pilot.pause()
            await pilot.press("down", "enter")  # open the one found
            await pilot.pause()
            await pilot.press("e")
            await pilot.pause()
            levels = screen_text(app)
            await pilot.press("2")  # 不满意: not recorded yet, a reason is asked for
            await pilot.pause()
            await pilot.press("enter")  # no reason typed: refused, nothing recorded
            await pilot.pause()
            asked = screen_text(app)
            await pilot.press(*"态度不好", "enter")
            await pilot.pause()
            return levels, asked, screen_text(app)

    try:
        levels, asked, done = asyncio.run(scenario())
    finally:
        i18n.set_language("en")
    assert all(word in levels for word in LEVELS_ZH.values())
    assert "不满意：请输入群众的理由" in asked
    assert "不满意" in done
    assert town.show(tracking)["evaluation"] == 2
    [event] = [e for e in town.show(tracking)["history"] if e["kind"] == "evaluated"]
    assert event["body"] == {"score": 2, "comment": "态度不好"}


def test_only_the_filing_point_evaluates_never_the_office(tmp_path: Path) -> None:
    with network_at(tmp_path / "net") as net:
        net.build(("city", "district", "town", "village"))
        fields = ("--field", "family_size=3", "--field", "monthly_income=420")
        filed = net.run(
            "village", "apply", "--item", "MZ001", "--name", "王秀兰", "--id-number", ZIBO_ID,
            "--phone", "13800000001", *fields, "--json",
        ).ok()  # fmt: skip
        tracking = filed.json()["tracking"]
        net.sync("village")
        net.run("town", "review", tracking, "accept").ok()
        net.run("town", "review", tracking, "complete").ok()
        by_office = net.run("town", "evaluate", tracking, "5")
        assert by_office.returncode == 1 and "Traceback" not in by_office.stderr
        assert by_office.stderr.strip().count("\n") == 0  # one line
        net.sync("village")
        no_reason = net.run("village", "evaluate", tracking, "1")
        assert no_reason.returncode == 1 and "reason" in no_reason.stderr
        net.run("village", "evaluate", tracking, "1", "--comment", "材料被退回三次").ok()
        again = net.run("village", "evaluate", tracking, "5")
        assert again.returncode == 1
        net.sync("village")
        shown = net.run("town", "show", tracking, "--json").ok().json()
        assert shown["evaluation"] == 1
