"""The office dashboard: applications per day over the last two weeks,
on-time completion, working days from acceptance to completion, and the
residents' evaluations, overall and by village — as text bars, readable
without colour — and the children that have gone quiet."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static

from daiban.i18n import _
from daiban.node import places, timeliness
from daiban.node.dashboard import Figures, dashboard
from daiban.node.workdays import missing_calendar
from daiban.tui import children
from daiban.tui.base import Base
from daiban.tui.safe import N_, Plain

BAR = 26  # the days' bars; the evaluations' beside them are shorter, so both fit in 80 columns
SCORE_BAR = 16


def bar(value: float, top: float, width: int = BAR) -> str:
    """A bar of block characters, eighths included; at least a sliver for any value above zero."""
    if top <= 0 or value <= 0:
        return ""
    eighths = max(1, round(value / top * width * 8))
    return "█" * (eighths // 8) + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[eighths % 8]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def figures_line(f: Figures) -> str:
    return _(
        "filed {filed}, completed {done}, on time {rate}, working days to completion {days}, "
        "evaluation {score} ({n})"
    ).format(
        filed=f.filed,
        done=f.completed,
        rate=_pct(f.on_time_rate),
        days=_num(f.average_days),
        score=_num(f.average_score),
        n=sum(f.scores.values()),
    )


class DashboardScreen(Base):
    # The two weeks and the evaluations side by side: the whole fortnight on
    # one 80x24 screen, no scrolling.
    DEFAULT_CSS = """
    DashboardScreen .charts { height: auto; }
    DashboardScreen #per-day { width: 42; }
    DashboardScreen #scores { width: 1fr; }
    """
    BINDINGS = [
        Binding("g", "reload", N_("Reload")),
        Binding("escape", "app.pop_screen", N_("Back")),
    ]

    def compose(self) -> ComposeResult:
        yield self.header()
        with VerticalScroll():
            yield Plain("", id="total", classes="panel")
            with Horizontal(classes="charts"):
                yield Static(id="per-day", classes="panel")
                yield Static(id="scores", classes="panel")
            yield Static(id="villages", classes="panel")
            yield Static(id="children", classes="panel")
        yield self.footer()

    def on_mount(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        node = self.node
        board = dashboard(node.store.dashboard_rows(node.code), today=node.today(), calendar=node.calendar())
        total = _("All of {office}: ").format(office=node.code) + figures_line(board.total)
        late = timeliness.count(node.store.inbox(node.code), node.today(), node.calendar())
        if any(late.values()):
            line = _("! Not answered for 4+ working days: {unanswered}   past due: {overdue}")
            total += "\n" + line.format(**late)
        year = missing_calendar(node.calendar(), node.today())
        if year is not None:
            line = _("! No official {year} calendar yet: due dates in it are estimates (预计)")
            total += "\n" + line.format(year=year)
        self.query_one("#total", Plain).show(total)
        top = max((n for _d, n in board.per_day), default=0)
        days = Table.grid(padding=(0, 1))
        days.add_column(no_wrap=True)
        days.add_column(no_wrap=True, justify="right")
        days.add_column(no_wrap=True)
        for day, n in board.per_day:
            days.add_row(Text(day.strftime("%m-%d")), Text(str(n)), Text(bar(n, top)))
        self.query_one("#per-day", Static).update(Group(Text(_("Filed per day:")), days))
        scores = Table(title=Text(_("Evaluations")), box=None, show_header=False, title_justify="left")
        most = max(board.total.scores.values(), default=0)
        for s in (5, 4, 3, 2, 1):
            n = board.total.scores.get(s, 0)
            scores.add_row(
                Text(_("score {score}").format(score=s)), Text(str(n)), Text(bar(n, most, SCORE_BAR))
            )
        self.query_one("#scores", Static).update(scores)
        villages = Table(title=Text(_("By village")), box=None, show_edge=False, pad_edge=False, expand=True)
        villages.add_column(_("division"), no_wrap=True)
        villages.add_column(_("filed"), justify="right")
        villages.add_column(_("done"), justify="right")
        villages.add_column(_("on time"), justify="right")
        villages.add_column(_("days"), justify="right")
        villages.add_column(_("score"), justify="right")
        known = places.names(node)
        for code, f in board.by_village.items():
            villages.add_row(
                Text(places.place_name(known, code)),
                Text(str(f.filed)),
                Text(str(f.completed)),
                Text(_pct(f.on_time_rate)),
                Text(_num(f.average_days)),
                Text(_num(f.average_score)),
            )
        self.query_one("#villages", Static).update(villages)
        self.query_one("#children", Static).update(children.table(node, self.dapp.stale_after))
