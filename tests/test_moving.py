"""A village moved from its town to its district and back, with work in
flight each way, on a real network of ``daiban serve`` processes
(tests/sync_net.py): filings queued at the village, decisions queued at the
old parent for it, district decisions queued at the district for the old
branch, a bundle the town made for the village before the move. At the end
every application is at its office exactly once, every status at the
village, nothing waits in any queue, nothing is quarantined, and every
database passes ``PRAGMA integrity_check``; ``daiban children`` at the old
parent shows where the village went."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from stdnum.cn import ric

from daiban.node.children import child_statuses
from daiban.node.routing import Hop, next_hop
from tests.sync_net import NODES, Network, network_at

C, D, T, V, V2 = "city", "district", "town", "village", "village2"
ALL = (C, D, T, V, V2)
OFFICE = {"MZ001": T, "SB001": D, "GJ001": C}
FIELDS = {
    "MZ001": {"family_size": "3", "monthly_income": "420"},
    "SB001": {"contribution_grade": "500"},
    "GJ001": {"retire_date": "2020-01-01", "bank_name": "工商银行", "bank_account": "6222021234567890"},
}


@dataclass(frozen=True)
class Filing:
    item: str
    tracking: str

    @property
    def office(self) -> str:
        return OFFICE[self.item]


def id_number(n: int) -> str:
    body = f"370303196204{10 + n:02d}{100 + n:03d}"
    return body + ric.calc_check_digit(body + "0")


def file(net: Network, item: str, n: int) -> Filing:
    name = "迁移" + "一二三四五六七八九十"[n - 1]  # names hold no digits
    args = ["apply", "--item", item, "--name", name, "--id-number", id_number(n)]
    args += ["--phone", f"139053{n:05d}", "--json"]
    for key, value in FIELDS[item].items():
        args += ["--field", f"{key}={value}"]
    filed = net.run(V, *args).ok().json()
    assert filed["office"] == NODES[OFFICE[item]].code
    return Filing(item, str(filed["tracking"]))


def status(net: Network, node: str, tracking: str) -> str:
    return str(net.run(node, "show", tracking, "--json").ok().json()["status"])


def children(net: Network, node: str) -> dict[str, dict[str, Any]]:
    return {c["code"]: c for c in net.run(node, "children", "--json").ok().json()}


def queued_for(net: Network, node: str, hop: str, toward: str = "") -> int:
    """Envelopes queued at ``node`` for ``hop`` (addressed to ``toward`` or below it, if given)."""
    sql = (
        "SELECT COUNT(*) FROM outbox o JOIN envelopes v ON v.id = o.envelope_id "
        "WHERE o.hop = ? AND substr(v.dest, 1, length(?)) = ?"
    )
    return int(net.query(node, sql, (hop, toward, toward))[0][0])


def test_what_comes_down_for_a_moved_child_goes_back_up() -> None:
    town, village = NODES[T].code, NODES[V].code
    # Not a child (yet): held until one enrolls.
    assert next_hop(town, village, [], from_parent=True) == Hop("hold")
    # A child that moved away: up, for the parent to route down the new branch.
    assert next_hop(town, village, [], from_parent=True, moved=[village]) == Hop("up")
    assert next_hop(town, village, [village], from_parent=True, moved=[]) == Hop("down", village)


def test_a_moved_child_is_never_stale() -> None:
    now = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    rows = [
        {"code": NODES[V].code, "last_sync_at": "2026-01-01T00:00:00+08:00", "moved_to": NODES[D].code},
        {"code": NODES[V2].code, "last_sync_at": "2026-01-01T00:00:00+08:00", "moved_to": None},
    ]
    moved, silent = child_statuses(rows, now)
    assert moved.moved and not moved.stale and moved.listing()["moved_to"] == NODES[D].code
    assert silent.stale and not silent.moved and silent.listing()["moved"] is False
    assert "moved" not in silent.as_dict()  # reports list current children only, as before


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Network]:
    with network_at(tmp_path / "net") as network:
        network.build()
        yield network


def test_a_village_moved_to_its_district_and_back_loses_nothing(net: Network, tmp_path: Path) -> None:
    village, district, town = NODES[V].code, NODES[D].code, NODES[T].code
    apps: list[Filing] = []

    # -- before the first move: work under way through the town ----------------------------
    a1, a2, a3, a4, a7 = (file(net, item, n) for n, item in enumerate(
        ("MZ001", "SB001", "MZ001", "SB001", "GJ001"), start=1))  # fmt: skip
    apps += [a1, a2, a3, a4, a7]
    net.sync_all(V, T, D, C)  # filings up; receipts start down (the district's stop at the district)
    net.sync(D)  # the city's receipt for a7 waits at the district for the town
    net.run(T, "review", a1.tracking, "accept").ok()
    before_move = tmp_path / "town-for-village.bundle"
    made = net.run(T, "bundle", "export", str(before_move), "--for", village, "--json").ok().json()
    assert made["envelopes"] >= 1  # at least a1's acceptance
    net.sync(T)  # the district's receipts for a2 and a4 now wait at the town, for the village
    net.run(D, "review", a2.tracking, "accept").ok()  # waits at the district, for the town
    net.run(C, "review", a7.tracking, "accept").ok()
    net.sync(D)  # the city's acceptance of a7 waits at the district, for the town
    a5, a6 = file(net, "MZ001", 5), file(net, "SB001", 6)  # queued at the village
    apps += [a5, a6]
    assert queued_for(net, T, village) >= 3
    assert queued_for(net, D, town, village) >= 2

    up_stick = tmp_path / "village-for-town.bundle"
    net.run(V, "bundle", "export", str(up_stick), "--json").ok()  # carries a5 and a6

    # -- the village enrolls at its district --------------------------------------------------
    net.enroll(V, D)
    # What the district had queued toward the village for the town goes to the village now.
    assert queued_for(net, D, town, village) == 0 and queued_for(net, D, village) >= 2
    net.run(T, "review", a3.tracking, "accept").ok()  # the town does not know yet
    net.run(D, "review", a4.tracking, "supplement", "--missing", "户口簿").ok()
    # A bundle the town made before the move is still taken in.
    taken = net.run(V, "bundle", "import", str(before_move), "--json").ok().json()
    assert taken["from"] == town and taken["stored"] >= 1 and taken["refused"] == 0
    net.sync(V)  # a5 up through the district to the town, a6 to the district
    net.sync(T)  # the town learns of the move and hands up what it held for the village
    assert queued_for(net, T, village) == 0
    moved = children(net, T)[village]
    assert moved["moved"] is True and moved["moved_to"] == district and moved["stale"] is False
    text = net.run(T, "children").ok().stdout
    assert f"{village} moved to {district}" in text
    refused = net.run(T, "bundle", "export", str(tmp_path / "x.bundle"), "--for", village)
    assert refused.returncode == 1 and district in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert not (tmp_path / "x.bundle").exists()
    assert children(net, D)[village]["moved"] is False
    # The village's stick from before the move still reaches the town: a5 is
    # here already (through the district), a6 goes on up to its office.
    late = net.run(T, "bundle", "import", str(up_stick), "--json").ok().json()
    assert (late["from"], late["stored"], late["duplicates"], late["refused"]) == (village, 1, 1, 0)
    net.sync_all(T, D, V)
    for app in apps:
        assert status(net, V, app.tracking) == status(net, app.office, app.tracking), app

    # -- work under way again, then back to the town ----------------------------------------
    a8, a9 = file(net, "MZ001", 8), file(net, "SB001", 9)  # queued at the village
    apps += [a8, a9]
    net.run(T, "review", a5.tracking, "accept").ok()  # goes up from the town: the village moved
    net.run(D, "review", a2.tracking, "complete").ok()  # waits at the district for the village
    net.run(D, "review", a6.tracking, "reject", "--note", "材料不符").ok()
    assert queued_for(net, T, "^", village) == 1
    net.enroll(V, T)
    # What the town had sent up for the village goes straight to it now.
    assert queued_for(net, T, "^", village) == 0 and queued_for(net, T, village) == 1
    assert children(net, T)[village]["moved"] is False
    net.sync(V)
    net.sync(T)  # the district learns the village moved back and hands on what it held
    assert queued_for(net, D, village) == 0
    back = children(net, D)[village]
    assert back["moved"] is True and back["moved_to"] == town
    for _round in range(2):
        net.sync_all(V, V2, T, D, C)

    # -- the end state ------------------------------------------------------------------------
    for app in apps:
        office = app.office
        filed = net.query(
            office, "SELECT COUNT(*) FROM events WHERE tracking = ? AND kind = 'filed'", (app.tracking,)
        )[0][0]
        assert filed == 1, (app, office)
        holders = [
            name
            for name in (C, D, T)
            if net.query(name, "SELECT 1 FROM applications WHERE tracking = ? AND office = ?",
                         (app.tracking, NODES[name].code))
        ]  # fmt: skip
        assert holders == [office], app
        assert status(net, V, app.tracking) == status(net, office, app.tracking), app
    assert status(net, V, a2.tracking) == "completed"
    assert status(net, V, a4.tracking) == "needs_supplement"
    assert status(net, V, a5.tracking) == "accepted"
    assert status(net, V, a6.tracking) == "rejected"
    assert status(net, V, a7.tracking) == "accepted"
    assert {status(net, V, a.tracking) for a in (a8, a9)} == {"received"}
    for name in ALL:
        for table in ("outbox", "quarantine", "set_aside", "conflicts"):
            assert net.count(name, table) == 0, (name, table, net.query(name, f"SELECT * FROM {table}"))
        assert net.query(name, "PRAGMA integrity_check")[0][0] == "ok", name
    # Each decision reached the village exactly once, however many ways it came.
    for app in apps:
        events = net.query(V, "SELECT kind, COUNT(*) FROM events WHERE tracking = ? GROUP BY kind",
                           (app.tracking,))  # fmt: skip
        assert all(n == 1 for _kind, n in events), (app, [tuple(e) for e in events])
