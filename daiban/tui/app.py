"""The Daiban terminal app: one Textual app for village agents and office
staff, keyboard only, at 80x24 and larger, Chinese unless ``--lang en``.

The app holds the node (one SQLite connection, used on the UI thread only;
slow work — sync, printing — runs in workers with their own connections; a
village or town with a parent also syncs in the background, background.py).
Whoever logs in is the actor on every event the app records. A refusal is a
message in the app; an unexpected error is logged to the home's logs/ folder
and the app ends with one line, never a traceback.

Keys are handed to the field that has the focus when they arrive, in order:
Tab, Shift+Tab and Enter on a form's field move the focus here, in the app's
own key handling, before the next key is handed on (Textual would move it
only once the key had passed through the old field, and the keys already
queued behind it went there too). A shared PC logs out by itself after
``idle_after`` without a key (default 10 minutes), back to the login screen,
every screen with a resident's data closed."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import events
from textual.actions import SkipAction
from textual.app import App
from textual.binding import Binding
from textual.keys import format_key

from daiban import i18n
from daiban.errors import DaibanError, database_problem
from daiban.i18n import _
from daiban.node.applications import Node
from daiban.node.children import DEFAULT_STALE_AFTER
from daiban.node.clock import Clock, system_clock
from daiban.node.home import open_node
from daiban.tui.background import BackgroundSync
from daiban.tui.safe import N_

log = logging.getLogger("daiban.tui")
BACKGROUND_AFTER = 1.0  # seconds after the app starts before the background sync does
IDLE_AFTER = dt.timedelta(minutes=10)
"""A logged-in app with no key for this long logs out (``daiban tui --idle-after``)."""
IDLE_CHECK_EVERY = 15.0  # seconds between looks at the idle time
KEY_NAMES = {"escape": "Esc", "enter": "Enter", "tab": "Tab", "space": "Space", "delete": "Del"}

CSS = """
Screen { background: $background; }
.title { text-style: bold; padding: 0 1; }
.hint { color: $text-muted; padding: 0 1; }
.reason { color: $error; text-style: bold; padding: 0 1; }
.panel { height: auto; padding: 0 1; }
.row { height: auto; }
.row > .label { width: 16; padding: 0 1; }
.row > Input { width: 32; }
.row > Select { width: 32; }
.row > .reason { width: 1fr; }
DataTable { height: 1fr; }
/* Fields drawn as boxes, the focused one with heavy sides: a box and the
   focus read on any palette, 16 colours and NO_COLOR included. */
