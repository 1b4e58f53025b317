"""`daiban report` on a city holding a seeded year of statistics: the real
command in a subprocess, its figures checked against counts computed here,
in plain Python, from the seed itself. The seed goes straight into the
city's statistics table (the store's own upsert, as the inbox uses it), so a
year of 3,000 applications takes a second, not a day of syncing.

Also: bad input gets one clear line and exit 2 (1 where the node refuses),
and nothing in the store changes."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from daiban.node import report
from daiban.node.home import open_node
from tests.conftest import Result

CITY = "3703"
DEMO = Path(__file__).resolve().parents[1] / "daiban" / "data" / "demo_catalog.json"
ITEMS = {i["code"]: (i["level"], i["time_limit_days"]) for i in json.loads(DEMO.read_text("utf-8"))["items"]}
DISTRICTS = ("370302", "370303", "370305")
TOWNS = {d: (f"{d}001", f"{d}101", f"{d}102") for d in DISTRICTS}
YEAR_START, YEAR_END = dt.date(2026, 1, 1), dt.date(2026, 12, 31)
STATUS_WEIGHTS = {
    "completed": 70,
    "accepted": 8,
    "received": 7,
    "needs_supplement": 5,
    "rejected": 5,
    "withdrawn": 5,
}


def _day(d: dt.date | None) -> str | None:
    return d.isoformat() if d else None


def seed(n: int = 3000, *, rng_seed: int = 20261127) -> list[dict[str, Any]]:
    """A year of applications across three districts, their towns and
    villages, every item of the demo catalog; some cross the year's edges."""
    rng = random.Random(rng_seed)
    out = []
    for k in range(n):
        district = rng.choice(DISTRICTS)
        town = rng.choice(TOWNS[district])
        shape = rng.random()
        # Mostly villages; some town or district walk-ins with a coarser code.
        region = f"{town}{rng.randint(1, 9):03d}" if shape < 0.8 else (town if shape < 0.93 else district)
        item = rng.choice(sorted(ITEMS))
        level, limit = ITEMS[item]
        office = {"town": region[:9], "district": region[:6], "city": CITY}[level]
        if len(office) > len(region):  # a town item needs a town or village code
            region = f"{district}001"
            office = region
        received = YEAR_START - dt.timedelta(days=10) + dt.timedelta(days=rng.randrange(385))
        filed = received - dt.timedelta(days=rng.choice((0, 0, 0, 1, 2)))
        proxy = len(region) == 12 and rng.random() < 0.75
        filer = region if proxy else office
        status = rng.choices(list(STATUS_WEIGHTS), weights=list(STATUS_WEIGHTS.values()))[0]
        accepted = decided = completed = due = evaluated = None
        working_days = on_time = evaluation = None
        if status in ("accepted", "completed"):
            accepted = decided = received + dt.timedelta(days=rng.randint(0, 3))
            due = accepted + dt.timedelta(days=limit + limit // 2) if rng.random() < 0.95 else None
        if status == "rejected":
            decided = received + dt.timedelta(days=rng.randint(0, 5))
        if status == "completed":
            assert accepted is not None
            completed = accepted + dt.timedelta(days=rng.randint(0, 45))
            working_days = (completed - accepted).days * 5 // 7 if rng.random() < 0.97 else None
            on_time = (completed <= due) if due else None
            if rng.random() < 0.8:
                evaluation = rng.choices((5, 4, 3, 2, 1), weights=(55, 25, 10, 6, 4))[0]
                evaluated = completed + dt.timedelta(days=rng.randint(0, 12))
        out.append(
            {
                "tracking": f"{region:0<12}{k + 1:07d}0",
                "office": office,
                "level": level,
                "item": item,
                "region": region,
                "filer": filer,
                "proxy": proxy,
                "status": status,
                "filed_on": _day(filed),
                "received_on": _day(received),
                "accepted_on": _day(accepted),
                "decided_on": _day(decided),
                "completed_on": _day(completed),
                "due": _day(due),
                "time_limit_days": limit,
                "working_days": working_days,
                "on_time": on_time,
                "evaluation": evaluation,
                "evaluated_on": _day(evaluated),
            }
        )
    return out


# -- what the report must say, computed from the seed ---------------------------------


def _in(day: str | None, start: str, end: str) -> bool:
    return day is not None and start <= day <= end


def expected(records: Iterable[dict[str, Any]], start: str, end: str) -> dict[str, Any]:
    records = list(records)
    filed = [r for r in records if _in(r["received_on"], start, end)]
    done = [r for r in records if r["status"] == "completed" and _in(r["completed_on"], start, end)]
    timed = [r for r in done if r["on_time"] is not None]
    days = [r["working_days"] for r in done if r["working_days"] is not None]
    scored = [r["evaluation"] for r in records if r["evaluation"] and _in(r["evaluated_on"], start, end)]
    return {
        "filed": len(filed),
        "completed": len(done),
        "on_time": sum(1 for r in timed if r["on_time"]),
        "on_time_known": len(timed),
        "avg_working_days": round(sum(days) / len(days), 2) if days else None,
        "proxy": sum(1 for r in filed if r["proxy"]),
        "evaluated": len(scored),
        "evaluations": {str(s): scored.count(s) for s in (5, 4, 3, 2, 1)},
    }


def check_figures(got: dict[str, Any], want: dict[str, Any]) -> None:
    for key, value in want.items():
        assert got[key] == value, key
    assert got["on_time_rate"] == pytest.approx(want["on_time"] / want["on_time_known"], abs=1e-4)
    assert got["proxy_share"] == pytest.approx(want["proxy"] / want["filed"], abs=1e-4)


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    from daiban.node.home import init_home

    home = tmp_path_factory.mktemp("report") / "city"
    init_home(home, role="city", code=CITY, name="淄博市").close()
    records = seed()
    node = open_node(home)
    try:
        with node.store.transaction():
            # In two deliveries, the second older: the latest version stays.
            node.store.put_stats(records, version=10, taken_at="2027-01-05T02:00:00+08:00")
            stale = [{**r, "status": "received", "completed_on": None} for r in records[:500]]
            node.store.put_stats(stale, version=3, taken_at="2027-01-05T02:00:00+08:00")
    finally:
        node.close()
    return home, records


def test_a_year_at_the_city_matches_the_seed(city: Any, cli: Callable[..., Result]) -> None:
    home, records = city
    result = cli("report", "--from", "2026-01-01", "--to", "2026-12-31", "--json", home=home)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    assert (got["node"], got["from"], got["to"], got["by"]) == (CITY, "2026-01-01", "2026-12-31", None)
    want = expected(records, "2026-01-01", "2026-12-31")
    assert 2000 < want["filed"] < 3000 and want["completed"] > 1500  # the seed is what it claims
    check_figures(got["total"], want)
    # The trend: every month of the year, filed and completed as counted here.
    months = [f"2026-{m:02d}" for m in range(1, 13)]
    filed = Counter(r["received_on"][:7] for r in records)
    done = Counter(r["completed_on"][:7] for r in records if r["status"] == "completed")
    assert got["trend"]["unit"] == "month"
    assert got["trend"]["periods"] == [{"period": m, "filed": filed[m], "completed": done[m]} for m in months]


@pytest.mark.parametrize("by", ["district", "town", "village", "item"])
def test_groups_match_the_seed(city: Any, cli: Callable[..., Result], by: str) -> None:
    home, records = city
    start, end = "2026-04-01", "2026-09-30"
    result = cli("report", "--from", start, "--to", end, "--by", by, "--json", home=home)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    length = {"district": 6, "town": 9, "village": 12}.get(by)

    def key(r: dict[str, Any]) -> str | None:
        if length is None:
            return str(r["item"])
        return r["region"][:length] if len(r["region"]) >= length else None

    keys = {key(r) for r in records}
    wanted = {k: expected([r for r in records if key(r) == k], start, end) for k in keys}
    wanted = {k: w for k, w in wanted.items() if w["filed"] or w["completed"] or w["evaluated"]}
    assert [g["key"] for g in got["groups"]] == sorted(wanted, key=lambda k: (k is None, k or ""))
    for group in got["groups"]:
        want = wanted[group["key"]]
        for field, value in want.items():
            assert group[field] == value, (group["key"], field)
    assert sum(g["filed"] for g in got["groups"]) == got["total"]["filed"]
    if by == "item":
        names = {g["key"]: g["name"] for g in got["groups"]}
        assert names["SB001"].startswith("城乡居民基本养老保险")
    assert got["trend"]["unit"] == "month"  # six months


def test_a_short_period_is_charted_by_week(city: Any, cli: Callable[..., Result]) -> None:
    home, records = city
    got = json.loads(cli("report", "--from", "2026-03-02", "--to", "2026-03-29", "--json", home=home).stdout)
    assert got["trend"]["unit"] == "week"
    weeks = Counter(
        "{}-W{:02d}".format(*dt.date.fromisoformat(r["received_on"]).isocalendar()[:2])
        for r in records
        if _in(r["received_on"], "2026-03-02", "2026-03-29")
    )
    assert [(p["period"], p["filed"]) for p in got["trend"]["periods"]] == [
        (f"2026-W{w:02d}", weeks[f"2026-W{w:02d}"]) for w in range(10, 14)
    ]


def test_csv_has_a_row_per_group_and_the_total(city: Any, cli: Callable[..., Result]) -> None:
    home, records = city
    result = cli("report", "--by", "district", "--csv", home=home)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["key"] for r in rows] == [*DISTRICTS, "total"]
    everything = expected(records, "0000-00-00", "9999-99-99")
    total = rows[-1]
    assert int(total["filed"]) == everything["filed"] == len(records)
    assert int(total["completed"]) == everything["completed"]
    assert [int(total[f"score_{s}"]) for s in "54321"] == list(everything["evaluations"].values())
    for row in rows[:-1]:
        mine = expected([r for r in records if r["region"].startswith(row["key"])], "0", "9")
        assert int(row["filed"]) == mine["filed"]
        assert float(row["avg_working_days"]) == mine["avg_working_days"]


