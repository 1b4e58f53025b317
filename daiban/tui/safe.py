"""Showing untrusted text safely, and the few widgets every screen shares.

Names, notes and fields that arrived over sync are shown literally: always as
``rich.text.Text`` (never parsed as markup), cleaned of control characters
first, since a terminal obeys escape sequences whatever the markup setting."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Footer, Input, Static
from textual.widgets._footer import FooterKey

from daiban.i18n import _
from daiban.node.text import clean_text, one_line


def N_(message: str) -> str:
    """Mark a message for extraction; translated where it is shown (key labels)."""
    return message


def plain(value: Any, style: str = "") -> Text:
    """Untrusted text as literal text, control characters removed."""
    return Text(clean_text("" if value is None else str(value)), style=style)


def cell(value: Any, style: str = "") -> Text:
    """Untrusted text for one table cell: literal, on one line."""
    return Text(one_line("" if value is None else str(value)), style=style)


class Plain(Static):
    """A Static that never parses markup."""

    def __init__(self, content: Any = "", **kwargs: Any) -> None:
        kwargs.setdefault("markup", False)
        super().__init__(plain(content) if isinstance(content, str) else content, **kwargs)

    def show(self, content: Any) -> None:
        self.update(plain(content) if isinstance(content, str) else content)


TEXTUAL_LABELS = {"Dismiss menu": N_("Cancel")}
"""Key labels that Textual's own widgets bring, said in the app's words."""


class KeyFooter(Footer):
    """Textual's footer, with each key's label in the user's language."""

    def compose(self) -> ComposeResult:
        for widget in super().compose():
            if isinstance(widget, FooterKey) and widget.description:
                widget.description = _(TEXTUAL_LABELS.get(widget.description, widget.description))
            yield widget


def footer() -> Footer:
    return KeyFooter(compact=True, show_command_palette=False)


class SafeInput(Input):
    """An input that never holds control characters, typed or pasted."""

    def validate_value(self, value: str) -> str:
        return one_line(value) if not value.isprintable() else value


def short(value: Any, width: int) -> Text:
    """A table cell cut to ``width`` terminal cells (CJK counted double), with an ellipsis."""
    text = cell(value)
    text.truncate(width, overflow="ellipsis")
    return text
