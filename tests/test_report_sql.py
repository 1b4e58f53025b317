"""`daiban report` counts in SQL; its output must be exactly what the
earlier implementation (every record read into Python and added up there)
gave. That implementation is kept below, copied verbatim from
daiban/node/report.py as it stood before the change (commit 52d81bd), as the
oracle: random data sets (seeded, across items, offices and regions of every
length, every status, dates across year ends and holidays, open and
overdue applications, code changes of a district and a town) are stored at a
city, and the report — in process, and the real command's JSON and text — is
compared with the oracle's for every grouping and several periods."""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from daiban import i18n
from daiban.node import codechanges, report, timeliness
from daiban.node.children import nodes_below, stale_children, stale_nodes
from daiban.node.codechanges import Change
from daiban.node.home import init_home, open_node
from daiban.node.workdays import missing_calendar
from daiban.render import report_text
from tests.conftest import Result

CITY = "3703"
TODAY = "2026-11-06T09:00:00+08:00"
DISTRICTS = ("370302", "370303", "370305", "370399", "370310")
SIGNED = {"effective": "2026-06-01", "at": "2026-05-20T10:00:00+08:00"}
CHANGES = [
    # A district that became another (whose own code is also in use), and a town renumbered.
    {"old": "370399", "new": "370310", "name": "新区", **SIGNED},
    {"old": "370303101", "new": "370303150", "name": "新镇", **SIGNED},
]
ITEMS = ("SB001", "SB002", "LL001", "MZ002", "RS002", "CL001", "YB002", "TY001", "Z-9_x")
STATUSES = ("submitted", "received", "accepted", "needs_supplement", "rejected", "completed", "withdrawn")
PERIODS: tuple[tuple[dt.date | None, dt.date | None], ...] = (
    (None, None),
    (dt.date(2026, 1, 1), dt.date(2026, 12, 31)),
    (dt.date(2026, 9, 20), dt.date(2026, 10, 20)),  # a short period: by week, over 国庆
    (dt.date(2026, 2, 1), None),
    (None, dt.date(2026, 3, 31)),
    (dt.date(2026, 10, 1), dt.date(2026, 10, 1)),
    (dt.date(2030, 1, 1), dt.date(2030, 2, 1)),  # nothing in it
)


# -- the oracle: the earlier implementation, verbatim ----------------------------------

Record = Mapping[str, Any]
GROUPINGS = ("district", "town", "village", "item")
SCORES = (5, 4, 3, 2, 1)
WEEKLY_UP_TO_DAYS = 91


def filed_day(record: Record) -> str | None:
    day: str | None = record.get("received_on") or record.get("filed_on")
    return day


def within(day: str | None, start: str | None, end: str | None) -> bool:
    if day is None:
        return False
    if start is not None and day < start:
        return False
    return end is None or day <= end


def _iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day else None


def group_key(record: Record, by: str, changes: Sequence[Change] = ()) -> str | None:
    if by == "item":
        return str(record["item"])
    region = str(record["region"])
    length = {"district": 6, "town": 9, "village": 12}[by]
    if len(region) < length:
        return None
    return region[:length] if by == "village" else codechanges.resolve(region[:length], changes)


def figures(records: Any, start: str | None, end: str | None) -> dict[str, Any]:
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
    return period_label(dt.date.fromisoformat(day), unit)


