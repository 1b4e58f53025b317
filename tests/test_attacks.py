"""Adversarial tests on a real network of ``daiban serve`` processes (issue 9):
an ordinary enrolled node, using its own legitimately certified key, records
what it may not — a decision on another office's application, a withdrawal,
supplement or evaluation of another node's application, a filing under
another node's tracking number or for a resident outside its area, a
revocation of the root or of a node outside its subtree — and pushes it to
its real parent exactly as a compromised village PC would (tests/attacker.py).

Each attack must be refused, with its reason, at that first hop (the push
answer's verdict for the envelope), must show in that hop's quarantine
(``daiban quarantine list --json``: code, origin, sender), and must change
nothing at any node: every node's ``list --json``, the detail of every
genuine application where it is held, and the revocations each node knows
are the same after the whole tree has synced. The genuine filing under the
squatted tracking number reaches its office with the genuine applicant, and
after the revocation attempts a newly enrolled village still syncs.

One network serves the module; every genuine application is its own target,
so one attack cannot mask another. The revocation attempts come last: were
one to succeed, it would break the tree for whatever followed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from daiban.node import tracking
from tests.attacker import (
    ALL,
    AT,
    V2,
    Attacker,
    C,
    D,
    Resident,
    T,
    V,
    assert_quarantined,
    assert_unchanged,
    file_app,
    settle,
    show,
    snapshot,
)
from tests.sync_net import NODES, Network, network_at

MZ_FIELDS = {"family_size": "3", "monthly_income": "420"}
SB_FIELDS = {"contribution_grade": "500"}

# One resident per genuine application: each attack has its own target.
TARGETS: dict[str, tuple[str, Resident]] = {
    "accept_me": ("MZ001", Resident("赵春燕", "19620415", "021", "13905331001")),
    "withdraw_me": ("MZ001", Resident("钱建国", "19700823", "033", "13905331002")),
    "supplement_me": ("MZ001", Resident("孙丽娟", "19580101", "046", "13905331003")),
    "complete_me": ("MZ001", Resident("李志强", "19750630", "057", "13905331004")),
    "evaluate_me": ("MZ001", Resident("周文华", "19660909", "068", "13905331005")),
    "district_app": ("SB001", Resident("吴海燕", "19811111", "079", "13905331006")),
}
SQUATTER = Resident("郑冒名", "19690305", "081", "13905331007")
GENUINE = Resident("冯玉梅", "19720214", "092", "13905331008")
OUTSIDER = Resident("陈外镇", "19800512", "103", "13905331009")
OTHER_TOWN_VILLAGE = "370303102201"  # a village of another town of the district
NEW_VILLAGE = ("370303101203", "新张村")


@dataclass
class Genuine:
    trackings: dict[str, str]
    bodies: dict[str, dict[str, Any]]  # a genuine body of each kind, as its node made it


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with network_at(tmp_path_factory.mktemp("attacks") / "net") as network:
        network.build()
        yield network


@pytest.fixture(scope="module")
def genuine(net: Network) -> Genuine:
    """The genuine state: six applications filed at the village and received
    by their offices; the town accepts one and accepts and completes another;
    everything synced through the whole tree."""
    trackings = {}
    for key, (item, resident) in TARGETS.items():
        office = NODES[D].code if item == "SB001" else NODES[T].code
        fields = SB_FIELDS if item == "SB001" else MZ_FIELDS
        trackings[key] = file_app(net, V, item, resident, office=office, fields=fields)
    settle(net)
    net.run(T, "review", trackings["complete_me"], "accept").ok()
    net.run(T, "review", trackings["evaluate_me"], "accept").ok()
    net.run(T, "review", trackings["evaluate_me"], "complete", "--delivery", "pickup").ok()
    net.run(T, "review", trackings["supplement_me"], "supplement", "--missing", "户口簿").ok()
    settle(net)
    views = {key: show(net, T if key != "district_app" else D, number) for key, number in trackings.items()}
    assert views["accept_me"]["status"] == "received"
    assert views["withdraw_me"]["status"] == "received"
    assert views["supplement_me"]["status"] == "needs_supplement"
    assert views["complete_me"]["status"] == "accepted"
    assert views["evaluate_me"]["status"] == "completed"
    assert views["district_app"]["status"] == "received"
    assert show(net, V, trackings["evaluate_me"])["status"] == "completed"
    bodies: dict[str, dict[str, Any]] = {}
    for event in views["evaluate_me"]["history"]:
        bodies.setdefault(event["kind"], event["body"])
    filed_sb = views["district_app"]["history"][0]
    assert filed_sb["kind"] == "filed"
    bodies["filed_sb"] = filed_sb["body"]
    assert {"filed", "received", "accepted", "completed"} <= set(bodies), bodies
    return Genuine(trackings, bodies)


def attack(
    net: Network,
    genuine: Genuine,
    attacker: Attacker,
    raw_id: str,
    raw: str,
    codes: set[str],
) -> None:
    """Push one envelope; it must be refused with one of ``codes`` at the
    attacker's parent and be in that parent's quarantine; after the whole
    tree has synced, nothing has changed at any node."""
    before = snapshot(net, genuine.trackings.values())
    pushed = attacker.push([raw])
    verdict = pushed.assert_refused(raw_id, codes)
    assert_quarantined(
        net, attacker.parent, raw_id, code=verdict["code"], origin=attacker.code, sender=attacker.code
    )
    settle(net)
    assert_unchanged(before, snapshot(net, genuine.trackings.values()))


# -- decisions, withdrawals, supplements, evaluations by the wrong node ------------------


def _accepted_body(genuine: Genuine) -> dict[str, Any]:
    return dict(genuine.bodies["accepted"])


# (attacker, kind, target, addressee, body, the reason the first hop must give)
WRONG_NODE = {
    "sibling-accepts": (V2, "accepted", "accept_me", V, _accepted_body, {"not_office"}),
    "sibling-completes": (
        V2,
        "completed",
        "complete_me",
        V,
        lambda g: dict(g.bodies["completed"]),
        {"not_office"},
    ),
    "sibling-withdraws": (V2, "withdrawn", "withdraw_me", T, lambda g: {"note": "不办了"}, {"not_filer"}),
    "sibling-corrects": (
        V2,
        "corrected",
        "withdraw_me",
        T,
        lambda g: {"changed": ["phone"], "reason": "电话录错"},
        {"not_filer"},
    ),
    "sibling-evaluates": (
        V2,
        "evaluated",
        "evaluate_me",
        T,
        lambda g: {"score": 1, "comment": "很差"},
        {"not_filer"},
    ),
    "sibling-supplements": (
        V2,
        "supplemented",
        "supplement_me",
        T,
        lambda g: {"materials": ["户口簿"], "note": ""},
        {"not_party"},
    ),
    "town-decides-a-district-application": (T, "accepted", "district_app", V, _accepted_body, {"not_office"}),
}


@pytest.mark.parametrize("case", list(WRONG_NODE))
def test_event_from_a_node_that_may_not_record_it_is_refused(
    net: Network, genuine: Genuine, case: str
) -> None:
    name, kind, target, to, body, codes = WRONG_NODE[case]
    attacker = Attacker(net, name)
    env = attacker.envelope(kind, to=NODES[to].code, tracking=genuine.trackings[target], body=body(genuine))
    attack(net, genuine, attacker, env.id, env.raw, codes)


# -- filings ------------------------------------------------------------------------------


def _filing_body(
    net: Network, filer: str, item_code: str, *, region: str, office: str, resident: Resident
) -> dict[str, Any]:
    """A filing body shaped as the real node makes it
    (daiban.node.applications.filing_body), from the filer's own catalog."""
    item = net.run(filer, "catalog", "show", item_code, "--json").ok().json()
    return {
        "item": item["code"],
        "item_name": item["name"],
        "level": item["level"],
        "region": region,
        "office": office,
        "materials": [m["name"] for m in item["materials"]],
        "owed": [],
        "applicant": resident.masked(),
    }


