"""Reports at a district or the city, computed from the statistics records
alone (node/stats.py; never from applications or personal data).

The store adds up (``Store.stats_sums``, one SQL GROUP BY reading only the
columns counted; ``stats_days`` and ``stats_open`` the same for the trend
and what is late now); the pure functions here turn those sums into the
report, and ``for_node`` fetches them. Within the period ``[start, end]`` (either end may be open):

- *filed*: applications their office received in the period (the office's
  clock: a village PC's may be wrong);
- *completed*: applications completed (办结) in the period; of those, *on
  time* when completed by the statutory due date, and their average working
  days from acceptance to completion (both where the office's calendar knew);
- *proxy share*: of those filed, the share filed at a village agency point;
- *evaluations*: scores (five levels) recorded in the period.

The trend counts filed and completed per month, or per ISO week for a
period of at most 13 weeks.

``for_node`` adds the node's own children that have not synced for longer
than ``stale_after`` (node/children.py), as ``daiban children --stale`` lists
them: a report is where an operator looks first for a silent office. And,
as ``stale_nodes``, every node below it that is stale — its children and,
from the heartbeats in the statistics stream, the nodes below them — each
with the parent it hangs under (``daiban children --all --stale``)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from daiban.errors import DaibanError
from daiban.i18n import _
from daiban.node import codechanges, timeliness
from daiban.node.children import DEFAULT_STALE_AFTER, nodes_below, stale_children, stale_nodes
from daiban.node.codechanges import Change
from daiban.node.workdays import WorkCalendar, missing_calendar

if TYPE_CHECKING:
    from daiban.node.applications import Node

GROUPINGS = ("district", "town", "village", "item")
SCORES = (5, 4, 3, 2, 1)
WEEKLY_UP_TO_DAYS = 91
REPORTING_ROLES = ("city", "district")
REGION_DIGITS = {"district": 6, "town": 9, "village": 12}
SUMS = (
    "filed",
    "proxy",
    "completed",
    "on_time_known",
    "on_time",
    "days_sum",
    "days_count",
    "evaluated",
    "score_sum",
    *(f"score_{s}" for s in SCORES),
)
"""What the store adds up per group (``Store.stats_sums``), in its order:
every figure of the report follows from these, and they add up across
groups (a district whose code changed joins its new code's group)."""

Sums = list[int]


def _iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day else None


def within(day: str | None, start: str | None, end: str | None) -> bool:
    """Whether an ISO day lies in [start, end] (ISO days; None an open end)."""
    if day is None:
        return False
    if start is not None and day < start:
        return False
    return end is None or day <= end


def figures(sums: Sequence[int]) -> dict[str, Any]:
    """The report's figures from a group's sums (``SUMS``)."""
    n = dict(zip(SUMS, sums, strict=True))
    evaluated = n["evaluated"]
    return {
        "filed": n["filed"],
        "completed": n["completed"],
        "on_time": n["on_time"],
        "on_time_known": n["on_time_known"],
        "on_time_rate": _ratio(n["on_time"], n["on_time_known"]),
        "avg_working_days": round(n["days_sum"] / n["days_count"], 2) if n["days_count"] else None,
        "proxy": n["proxy"],
        "proxy_share": _ratio(n["proxy"], n["filed"]),
        "evaluated": evaluated,
        "evaluations": {str(s): n[f"score_{s}"] for s in SCORES},
        "avg_score": round(n["score_sum"] / evaluated, 2) if evaluated else None,
    }


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def period_label(day: dt.date, unit: str) -> str:
    if unit == "week":
        year, week, _weekday = day.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{day.year}-{day.month:02d}"


def _periods(first: dt.date, last: dt.date, unit: str) -> list[str]:
    labels: list[str] = []
    day = first
    while day <= last:
        label = period_label(day, unit)
        if not labels or labels[-1] != label:
            labels.append(label)
        # Step a week (from Monday) or to the next month's first day.
        if unit == "week":
            day = day - dt.timedelta(days=day.weekday()) + dt.timedelta(days=7)
        else:
            day = (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    return labels


def trend(
    filed_days: Sequence[tuple[str, int]],
    completed_days: Sequence[tuple[str, int]],
    start: dt.date | None,
    end: dt.date | None,
) -> dict[str, Any]:
    """Filed and completed per period, from the count on each day within
    [start, end]; every period of the span listed (an open end is taken
    from the days)."""
    days = [day for day, n in (*filed_days, *completed_days) if n]
    if not days and (start is None or end is None):
        return {"unit": "month", "periods": []}
    first = start or dt.date.fromisoformat(min(days))
    last = end or dt.date.fromisoformat(max(days))
    unit = "week" if (last - first).days < WEEKLY_UP_TO_DAYS else "month"
    lo, hi = first.isoformat(), last.isoformat()

    def per_period(counts: Sequence[tuple[str, int]]) -> Counter[str]:
        out: Counter[str] = Counter()
        for day, n in counts:
            if within(day, lo, hi):
                out[period_label(dt.date.fromisoformat(day), unit)] += n
        return out

    filed, completed = per_period(filed_days), per_period(completed_days)
    return {
        "unit": unit,
        "periods": [
            {"period": p, "filed": filed[p], "completed": completed[p]} for p in _periods(first, last, unit)
        ],
    }


def group_key(key: str | None, by: str, changes: Sequence[Change] = ()) -> str | None:
    """A group's key as reported: a district or town whose code changed is
    grouped under its new code (node/codechanges.py); a village keeps its
    own, an item its code."""
    if key is None or by in ("item", "village"):
        return key
    return codechanges.resolve(key, changes)


def summarize(
    rows: Sequence[Sequence[Any]],
    filed_days: Sequence[tuple[str, int]],
    completed_days: Sequence[tuple[str, int]],
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    by: str | None = None,
    name_of: Callable[[str], str] = lambda key: "",
    changes: Sequence[Change] = (),
) -> dict[str, Any]:
    """The whole report: totals, groups (with ``by``), trend; from the
    store's sums per group (``rows``: the key, then ``SUMS``) and its counts
    per day."""
    if by is not None and by not in GROUPINGS:
        raise ValueError(f"unknown grouping {by!r}")
    total: Sums = [0] * len(SUMS)
    grouped: dict[str | None, Sums] = {}
    for key, *sums in rows:
        into = grouped.setdefault(group_key(key, by, changes), [0] * len(SUMS)) if by else total
        for i, n in enumerate(sums):
            into[i] += int(n or 0)
    groups: list[dict[str, Any]] = []
    for key in sorted(grouped, key=lambda k: (k is None, k or "")):
        sums = grouped[key]
        total = [a + b for a, b in zip(total, sums, strict=True)]
        row = figures(sums)
        if row["filed"] or row["completed"] or row["evaluated"]:
            groups.append({"key": key, "name": name_of(key) if key else "", **row})
    return {
        "from": start.isoformat() if start else None,
        "to": end.isoformat() if end else None,
        "by": by,
        "total": figures(total),
        "groups": groups,
        "trend": trend(filed_days, completed_days, start, end),
    }


def late(
    rows: Iterable[tuple[str, str | None, str | None, int]], today: dt.date, calendar: WorkCalendar
) -> dict[str, int]:
    """How many are late now, by kind (node/timeliness.py), from the count of
    open applications per (status, day received, due date)."""
    out = {timeliness.UNANSWERED: 0, timeliness.OVERDUE: 0}
    counting = _UpToLatest(published=calendar.published)
    # The latest day first: each count of working days up to today goes on
    # from the one before, so a year of open applications walks the year once.
    for status, received, due, n in sorted(
        rows, key=lambda r: (r[2] if r[0] == "accepted" else r[1]) or "", reverse=True
    ):
        lateness = timeliness.lateness(status, received, due, today, counting)
        if lateness is not None:
            out[lateness.kind] += n
    return out


@dataclass(frozen=True)
class _UpToLatest(WorkCalendar):
    """A calendar that counts working days (estimated where no calendar is
    published) from an earlier start to the same end as its last count by
    adding the days between the two starts: working days add up."""

    last: dict[str, Any] = field(default_factory=dict)

    def working_days_between(self, start: dt.date, end: dt.date, *, estimate: bool = False) -> int | None:
        last = self.last
        if not estimate or start >= end:
            return super().working_days_between(start, end, estimate=estimate)
        if last.get("end") == end and start <= last["start"] <= end:
            count = (
                int(super().working_days_between(start, last["start"], estimate=True) or 0) + last["count"]
            )
        else:
            count = int(super().working_days_between(start, end, estimate=True) or 0)
        last.update(start=start, end=end, count=count)
        return count


def check_period(start: dt.date | None, end: dt.date | None) -> None:
    if start is not None and end is not None and start > end:
        raise DaibanError(
            _("The period starts ({start}) after it ends ({end}); swap --from and --to.").format(
                start=start.isoformat(), end=end.isoformat()
            ),
            code="usage",
        )


def for_node(
    node: Node,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    by: str | None = None,
    stale_after: dt.timedelta = DEFAULT_STALE_AFTER,
) -> dict[str, Any]:
    """The report at a district or the city, over the offices in its area,
    with its stale children. Publishes this node's own changed records
    first, so they count."""
    from daiban.node import statistics
    from daiban.node.divisions import role_name

    check_period(start, end)
    if node.role not in REPORTING_ROLES:
        raise DaibanError(
            _(
                "Reports are made at a district or the city, where statistics arrive; this node is a {role}."
            ).format(role=role_name(node.role)),
            code="not_reporting",
        )
    statistics.flush(node)
    names = _names(node)
    lo, hi = _iso(start), _iso(end)
    group = None if by is None else "item" if by == "item" else REGION_DIGITS[by]
    report = summarize(
        node.store.stats_sums(node.code, lo, hi, group),
        *node.store.stats_days(node.code, lo, hi),
        start=start,
        end=end,
        by=by,
        name_of=lambda key: names.get(key, ""),
        changes=node.division_changes(),
    )
    children = node.store.children_sync()
    now = node.clock()
    stale = stale_children(children, now, stale_after)
    below = nodes_below(node.code, children, node.store.heartbeats_below(node.code), now, stale_after)
    return {
        "node": node.code,
        "name": node.name,
        **report,
        "calendar_missing": missing_calendar(node.calendar(), node.today()),
        # Open now, whatever the period: what the offices below must act on.
        "late": late(node.store.stats_open(node.code), node.today(), node.calendar()),
        "stale_after": int(stale_after.total_seconds()),
        "children_enrolled": len(children),
        "stale_children": [c.as_dict() for c in stale],
        "nodes_below": len(below),
        "stale_nodes": [n.as_dict() for n in stale_nodes(below)],
    }


def _names(node: Node) -> dict[str, str]:
    """Names for group keys: items from the catalog, divisions from the
    certificates this node holds (where it knows them)."""
    names = {item.code: item.name for item in node.items()}
    for cert in node.store.certs():
        chain = cert["chain"]
        if chain and isinstance(chain[-1], dict):
            names.setdefault(cert["code"], str(chain[-1].get("name", "")))
    names.setdefault(node.code, node.name)
    for change in node.division_changes():
        names.setdefault(change.new, change.name)
    return names
