"""A division code that changes (a 镇 becomes a 街道 with a new code): the
city publishes old -> new in its manifest; the pure rules
(node/codechanges.py, routing, the authorisation table) first, then a real
network of ``daiban serve`` processes (tests/sync_net.py) where the town
南定镇 370303101 becomes 南定街道 370303103 with applications open for it
(filed, some accepted) and filings in flight: the new office decides and
completes them, statuses reach the village, new filings go to the new
office, the old node's village moves to the new node, and at the end every
application is at its office exactly once, nothing waits in any queue,
nothing is quarantined but the attacks', and every database passes
``PRAGMA integrity_check``. Beside it the attacks: a non-city node
publishing a code change, a change that makes a cycle or collides, and the
old office deciding after the change."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import ric

from daiban.errors import DaibanError
from daiban.node import authority, codechanges
from daiban.node.catalog import bundled_path, read_document
from daiban.node.codechanges import Change
from daiban.node.routing import Hop, next_hop
from daiban.trust import certs as certs_mod
from daiban.trust.codes import resolve
from tests.attacker import Attacker
from tests.sync_net import NODES, Network, network_at

C, D, T, V = "city", "district", "town", "village"
S = "street"  # 南定街道, the town's new node
V3 = "village3"  # a new PC for 370303101203, enrolled at the new office only
OTHER, OTHER_CODE = "othertown", "370303102"  # another town, enrolled: its code is in use
OLD, NEW = NODES[T].code, "370303103"
NEW_NAME = "南定街道"
AT = "2026-12-01T09:00:00+08:00"
CHANGE = Change(OLD, NEW, NEW_NAME, "2026-12-01", AT)
BEFORE, AFTER = "2026-11-30T10:00:00+08:00", "2026-12-01T10:00:00+08:00"


# -- the pure rules ----------------------------------------------------------------------


def test_a_village_under_the_old_code_sits_below_the_new_one() -> None:
    village = NODES[V].code
    assert codechanges.resolve(village, (CHANGE,)) == NEW + village[9:]
    assert codechanges.resolve(OLD, (CHANGE,)) == NEW
    assert codechanges.resolve("370303102201", (CHANGE,)) == "370303102201"  # another town's
    assert codechanges.office_for(village, "town", (CHANGE,)) == NEW
    assert codechanges.office_for(village, "district", (CHANGE,)) == "370303"
    assert codechanges.within(village, NEW, (CHANGE,)) and codechanges.within(village, OLD, (CHANGE,))
    assert codechanges.addressed_here(OLD, NEW, (CHANGE,)) and codechanges.addressed_here(NEW, NEW, (CHANGE,))
    assert not codechanges.addressed_here(OLD, OLD, (CHANGE,))  # the old node is no office any more
    assert codechanges.succeeds(NEW, OLD, (CHANGE,)) and not codechanges.succeeds(OLD, NEW, (CHANGE,))
    # The trust layer's name constraint: the new town may certify the old town's village.
    assert certs_mod.extends(village, NEW, {OLD: NEW}) and not certs_mod.extends(village, NEW)
    assert not certs_mod.extends("370303102201", NEW, {OLD: NEW})


def test_the_old_office_decides_only_before_the_change() -> None:
    changes = (CHANGE,)
    assert codechanges.may_decide(OLD, OLD, BEFORE, changes)
    assert codechanges.may_decide(OLD, NEW, BEFORE, changes)  # its history, at the new office
    assert not codechanges.may_decide(OLD, OLD, AFTER, changes)
    assert not codechanges.may_decide(OLD, NEW, AFTER, changes)
    assert not codechanges.may_decide(OLD, NEW, None, changes)  # a time that cannot be told: refused
    assert codechanges.may_decide(NEW, OLD, AFTER, changes)
    assert not codechanges.may_decide("370303102", OLD, AFTER, changes)
    assert codechanges.may_decide(OLD, OLD, AFTER, ())  # no change: as before


def test_routing_takes_the_new_office_for_the_old_code() -> None:
    village, district = NODES[V].code, NODES[D].code
    changes = (CHANGE,)
    # At the district: the old town is passed over, the new one takes its area.
    assert next_hop(district, OLD, [OLD, NEW], changes=changes) == Hop("down", NEW)
    assert next_hop(district, village, [OLD, NEW], changes=changes) == Hop("down", NEW)
    assert next_hop(district, village, [OLD], from_parent=True, changes=changes) == Hop("hold")
    # At the new town: the old code is kept here; a village finds itself by its own code.
    assert next_hop(NEW, OLD, [village], changes=changes) == Hop("keep")
    assert next_hop(NEW, village, [village], changes=changes) == Hop("down", village)
    assert next_hop(NEW, village, [], from_parent=True, changes=changes) == Hop("hold")
    # A village of the new town whose code collides with the old one's, once resolved, is never taken.
    assert next_hop(NEW, village, [NEW + "201"], from_parent=True, changes=changes) == Hop("hold")
    # At the old town: nothing is its own any more, but its villages still find it.
    assert next_hop(OLD, OLD, [village], changes=changes) == Hop("up")
    assert next_hop(OLD, village, [village], changes=changes) == Hop("down", village)
    assert next_hop(OLD, OLD + "202", [], from_parent=True, changes=changes) == Hop("up")
    # At the city: down the district's branch, as before.
    assert next_hop("3703", OLD, [district], changes=changes) == Hop("down", district)


def test_the_table_refuses_the_old_office_after_the_change() -> None:
    village = NODES[V].code
    tracking = village + "00000018"  # any number: the filer is known below
    known = authority.Known(root="3703", filer=village, office=NEW, status="received", changes=(CHANGE,))

    def decision(origin: str, at: str) -> authority.Refusal | None:
        claim = authority.Claim("accepted", origin, village, tracking, {}, at=at)
        return authority._from_office(claim, known)

    assert decision(OLD, BEFORE) is None and decision(NEW, AFTER) is None
    refused = decision(OLD, AFTER)
    assert refused is not None and refused.code == "not_office"
    # A filing for a resident under the old code, to the old office or the new one.
    body = {"region": village, "office": OLD, "level": "town", "item": "MZ001"}
    for office, to in ((OLD, OLD), (NEW, NEW), (NEW, OLD)):
        claim = authority.Claim("filed", village, to, tracking, {**body, "office": office}, at=AFTER)
        assert authority._items_office(claim, authority.Known(changes=(CHANGE,))) is None
    stray = authority.Claim("filed", village, "370303102", tracking, {**body, "office": "370303102"})
    refusal = authority._items_office(stray, authority.Known(changes=(CHANGE,)))
    assert refusal is not None and refusal.code == "wrong_office"


TOWNS = st.integers(1, 999).map(lambda n: f"370303{n:03d}")


@given(
    pairs=st.lists(st.tuples(TOWNS, TOWNS), max_size=6),
    old=TOWNS,
    new=TOWNS,
    village=st.integers(1, 999),
)
def test_published_changes_never_make_a_cycle(
    pairs: list[tuple[str, str]], old: str, new: str, village: int
) -> None:
    """Whatever changes are asked for, the ones check_change lets through
    resolve every code to a code no change takes away, and resolving twice
    changes nothing more (no cycle, no chain left half-way)."""
    changes: list[Change] = []
    in_use = {OLD}
    for a, b in [*pairs, (old, new)]:
        try:
            a, b, name = codechanges.check_change(changes, a, b, "新名", in_use | {a})
        except DaibanError as exc:
            assert str(exc) and "\n" not in str(exc)
            continue
        changes.append(Change(a, b, name, "2026-12-01", AT))
    olds = {c.old for c in changes}
    for code in [old, new, f"{old}{village:03d}", *olds]:
        once = codechanges.resolve(code, changes)
        assert codechanges.resolve(once, changes) == once
        assert once[:9] not in olds
    assert resolve(OLD, {}) == OLD


@pytest.mark.parametrize(
    ("old", "new", "in_use", "code"),
    [
        (OLD, OLD, {OLD}, "bad_change"),
        (OLD, "370303", {OLD}, "bad_change"),  # not the same level
        (OLD, "370304101", {OLD}, "bad_change"),  # another parent
        ("370304", "370305", {"370303"}, "unknown_code"),  # not known here
        (OLD, "370303102", {OLD, "370303102"}, "code_in_use"),
        (OLD, "370303102", {OLD, "370303102201"}, "code_in_use"),  # a village below it is enrolled
        (NODES[V].code, "370303101202", {NODES[V].code}, "bad_change"),  # a village's code
        (OLD, "3703031x1", {OLD}, "bad_code"),
    ],
)
def test_a_bad_change_is_one_sentence(old: str, new: str, in_use: set[str], code: str) -> None:
    with pytest.raises(DaibanError) as caught:
        codechanges.check_change((), old, new, "新名", in_use)
    assert caught.value.code == code and "\n" not in str(caught.value)


def test_a_cycle_and_a_second_change_of_one_code_are_refused() -> None:
    with pytest.raises(DaibanError) as cycle:
        codechanges.check_change((CHANGE,), NEW, OLD, "南定镇", {NEW})
    assert cycle.value.code == "change_cycle"
    with pytest.raises(DaibanError) as again:
        codechanges.check_change((CHANGE,), OLD, "370303104", "南定镇", {OLD, NEW})
    assert again.value.code == "bad_change"
    # Towns merge: another old code may change to the same new one.
    assert codechanges.check_change((CHANGE,), "370303102", NEW, NEW_NAME, {"370303102", NEW})


# -- on a real network -------------------------------------------------------------------


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Network]:
    with network_at(tmp_path / "net") as network:
        network.build((C, D, T, V))
        yield network


def id_number(n: int) -> str:
    body = f"370303197805{10 + n:02d}{200 + n:03d}"
    return body + ric.calc_check_digit(body + "0")


FIELDS = {"MZ001": ("family_size=3", "monthly_income=420"), "SB001": ("contribution_grade=500",)}


def file(net: Network, n: int, office: str, item: str = "MZ001") -> str:
    name = "改码" + "一二三四五六七八九十"[n - 1]  # names hold no digits
    args = ["apply", "--item", item, "--name", name, "--id-number", id_number(n)]
    args += ["--phone", f"139063{n:05d}", "--json"]
    for field in FIELDS[item]:
        args += ["--field", field]
    filed = net.run(V, *args).ok().json()
    assert filed["office"] == office, filed
    return str(filed["tracking"])


def status(net: Network, node: str, tracking: str) -> str:
    return str(net.run(node, "show", tracking, "--json").ok().json()["status"])


def refused_line(net: Network, node: str, *args: str) -> str:
    """A command that must fail with one clear line and exit 1."""
    result = net.run(node, *args)
    assert result.returncode == 1, (args, result.stdout, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr


def enroll_at(net: Network, home: str, code: str, name: str, parent: str) -> dict[str, Any]:
    issued = net.run(parent, "enroll-code", "--code", code, "--name", name, "--json").ok().json()
    answer: dict[str, Any] = net.run(home, "enroll", net.url(parent), issued["code"], "--json").ok().json()
    return answer


def manifest_version(net: Network, node: str) -> int:
    rows = net.query(node, "SELECT value FROM node WHERE key = 'manifest_version'")
    return int(rows[0][0]) if rows else 0


def test_a_town_code_changes_with_work_open(net: Network) -> None:
    village, district = NODES[V].code, NODES[D].code

    # -- work under way at the old town -------------------------------------------------------
    a1, a2, a3, a4 = (file(net, n, OLD) for n in range(1, 5))
    net.sync_all(V, T)  # filed at the old town, received
    net.run(T, "review", a1, "accept").ok()
    net.run(T, "review", a2, "accept").ok()
    net.sync(V)  # the receipts and acceptances reach the village
    net.run(T, "review", a3, "accept").ok()  # waits at the old town for the village
    a5, a6 = file(net, 5, OLD), file(net, 6, OLD)  # in flight: queued at the village
    apps = [a1, a2, a3, a4, a5, a6]

    # -- the city publishes the change; the bad ones first -------------------------------------
    # A town already enrolled, 370303102: its code is in use.
    net.run(OTHER, "init", "--role", "town", "--code", OTHER_CODE, "--name", "湖田镇").ok()
    enroll_at(net, OTHER, OTHER_CODE, "湖田镇", D)
    net.sync(D)  # the district announces it to the city
    before = manifest_version(net, C)
    assert "city" in refused_line(net, D, "divisions", "change", OLD, NEW, "--name", NEW_NAME)
    refused_line(net, C, "divisions", "change", OLD, OLD, "--name", NEW_NAME)
    refused_line(net, C, "divisions", "change", OLD, NEW, "--name", "  ")
    refused_line(net, C, "divisions", "change", OLD, NEW, "--name", NEW_NAME, "--effective", "2026-02-30")
    refused_line(net, C, "divisions", "change", OLD, district, "--name", NEW_NAME)  # not one level
    assert OTHER_CODE in refused_line(net, C, "divisions", "change", OLD, OTHER_CODE, "--name", NEW_NAME)
    assert manifest_version(net, C) == before  # nothing stored
    published = net.run(C, "divisions", "change", OLD, NEW, "--name", NEW_NAME, "--json").ok().json()
    assert published == {"old": OLD, "new": NEW, "version": before + 1}
    assert "cycle" in refused_line(net, C, "divisions", "change", NEW, OLD, "--name", "南定镇")
    assert NEW in refused_line(net, C, "divisions", "change", OLD, "370303104", "--name", NEW_NAME)
    assert manifest_version(net, C) == before + 1

    # -- the new office enrolls; the manifest goes down ----------------------------------------
    net.sync(D)
    net.run(S, "init", "--role", "town", "--code", NEW, "--name", NEW_NAME).ok()
    net.start(S)
    enroll_at(net, S, NEW, NEW_NAME, D)
    listed = net.run(S, "divisions", "list", "--json").ok().json()
    assert [(c["old"], c["new"], c["name"]) for c in listed] == [(OLD, NEW, NEW_NAME)]

    net.sync(T)  # the old town learns: its applications are handed over, up
    # The old office may no longer decide: refused here, in one line, and at every hop.
    assert NEW in refused_line(net, T, "review", a4, "accept")
    attacker = Attacker(net, T)
    body = json.loads(
        net.query(T, "SELECT body FROM events WHERE tracking = ? AND kind = 'accepted'", (a1,))[0][0]
    )
    forged = attacker.envelope("accepted", to=village, tracking=a4, body=body, at=_now())
    pushed = attacker.push([forged.raw])
    pushed.assert_refused(forged.id, {"not_office"})

    net.sync(V)  # a5 and a6 go to the old town, which hands them up; the village learns
    net.sync(T)
    net.sync(D)
    net.sync(S)  # the new office takes in the history and the filings in flight

    # -- the new office decides ---------------------------------------------------------------
    for tracking in (a1, a2):
        assert status(net, S, tracking) == "accepted"
        net.run(S, "review", tracking, "complete").ok()
    assert status(net, S, a3) == "accepted"  # the old town's acceptance, before the change
    net.run(S, "review", a3, "complete").ok()
    assert status(net, S, a4) == "received"
    net.run(S, "review", a4, "reject", "--note", "材料不符").ok()
    for tracking in (a5, a6):
        assert status(net, S, tracking) == "received"
        net.run(S, "review", tracking, "accept").ok()

    # -- the old node's village moves to the new node; the old node retires --------------------
    net.sync(V)  # the last of what the old town held for it
    enroll_at(net, V, village, NODES[V].name, S)
    # A new PC for another village under the old code enrolls at the new office
    # straight away: the city's manifest in the answer vouches for its code.
    net.run(V3, "init", "--role", "village", "--code", OLD + "203", "--name", "中张村").ok()
    enroll_at(net, V3, OLD + "203", "中张村", S)
    assert net.run(V3, "divisions", "list", "--json").ok().json()[0]["new"] == NEW
    a7 = file(net, 7, NEW)  # new filings go to the new office
    a8 = file(net, 8, district, "SB001")  # and up through it, for the district
    apps.append(a7)
    net.stop(T)
    for _round in range(2):
        net.sync_all(V, V3, S, OTHER, D, C)
    net.sync_all(V, V3, S, OTHER)

    # -- the end state --------------------------------------------------------------------------
    assert net.run(V, "status", "--json").ok().json()["parent"]["code"] == NEW
    expected = {a1: "completed", a2: "completed", a3: "completed", a4: "rejected"}
    expected |= {a5: "accepted", a6: "accepted", a7: "received"}
    for tracking in apps:
        filed = net.query(S, "SELECT COUNT(*) FROM events WHERE tracking = ? AND kind = 'filed'", (tracking,))
        assert filed[0][0] == 1, tracking
        rows = net.query(S, "SELECT office FROM applications WHERE tracking = ?", (tracking,))
        assert [r[0] for r in rows] == [NEW], tracking
        for name in (C, D):
            assert not net.query(name, "SELECT 1 FROM applications WHERE tracking = ?", (tracking,))
        receipts = net.query(
            S, "SELECT COUNT(*) FROM events WHERE tracking = ? AND kind = 'received'", (tracking,)
        )
        assert receipts[0][0] == 1, tracking  # one receipt: the old town's or the new one's
        assert status(net, V, tracking) == status(net, S, tracking) == expected[tracking], tracking
    # The district's item went up through the new office (the village's code is below it now).
    assert net.query(D, "SELECT office FROM applications WHERE tracking = ?", (a8,))[0][0] == district
    assert status(net, V, a8) == status(net, D, a8) == "received"
    # The report at the city counts each application once, under the new office.
    report = net.run(C, "report", "--by", "town", "--json").ok().json()
    groups = {g["key"]: g["filed"] for g in report["groups"]}
    assert groups == {NEW: len(apps) + 1} and report["total"]["filed"] == len(apps) + 1, report
    for name in (C, D, S, V, V3, T, OTHER):
        waiting = net.query(name, "SELECT COUNT(*) FROM envelopes WHERE effect IN ('queued', 'pending')")
        assert waiting[0][0] == 0, name
        assert net.count(name, "outbox") == 0, (name, net.query(name, "SELECT * FROM outbox"))
        assert net.query(name, "PRAGMA integrity_check")[0][0] == "ok", name
    for name in (C, S, V, V3, T, OTHER):
        assert net.count(name, "quarantine") == 0, (name, net.query(name, "SELECT * FROM quarantine"))
    quarantined = [r[0] for r in net.query(D, "SELECT envelope_id FROM quarantine")]
    assert set(quarantined) <= {forged.id}


def test_a_manifest_signed_by_another_node_is_refused(net: Network) -> None:
    """Only the city root publishes a change of code: the district signs one
    with its own certified key and pushes it to the city; the town does the
    same toward the district. Both refused as not_root; nothing changes."""
    body = {
        "version": manifest_version(net, C) + 1,
        "catalog": read_document(bundled_path()),
        "revoked": [],
        "offices": [],
        "divisions": [CHANGE.as_dict()],
    }
    for name in (D, T):
        attacker = Attacker(net, name)
        forged = attacker.envelope("manifest", to="*", tracking=None, body=body, at=_now())
        attacker.push([forged.raw]).assert_refused(forged.id, {"not_root", "invalid_body"})
    for name in (C, D, T, V):
        assert net.run(name, "divisions", "list", "--json").ok().json() == []
        assert net.query(name, "PRAGMA integrity_check")[0][0] == "ok"


def _now() -> str:
    return (
        dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=8))).isoformat(timespec="seconds")
    )