def _next_counter(net: Network, name: str) -> int:
    rows = net.query(name, "SELECT value FROM node WHERE key = 'tracking_counter'")
    return (int(rows[0][0]) if rows else 0) + 1


def test_filing_under_another_villages_next_tracking_number_is_refused(
    net: Network, genuine: Genuine
) -> None:
    """Tracking numbers are predictable: village2 files first under the
    village's next one. Refused at the district (the number is not
    village2's); the village's genuine filing under that number then reaches
    the town with the genuine applicant, and its receipt comes back."""
    attacker = Attacker(net, V2)
    squatted = tracking.make(NODES[V].code, _next_counter(net, V))
    body = _filing_body(net, V2, "MZ001", region=NODES[V2].code, office=NODES[T].code, resident=SQUATTER)
    env = attacker.envelope(
        "filed",
        to=NODES[T].code,
        tracking=squatted,
        body=body,
        personal=SQUATTER.personal(MZ_FIELDS),
        sealed_to=NODES[T].code,
    )
    attack(net, genuine, attacker, env.id, env.raw, {"foreign_tracking"})

    number = file_app(net, V, "MZ001", GENUINE, office=NODES[T].code, fields=MZ_FIELDS)
    assert number == squatted, "the test's prediction of the village's next number is wrong"
    settle(net)
    at_town = show(net, T, number)
    assert at_town["origin"] == NODES[V].code
    assert at_town["applicant"] == GENUINE.masked()
    assert at_town["personal"]["name"] == GENUINE.name
    assert at_town["personal"]["id_number"] == GENUINE.id_number
    assert [e["origin"] for e in at_town["history"] if e["kind"] == "filed"] == [NODES[V].code]
    at_village = show(net, V, number)
    assert at_village["status"] == "received"
    assert at_village["applicant"] == GENUINE.masked()
    for name in (C, D, V2):  # and nobody else holds an application under that number
        assert net.run(name, "show", number, "--json").returncode == 1, name