Input.-textual-compact {
    border-left: vkey $foreground 70% !important; border-right: vkey $foreground 70% !important;
}
Input.-textual-compact:focus {
    border-left: thick $accent !important; border-right: thick $accent !important;
    text-style: bold;
}
Select.-textual-compact > SelectCurrent {
    border-left: vkey $foreground 70% !important; border-right: vkey $foreground 70% !important;
}
Select.-textual-compact:focus > SelectCurrent {
    border-left: thick $accent !important; border-right: thick $accent !important;
    text-style: bold;
}
.row:focus-within { height: auto; }  /* (a rule on the row itself: Textual restyles it on focus) */
.row:focus-within > .label { text-style: bold reverse; }
DataTable:focus > .datatable--cursor { text-style: bold reverse; }
OptionList:focus > .option-list--option-highlighted { text-style: bold reverse; }
"""


HOLD_AT_MOST = 2.0  # seconds: keys held for a screen that never opened go on where the focus is


class DaibanApp(App[int]):
    TITLE = "Daiban"
    CSS = CSS
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("ctrl+q", "quit", N_("Quit"), show=False, priority=True),
        # Before the key reaches any widget: the focus moves now (module docstring).
        Binding("tab", "focus_next", show=False, priority=True),
        Binding("shift+tab", "focus_previous", show=False, priority=True),
        Binding("enter", "advance", show=False, priority=True),
    ]

    def __init__(
        self,
        home: Path,
        *,
        clock: Clock = system_clock,
        agent: str | None = None,
        node: Node | None = None,
        background_sync: bool = True,
        backup: bool = True,
        stale_after: dt.timedelta | None = None,
        idle_after: dt.timedelta | None = None,
        idle_clock: Callable[[], float] = time.monotonic,
        ansi_color: bool = False,
    ) -> None:
        super().__init__(ansi_color=ansi_color)  # True: the terminal's own 16 colours
        self.home = home
        self.clock = clock
        self.node = node or open_node(home, clock=clock, actor="-")
        self.agent_hint = agent or ""
        self.agent = ""
        self.crash_log: str | None = None
        self.sync_lock = threading.Lock()
        """Held by every sync this app runs (background or "Sync now"): never two at once."""
        self.background: BackgroundSync | None = None
        if background_sync and self.node.role in ("village", "town") and self.node.parent():
            if self.node.store.setting("parent_url"):
                self.background = BackgroundSync(home, clock, self.sync_lock)
        self.backup = backup
        self.stale_after = stale_after or DEFAULT_STALE_AFTER
        """An office's child silent longer than this is named on Home and the dashboard."""
        self.backup_notices: list[str] = []
        self._alongside = contextlib.ExitStack()
        self.idle_after = idle_after or IDLE_AFTER
        self.idle_clock = idle_clock
        """Seconds, monotonic: when the last key came (tests give their own)."""
        self.last_key = idle_clock()
        self.held_keys: list[events.Key] | None = None
        self._opening: events.Key | None = None  # the Enter the keys are held behind

    @property
    def is_office(self) -> bool:
        return self.node.role in ("town", "district", "city")

    def on_mount(self) -> None:
        from daiban.tui.login import LoginScreen

        self.title = f"{self.node.name} {self.node.code}"
        self.push_screen(LoginScreen(self.agent_hint))
        if self.background is not None:
            # A moment after the first screen: the sync's imports (aiohttp,
            # cryptography) then never slow the app's start.
            self.set_timer(BACKGROUND_AFTER, self.background.start)
        if self.backup:
            self.start_backup()
        self.set_interval(IDLE_CHECK_EVERY, self.check_idle_logout)

    def on_unmount(self) -> None:
        if self.background is not None:
            self.background.stop()
        self._alongside.close()  # stops the backup process, by its PID
        self.node.close()

    def start_backup(self) -> None:
        """``daiban backup`` as a child process while the app runs, when
        the node has a replica configured (as ``daiban serve`` does)."""
        from daiban.node.backup import SETTING, alongside

        replica = self.node.store.setting(SETTING)
        if replica:
            self._alongside.enter_context(alongside(self.home, replica, self._backup_notice))

    def _backup_notice(self, text: str) -> None:
        self.backup_notices.append(text)
        log.info("backup", extra={"notice": text})
        self.info(text)

    # -- keys ------------------------------------------------------------------------

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, (events.Key, events.MouseDown, events.Paste)):
            self.last_key = self.idle_clock()
        if isinstance(event, events.Key) and event is not self._opening:
            if self.held_keys is not None:
                self.held_keys.append(event)  # typed while a screen opens: for its first field
                return
            if event.key == "enter" and self._opens_a_screen():
                # The keys typed right behind this Enter belong to the screen
                # it opens (an ID-card reader after choosing the item): held
                # here, in order, until that screen has its focus
                # (release_held_keys). The Enter itself goes on (and comes
                # back up here, unhandled by the list, to run its binding).
                self.held_keys, self._opening = [], event
                self.set_timer(HOLD_AT_MOST, self.release_held_keys)  # should no screen open
        await super().on_event(event)

    def _opens_a_screen(self) -> bool:
        focused = self.focused
        return focused is not None and bool(getattr(focused, "opens_a_screen", False))

    async def release_held_keys(self) -> None:
        """Hand on the keys held while a screen opened, in the order typed,
        before any key typed after them (this runs in the app's own turn)."""
        held, self.held_keys, self._opening = self.held_keys, None, None
        for key in held or ():
            await self.on_event(key)

    def action_advance(self) -> None:
        """Enter on a form's field: the next field, at once (else Enter as usual)."""
        from daiban.tui.widgets import Field

        focused = self.focused
        if not (isinstance(focused, Field) and focused.advance):
            raise SkipAction()
        self.screen.focus_next()

    def get_key_display(self, binding: Binding) -> str:
        """Keys as written on the keyboard: ``Ctrl+S``, ``Esc``, never ``^s``."""
        if binding.key_display:
            return binding.key_display
        modifiers, key = binding.parse_key()
        name = KEY_NAMES.get(key) or format_key(key)
        name = name.upper() if len(name) == 1 else name  # as on the key: N, Ctrl+S
        return "+".join([*(m.capitalize() for m in modifiers), name])

    def action_help_quit(self) -> None:
        """Ctrl+C, by habit: say in the user's language how to quit."""
        self.info(_("To quit, press Ctrl+Q."))

    # -- idle logout --------------------------------------------------------------

    def check_idle_logout(self) -> bool:
        """Log out if no key came for ``idle_after``; True if it did."""
        if not self.agent:
            return False
        idle = self.idle_clock() - self.last_key
        if idle < self.idle_after.total_seconds():
            return False
        minutes = max(1, round(self.idle_after.total_seconds() / 60))
        self.logout(_("Logged out after {minutes} minutes without use.").format(minutes=minutes))
        return True

    # -- who is acting ---------------------------------------------------------

    def logged_in(self, name: str) -> None:
        from daiban.tui.home import HomeScreen

        self.agent = name
        self.node.actor = name
        # At an office the people who log in are its staff (工作人员), not agents.
        who = _("staff: {name}") if self.is_office else _("agent: {name}")
        self.sub_title = who.format(name=name)
        self.switch_screen(HomeScreen())

    def action_logout(self) -> None:
        self.logout()

    def logout(self, notice: str = "") -> None:
        """Back to the login screen, every other screen closed; ``notice`` is said there."""
        from daiban.tui.login import LoginScreen

        self.agent = ""
        self.node.actor = "-"
        self.sub_title = ""
        while len(self.screen_stack) > 2:
            self.pop_screen()
        self.switch_screen(LoginScreen("", notice=notice))

    # -- errors --------------------------------------------------------------------

    def error(self, message: str) -> None:
        self.notify(message, severity="error", markup=False, timeout=8)

    def info(self, message: str) -> None:
        self.notify(message, markup=False)

    def _handle_exception(self, error: Exception) -> None:
        """A refusal is a message; anything else is logged and ends the app
        with one line (tests still see the exception through Pilot)."""
        if isinstance(error, DaibanError):
            self.error(error.message)
            return
        if isinstance(error, sqlite3.Error):
            self.error(database_problem(error))
            return
        self.crash_log = _log_crash(self.home, error)
        if self._exception is None:
            self._exception = error
            self._exception_event.set()
        self.exit(
            1,
            return_code=1,
            message=_(
                "error: an internal error occurred ({kind}); nothing half-done was stored. Details: {log}"
            ).format(kind=type(error).__name__, log=self.crash_log),
        )


def _log_crash(home: Path, error: BaseException) -> str:
    from daiban.logs import write_crash_log

    return write_crash_log(home, error, "tui")


def run(home: Path, *, language: str, agent: str | None = None, **kwargs: Any) -> int:
    """Run the app in this terminal; its exit code."""
    from daiban import logs

    i18n.set_language(language)
    logs.setup(home, "tui", stream=None)  # the background sync's lines, never on the screen
    app = DaibanApp(home, agent=agent, **kwargs)
    app.run()
    return app.return_code or 0
