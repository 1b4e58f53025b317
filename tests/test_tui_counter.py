"""The terminal app at the counter, as older agents on shared PCs use it
(issue 13): ticks and choices written in characters, boxed fields and a
focus that shows without colour, every Tab stop taking input, Esc on a
changed form asking first, key hints as written on the keys, and the idle
logout on an injected clock. Pilot at 80x24 on real node homes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest
from rich.style import Style
from textual.widgets import Input, Select

from daiban import i18n
from daiban.i18n import _
from daiban.node.applications import Node
from daiban.tui.app import IDLE_AFTER, DaibanApp
from daiban.tui.base import Discard
from daiban.tui.decide import DecideScreen
from daiban.tui.login import LoginScreen
from daiban.tui.widgets import CheckList
from tests.conftest import filing
from tests.tui_helpers import add_agent, login, screen_text

SIZE = (80, 24)
PHOTO = "近期1寸免冠彩色照片"  # LL001's material that may be owed (容缺)
CARD = "居民身份证或户口簿"


@pytest.fixture(autouse=True)
def _chinese() -> Iterator[None]:
    i18n.set_language("zh")
    yield


def style_at(app: DaibanApp, text: str) -> Style:
    """The style of the first character of ``text`` where it is on the screen."""
    for strip in app.screen._compositor.render_strips():
        line = "".join(seg.text for seg in strip)
        at = line.find(text)
        if at < 0:
            continue
        seen = 0
        for seg in strip:
            if seen + len(seg.text) > at:
                return seg.style or Style()
            seen += len(seg.text)
    raise AssertionError(f"{text!r} is not on the screen:\n{screen_text(app)}")


def row_of(app: DaibanApp, text: str) -> str:
    [line] = [line for line in screen_text(app).splitlines() if text in line]
    return line


def village(make_node, clock) -> Node:
    node: Node = make_node()
    add_agent(node.home, "张代办", clock)
    return node


def app_for(node: Node, clock, **kwargs: Any) -> DaibanApp:
    return DaibanApp(node.home, clock=clock, background_sync=False, backup=False, **kwargs)


async def open_form(pilot, code: str = "LL001") -> None:
    await login(pilot, "张代办")
    await pilot.press("n", *code, "enter", "enter")
    await pilot.pause()


# -- states in characters, boxes, focus -----------------------------------------


def test_ticks_read_in_characters_and_decide_what_is_owed(make_node, clock) -> None:
    node = village(make_node, clock)

    async def scenario() -> None:
        app = app_for(node, clock)
        async with app.run_test(size=SIZE) as pilot:
            await open_form(pilot)
            assert row_of(app, CARD).lstrip().startswith("[x] ")
            assert row_of(app, PHOTO).lstrip().startswith("[x] ")
            app.screen.query_one("#materials", CheckList).focus()
            await pilot.press("down", "space")  # untick the photo: it is owed
            await pilot.pause()
            assert row_of(app, CARD).lstrip().startswith("[x] ")
            assert row_of(app, PHOTO).lstrip().startswith("[ ] ")
            assert "▐" not in screen_text(app) and "▌" not in screen_text(app)
            assert app.screen.filing().missing == [PHOTO]

    asyncio.run(scenario())


def test_radio_choices_read_in_characters(make_node, clock) -> None:
    town: Node = make_node("town", "370303101", "南定镇便民服务中心")
    town.actor = "刘窗口"
    filed = town.file(
        filing(
            item="MZ001",
            id_number="370303196208150048",
            region="370303101201",
            fields={"family_size": "3", "monthly_income": "420"},
        )
    )
    add_agent(town.home, "刘窗口", clock)

    async def scenario() -> None:
        app = app_for(town, clock)
        async with app.run_test(size=SIZE) as pilot:
            await login(pilot, "刘窗口")
            await app.push_screen(DecideScreen(filed.tracking))
            await pilot.pause()
            accept, supplement, reject = (
                _("Accept (受理)"),
                _("Ask for a supplement (补正)"),
                _("Reject (不予受理)"),
            )
            assert re.search(r"\(•\) " + re.escape(accept), screen_text(app))
            assert re.search(r"\( \) " + re.escape(supplement), screen_text(app))
            assert re.search(r"\( \) " + re.escape(reject), screen_text(app))
            assert style_at(app, accept).reverse  # the RadioSet has the focus: its option is marked
            await pilot.press("down", "enter")
            await pilot.pause()
            assert re.search(r"\( \) " + re.escape(accept), screen_text(app))
            assert re.search(r"\(•\) " + re.escape(supplement), screen_text(app))
            assert screen_text(app).count("(•)") == 1
            assert "▐" not in screen_text(app)
            # No dead stop: Tab from the choice lands on the list of what is missing.
            await pilot.press("tab")
            assert isinstance(app.focused, CheckList) and app.focused.id == "missing"

    asyncio.run(scenario())


@pytest.mark.parametrize("palette", ["nocolor", "ansi", "truecolor"])
def test_fields_are_boxed_and_the_focus_shows_without_colour(make_node, clock, monkeypatch, palette) -> None:
    """The focus is drawn in characters (heavy sides) and reverse video, which
    a 16-colour terminal and NO_COLOR show as well as any."""
    if palette == "nocolor":
        monkeypatch.setenv("NO_COLOR", "1")
    node = village(make_node, clock)

    async def scenario() -> None:
        app = app_for(node, clock, ansi_color=palette == "ansi")
        async with app.run_test(size=SIZE) as pilot:
            assert app.no_color == (palette == "nocolor")
            await open_form(pilot)
            assert re.search(r"姓名\s+█\s+█", row_of(app, "姓名"))  # focused: heavy sides
            assert re.search(r"身份证号\s+▏\s+▕", row_of(app, "身份证号"))  # a box, not focused
            assert style_at(app, "姓名").reverse and style_at(app, "姓名").bold
            assert not style_at(app, "身份证号").reverse
            await pilot.press("tab")
            await pilot.pause()
            assert re.search(r"姓名\s+▏\s+▕", row_of(app, "姓名"))
            assert re.search(r"身份证号\s+█\s+█", row_of(app, "身份证号"))
            assert style_at(app, "身份证号").reverse
            app.screen.query_one("#materials", CheckList).focus()
            await pilot.pause()
            assert style_at(app, CARD).reverse  # the highlighted tick, in reverse video
            assert not style_at(app, PHOTO).reverse

    asyncio.run(scenario())


def test_every_tab_stop_on_the_filing_form_takes_input(make_node, clock) -> None:
    node = village(make_node, clock)

    async def scenario() -> None:
        app = app_for(node, clock)
        async with app.run_test(size=SIZE) as pilot:
            await open_form(pilot, "MZ001")
            form = app.screen
            first = app.focused
            assert first is form.widgets["name"]
            stops = []
            for _n in range(40):
                stops.append(app.focused)
                await pilot.press("tab")
                if app.focused is first:
                    break
            assert all(isinstance(w, Input | Select | CheckList) for w in stops), stops
            assert stops == [*form.widgets.values(), form.query_one("#materials")]
            # Shift+Tab walks them back, the same stops.
            await pilot.press("shift+tab")
            assert app.focused is stops[-1]

    asyncio.run(scenario())


# -- Esc on a changed form -----------------------------------------------------------


def test_esc_on_an_unchanged_form_leaves_at_once(make_node, clock) -> None:
    node = village(make_node, clock)

    async def scenario() -> None:
        app = app_for(node, clock)
        async with app.run_test(size=SIZE) as pilot:
            await open_form(pilot)
            form = app.screen
            await pilot.press("escape")
            await pilot.pause()
            assert form not in app.screen_stack and not isinstance(app.screen, Discard)

    asyncio.run(scenario())


def test_esc_on_a_changed_form_asks_before_discarding(make_node, clock) -> None:
    node = village(make_node, clock)

    async def scenario() -> None:
        app = app_for(node, clock)
        async with app.run_test(size=SIZE) as pilot:
            await open_form(pilot)
            form = app.screen
            await pilot.press(*"王秀兰", "escape")
            await pilot.pause()
            assert isinstance(app.screen, Discard)
            assert _("Discard what was typed?") in screen_text(app)
            for keep in ("n", "escape", "enter"):  # each of these goes back to the form, kept
                await pilot.press(keep)
                await pilot.pause()
                assert app.screen is form and form.widgets["name"].value == "王秀兰"
                await pilot.press("escape")
                await pilot.pause()
                assert isinstance(app.screen, Discard)
            await pilot.press("y")
            await pilot.pause()
            assert form not in app.screen_stack
            assert "王秀兰" not in screen_text(app)
            # A tick taken away is a change too.
            await pilot.press("enter")
            await pilot.pause()
            app.screen.query_one("#materials", CheckList).focus()
            await pilot.press("space", "escape")
            await pilot.pause()
            assert isinstance(app.screen, Discard)

    asyncio.run(scenario())


def test_esc_on_a_decision_half_written_asks_too(make_node, clock) -> None:
    town: Node = make_node("town", "370303101", "南定镇便民服务中心")
    town.actor = "刘窗口"
    filed = town.file(
        filing(
            item="MZ001",
            id_number="370303196208150048",
            region="370303101201",
            fields={"family_size": "3", "monthly_income": "420"},
        )
    )
    add_agent(town.home, "刘窗口", clock)

    async def scenario() -> None:
        app = app_for(town, clock)
        async with app.run_test(size=SIZE) as pilot:
            await login(pilot, "刘窗口")
            home = app.screen
            await app.push_screen(DecideScreen(filed.tracking))
            await pilot.pause()
            await pilot.press("escape")  # nothing changed: back at once
            await pilot.pause()
            assert app.screen is home
            await app.push_screen(DecideScreen(filed.tracking))
            await pilot.pause()
            decide = app.screen
            await pilot.press("down", "down", "enter", "tab", *"材料不全", "escape")
            await pilot.pause()
            assert isinstance(app.screen, Discard)
            await pilot.press("n")
            await pilot.pause()
            assert app.screen is decide and decide.query_one("#note", Input).value == "材料不全"
            await pilot.press("escape", "y")
            await pilot.pause()
            assert app.screen is home
            assert town.show(filed.tracking)["status"] == "received"  # nothing recorded

    asyncio.run(scenario())


# -- key hints -------------------------------------------------------------------------


def footer_line(app: DaibanApp) -> str:
    return screen_text(app).splitlines()[-1]


@pytest.mark.parametrize("language", ["zh", "en"])
def test_key_hints_as_written_on_the_keys_in_the_chosen_language(make_node, clock, language) -> None:
    i18n.set_language(language)
    node = village(make_node, clock)

    async def scenario() -> None:
        app = app_for(node, clock)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await open_form(pilot)
            footer = footer_line(app)
            assert f"Ctrl+S {_('Check and continue')}" in footer and f"Esc {_('Back')}" in footer
            assert "^" not in footer
            if language == "en":
                assert "Ctrl+S Check and continue" in footer
            # A list opened from a choice: its own key in the same words.
            app.screen.widgets["delivery"].focus()
            await pilot.press("enter")
            await pilot.pause()
            footer = footer_line(app)
            assert "Dismiss" not in footer and f"Esc {_('Cancel')}" in footer
            await pilot.press("escape")
            await pilot.pause()
            await pilot.press("ctrl+c")  # by habit: told, in the language, how to quit
            await pilot.pause()
            assert _("To quit, press Ctrl+Q.") in screen_text(app)
            if language == "zh":
                hints = re.sub(r"(Ctrl\+|Esc|Enter|Tab)\S*", "", footer_line(app))
                assert not re.search(r"[A-Za-z]{2,}", hints), footer_line(app)
            await pilot.press("escape", "escape")
            await pilot.pause()
            assert "N " + _("New") in footer_line(app)  # a letter as on its key

    asyncio.run(scenario())


# -- idle logout ---------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_idle_logout_closes_every_screen_with_a_residents_data(make_node, clock) -> None:
    node = village(make_node, clock)
    time = FakeTime()

    async def scenario() -> None:
        app = app_for(node, clock, idle_clock=time)
        assert app.idle_after == IDLE_AFTER
        async with app.run_test(size=SIZE) as pilot:
            assert not app.check_idle_logout()  # nobody logged in: nothing to do
            await open_form(pilot)
            await pilot.press(*"王秀兰", "tab", *"370303194003190020")
            await pilot.pause()
            form = app.screen
            time.now += IDLE_AFTER.total_seconds() - 1
            assert not app.check_idle_logout()
            await pilot.press("tab")  # a key: the wait starts again
            time.now += IDLE_AFTER.total_seconds() - 1
            assert not app.check_idle_logout() and app.screen is form
            time.now += 1
            assert app.check_idle_logout()
            await pilot.pause()
            assert isinstance(app.screen, LoginScreen) and app.agent == "" and app.node.actor == "-"
            assert form not in app.screen_stack and len(app.screen_stack) == 2
            text = screen_text(app)
            assert "王秀兰" not in text and "370303194003190020" not in text
            # Logged in again: home, no form left behind.
            await login(pilot, "张代办")
            assert app.agent == "张代办"
            await pilot.press("escape")
            await pilot.pause()
            assert app.agent == "张代办" and "王秀兰" not in screen_text(app)

    asyncio.run(scenario())


def test_idle_time_is_configurable(make_node, clock) -> None:
    import datetime as dt

    node = village(make_node, clock)
    time = FakeTime()

    async def scenario() -> None:
        app = app_for(node, clock, idle_clock=time, idle_after=dt.timedelta(minutes=2))
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await login(pilot, "张代办")
            time.now += 119
            assert not app.check_idle_logout()
            time.now += 1
            assert app.check_idle_logout()
            await pilot.pause()
            assert isinstance(app.screen, LoginScreen)
            assert _("Logged out after {minutes} minutes without use.").format(minutes=2) in screen_text(app)

    asyncio.run(scenario())


def test_idle_after_on_the_command_line_and_in_the_environment(cli) -> None:
    assert "--idle-after" in cli("tui", "--help").stdout
    bad = cli("tui", "--idle-after", "soon")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "soon" in bad.stderr
    bad_env = cli("tui", env={"DAIBAN_IDLE_AFTER": "soon"})
    assert bad_env.returncode != 0 and "Traceback" not in bad_env.stderr
    assert "DAIBAN_IDLE_AFTER" in bad_env.stderr and len(bad_env.stderr.strip().splitlines()) == 1
