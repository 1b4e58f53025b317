"""Keys typed faster than the screen keeps up (an ID-card reader that types
like a keyboard at 2-5 ms a key, or a paste) land in the field that has the
focus at their place in the sequence: Tab, Shift+Tab and Enter move the focus
before the next key is handed on. Through Pilot with every key queued at
once, and through tmux against the real ``daiban tui`` at 80x24."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual import events

from daiban import i18n
from daiban.node.applications import Node
from daiban.tui.app import DaibanApp
from daiban.tui.widgets import CheckList
from tests.tui_helpers import PIN, add_agent, login

SIZE = (80, 24)
NAME, ID_NUMBER, PHONE = "赵德胜", "370303197511200030", "13805331234"
TMUX = shutil.which("tmux") or "/usr/bin/tmux"
DAIBAN = str(Path(sys.executable).with_name("daiban"))


@pytest.fixture(autouse=True)
def _chinese() -> Iterator[None]:
    i18n.set_language("zh")
    yield


def burst(app: DaibanApp, *keys: str) -> None:
    """Queue every key at once, as a terminal delivers a fast burst: nothing
    is handled before the last key is queued."""
    for key in keys:
        if len(key) == 1:
            app.post_message(events.Key("tab" if key == "\t" else key, key))
        else:
            app.post_message(events.Key(key, "\t" if key == "tab" else None))


async def open_form(pilot, app: DaibanApp) -> None:
    await login(pilot, "张代办")
    await pilot.press("n", *"SB001", "enter", "enter")
    await pilot.pause()
    assert app.focused is app.screen.widgets["name"]


async def wait_for_keys(pilot, app: DaibanApp, field: str, value: str) -> None:
    """Until the last field holds its keys (bounded: 200 pauses)."""
    for _ in range(200):
        if app.screen.widgets[field].value == value:
            return
        await pilot.pause()


@pytest.mark.parametrize("move", ["tab", "enter"])
def test_keys_queued_across_tab_land_in_their_own_fields(make_node, clock, move: str) -> None:
    node: Node = make_node()
    add_agent(node.home, "张代办", clock)

    async def scenario() -> None:
        app = DaibanApp(node.home, clock=clock, background_sync=False, backup=False)
        async with app.run_test(size=SIZE) as pilot:
            await open_form(pilot, app)
            burst(app, *NAME, move, *ID_NUMBER, move, *PHONE)
            await wait_for_keys(pilot, app, "phone", PHONE)
            form = app.screen.widgets
            assert (form["name"].value, form["id_number"].value, form["phone"].value) == (
                NAME,
                ID_NUMBER,
                PHONE,
            )
            assert app.focused is form["phone"]
            # Back with Shift+Tab, the same: the keys go where the focus went.
            burst(app, "shift+tab", "backspace", "9", "shift+tab", "end", "!", "home", "left", "delete")
            await wait_for_keys(pilot, app, "name", NAME[1:] + "!")
            assert form["id_number"].value == ID_NUMBER[:-1] + "9"
            assert form["phone"].value == PHONE
            # A tick's Space, then on to the address at once: each where it was typed.
            materials = app.screen.query_one("#materials", CheckList)
            materials.focus()
            await pilot.pause()
            burst(app, "space", "shift+tab", *"县城")
            await wait_for_keys(pilot, app, "address", "县城")
            assert materials.selected == ["户口簿"]  # the ID card, highlighted first, now owed

    asyncio.run(scenario())


def test_keys_typed_behind_the_enter_that_opens_the_form_land_in_it(make_node, clock) -> None:
    """The item chosen with Enter and the applicant typed at once behind it
    (an ID-card reader): the keys wait for the form and land in its fields."""
    node: Node = make_node()
    add_agent(node.home, "张代办", clock)

    async def scenario() -> None:
        app = DaibanApp(node.home, clock=clock, background_sync=False, backup=False)
        async with app.run_test(size=SIZE) as pilot:
            await login(pilot, "张代办")
            await pilot.press("n", *"SB001", "enter")
            await pilot.pause()
            assert app.focused is not None and app.focused.id == "items"
            burst(app, "enter", *NAME, "tab", *ID_NUMBER, "tab", *PHONE)
            for _ in range(200):
                if (
                    "phone" in getattr(app.screen, "widgets", {})
                    and app.screen.widgets["phone"].value == PHONE
                ):
                    break
                await pilot.pause()
            form = app.screen.widgets
            assert (form["name"].value, form["id_number"].value, form["phone"].value) == (
                NAME,
                ID_NUMBER,
                PHONE,
            )
            assert app.held_keys is None

    asyncio.run(scenario())


# -- the real app in tmux --------------------------------------------------------


class Tmux:
    """A private tmux server (its own socket name), killed at the end: only it."""

    def __init__(self) -> None:
        self.socket = f"daiban-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [TMUX, "-L", self.socket, *args], capture_output=True, text=True, timeout=20, check=True
        )
        return done.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "app")

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        """The screen once ``text`` is on it (polled, bounded)."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not on the screen within {timeout} s:\n{screen}")

    def type(self, keys: list[str], every: float = 0.002) -> None:
        """One key at a time, ``every`` seconds apart (a tmux key name or one character)."""
        for key in keys:
            if len(key) == 1:
                self.run("send-keys", "-t", "app", "-l", key)
            else:
                self.run("send-keys", "-t", "app", key)
            time.sleep(every)

    def burst(self, keys: list[str]) -> None:
        """Every key in one write, as fast as the terminal takes them (a paste, a scanner)."""
        self.run("send-keys", "-t", "app", "--", *keys)

    def kill(self) -> None:
        """Stop this server and remove its socket file (tmux leaves it behind)."""
        found = subprocess.run(
            [TMUX, "-L", self.socket, "display-message", "-p", "#{socket_path}"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        subprocess.run([TMUX, "-L", self.socket, "kill-server"], capture_output=True, timeout=20)
        path = found.stdout.strip()
        if found.returncode == 0 and path.endswith(self.socket):
            Path(path).unlink(missing_ok=True)


def field(screen: str, label: str) -> str:
    """What the field on the row labelled ``label`` shows (between its box sides)."""
    for line in screen.splitlines():
        found = re.match(rf"\s*{label}\s+[▏█](.*?)\s*[▕█]", line)
        if found:
            return found.group(1).strip()
    raise AssertionError(f"no field {label} on the screen:\n{screen}")


TERMINALS = {
    "256 colours": {"TERM": "xterm-256color"},
    "16 colours": {"TERM": "xterm"},
    "NO_COLOR": {"TERM": "xterm", "NO_COLOR": "1"},
}


@pytest.mark.skipif(not Path(TMUX).exists(), reason="tmux is not installed")
@pytest.mark.parametrize(
    ("terminal", "speed"),
    [(terminal, "2 ms") for terminal in TERMINALS]
    + [("256 colours", "burst"), ("256 colours", "behind Enter")],
)
def test_the_real_app_in_tmux_typed_at_2_ms_a_key(
    make_node, clock, tmp_path: Path, terminal: str, speed: str
) -> None:
    """The keys land where they belong, and the focus is drawn in characters
    (the focused field's heavy sides) whatever the terminal's colours. "2 ms":
    one ``send-keys`` a key, 2 ms apart (each call is its own process, so
    the keys come at least that far apart); "burst": all in one write;
    "behind Enter": at 2 ms right behind the Enter that chooses the item
    and opens the form (a reader used the moment the item is chosen)."""
    node: Node = make_node()
    home = node.home
    add_agent(home, "张代办", clock)
    node.close()
    tmux = Tmux()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "DAIBAN_LITESTREAM": "none",
        **TERMINALS[terminal],
    }
    # Through env: tmux sets TERM in the pane itself, over any -e.
    settings = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    command = f"env {settings} {DAIBAN} --home {home} --lang zh --agent 张代办 tui"
    try:
        tmux.run(
            "-f", "/dev/null", "new-session", "-d", "-s", "app", "-x", "80", "-y", "24",
            command,
        )  # fmt: skip
        tmux.run("set-option", "-t", "app", "remain-on-exit", "on")
        tmux.wait_for("PIN")
        tmux.type([*PIN, "Enter"], every=0.05)
        tmux.wait_for("新建")
        tmux.type(["n", *"SB001", "Enter"], every=0.05)
        tmux.wait_for("SB001")
        keys = [*NAME, "Tab", *ID_NUMBER, "Tab", *PHONE]
        if speed == "behind Enter":
            tmux.type(["Enter", *keys])
        else:
            tmux.type(["Enter"])
            typed_in_the_open_form(tmux, terminal, speed, keys)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            screen = tmux.screen()
            if "联系电话" in screen and field(screen, "联系电话") == PHONE:
                break
            time.sleep(0.05)
        assert (field(screen, "姓名"), field(screen, "身份证号"), field(screen, "联系电话")) == (
            NAME,
            ID_NUMBER,
            PHONE,
        ), screen
        assert re.search(r"联系电话\s+█", screen), screen
    finally:
        tmux.kill()


def typed_in_the_open_form(tmux: Tmux, terminal: str, speed: str, keys: list[str]) -> None:
    """The form drawn with its focus in characters, then the keys typed into it."""
    screen = tmux.wait_for("身份证号")
    assert re.search(r"姓名\s+█\s+█", screen), screen  # the focus, in characters
    assert re.search(r"身份证号\s+▏\s+▕", screen), screen
    if terminal != "256 colours":  # the app drew in the 16 standard colours at most
        coloured = tmux.run("capture-pane", "-p", "-e", "-t", "app")
        assert not re.search(r"\x1b\[[0-9;]*[34]8;[25];", coloured), coloured
    if speed == "burst":
        tmux.burst(keys)
    else:
        tmux.type(keys)
