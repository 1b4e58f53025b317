"""The notice for an application's state on screen (收件回执, 受理通知书,
补正材料一次性告知单, 不予受理通知书, 办结通知): saved as an 80-column text
file when shown; printed on request, as a PDF page, in a worker."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll

from daiban import notices
from daiban.i18n import _
from daiban.tui.base import Base
from daiban.tui.safe import N_, Plain


class ReceiptScreen(Base):
    BINDINGS = [
        Binding("p", "print", N_("Print")),
        Binding("escape", "app.pop_screen", N_("Back")),
    ]

    def __init__(self, tracking: str, kind: str | None = None) -> None:
        """``kind``: one of notices.KINDS; None for the application's state now."""
        super().__init__()
        self.tracking = tracking
        self.kind = kind
        self.path: Path | None = None

    def compose(self) -> ComposeResult:
        self.notice = notices.compose(self.node, self.tracking, self.kind, agent=self.dapp.agent)
        self.path = notices.save_notice(self.dapp.home, self.notice, as_pdf=False)
        # On screen, two columns less than the paper's 80: the scroll bar's.
        self.text = notices.text(self.notice, width=notices.WIDTH - 2)
        yield self.header()
        with VerticalScroll():
            yield Plain(self.text)
            shown = (
                self.path.relative_to(self.dapp.home)
                if self.path.is_relative_to(self.dapp.home)
                else self.path
            )
            yield Plain(_("Saved as {path}").format(path=shown), classes="hint", id="saved")
        yield self.footer()

    def action_print(self) -> None:
        self.dapp.info(_("Printing…"))
        self.send(self.notice)

    @work(thread=True, exclusive=True, group="print")
    def send(self, notice: notices.Notice) -> None:
        path = notices.save_notice(self.dapp.home, notice, as_pdf=True)
        message = notices.print_file(path)
        self.app.call_from_thread(self.dapp.info, message)
