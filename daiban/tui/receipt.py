"""The receipt (受理回执) and the one-time notice (一次性告知单) on screen,
saved as an 80-column text file when shown, printed on request in a worker."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll

from daiban import notices
from daiban.errors import NotFound
from daiban.i18n import _
from daiban.node.applications import Node
from daiban.tui.base import Base
from daiban.tui.safe import N_, Plain


class ReceiptScreen(Base):
    BINDINGS = [
        Binding("p", "print", N_("Print")),
        Binding("escape", "app.pop_screen", N_("Back")),
    ]

    def __init__(self, tracking: str, kind: str) -> None:
        super().__init__()
        self.tracking = tracking
        self.kind = kind
        self.path: Path | None = None

    def compose(self) -> ComposeResult:
        node = self.node
        view = node.show(self.tracking)
        where = f"{node.name} ({node.code})"
        if self.kind == "notice":
            self.text = notices.supplement_notice(view, node=where)
            name = f"{view['tracking']}-notice.txt"
        else:
            self.text = notices.receipt(
                view, node=where, agent=self.dapp.agent, expected=expected(node, view)
            )
            name = f"{view['tracking']}-receipt.txt"
        self.path = notices.save(self.dapp.home, name, self.text)
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
        assert self.path is not None
        self.dapp.info(_("Printing…"))
        self.send(self.path)

    @work(thread=True, exclusive=True, group="print")
    def send(self, path: Path) -> None:
        message = notices.print_file(path)
        self.app.call_from_thread(self.dapp.info, message)


def expected(node: Node, view: Mapping[str, Any]) -> str:
    """When the resident can expect the result, as far as it is known here."""
    if view.get("due_state") == "known":
        return _("by {date}").format(date=view["due"])
    if view.get("due_state") == "provisional":
        return _("by about {date} (estimated until the {year} calendar is published)").format(
            date=view["due"], year=view.get("due_missing_year") or "?"
        )
    try:
        days = node.filed_item(str(view["tracking"])).time_limit_days
    except NotFound:  # an item this node's catalog no longer lists
        return _("set when the office accepts it")
    if days == 0:
        return _("on the spot, once the office accepts it")
    guess = node.calendar().due(node.today(), days)
    return _("{n} working days after the office accepts it (about {date} if accepted today)").format(
        n=days, date=guess.date.isoformat()
    )
