"""What every screen shares: the app's node, the header and the key footer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Header

from daiban.i18n import _
from daiban.tui.safe import N_, Plain, footer

if TYPE_CHECKING:
    from textual.widgets import Footer

    from daiban.node.applications import Node
    from daiban.tui.app import DaibanApp


class Base(Screen[None]):
    @property
    def dapp(self) -> DaibanApp:
        return cast("DaibanApp", self.app)

    @property
    def node(self) -> Node:
        return self.dapp.node

    @staticmethod
    def header() -> Header:
        return Header(icon="")

    @staticmethod
    def footer() -> Footer:
        return footer()


class Guarded(Base):
    """A screen with a form: Esc leaves at once when nothing was typed,
    else asks first (Discard). ``typed`` says what the agent can change;
    ``untouched`` is remembered once the form is drawn."""

    untouched: tuple[Any, ...] = ()

    def typed(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def remember_untouched(self) -> None:
        self.untouched = self.typed()

    def action_leave(self) -> None:
        if self.typed() == self.untouched:
            self.app.pop_screen()
            return

        def answered(discard: bool | None) -> None:
            if discard:
                self.app.pop_screen()

        self.app.push_screen(Discard(), answered)


class Modal(ModalScreen[None]):
    DEFAULT_CSS = """
    Modal { align: center middle; }
    Modal .dialog {
        width: 72; height: auto; max-height: 20; border: round $primary;
        background: $surface; padding: 0 1;
    }
    """

    @staticmethod
    def footer() -> Footer:
        return footer()

    @property
    def dapp(self) -> DaibanApp:
        return cast("DaibanApp", self.app)

    @property
    def node(self) -> Node:
        return self.dapp.node


class Discard(ModalScreen[bool]):
    """Esc on a form with something typed: 放弃填写的内容？ Y discards;
    N, Esc or Enter go back to the form (the safe answer is the easy one)."""

    DEFAULT_CSS = """
    Discard { align: center middle; }
    Discard .dialog {
        width: 48; height: auto; border: double $warning; background: $surface; padding: 0 1;
    }
    """
    BINDINGS = [
        Binding("y", "answer(True)", N_("Yes, discard")),
        Binding("n", "answer(False)", N_("No, keep typing")),
        Binding("escape,enter", "answer(False)", N_("No, keep typing"), show=False),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Plain(_("Discard what was typed?"), classes="title")
            yield Plain(_("Y: yes, discard it    N: no, keep typing"))
        yield footer()

    def action_answer(self, discard: bool) -> None:
        self.dismiss(discard)
