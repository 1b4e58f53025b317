"""The app's own form widgets: states that read in characters as well as
colour, and fields that move on at once.

Textual draws a ticked and an unticked box alike (``▐X▌``, told apart only by
colour) and every radio option as ``▐●▌``. On a 16-colour terminal, with
``NO_COLOR`` or on a worn screen that decides what a resident owes, so these
widgets write the state out: ``[x]``/``[ ]`` and ``(•)``/``( )``. Every
screen uses them instead of Textual's SelectionList and RadioButton.

``Field`` is an input whose Enter moves to the next field. The app moves the
focus for Enter (on a Field) and Tab in its own key handling, before the next
key is handed on (``DaibanApp.action_advance``), and a Field or a CheckList
runs its own keys' bindings (Backspace, arrows, Home, Space …) when the key
reaches it, in its own queue: Textual would look the binding up only after
the key had bubbled back to the app, against whatever has the focus by then.
So an ID-card reader or a paste typing at a few milliseconds per key fills
each field with exactly its own keys."""

from __future__ import annotations

from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.strip import Strip
from textual.widgets import OptionList, RadioButton, RadioSet, SelectionList
from textual.widgets.option_list import OptionDoesNotExist
from textual.widgets.selection_list import SelectionType

from daiban.tui.safe import SafeInput

FOCUSED = Style(bold=True, reverse=True)
TICKED, UNTICKED = "[x]", "[ ]"
CHOSEN, UNCHOSEN = "(•)", "( )"


_BINDINGS: dict[tuple[type, str], Binding | None] = {}


def _own_binding(widget_type: type, key: str) -> Binding | None:
    """The binding a widget of this type has for ``key`` (its class's BINDINGS, most derived first)."""
    if (widget_type, key) not in _BINDINGS:
        _BINDINGS[widget_type, key] = None
        for cls in reversed(widget_type.__mro__):  # a subclass's binding replaces its base's
            for entry in cls.__dict__.get("BINDINGS", ()):
                binding = entry if isinstance(entry, Binding) else Binding(*entry)
                if not binding.priority and key in (k.strip() for k in binding.key.split(",")):
                    _BINDINGS[widget_type, key] = binding
    return _BINDINGS[widget_type, key]


class OwnKeys:
    """Run this widget's key bindings when the key reaches it, in order with
    the characters typed before it (module docstring)."""

    async def on_key(self, event: events.Key) -> None:
        binding = _own_binding(type(self), event.key)  # none for typed text: the widget's own handler
        if binding is not None:
            event.stop()
            event.prevent_default()
            await self.run_action(binding.action)  # type: ignore[attr-defined]


class CheckList(OwnKeys, SelectionList[SelectionType]):
    """A list of ticks, each written ``[x]`` or ``[ ]`` before its label; the
    highlighted one in bold reverse video while the list has the focus."""

    def render_line(self, y: int) -> Strip:
        line = OptionList.render_line(self, y)  # the label alone, without Textual's button
        index = self.scroll_offset.y + y
        try:
            selection = self.get_option_at_index(index)
        except OptionDoesNotExist:
            return line
        first = next(iter(line), None)
        style = (first.style if first is not None else None) or self.rich_style
        ticked = selection.value in self.selected
        mark = Segment(TICKED if ticked else UNTICKED, style + Style(bold=ticked, meta={"option": index}))
        segments = [mark, Segment(" ", style + Style(meta={"option": index})), *line]
        if self.has_focus and index == self.highlighted:
            segments = [Segment(seg.text, (seg.style or Style()) + FOCUSED) for seg in segments]
        return Strip(segments)


class Radio(RadioButton):
    """A radio option written ``(•)`` when chosen, ``( )`` when not; the
    highlighted one in bold reverse video while its set has the focus."""

    DEFAULT_CSS = """
    Radio > .toggle--button { color: $foreground; background: transparent; }
    Radio.-on > .toggle--button { color: $foreground; background: transparent; text-style: bold; }
    """

    def render(self) -> Content:
        mark = Content.styled(CHOSEN if self.value else UNCHOSEN, self.get_visual_style("toggle--button"))
        label = self.label.pad(1, 1).stylize_before(self.get_visual_style("toggle--label"))
        line = Content.assemble(mark, label)
        parent = self.parent
        if isinstance(parent, RadioSet) and parent.has_focus and self.has_class("-selected"):
            line = line.stylize("bold reverse")
        return line


class Field(OwnKeys, SafeInput):
    """A form's input: Enter moves to the next field at once (the app does it
    in its key handling, so the keys after Enter land in the next field).
    Coming back to a filled field puts the cursor at its end: typing adds
    to it, never wipes it (Textual selects it all on focus)."""

    advance = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("select_on_focus", False)
        super().__init__(*args, **kwargs)


class Form(VerticalScroll, can_focus=False):
    """A form's scrolling body: never a Tab stop of its own (focusing a field
    scrolls it into view)."""
