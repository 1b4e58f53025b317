"""Receipts in bulk (node/receipts.py) on a real network of ``daiban serve``
processes (tests/sync_net.py): an office acknowledges a child's filings with
one signed `receipts` envelope per filing node and batch instead of one
`received` envelope each, and the filer folds each receipt as its own
`received` event — exactly once, every status back, every kept filing let
go, through a relay and straight to a child. The same envelope again is a
duplicate and changes nothing. Beside it, the attacker's tests: receipts from
a node that is not an office, for an application another office handles, or
addressed to a node that did not file, are refused at the first hop and
quarantined there, and nothing changes anywhere.

Across a restore and through the fault proxy, receipts in bulk are what
tests/test_restore_custody.py and tests/test_sync_faults.py drive (both check
that the office sent no lone `received`)."""

from __future__ import annotations

import contextlib
import csv
import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from daiban.node import receipts
from daiban.node.applications import Node
from daiban.node.home import open_node
from tests.attacker import V2, Attacker, C, D, Resident, T, V, assert_quarantined, file_app, settle
from tests.fault_net import resident_id
from tests.sync_net import NODES, Network, network_at

TOWN_ITEM_ROWS = 620  # more than one envelope holds (receipts.MAX_RECEIPTS)
DISTRICT_ITEM_ROWS = 30


