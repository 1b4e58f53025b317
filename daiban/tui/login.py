"""Log in with a name and a PIN. On a node with no agent yet, the first
agent is made here (name, PIN twice), and logged in."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input

from daiban.errors import DaibanError
from daiban.i18n import _
from daiban.node import agents
from daiban.tui.base import Base
from daiban.tui.safe import N_, Plain, SafeInput
from daiban.tui.widgets import Field


class LoginScreen(Base):
    DEFAULT_CSS = "LoginScreen .panel > Input { width: 44; }"
    BINDINGS = [
        Binding("ctrl+s", "submit", N_("Log in")),
        Binding("ctrl+q", "app.quit", N_("Quit")),
    ]

    def __init__(self, hint: str = "", *, notice: str = "") -> None:
        super().__init__()
        self.hint = hint
        self.notice = notice
        """Why the app is back here (the idle logout), shown until the next login."""

    def compose(self) -> ComposeResult:
        self.first = not agents.has_agents(self.node)
        yield self.header()
        with Vertical(classes="panel"):
            yield Plain(f"{self.node.name}  {self.node.code}", classes="title")
            if self.first:
                yield Plain(
                    _(
                        "No agent has been set up here yet. Make the first one: "
                        "a name and a PIN of 6 to 12 digits."
                    ),
                    classes="hint",
                )
            else:
                names = _("、").join(a["name"] for a in agents.listing(self.node))
                here = _("Staff here: {names}") if self.node.role != "village" else _("Agents here: {names}")
                yield Plain(here.format(names=names), classes="hint")
            yield Plain(_("Name"), classes="label")
            yield Field(value=self.hint, id="name", compact=True, max_length=40)
            yield Plain(_("PIN"), classes="label")
            pin = Field if self.first else SafeInput  # Enter on the last field logs in
            yield pin(password=True, id="pin", compact=True, max_length=12, restrict=r"[0-9]*")
            if self.first:
                yield Plain(_("PIN again"), classes="label")
                yield SafeInput(password=True, id="pin2", compact=True, max_length=12, restrict=r"[0-9]*")
            yield Plain(self.notice, id="problem", classes="reason")
        yield self.footer()

    def on_mount(self) -> None:
        self.query_one("#pin" if self.hint else "#name", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        last = "#pin2" if self.first else "#pin"
        if event.input.id == last.lstrip("#"):
            self.action_submit()
        else:
            self.focus_next()

    def action_submit(self) -> None:
        name = self.query_one("#name", Input).value
        pin = self.query_one("#pin", Input).value
        problem = self.query_one("#problem", Plain)
        try:
            if self.first:
                if pin != self.query_one("#pin2", Input).value:
                    raise DaibanError(_("The two PINs differ; type them again."))
                made = agents.add(self.node, name, pin, by=name)
                name = str(made["name"])
            who = agents.login(self.node, name, pin)
        except DaibanError as exc:
            problem.show(exc.message)
            for widget in self.query(Input):
                if widget.password:
                    widget.value = ""
            self.query_one("#pin", Input).focus()
            return
        self.dapp.logged_in(who)