def _periods(first: dt.date, last: dt.date, unit: str) -> list[str]:
    labels: list[str] = []
    day = first
    while day <= last:
        label = period_label(day, unit)
        if not labels or labels[-1] != label:
            labels.append(label)
        if unit == "week":
            day = day - dt.timedelta(days=day.weekday()) + dt.timedelta(days=7)
        else:
            day = (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    return labels


def trend(records: Sequence[Record], start: dt.date | None, end: dt.date | None) -> dict[str, Any]:
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


STATS_FIELDS = (
    "tracking", "office", "level", "item", "region", "filer", "proxy", "status", "filed_on",
    "received_on", "accepted_on", "decided_on", "completed_on", "due", "time_limit_days",
    "working_days", "on_time", "evaluation", "evaluated_on",
)  # fmt: skip


def stats_records(
    db: Path, prefix: str, start: str | None = None, end: str | None = None
) -> list[dict[str, Any]]:
    """The earlier Store.stats_records, on the node's database file."""
    lo, hi = start or "0000-00-00", end or "9999-99-99"
    conn = sqlite3.connect(db)
    try:
        cursor = conn.execute(
            f"SELECT {', '.join(STATS_FIELDS)} FROM stats WHERE substr(office, 1, ?1) = ?2 AND ("
            "COALESCE(received_on, filed_on) BETWEEN ?3 AND ?4 OR completed_on BETWEEN ?3 AND ?4 "
            "OR evaluated_on BETWEEN ?3 AND ?4)",
            [len(prefix), prefix, lo, hi],
        )
        out = []
        for row in cursor:
            record = dict(zip(STATS_FIELDS, row, strict=True))
            record["proxy"] = bool(record["proxy"])
            if record["on_time"] is not None:
                record["on_time"] = bool(record["on_time"])
            out.append(record)
        return out
    finally:
        conn.close()


def oracle(
    node: Any,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    by: str | None = None,
    stale_after: dt.timedelta = dt.timedelta(hours=48),
) -> dict[str, Any]:
    """The earlier report.for_node (its node-level parts unchanged)."""
    db = node.home / "daiban.db"
    names = report._names(node)
    records = stats_records(db, node.code, _iso(start), _iso(end))
    summary = summarize(
        records, start=start, end=end, by=by, name_of=lambda key: names.get(key, ""),
        changes=node.division_changes(),
    )  # fmt: skip
    children = node.store.children_sync()
    now = node.clock()
    stale = stale_children(children, now, stale_after)
    below = nodes_below(node.code, children, node.store.heartbeats_below(node.code), now, stale_after)
    return {
        "node": node.code,
        "name": node.name,
        **summary,
        "calendar_missing": missing_calendar(node.calendar(), node.today()),
        "late": timeliness.count(
            records if start is None and end is None else stats_records(db, node.code),
            node.today(),
            node.calendar(),
        ),
        "stale_after": int(stale_after.total_seconds()),
        "children_enrolled": len(children),
        "stale_children": [c.as_dict() for c in stale],
        "nodes_below": len(below),
        "stale_nodes": [n.as_dict() for n in stale_nodes(below)],
    }


# -- random data sets ---------------------------------------------------------------------


def _day(d: dt.date | None) -> str | None:
    return d.isoformat() if d else None


def records(seed: int, n: int) -> list[dict[str, Any]]:
    """``n`` records at random, one tracking number each; their office is in
    the city, their region of any length below it."""
    rng = random.Random(seed)
    today = dt.date(2026, 11, 6)
    out = []
    for k in range(n):
        district = rng.choice(DISTRICTS)
        town = f"{district}{rng.choice(('001', '101', '102', '201'))}"
        region = rng.choice((district, town, *(f"{town}{v:03d}" for v in range(1, 6))))
        level = rng.choice(("town", "district", "city"))
        office = {"town": town, "district": district, "city": CITY}[level]
        # Around the year's ends and the holidays; some received in the days just before "today".
        received = rng.choice(
            (
                dt.date(2025, 12, 20) + dt.timedelta(days=rng.randrange(400)),
                today - dt.timedelta(days=rng.randrange(10)),
                dt.date(2026, 9, 25) + dt.timedelta(days=rng.randrange(20)),
            )
        )
        filed = received - dt.timedelta(days=rng.choice((0, 0, 1, 3)))
        status = rng.choice(STATUSES)
        accepted = decided = completed = due = evaluated = None
        working_days = on_time = evaluation = None
        if status in ("accepted", "completed", "needs_supplement"):
            accepted = decided = received + dt.timedelta(days=rng.randint(0, 4))
            # Due: past (overdue when still accepted), today, soon, or not known.
            soon = accepted + dt.timedelta(days=rng.randint(0, 30))
            due = rng.choice((soon, today, today + dt.timedelta(days=3), None))
        if status == "rejected":
            decided = received + dt.timedelta(days=rng.randint(0, 5))
        if status == "completed" or (status == "withdrawn" and rng.random() < 0.2):
            completed = (accepted or received) + dt.timedelta(days=rng.randint(0, 40))
            working_days = rng.choice((None, rng.randint(0, 30)))
            on_time = rng.choice((None, True, False))
            if rng.random() < 0.7:
                evaluation = rng.randint(1, 5)
                evaluated = completed + dt.timedelta(days=rng.randint(0, 12))
        proxy = len(region) == 12 and rng.random() < 0.7
        out.append(
            {
                "tracking": f"{k:020d}",
                "office": office,
                "level": level,
                "item": rng.choice(ITEMS),
                "region": region,
                "filer": region if proxy else office,
                "proxy": proxy,
                "status": status,
                "filed_on": _day(filed),
                # Not yet received (a submitted one): counted as filed on its filing day.
                "received_on": None if status == "submitted" and rng.random() < 0.7 else _day(received),
                "accepted_on": _day(accepted),
                "decided_on": _day(decided),
                "completed_on": _day(completed),
                "due": _day(due),
                "time_limit_days": rng.choice((None, 5, 20)),
                "working_days": working_days,
                "on_time": on_time,
                "evaluation": evaluation,
                "evaluated_on": _day(evaluated),
            }
        )
    # Some held by another city's office: never counted here.
    for r in rng.sample(out, max(1, n // 50)):
        r["office"] = "370402"
    return out


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report-sql") / "city"
    init_home(path, role="city", code=CITY, name="淄博市").close()
    return path


@pytest.fixture
def city(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("DAIBAN_CLOCK", TODAY)
    node = open_node(home)
    try:
        yield node
    finally:
        node.close()


def load(node: Any, data: list[dict[str, Any]], *, changes: bool) -> None:
    with node.store.transaction():
        node.store.db.conn.execute("DELETE FROM stats")
        node.store.put_stats(data, version=1, taken_at="2026-11-06T02:00:00+08:00")
        node.store.set_setting(codechanges.SETTING, json.dumps(CHANGES if changes else []))


def _same(node: Any, **kw: Any) -> None:
    got = report.for_node(node, **kw)
    want = oracle(node, **kw)
    assert json.dumps(got, ensure_ascii=False, indent=2) == json.dumps(want, ensure_ascii=False, indent=2)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_every_grouping_and_period_matches_the_earlier_report(city: Any, seed: int) -> None:
    load(city, records(seed, 300 + 150 * seed), changes=seed % 2 == 0)
    for start, end in PERIODS:
        for by in (None, *GROUPINGS):
            _same(city, start=start, end=end, by=by)


def test_an_empty_city_matches_the_earlier_report(city: Any) -> None:
    load(city, [], changes=False)
    for start, end in PERIODS[:3]:
        for by in (None, "item", "town"):
            _same(city, start=start, end=end, by=by)


def test_one_record_at_a_time_matches_the_earlier_report(city: Any) -> None:
    """Small sets are where an edge (a lone overdue one, a group of one, a
    coarser region alone) cannot hide behind a crowd."""
    for seed in range(40):
        load(city, records(100 + seed, 1 + seed % 3), changes=seed % 3 == 0)
        for by in (None, *GROUPINGS):
            _same(city, by=by)
        _same(city, start=dt.date(2026, 10, 1), end=dt.date(2026, 11, 6), by="district")


@pytest.mark.parametrize(
    ("args", "start", "end", "by"),
    [
        ((), None, None, None),
        (("--by", "town"), None, None, "town"),
        (
            ("--from", "2026-09-20", "--to", "2026-10-20", "--by", "district"),
            dt.date(2026, 9, 20),
            dt.date(2026, 10, 20),
            "district",
        ),
        (("--from", "2026-01-01", "--by", "item"), dt.date(2026, 1, 1), None, "item"),
    ],
)
def test_the_command_prints_what_the_earlier_report_printed(
    home: Path,
    city: Any,
    cli: Callable[..., Result],
    args: tuple[str, ...],
    start: dt.date | None,
    end: dt.date | None,
    by: str | None,
) -> None:
    load(city, records(7, 800), changes=True)
    want = oracle(city, start=start, end=end, by=by)
    env = {"DAIBAN_CLOCK": TODAY}
    got = cli("report", "--json", *args, home=home, env=env)
    assert got.returncode == 0, got.stderr
    assert got.stdout == json.dumps(want, ensure_ascii=False, indent=2) + "\n"
    for lang in ("en", "zh"):
        text = cli("report", *args, home=home, env=env, lang=lang)
        assert text.returncode == 0, text.stderr
        i18n.set_language(lang)
        try:
            assert text.stdout == report_text(want) + "\n"
        finally:
            i18n.set_language("en")
