"""Reports at a district or the city, computed from the statistics records
alone (node/stats.py; never from applications or personal data).

Pure functions over plain records, except ``for_node`` which fetches them.
Within the period ``[start, end]`` (either end may be open):

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
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from daiban.errors import DaibanError
from daiban.i18n import _
from daiban.node import codechanges, timeliness
from daiban.node.children import DEFAULT_STALE_AFTER, nodes_below, stale_children, stale_nodes
from daiban.node.codechanges import Change
from daiban.node.workdays import missing_calendar

if TYPE_CHECKING:
    from daiban.node.applications import Node

GROUPINGS = ("district", "town", "village", "item")
SCORES = (5, 4, 3, 2, 1)
WEEKLY_UP_TO_DAYS = 91
REPORTING_ROLES = ("city", "district")

Record = Mapping[str, Any]


def filed_day(record: Record) -> str | None:
    """The day an application counts as filed: its office's receipt."""
    day: str | None = record.get("received_on") or record.get("filed_on")
    return day


def within(day: str | None, start: str | None, end: str | None) -> bool:
    """Whether an ISO day lies in [start, end] (ISO days; None an open end)."""
    if day is None:
        return False
    if start is not None and day < start:
        return False
    return end is None or day <= end


def _iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day else None


def group_key(record: Record, by: str, changes: Sequence[Change] = ()) -> str | None:
    """The record's group: the applicant's district, town or village (None
    when the applicant's division code is coarser), or the item. A district
    or town whose code changed is grouped under its new code
    (node/codechanges.py); a village keeps its own."""
    if by == "item":
        return str(record["item"])
    region = str(record["region"])
    length = {"district": 6, "town": 9, "village": 12}[by]
    if len(region) < length:
        return None
    return region[:length] if by == "village" else codechanges.resolve(region[:length], changes)


def figures(records: Iterable[Record], start: str | None, end: str | None) -> dict[str, Any]:
    """The report's figures over some records, within ISO days [start, end]."""
    filed = completed = on_time = timed = proxy = 0
    days: list[int] = []
    scores: Counter[int] = Counter()
    for r in records:
        if within(filed_day(r), start, end):
            filed += 1
            proxy += bool(r["proxy"])
        if r["status"] == "completed" and within(r["completed_on"], start, end):
            completed += 1
            if r["on_time"] is not None:
                timed += 1
                on_time += bool(r["on_time"])
            if r["working_days"] is not None:
                days.append(int(r["working_days"]))
        if r["evaluation"] is not None and within(r["evaluated_on"], start, end):
            scores[int(r["evaluation"])] += 1
    evaluated = sum(scores.values())
    return {
        "filed": filed,
        "completed": completed,
        "on_time": on_time,
        "on_time_known": timed,
        "on_time_rate": _ratio(on_time, timed),
        "avg_working_days": round(sum(days) / len(days), 2) if days else None,
        "proxy": proxy,
        "proxy_share": _ratio(proxy, filed),
        "evaluated": evaluated,
        "evaluations": {str(s): scores[s] for s in SCORES},
        "avg_score": round(sum(s * n for s, n in scores.items()) / evaluated, 2) if evaluated else None,
    }


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def period_label(day: dt.date, unit: str) -> str:
    if unit == "week":
        year, week, _weekday = day.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{day.year}-{day.month:02d}"


@lru_cache(maxsize=4096)
def _label(day: str, unit: str) -> str:
    """The period of an ISO day (a year's worth of days is a few hundred)."""
    return period_label(dt.date.fromisoformat(day), unit)


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


def trend(records: Sequence[Record], start: dt.date | None, end: dt.date | None) -> dict[str, Any]:
    """Filed and completed per period, every period of the span listed (an
    open end is taken from the records)."""
    lo, hi = _iso(start), _iso(end)
    days: list[str] = [
        d
        for r in records
        for d in (filed_day(r), r["completed_on"] if r["status"] == "completed" else None)
        if d is not None and within(d, lo, hi)
    ]
    if not days and (start is None or end is None):
        return {"unit": "month", "periods": []}
    first = start or dt.date.fromisoformat(min(days))
    last = end or dt.date.fromisoformat(max(days))
    unit = "week" if (last - first).days < WEEKLY_UP_TO_DAYS else "month"
    lo, hi = first.isoformat(), last.isoformat()
    filed: Counter[str] = Counter()
    completed: Counter[str] = Counter()
    for r in records:
        day = filed_day(r)
        if day is not None and within(day, lo, hi):
            filed[_label(day, unit)] += 1
        done = r["completed_on"]
        if done is not None and r["status"] == "completed" and within(done, lo, hi):
            completed[_label(done, unit)] += 1
    return {
        "unit": unit,
        "periods": [
            {"period": p, "filed": filed[p], "completed": completed[p]} for p in _periods(first, last, unit)
        ],
    }


def summarize(
    records: Sequence[Record],
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    by: str | None = None,
    name_of: Callable[[str], str] = lambda key: "",
    changes: Sequence[Change] = (),
) -> dict[str, Any]:
    """The whole report over plain records: totals, groups (with ``by``), trend."""
    if by is not None and by not in GROUPINGS:
        raise ValueError(f"unknown grouping {by!r}")
    out: dict[str, Any] = {
        "from": start.isoformat() if start else None,
        "to": end.isoformat() if end else None,
        "by": by,
        "total": figures(records, _iso(start), _iso(end)),
        "groups": [],
        "trend": trend(records, start, end),
    }
    if by is not None:
        grouped: dict[str | None, list[Record]] = defaultdict(list)
        for r in records:
            grouped[group_key(r, by, changes)].append(r)
        for key in sorted(grouped, key=lambda k: (k is None, k or "")):
            row = figures(grouped[key], _iso(start), _iso(end))
            if row["filed"] or row["completed"] or row["evaluated"]:
                out["groups"].append({"key": key, "name": name_of(key) if key else "", **row})
    return out


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
    records = node.store.stats_records(node.code, _iso(start), _iso(end))
    report = summarize(
        records,
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
        "late": timeliness.count(
            records if start is None and end is None else node.store.stats_records(node.code),
            node.today(),
            node.calendar(),
        ),
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
