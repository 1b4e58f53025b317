"""New application (新建代办): find the item by Chinese name or pinyin
initials; the applicant's fields checked as typed, the reason beside each
field; the item's own fields drawn from its JSON Schema; the materials
checklist with those that may be owed marked (容缺); a confirmation; then the
receipt. Checking is the library's own (``Node.prepare``), so the screen says
exactly what filing would refuse."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Input, Select, SelectionList
from textual.widgets.selection_list import Selection

from daiban.errors import DaibanError, ValidationFailed
from daiban.i18n import _
from daiban.node.applications import Filing
from daiban.node.catalog import Item, level_label, search
from daiban.node.conditions import RELATIONS
from daiban.node.validation import field_label
from daiban.tui.base import Base, Guarded
from daiban.tui.safe import N_, Plain, SafeInput, cell
from daiban.tui.widgets import CheckList, Field, Form


class ItemScreen(Base):
    """Step 1: find the item."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", N_("Back")),
        Binding("down", "to_table", N_("Choose"), show=False),
    ]

    def compose(self) -> ComposeResult:
        yield self.header()
        yield Plain(
            _("New application: find the item by name or pinyin initials (e.g. yl, cxjm)"), classes="title"
        )
        yield SafeInput(id="query", compact=True, placeholder=_("item name, initials or code"))
        table: DataTable[object] = DataTable(id="items", cursor_type="row")
        table.opens_a_screen = True  # type: ignore[attr-defined]  # Enter opens the form: keys after it wait for it
        yield table
        yield self.footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(_("code"), _("item"), _("level"), _("time limit"))
        self.fill("")
        self.query_one(Input).focus()

    def fill(self, query: str) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for item in search(self.node.items(), query):
            limit = _("{n} days").format(n=item.time_limit_days) if item.time_limit_days else _("on the spot")
            table.add_row(
                cell(item.code), cell(item.name), cell(level_label(item.level)), cell(limit), key=item.code
            )

    def on_input_changed(self, event: Input.Changed) -> None:
        self.fill(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        table = self.query_one(DataTable)
        if table.row_count:
            table.focus()
            table.move_cursor(row=0)

    def action_to_table(self) -> None:
        self.query_one(DataTable).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.app.push_screen(FormScreen(self.node.item(event.row_key.value)))


APPLICANT = (
    ("name", N_("Name")),
    ("id_number", N_("ID number")),
    ("phone", N_("Phone")),
    ("region", N_("Division")),
)
GUARDIAN = (
    ("guardian_name", N_("Guardian")),
    ("guardian_id_number", N_("Guardian's ID")),
)
EXTRA = ("guardian_name", "guardian_id_number", "guardian_relation", "delivery", "address")


class FormScreen(Guarded):
    """Step 2: the applicant, the item's fields, the materials."""

    BINDINGS = [
        Binding("ctrl+s", "next", N_("Check and continue")),
        Binding("escape", "leave", N_("Back")),
    ]

    def __init__(self, item: Item) -> None:
        super().__init__()
        self.item = item
        self.props: Mapping[str, Any] = item.fields.get("properties", {})
        self.required = set(item.fields.get("required", []))
        self.touched: set[str] = set()
        self.reasons: dict[str, Plain] = {}
        self.widgets: dict[str, Input | Select[str]] = {}

    def compose(self) -> ComposeResult:
        item = self.item
        yield self.header()
        with Form(id="form"):
            yield Plain(
                f"{item.name} ({item.code})  {level_label(item.level)}  "
                + (
                    _("{n} working days").format(n=item.time_limit_days)
                    if item.time_limit_days
                    else _("on the spot")
                ),
                classes="title",
            )
            if item.guide:
                yield Plain(item.guide, classes="hint")
            for key, label in APPLICANT:
                placeholder = _("default {code}").format(code=self.node.code) if key == "region" else ""
                widget = Field(id=f"f-{key}", compact=True, placeholder=placeholder, max_length=60)
                yield from self._row(key, _(label), widget)
            for n, (key, spec) in enumerate(self.props.items()):
                label = field_label(key, spec) + ("*" if key in self.required else "")
                yield from self._row(key, label, self._field_widget(n, spec))
            if item.conditions.get("guardian"):
                # Only items whose conditions may need one ask for a guardian.
                for key, label in GUARDIAN:
                    yield from self._row(key, _(label), Field(id=f"f-{key}", compact=True, max_length=60))
                yield from self._row(
                    "guardian_relation",
                    _("Relation"),
                    Select(
                        [(r, r) for r in RELATIONS],
                        id="f-guardian_relation",
                        compact=True,
                        prompt=_("choose"),
                    ),
                )
            yield from self._row(
                "delivery",
                _("Delivery"),
                Select(
                    [(_("pickup"), "pickup"), (_("post"), "post")],
                    id="f-delivery",
                    compact=True,
                    allow_blank=False,
                ),
            )
            yield from self._row("address", _("Address"), Field(id="f-address", compact=True, max_length=120))
            yield Plain(
                _("Materials (unticked = owed; only those marked 容缺 may be owed):"), classes="title"
            )
            yield CheckList[str](
                *[
                    Selection(
                        Text(m["name"] + ("  " + _("(may be owed, 容缺)") if m.get("owable") else "")),
                        m["name"],
                        True,
                    )
                    for m in item.materials
                ],
                id="materials",
                compact=True,
            )
            self.reasons["missing"] = Plain("", classes="reason")
            yield self.reasons["missing"]
        yield self.footer()

    def _row(self, key: str, label: str, widget: Input | Select[str]) -> ComposeResult:
        self.widgets[key] = widget
        self.reasons[key] = Plain("", classes="reason")
        with Horizontal(classes="row"):
            yield Plain(label, classes="label")
            yield widget
            yield self.reasons[key]

    def _field_widget(self, n: int, spec: Mapping[str, Any]) -> Input | Select[str]:
        if "enum" in spec:
            return Select(
                [(str(c), str(c)) for c in spec["enum"]], id=f"x-{n}", compact=True, prompt=_("choose")
            )
        if spec.get("type") == "boolean":
            return Select(
                [(_("yes"), "true"), (_("no"), "false")], id=f"x-{n}", compact=True, prompt=_("choose")
            )
        placeholder = {"date": "2026-11-27"}.get(
            spec.get("format", ""), str(spec.get("description", ""))[:30]
        )
        return Field(id=f"x-{n}", compact=True, placeholder=placeholder, max_length=100)

    def on_mount(self) -> None:
        self.widgets["name"].focus()
        self.remember_untouched()
        # What was typed behind the Enter that opened it: once the form is
        # the screen and its first field has the focus (after its first refresh).
        self.call_after_refresh(self.app.call_later, self.dapp.release_held_keys)

    def typed(self) -> tuple[Any, ...]:
        """Everything the agent can change on the form, to see whether they did."""
        values = tuple(widget.value for widget in self.widgets.values())
        return (*values, tuple(self.query_one("#materials", SelectionList).selected))

    def _key_of(self, widget: object) -> str | None:
        for key, w in self.widgets.items():
            if w is widget:
                return key
        return None

    def on_input_changed(self, event: Input.Changed) -> None:
        key = self._key_of(event.input)
        if key is not None and event.value:
            self.touched.add(key)
        self.check()

    def on_select_changed(self, event: Select.Changed) -> None:
        key = self._key_of(event.select)
        if key is not None:
            self.touched.add(key)
        self.check()

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged[str]) -> None:
        self.touched.add("missing")
        self.check()

    def filing(self) -> Filing:
        values: dict[str, Any] = {}
        for key, widget in self.widgets.items():
            value = widget.value
            values[key] = "" if value is None or value is Select.NULL else str(value)
        received = set(self.query_one("#materials", SelectionList).selected)
        extra = {key: values.pop(key, "") for key in EXTRA}
        return Filing(
            item=self.item.code,
            name=values.pop("name"),
            id_number=values.pop("id_number"),
            phone=values.pop("phone"),
            region=values.pop("region") or None,
            fields=values,
            missing=[m for m in self.item.material_names if m not in received],
            guardian={
                "name": extra["guardian_name"],
                "id_number": extra["guardian_id_number"],
                "relation": extra["guardian_relation"],
            },
            delivery=extra["delivery"] or "pickup",
            address=extra["address"],
        )

    def check(self, *, everything: bool = False) -> Any:
        """Check the whole form; show the reasons of the fields touched so far
        (all of them with ``everything``). The prepared filing, or None."""
        try:
            prepared = self.node.prepare(self.filing())
            problems = []
        except ValidationFailed as exc:
            prepared, problems = None, exc.problems
        by_key: dict[str, list[str]] = {}
        for p in problems:
            # "a guardian is needed" is shown beside the guardian's name.
            key = "guardian_name" if p.field == "guardian" else p.field
            by_key.setdefault(key, []).append(p.reason)
        for key, widget in self.reasons.items():
            shown = everything or key in self.touched
            text = _("; ").join(by_key.get(key, [])) if shown else ""
            if (
                not text
                and shown
                and key in self.widgets
                and key != "delivery"  # a choice with a default: nothing to confirm
                and self.widgets[key].value not in ("", None, Select.NULL)
            ):
                text = "✓"
            widget.show(text)
            widget.set_class(text == "✓", "ok")
        return prepared

    def action_next(self) -> None:
        prepared = self.check(everything=True)
        if prepared is None:
            self.dapp.error(_("Some fields need attention; the reasons are shown beside them."))
            return
        self.app.push_screen(ConfirmScreen(self.filing(), prepared))