def test_text_report_is_chinese_by_default_with_a_chart(city: Any, cli: Callable[..., Result]) -> None:
    home, records = city
    october = {"DAIBAN_CLOCK": "2026-10-20T10:00:00+08:00"}  # before next year's calendar is missed
    result = cli(
        "report",
        "--from",
        "2026-01-01",
        "--to",
        "2026-12-31",
        "--by",
        "item",
        home=home,
        lang="zh",
        env=october,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    want = expected(records, "2026-01-01", "2026-12-31")
    assert lines[0] == "统计报表：3703 淄博市，2026-01-01 至 2026-12-31"
    assert lines[1].startswith(f"收件 {want['filed']}   办结 {want['completed']}   按时办结率 ")
    assert "按月趋势" in lines
    chart = lines[lines.index("按月趋势") + 3 :]
    assert [line.split()[0] for line in chart] == [f"2026-{m:02d}" for m in range(1, 13)]
    # The busiest month has the longest bar.
    filed = Counter(r["received_on"][:7] for r in records if r["received_on"].startswith("2026"))
    busiest = max(filed, key=lambda m: filed[m])
    bars = {line.split()[0]: line.count("█") for line in chart}
    assert bars[busiest] == max(bars.values()) > 0
    from rich.cells import cell_len

    assert max(cell_len(line) for line in lines) <= 80


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_report_says_plainly_from_november_that_next_years_calendar_is_missing(
    city: Any, cli: Callable[..., Result], lang: str
) -> None:
    home, _records = city
    for day, missing in (("2026-10-31", None), ("2026-11-01", 2027), ("2027-01-04", 2027)):
        env = {"DAIBAN_CLOCK": f"{day}T10:00:00+08:00"}
        data = cli("report", "--json", home=home, env=env).json()
        assert data["calendar_missing"] == missing
        text = cli("report", home=home, lang=lang, env=env).stdout
        said = ("2027年工作日历尚未发布" if lang == "zh" else "calendar for 2027 is not published") in text
        assert said == (missing is not None)


# -- edges, at a city holding only the records at hand -------------------------------------


def _report_over(tmp_path: Path, records: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    from daiban.node.home import init_home

    node = init_home(tmp_path / "edge", role="city", code=CITY, name="淄博市")
    try:
        with node.store.transaction():
            node.store.put_stats(records, version=1, taken_at="2027-01-05T02:00:00+08:00")
        return report.for_node(node, **kw)
    finally:
        node.close()


def test_open_ends_take_the_span_from_the_records(tmp_path: Path) -> None:
    records = [
        {**r, "received_on": day, "completed_on": None, "status": "received", "evaluation": None}
        for r, day in zip(seed(3), ("2026-01-30", "2026-02-02", "2026-05-01"), strict=True)
    ]
    got = _report_over(tmp_path / "some", records)
    assert got["from"] is None and got["to"] is None
    assert [(p["period"], p["filed"]) for p in got["trend"]["periods"]] == [
        ("2026-01", 1),
        ("2026-02", 1),
        ("2026-03", 0),
        ("2026-04", 0),
        ("2026-05", 1),
    ]
    assert _report_over(tmp_path / "none", [])["trend"]["periods"] == []


def test_coarser_regions_form_their_own_group(tmp_path: Path) -> None:
    base = seed(1)[0]
    records = [
        {**base, "region": "370303", "tracking": "37030300000000000010"},
        {**base, "region": "370303101201", "tracking": "37030310120100000020"},
    ]
    got = _report_over(tmp_path, records, by="village")
    assert [g["key"] for g in got["groups"]] == ["370303101201", None]


# -- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--from", "2026-12-31", "--to", "2026-01-01"), "swap --from and --to"),
        (("--from", "2026-13-01"), "expected a date as YYYY-MM-DD, got '2026-13-01'"),
        (("--to", "31/12/2026"), "expected a date as YYYY-MM-DD"),
        (("--by", "province"), "invalid choice: 'province'"),
        (("--json", "--csv"), "not allowed with argument"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(
    city: Any, cli: Callable[..., Result], args: tuple[str, ...], needle: str
) -> None:
    home, _records = city
    before = (home / "daiban.db").read_bytes()
    result = cli("report", *args, home=home)
    assert result.returncode == 2
    assert result.stdout == ""
    last = result.stderr.splitlines()[-1]
    assert needle in last and last.startswith("daiban")
    # The usage, then one line saying what is wrong (argparse's way); no traceback.
    assert "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if "error" in line] == [last]
    assert (home / "daiban.db").read_bytes() == before


def test_the_period_error_is_chinese_by_default(city: Any, cli: Callable[..., Result]) -> None:
    home, _records = city
    result = cli("report", "--from", "2026-12-31", "--to", "2026-01-01", home=home, lang="zh")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "daiban：错误：起始日期（2026-12-31）晚于截止日期（2026-01-01）；请交换 --from 和 --to。"
    ]


def test_a_town_or_village_cannot_report(cli: Callable[..., Result], tmp_path: Path) -> None:
    for role, code in (("town", "370303101"), ("village", "370303101201")):
        home = tmp_path / role
        assert cli("init", "--role", role, "--code", code, "--name", "某地", home=home).returncode == 0
        result = cli("report", home=home)
        assert result.returncode == 1
        assert result.stderr.splitlines() == [
            f"error: Reports are made at a district or the city, where statistics arrive; "
            f"this node is a {'town/street' if role == 'town' else 'village/community'}."
        ]
