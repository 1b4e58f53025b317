"""The children an office has not heard from (node/children.py's rule over
``Store.children_sync()``): one line for the office's Home, a table for its
dashboard. Names arrived over enrollment: shown as plain text only."""

from __future__ import annotations

import datetime as dt

from rich.table import Table
from rich.text import Text

from daiban.i18n import _
from daiban.node.applications import Node
from daiban.node.children import ChildSync, stale_children
from daiban.render import silence

SHOWN = 3  # children named on Home's one line; the dashboard lists them all


def stale(node: Node, after: dt.timedelta) -> tuple[list[ChildSync], int]:
    """The stale children, longest silent first, and how many children there are."""
    rows = node.store.children_sync()
    return stale_children(rows, node.clock(), after), len(rows)


def home_line(node: Node, after: dt.timedelta) -> str:
    """One line: which children have gone quiet (empty when there are no children)."""
    quiet, total = stale(node, after)
    limit = silence(after.total_seconds())
    if total == 0:
        return ""
    if not quiet:
        return _("Children: all {n} synced within {after}.").format(n=total, after=limit)
    named = _("、").join(f"{c.code} {c.name}".strip() for c in quiet[:SHOWN])
    more = _(" and {n} more").format(n=len(quiet) - SHOWN) if len(quiet) > SHOWN else ""
    return _("Children silent over {after}: {stale} of {n} — {names}{more}").format(
        after=limit, stale=len(quiet), n=total, names=named, more=more
    )


def table(node: Node, after: dt.timedelta) -> Table | Text:
    """The dashboard's section: every stale child with its last sync, silence and queue."""
    quiet, total = stale(node, after)
    limit = silence(after.total_seconds())
    if total == 0:
        return Text("")
    if not quiet:
        return Text(_("Children: all {n} synced within {after}.").format(n=total, after=limit))
    title = _("Children silent over {after} ({stale} of {n})").format(after=limit, stale=len(quiet), n=total)
    grid = Table(title=Text(title), box=None, show_edge=False, pad_edge=False, title_justify="left")
    grid.add_column(_("Code"), no_wrap=True)
    grid.add_column(_("Name"))
    grid.add_column(_("Last sync"), no_wrap=True)
    grid.add_column(_("Silent"), no_wrap=True, justify="right")
    grid.add_column(_("Queued"), justify="right")
    for c in quiet:
        grid.add_row(
            Text(c.code),
            Text(c.name),
            Text((c.last_sync_at or _("never"))[:16].replace("T", " ")),
            Text(silence(c.silent_seconds)),
            Text(str(c.queued)),
        )
    return grid