def test_filing_for_a_resident_outside_the_filers_area_is_refused(net: Network, genuine: Genuine) -> None:
    """Village2 files a district-level item (特困人员救助供养, which only the
    resident's own area handles: not 全城通办) for a resident of another
    town's village, under its own tracking number, addressed and sealed to
    the right office: refused at the district, the office itself."""
    attacker = Attacker(net, V2)
    assert net.run(V2, "catalog", "show", "MZ002", "--json").ok().json().get("citywide") is False
    number = tracking.make(NODES[V2].code, _next_counter(net, V2) + 100)
    body = _filing_body(net, V2, "MZ002", region=OTHER_TOWN_VILLAGE, office=NODES[D].code, resident=OUTSIDER)
    assert body["level"] == "district", body
    env = attacker.envelope(
        "filed",
        to=NODES[D].code,
        tracking=number,
        body=body,
        personal=OUTSIDER.personal({}),
        sealed_to=NODES[D].code,
    )
    attack(net, genuine, attacker, env.id, env.raw, {"outside_area"})
    assert net.run(D, "show", number, "--json").returncode == 1


# -- revocations (last: one that worked would break the tree) --------------------------------


def _chain(net: Network, holder: str, code: str, position: int = -1) -> list[dict[str, Any]]:
    """A certificate chain as ``holder`` holds it, up to the certificate at
    ``position`` of the chain held for ``code`` (0: the root's)."""
    rows = net.query(holder, "SELECT chain FROM certs WHERE code = ?", (code,))
    assert rows, (holder, code)
    chain: list[dict[str, Any]] = json.loads(rows[0][0])
    return chain[: len(chain) + position + 1] if position < 0 else chain[: position + 1]


V_CODE = NODES[V].code
# (attacker, revoked code, whose certificate: (holder, code, position in the chain), reasons)
REVOCATIONS = {
    "sibling-revokes-the-village": (V2, V_CODE, (T, V_CODE, -1), {"not_ancestor"}),
    "village-revokes-the-root": (V, NODES[C].code, (V, V_CODE, 0), {"root_revocation"}),
    # The exploit of issue 9: a 13-digit code "extends" the village's own,
    # naming the root's serial.
    "village-revokes-a-13-digit-code-with-the-roots-serial": (
        V,
        V_CODE + "1",
        (V, V_CODE, 0),
        {"invalid_body", "serial_mismatch"},
    ),
    "sibling-revokes-a-13-digit-code-below-the-village": (
        V2,
        V_CODE + "1",
        (T, V_CODE, -1),
        {"invalid_body", "not_ancestor", "serial_mismatch"},
    ),
}


@pytest.mark.parametrize("case", list(REVOCATIONS))
def test_revocation_outside_the_revokers_subtree_is_refused(
    net: Network, genuine: Genuine, case: str
) -> None:
    name, code, (holder, cert_code, position), codes = REVOCATIONS[case]
    attacker = Attacker(net, name)
    # The certificate named travels with its chain, as a genuine revocation's does.
    chain = _chain(net, holder, cert_code, position)
    body = {"code": code, "serial": chain[-1]["serial"], "chain": chain}
    env = attacker.envelope("revocation", to="*", tracking=None, body=body, at=AT)
    attack(net, genuine, attacker, env.id, env.raw, codes)


def test_certificates_still_verify_after_the_attacks(net: Network, genuine: Genuine) -> None:
    """After every attack: a village enrolled now, at the town, files for
    the town and for the district (whose hops check its certificate chain up
    to the root) and syncs; both applications reach their offices and the
    receipts come back; the whole tree still syncs."""
    settle(net)  # whatever an attack left on its way has reached every node
    code, name = NEW_VILLAGE
    home = net.root / "village3"
    net.run(home, "init", "--role", "village", "--code", code, "--name", name).ok()
    issued = net.run(T, "enroll-code", "--code", code, "--name", name, "--json").ok().json()
    net.run(home, "enroll", net.url(T), issued["code"], "--json").ok()
    for_town = Resident("何新村", "19830707", "114", "13905331010")
    for_district = Resident("秦新户", "19850303", "125", "13905331011")
    to_town = file_app(net, home, "MZ001", for_town, office=NODES[T].code, fields=MZ_FIELDS)
    to_district = file_app(net, home, "SB001", for_district, office=NODES[D].code, fields=SB_FIELDS)
    net.run(home, "sync", "--json").ok()
    settle(net)
    net.run(home, "sync", "--json").ok()
    for office, number, resident in ((T, to_town, for_town), (D, to_district, for_district)):
        view = show(net, office, number)
        assert view["status"] == "received" and view["origin"] == code, (office, view)
        assert view["applicant"] == resident.masked()
        mine = net.run(home, "show", number, "--json").ok().json()
        assert mine["status"] == "received", (office, mine)
    for node in ALL:
        net.run(node, "list", "--json").ok()
