"""What every screen shares: the app's node, the header and the key footer."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.screen import ModalScreen, Screen
from textual.widgets import Header

from daiban.tui.safe import footer

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