class ConfirmScreen(Base):
    """Step 3: everything once more, then file."""

    BINDINGS = [
        Binding("ctrl+s", "file", N_("File it")),
        Binding("escape", "app.pop_screen", N_("Back to edit")),
    ]

    def __init__(self, filing: Filing, prepared: Any) -> None:
        super().__init__()
        self.filing = filing
        self.prepared = prepared

    def compose(self) -> ComposeResult:
        p = self.prepared
        item: Item = p.item
        props = item.fields.get("properties", {})
        lines = [
            _("Item: {name} ({code})").format(name=item.name, code=item.code),
            _("Applicant: {name}  {id_number}  {phone}").format(**p.applicant),
            _("Division: {region}   Office: {office}").format(region=p.region, office=p.office),
        ]
        for key, value in p.fields.items():
            lines.append(f"{field_label(key, props.get(key, {}))}: {value}")
        if p.guardian:
            lines.append(_("Guardian: {name}  {id_number}  {relation}").format(**p.guardian))
        if p.address:
            lines.append(_("Delivery by post to: {address}").format(address=p.address))
        received = [m for m in item.material_names if m not in p.owed]
        lines.append(
            _("Materials received: {materials}").format(materials=_("、").join(received) or _("(none)"))
        )
        lines.append(_("Owed (容缺): {materials}").format(materials=_("、").join(p.owed) or _("(none)")))
        for warning in p.warnings:
            lines.append(_("note: {text}").format(text=warning))
        yield self.header()
        with VerticalScroll():
            yield Plain(_("Check with the resident, then file (Ctrl+S)."), classes="title")
            yield Plain("\n".join(lines), classes="panel")
        yield self.footer()

    def action_file(self) -> None:
        from daiban.tui.receipt import ReceiptScreen

        try:
            filed = self.node.file(self.filing)
        except DaibanError as exc:
            self.dapp.error(exc.message)
            return
        # Back to home, then the receipt on top of it.
        while len(self.app.screen_stack) > 2:
            self.app.pop_screen()
        self.app.push_screen(ReceiptScreen(filed.tracking, "receipt"))
        self.dapp.info(_("Filed: {tracking}").format(tracking=filed.tracking))
