"""Helpers for the terminal-app tests: the screen as plain text, an app on a
real node home, logging in through the real login screen."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from rich.color import ColorSystem
from rich.console import Console
from rich.segment import Segment, Segments
from rich.style import Style
from textual.filter import monochrome_style
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


class PaletteApp(DaibanApp):
    """The app whose screenshots show what a terminal with few colours shows:
    ``palette="standard"`` turns every colour into the nearest of the 16
    standard ones (a ``TERM=xterm`` terminal); ``"nocolor"`` (run with
    ``NO_COLOR`` set) into greys, as Textual's NO_COLOR filter does."""

    def __init__(self, *args: Any, palette: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.palette = palette

    def _convert(self, style: Style | None) -> Style | None:
        if style is None:
            return None
        if self.palette == "nocolor":
            return monochrome_style(style)
        color = style.color.downgrade(ColorSystem.STANDARD) if style.color else None
        bgcolor = style.bgcolor.downgrade(ColorSystem.STANDARD) if style.bgcolor else None
        return style + Style(color=color, bgcolor=bgcolor)

    def export_screenshot(self, *, title: str | None = None, simplify: bool = False) -> str:
        width, height = self.size
        options: dict[str, Any] = {
            "width": width,
            "height": height,
            "force_terminal": True,
            "color_system": "truecolor",
            "legacy_windows": False,
            "safe_box": False,
        }
        render = Console(file=io.StringIO(), **options)
        update = self.screen._compositor.render_update(
            full=True, screen_stack=self._background_screens, simplify=simplify
        )
        segments = [
            Segment(text, self._convert(style), control)
            for text, style, control in render.render(update, render.options)
        ]
        console = Console(file=io.StringIO(), record=True, **options)
        console.print(Segments(segments))
        return console.export_svg(title=title or self.title)
