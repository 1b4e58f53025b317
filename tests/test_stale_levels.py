"""Stale nodes at every level, over real ``daiban serve`` processes
(tests/sync_net.py) on an injected clock (DAIBAN_CLOCK, as in
tests/test_report_stale.py; the servers are restarted to move theirs).

On 1 June both villages sync with their town (village2 enrolled there this
time), the town with the district, the district with the city. On 31 July
the servers come back on the new day and village, the town and the district
sync again; village2 stays silent. Its town's heartbeats (children's last
syncs in the statistics stream) tell the district and the city: both list
village2 as stale, under the town, and not the active village, though
neither has village2 as a child. A town that reports on a node that is not
below it is refused at the district and quarantined, and nothing it claimed
is kept."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from rich.cells import cell_len

from daiban.node import routing, statistics
from daiban.node.children import nodes_below, stale_nodes
from tests.attacker import Attacker, assert_quarantined
from tests.sync_net import Network

C, D, T, V, V2 = "city", "district", "town", "village", "village2"
DAY0 = "2026-06-01T09:00:00"
DAY60 = "2026-07-31T09:00:00"
DAY = 86400
CST = dt.timezone(dt.timedelta(hours=8))
SCHEMA = json.loads(
    (Path(__file__).resolve().parents[1] / "daiban" / "schemas" / "envelope.schema.json").read_text("utf-8")
)


class ClockedNetwork(Network):
    """Every command (and server, from its start) on one frozen clock."""

    clock: str = DAY0

    def env(self, home: Path) -> dict[str, str]:
        return {**super().env(home), "DAIBAN_CLOCK": self.clock}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClockedNetwork]:
    root = tmp_path_factory.mktemp("stale-levels") / "net"
    root.mkdir()
    net = ClockedNetwork(root)
    try:  # every server it started is stopped, by PID, whatever happens
        net.init(C, D, T, V, V2)
        net.start(C, D, T)
        for name in (D, T, V):
            net.enroll(name)
        net.enroll(V2, T)  # both villages under the town
        net.sync_all(V, V2, T, D)  # day 0: everyone heard from
        net.sync_all(T, D)  # again the same day: nothing new to report
        net.clock = DAY60
        for name in (C, D, T):
            net.restart(name)  # the servers' clock on day 60 too
        net.sync_all(V, T, D)  # village2 stays silent
        yield net
    finally:
        net.close()


def report(net: Network, node: str, *args: str) -> dict[str, Any]:
    got: dict[str, Any] = net.run(node, "report", "--json", *args).ok().json()
    return got


def everything_below(net: Network, node: str, *args: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = net.run(node, "children", "--all", "--json", *args).ok().json()
    return got


def test_the_district_and_the_city_list_the_silent_village_under_its_town(net: ClockedNetwork) -> None:
    town, village2 = net.code(T), net.code(V2)
    for node in (D, C):
        got = report(net, node)
        assert got["stale_children"] == [], node  # their own children are all active
        assert got["stale_nodes"] == [
            {
                "code": village2,
                "name": "小张村",
                "parent": town,
                "last_sync_at": "2026-06-01T09:00:00+08:00",
                "enrolled_at": got["stale_nodes"][0]["enrolled_at"],
                "silent_seconds": 60 * DAY,
                "stale": True,
                "reported_at": got["stale_nodes"][0]["reported_at"],
            }
        ], node
        assert got["stale_nodes"][0]["enrolled_at"].startswith("2026-06-01")
        # The town's report reached this node on day 0: village2 has not moved since.
        assert got["stale_nodes"][0]["reported_at"].startswith("2026-06-01"), got["stale_nodes"]
    assert report(net, D)["nodes_below"] == 3  # the town, and its two villages
    assert report(net, C)["nodes_below"] == 4  # the district too
    # Past 61 days nobody is stale; the line moves with --stale-after.
    assert report(net, C, "--stale-after", "61d")["stale_nodes"] == []


def test_children_all_lists_every_node_below_with_its_parent(net: ClockedNetwork) -> None:
    district, town, village, village2 = (net.code(n) for n in (D, T, V, V2))
    at_city = {n["code"]: n for n in everything_below(net, C)}
    assert {code: (n["parent"], n["stale"]) for code, n in at_city.items()} == {
        district: (net.code(C), False),
        town: (district, False),
        village: (town, False),
        village2: (town, True),
    }
    assert at_city[village]["last_sync_at"] == "2026-07-31T09:00:00+08:00"
    assert at_city[district]["reported_at"] is None  # its own child: first-hand
    at_district = everything_below(net, D, "--stale")
    assert [(n["code"], n["parent"], n["silent_seconds"]) for n in at_district] == [
        (village2, town, 60 * DAY)
    ]
    # Without --all, `children` is as it was: the direct children only.
    assert [c["code"] for c in net.run(D, "children", "--json").ok().json()] == [town]
    text = net.run(C, "children", "--all", "--stale").ok().stdout
    assert village2 in text and "1 of 1 nodes below" in text


def test_the_text_report_names_the_silent_village_further_below(net: ClockedNetwork) -> None:
    text = net.run(C, "report").ok().stdout
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Further below"))
    assert lines[start] == "Further below, not synced for more than 2d: 1 of 3"
    assert "All 1 children have synced within 2d." in lines
    rows = [line.split() for line in lines[start + 1 :] if line.split() and line.split()[0].isdigit()]
    assert rows[0] == [net.code(V2), "小张村", net.code(T), "2026-06-01", "09:00", "60", "days"]
    assert max(cell_len(line) for line in lines) <= 80
    quiet = net.run(C, "report", "--stale-after", "61d").ok().stdout
    assert "All 3 nodes further below have synced within 61d." in quiet.splitlines()


def test_heartbeats_are_batched_and_sent_only_when_a_last_sync_moved(net: ClockedNetwork) -> None:
    rows = net.query(
        T, "SELECT raw FROM envelopes WHERE kind = 'stats' AND origin = ? ORDER BY n", (net.code(T),)
    )
    bodies = [json.loads(r[0])["body"] for r in rows]
    # Day 0: both villages in one envelope; the second sync that day sent none;
    # day 60: only the village whose last sync moved.
    assert [[c["code"] for c in b["children"]] for b in bodies] == [
        [net.code(V), net.code(V2)],
        [net.code(V)],
    ]
    assert all(b["records"] == [] for b in bodies)  # never mixed with application records
    validator = Draft202012Validator(SCHEMA)
    for row in rows:
        env = json.loads(row[0])
        assert list(validator.iter_errors(env)) == []
        assert env["to"] == net.code(C) and env["sealed"] is None
    # The city holds what the district and the town reported, nothing personal.
    held = net.query(C, "SELECT parent, code, gone FROM child_heartbeats ORDER BY parent, code")
    assert [tuple(r) for r in held] == [
        (net.code(D), net.code(T), 0),
        (net.code(T), net.code(V), 0),
        (net.code(T), net.code(V2), 0),
    ]
    for node in (T, D):  # what they reported went up in the same sync
        assert net.query(node, "SELECT COUNT(*) FROM outbox WHERE hop = ?", (routing.UP,))[0][0] == 0
    for node in (C, D, T):
        assert net.query(node, "PRAGMA integrity_check")[0][0] == "ok"
    assert net.query(C, "SELECT COUNT(*) FROM quarantine")[0][0] == 0
    assert net.query(D, "SELECT COUNT(*) FROM quarantine")[0][0] == 0


# -- the attacker: a town reporting on nodes that are not its children -----------------


def heartbeat(code: str) -> dict[str, Any]:
    return {
        "code": code,
        "name": "别人的村",
        "last_sync_at": "2026-07-31T09:00:00+08:00",
        "enrolled_at": None,
        "gone": False,
    }


@pytest.mark.parametrize(
    "code",
    [
        "370303102201",  # a village of another town
        "370303102",  # a sibling town
        "370303",  # its own district
        "370303101",  # itself
    ],
)
def test_a_town_reporting_on_a_node_not_below_it_is_refused_at_the_district(
    net: ClockedNetwork, code: str
) -> None:
    before = {n: net.query(n, "SELECT * FROM child_heartbeats ORDER BY parent, code") for n in (C, D)}
    attacker = Attacker(net, T)
    body = {"records": [], "children": [heartbeat(net.code(V)), heartbeat(code)]}
    env = attacker.envelope("stats", to=net.code(C), tracking=None, body=body)
    pushed = attacker.push([env.raw])
    pushed.assert_refused(env.id, {"not_ancestor"})
    assert_quarantined(net, D, env.id, code="not_ancestor", origin=net.code(T), sender=net.code(T))
    after = {n: net.query(n, "SELECT * FROM child_heartbeats ORDER BY parent, code") for n in (C, D)}
    assert {n: [tuple(r) for r in rows] for n, rows in after.items()} == {
        n: [tuple(r) for r in rows] for n, rows in before.items()
    }
    # Nothing of it goes on towards the city.
    assert net.query(D, "SELECT COUNT(*) FROM envelopes WHERE id = ?", (env.id,))[0][0] == 0
    listed = [(n["code"], n["parent"]) for n in everything_below(net, D)]
    assert (code, net.code(T)) not in listed


# -- the rules, without I/O ------------------------------------------------------------


def record(code: str, last: str | None, *, name: str = "村", enrolled: str | None = None) -> dict[str, Any]:
    return {"code": code, "name": name, "last_sync_at": last, "enrolled_at": enrolled, "gone": False}


def test_a_heartbeat_is_due_when_new_moved_an_hour_changed_or_gone() -> None:
    a, b, c, d = "370303101201", "370303101202", "370303101203", "370303101204"
    held = {
        a: record(a, "2026-06-01T09:00:00+08:00"),
        b: record(b, "2026-06-01T09:00:00+08:00"),
        c: record(c, None),
        d: record(d, "2026-06-01T09:00:00+08:00"),
    }
    current = {
        a: record(a, "2026-06-01T09:59:59+08:00"),  # moved, but less than an hour: not yet
        b: record(b, "2026-06-01T10:00:00+08:00"),  # an hour
        c: record(c, None, name="新名"),  # renamed
        "370303101205": record("370303101205", None),  # new
    }
    got = statistics.due(held, current)
    assert [(r["code"], r["gone"]) for r in got] == [
        (b, False),
        (c, False),
        (d, True),  # no longer a child
        ("370303101205", False),
    ]
    # Gone once is enough.
    assert statistics.due({d: {**held[d], "gone": True}}, {}) == []


def test_a_node_is_listed_once_under_the_parent_that_heard_from_it_last() -> None:
    now = dt.datetime(2026, 7, 31, 9, tzinfo=CST)
    here, town, other = "370303", "370303101", "370303102"
    moved = "370303101201"
    reported = [
        {"parent": town, **record(moved, "2026-06-01T09:00:00+08:00"), "reported_at": None},
        {"parent": other, **record(moved, "2026-07-31T08:00:00+08:00"), "reported_at": None},
        {"parent": town, **record("370303101202", None), "reported_at": None},
    ]
    children = [record(town, "2026-07-31T09:00:00+08:00"), record(other, "2026-07-31T09:00:00+08:00")]
    below = nodes_below(here, children, reported, now, dt.timedelta(hours=48))
    assert [(n.code, n.parent, n.stale) for n in below] == [
        (town, here, False),
        (moved, other, False),
        ("370303101202", town, True),  # no time on record: nobody can say
        (other, here, False),
    ]
    assert [n.code for n in stale_nodes(below)] == ["370303101202"]


def test_the_stats_rule_lets_a_node_report_only_on_nodes_below_it() -> None:
    from daiban.node.authority import Claim, Known, authorise

    city, district, town = "3703", "370303", "370303101"

    def refusal(origin: str, children: Any) -> str | None:
        found = authorise(Claim("stats", origin, city, None, {"records": [], "children": children}), Known())
        return None if found is None else found.code

    assert refusal(town, [record("370303101201", None)]) is None
    # A district's own children: its towns and the villages enrolled with it directly.
    assert refusal(district, [record(town, None), record("370303101202", None)]) is None
    assert refusal(town, [record("370303102201", None)]) == "not_ancestor"
    assert refusal(district, [record("370304", None)]) == "not_ancestor"
    assert refusal(town, [record(town, None)]) == "not_ancestor"
    for bad in ("x", [1], [{"code": "37030310120"}], [{"name": "村"}]):
        assert refusal(town, bad) == "invalid_body", bad


def test_the_latest_heartbeat_wins_and_a_gone_child_is_no_longer_listed(make_node: Any) -> None:
    city = make_node(role="city", code="3703", name="淄博市")
    town, village = "370303101", "370303101201"
    at = "2026-07-31T09:00:00+08:00"
    with city.store.transaction():
        city.store.put_heartbeats(town, [record(village, at)], version=7, taken_at=at)
        older = record(village, "2026-06-01T09:00:00+08:00")
        city.store.put_heartbeats(town, [older], version=5, taken_at=at)  # comes later, is older
    [row] = city.store.heartbeats_below(city.code)
    assert (row["parent"], row["code"], row["last_sync_at"]) == (town, village, at)
    with city.store.transaction():
        city.store.put_heartbeats(town, [{**record(village, at), "gone": True}], version=9, taken_at=at)
        city.store.put_heartbeats(town, [record(village, at)], version=8, taken_at=at)  # late, older
    assert city.store.heartbeats_below(city.code) == []
    assert city.store.heartbeats_of(town)[village]["gone"] is True
