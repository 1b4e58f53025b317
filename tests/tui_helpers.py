"""Helpers for the terminal-app tests: the screen as plain text, an app on a
real node home, logging in through the real login screen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from daiban.node import agents
from daiban.node.home import open_node
from daiban.tui.app import DaibanApp

PIN = "135790"
EVIL = "[@click=app.quit]张三[/]\x1b]0;pwned\x07[red]"
EVIL_SHOWN = "[@click=app.quit]张三[/]]0;pwned[red]"  # control characters removed, markup literal


def screen_text(app: DaibanApp) -> str:
    """What the terminal shows now, as text (one line per row)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip) for strip in strips)


def add_agent(home: Path, name: str, clock: Any, pin: str = PIN) -> None:
    node = open_node(home, clock=clock)
    try:
        agents.add(node, name, pin, by="test")
    finally:
        node.close()


async def login(pilot: Pilot[Any], name: str, pin: str = PIN) -> None:
    """Log in through the login screen (the name field may be prefilled)."""
    await pilot.pause()
    name_input = pilot.app.screen.query_one("#name")
    name_input.value = ""  # type: ignore[attr-defined]
    name_input.focus()
    await pilot.press(*name, "enter", *pin, "enter")
    await pilot.pause()


async def settle(pilot: Pilot[Any]) -> None:
    """Wait for workers and the screen to settle (bounded by Textual's own waits)."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