def ledger(path: Path, item: str, n: int, start: int) -> Path:
    """A CSV ledger of ``n`` applications for distinct residents."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        if item == "MZ001":
            out.writerow(["item", "name", "id_number", "phone", "family_size", "monthly_income"])
            rows = [
                ["MZ001", "王秀兰", resident_id(i), f"138{i:08d}", 3, 420] for i in range(start, start + n)
            ]
        else:
            out.writerow(["item", "name", "id_number", "phone", "contribution_grade"])
            rows = [["SB001", "李建国", resident_id(i), f"139{i:08d}", 500] for i in range(start, start + n)]
        out.writerows(rows)
    return path


def file_ledger(net: Network, name: str, path: Path) -> list[str]:
    out = net.run(name, "apply", "--from", str(path), "--json").ok().json()
    assert out["ok"] is True, out
    return [a["tracking"] for a in out["applications"]]


def envelopes_of(net: Network, name: str, origin: str, kind: str) -> list[dict[str, object]]:
    rows = net.query(
        name, "SELECT raw FROM envelopes WHERE origin = ? AND kind = ? ORDER BY n", (origin, kind)
    )
    return [json.loads(r[0]) for r in rows]


def receipt_events(net: Network, name: str) -> dict[str, tuple[str, str, int]]:
    """{tracking: (event id, origin, seq)} of the `received` events held at a node."""
    rows = net.query(name, "SELECT tracking, id, origin, seq FROM events WHERE kind = 'received'")
    counted = Counter(r[0] for r in rows)
    assert all(n == 1 for n in counted.values()), [t for t, n in counted.items() if n > 1]
    return {r[0]: (r[1], r[2], int(r[3])) for r in rows}


def assert_nothing_waits(net: Network, *names: str) -> None:
    for name in names:
        assert net.count(name, "outbox") == 0, name
        assert net.count(name, "kept") == 0, name
        assert net.count(name, "quarantine") == 0, name
        assert net.count(name, "receipts_waiting") == 0, name
        waiting = net.query(name, "SELECT COUNT(*) FROM envelopes WHERE effect IN ('pending', 'queued')")
        assert waiting[0][0] == 0, name
        with contextlib.closing(sqlite3.connect(net.home(name) / "daiban.db")) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok", name


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with network_at(tmp_path_factory.mktemp("bulk") / "net") as network:
        network.build()
        yield network


@pytest.fixture(scope="module")
def filed(net: Network, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """The village (under the town) files 620 town-level and 30 district-level
    applications from ledgers, village2 (enrolled at the district) three
    district-level ones; everything synced up and back down."""
    folder = tmp_path_factory.mktemp("ledgers")
    town_apps = file_ledger(net, V, ledger(folder / "镇级.csv", "MZ001", TOWN_ITEM_ROWS, 0))
    district_apps = file_ledger(net, V, ledger(folder / "区级.csv", "SB001", DISTRICT_ITEM_ROWS, 1000))
    direct = [
        file_app(
            net,
            V2,
            "SB001",
            Resident(f"赵{'一二三'[i]}", "19700101", f"{500 + i:03d}", f"1390533{i:04d}"),
            office=NODES[D].code,
            fields={"contribution_grade": "500"},
        )
        for i in range(3)
    ]
    settle(net)
    settle(net)
    return {"town": town_apps, "district": district_apps, "direct": direct}


def test_offices_acknowledge_in_bulk_and_every_receipt_arrives_once(
    net: Network, filed: dict[str, list[str]]
) -> None:
    town, district = NODES[T].code, NODES[D].code
    village, village2 = NODES[V].code, NODES[V2].code
    # No lone receipt left either office; a few `receipts` envelopes did.
    assert envelopes_of(net, T, town, "received") == envelopes_of(net, D, district, "received") == []
    from_town = envelopes_of(net, V, town, "receipts")
    from_district = envelopes_of(net, V, district, "receipts")
    to_village2 = envelopes_of(net, V2, district, "receipts")
    assert len(from_town) >= 2 and all(e["to"] == village for e in from_town)
    assert all(len(e["body"]["receipts"]) <= receipts.MAX_RECEIPTS for e in from_town)  # type: ignore[index]
    assert 1 <= len(from_district) < DISTRICT_ITEM_ROWS and all(e["to"] == village for e in from_district)
    assert to_village2 and all(e["to"] == village2 for e in to_village2)
    # The district's receipts for the village went down through the town.
    assert net.query(T, "SELECT COUNT(*) FROM envelopes WHERE origin = ? AND kind = 'receipts'", (district,))

    # Every application received once at the village, by the event its office recorded.
    at_village = receipt_events(net, V)
    assert set(at_village) == set(filed["town"]) | set(filed["district"])
    at_village2 = receipt_events(net, V2)
    assert set(at_village2) == set(filed["direct"])
    for office_name, numbers, held in (
        (T, filed["town"], at_village),
        (D, filed["district"], at_village),
        (D, filed["direct"], at_village2),
    ):
        made = receipt_events(net, office_name)
        for number in numbers:
            assert held[number] == made[number], number
    statuses = {r["tracking"]: r["status"] for r in net.run(V, "list", "--json").ok().json()}
    assert set(statuses.values()) == {"received"} and len(statuses) == TOWN_ITEM_ROWS + DISTRICT_ITEM_ROWS
    history = net.run(V, "show", filed["district"][0], "--json").ok().json()["history"]
    assert [e["kind"] for e in history] == ["filed", "received"]
    assert history[1]["origin"] == district
    # Kept filings let go at the village and at the town (a relay of the district's).
    assert_nothing_waits(net, C, D, T, V, V2)

    # Decisions after the receipts still come back one by one.
    net.run(T, "review", filed["town"][0], "accept").ok()
    net.run(D, "review", filed["direct"][0], "accept").ok()
    settle(net)
    assert net.run(V, "show", filed["town"][0], "--json").ok().json()["status"] == "accepted"
    assert net.run(V2, "show", filed["direct"][0], "--json").ok().json()["status"] == "accepted"


def test_the_same_receipts_again_change_nothing(net: Network, filed: dict[str, list[str]]) -> None:
    """Delivered again (a bundle, a replayed pull): a duplicate by id, and no
    receipt is folded twice."""
    raws = [r[0] for r in net.query(V, "SELECT raw FROM envelopes WHERE kind = 'receipts' ORDER BY n")]
    before = receipt_events(net, V)
    node: Node = open_node(net.home(V))
    try:
        from daiban.node import journal

        stored, refused = journal.receive(node, raws, sender=NODES[T].code, direction="down")
    finally:
        node.close()
    assert not refused and {v.status for v in stored} == {"duplicate"}
    assert receipt_events(net, V) == before


# -- the attacker's tests -------------------------------------------------------------------


def _body(office: str, *trackings: str, seq: int = 10**9) -> dict[str, object]:
    from daiban.trust.crypto import random_id

    return {
        "office": office,
        "receipts": [{"id": random_id(), "seq": seq + i, "tracking": t} for i, t in enumerate(trackings)],
    }


@pytest.mark.parametrize(
    ("name", "to", "which", "codes"),
    [
        # A village signs receipts with its own key: not an office.
        pytest.param(V2, V, "district", {"not_office"}, id="a-village-receipts"),
        # The town receipts the district's applications: the district holds
        # them and knows their office.
        pytest.param(T, V, "district", {"not_office"}, id="town-receipts-the-districts-applications"),
        # Receipts for the village's applications sent to village2.
        pytest.param(T, V2, "town", {"wrong_addressee"}, id="receipts-to-a-node-that-did-not-file"),
    ],
)
def test_forged_receipts_are_refused_at_the_first_hop(
    net: Network, filed: dict[str, list[str]], name: str, to: str, which: str, codes: set[str]
) -> None:
    attacker = Attacker(net, name)
    numbers = filed[which][-3:]
    statuses = {r["tracking"]: r["status"] for r in net.run(V, "list", "--json").ok().json()}
    env = attacker.envelope("receipts", to=NODES[to].code, tracking=None, body=_body(attacker.code, *numbers))
    pushed = attacker.push([env.raw])
    verdict = pushed.assert_refused(env.id, codes)
    assert_quarantined(
        net, attacker.parent, env.id, code=verdict["code"], origin=attacker.code, sender=attacker.code
    )
    settle(net)
    after = {r["tracking"]: r["status"] for r in net.run(V, "list", "--json").ok().json()}
    assert after == statuses
    for node in (V, V2):
        ids = {r[0] for r in net.query(node, "SELECT id FROM envelopes")}
        assert env.id not in ids
