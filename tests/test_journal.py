"""The journal in process, with real node homes, real keys and real SQLite:
what a hop refuses goes to its quarantine with the reason, origin and sender
and changes nothing else; an admitted envelope whose effect fails is
quarantined alone and the node still opens; the table is applied to what
this node records itself; a revocation must carry the revoked certificate.
(The same attacks over real `daiban serve` processes: test_attacks.py.)"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daiban.errors import DaibanError
from daiban.node import identity, journal, routing
from daiban.node.applications import Node
from daiban.node.home import open_node
from daiban.trust import envelope
from daiban.trust.crypto import random_id
from tests.conftest import FrozenClock, Result, filing
from tests.test_stats_stream import CITY, DISTRICT, NOW, TOWN, VILLAGE, enroll, tree

MakeNode = Callable[..., Node]
VILLAGE2 = "370303101202"
MZ001 = {"family_size": "3", "monthly_income": "420", "bank_account": "6222021234567890123"}


def network(make_node: MakeNode) -> tuple[Node, Node, Node, Node, Node]:
    city, district, town = tree(make_node)
    village = make_node(role="village", code=VILLAGE, name="大张村代办点")
    village2 = make_node(role="village", code=VILLAGE2, name="小张村代办点")
    for child in (village, village2):
        enroll(town, child)
        # `daiban enroll` leaves the parent's chain too: the office key filings are sealed to.
        identity.trust(child, town.store.cert_chain(TOWN) or [], "parent", NOW)
    return city, district, town, village, village2


def hand_up(child: Node, parent: Node) -> tuple[list[journal.Verdict], list[journal.Verdict]]:
    """What a push does, without HTTP: the child's outbox into the parent's journal."""
    child.reseal_pending()  # as `daiban sync` does first
    rows = child.store.outbox(routing.UP)
    chains = [child.store.cert_chain(child.code)]
    return journal.receive(parent, [r.raw for r in rows], sender=child.code, direction="up", chains=chains)


def hand_down(parent: Node, child: Node) -> tuple[list[journal.Verdict], list[journal.Verdict]]:
    rows = parent.store.outbox(child.code)
    return journal.receive(child, [r.raw for r in rows], sender=parent.code, direction="down")


def forge(node: Node, *, seq: int, kind: str, to: str, tracking: str | None, body: dict[str, Any]) -> str:
    """An envelope the node signs with its own certified key, as a compromised PC would."""
    return envelope.make(
        node.keys,
        id=random_id(),
        origin=node.code,
        seq=seq,
        kind=kind,
        to=to,
        tracking=tracking,
        actor="x",
        at=NOW,
        body=body,
    ).raw


def dump(node: Node) -> list[str]:
    conn = sqlite3.connect(node.home / "daiban.db")
    try:
        return [line for line in conn.iterdump() if "quarantine" not in line]
    finally:
        conn.close()


def test_a_refused_envelope_is_quarantined_and_the_rest_of_the_batch_goes_on(
    make_node: MakeNode, clock: FrozenClock
) -> None:
    _city, _district, town, village, village2 = network(make_node)
    filed = village.file(filing(item="MZ001", name="李建国", fields=MZ001))
    hand_up(village, town)
    assert town.show(filed.tracking)["status"] == "received"
    # village2 withdraws village's application, with its own key, then files its own.
    forged = forge(
        village2,
        seq=1000,
        kind="withdrawn",
        to=TOWN,
        tracking=filed.tracking,
        body={"note": ""},
    )
    mine = village2.file(filing(item="MZ001", name="王秀兰", fields=MZ001, region=VILLAGE2))
    own = [r.raw for r in village2.store.outbox(routing.UP)]
    stored, refused = journal.receive(
        town,
        [forged, *own],
        sender=VILLAGE2,
        direction="up",
        chains=[village2.store.cert_chain(VILLAGE2)],
    )
    assert [v.code for v in refused] == ["not_filer"]
    assert town.show(filed.tracking)["status"] == "received"
    assert town.show(mine.tracking)["status"] == "received"
    [row] = town.store.quarantine_rows()
    assert (row["code"], row["origin"], row["sender"]) == ("not_filer", VILLAGE2, VILLAGE2)
    assert row["kind"] == "withdrawn"
    assert town.store.quarantine_row(row["id"])["raw"] == forged
    # The same envelope again only counts up.
    journal.receive(town, [forged], sender=VILLAGE2, direction="up")
    [again] = town.store.quarantine_rows()
    assert again["id"] == row["id"] and again["count"] == 2
    assert len(stored) == len(own)


def test_a_hop_refuses_a_filing_under_another_nodes_tracking_number(make_node: MakeNode) -> None:
    _city, _district, town, village, village2 = network(make_node)
    from daiban.node import tracking

    squatted = tracking.make(VILLAGE, 1)
    body = {
        "item": "MZ001",
        "item_name": "最低生活保障审核确认",
        "level": "town",
        "region": VILLAGE2,
        "office": TOWN,
        "materials": [],
        "owed": [],
        "applicant": {"name": "假*", "id_number": "3703**********0012", "phone": "138****1234"},
    }
    forged = forge(village2, seq=1, kind="filed", to=TOWN, tracking=squatted, body=body)
    _stored, refused = journal.receive(
        town, [forged], sender=VILLAGE2, direction="up", chains=[village2.store.cert_chain(VILLAGE2)]
    )
    assert [v.code for v in refused] == ["foreign_tracking"]
    genuine = village.file(filing(item="MZ001", name="李建国", fields=MZ001))
    assert genuine.tracking == squatted
    hand_up(village, town)
    shown = town.show(squatted)
    assert shown["origin"] == VILLAGE and shown["personal"]["name"] == "李建国"


def test_a_filing_outside_the_filers_area_is_refused_unless_the_item_is_citywide(
    make_node: MakeNode,
) -> None:
    _city, _district, town, village, _village2 = network(make_node)
    with pytest.raises(DaibanError) as refused:
        village.file(filing(item="MZ001", name="李建国", fields=MZ001, region=VILLAGE2))
    assert "全城通办" in str(refused.value)
    # YB001 is handled anywhere in the city: a resident of the next village may file here.
    yb001 = {"pay_year": "2027", "person_category": "一般居民"}
    filed = village.file(filing(item="YB001", name="李建国", region=VILLAGE2, fields=yb001))
    _stored, refused_at_town = hand_up(village, town)
    assert refused_at_town == [] and town.show(filed.tracking)["status"] == "received"


def test_the_office_may_not_withdraw_or_evaluate_what_a_village_filed(make_node: MakeNode) -> None:
    _city, _district, town, village, _village2 = network(make_node)
    filed = village.file(filing(item="MZ001", name="李建国", fields=MZ001))
    hand_up(village, town)
    before = dump(town)
    with pytest.raises(DaibanError) as refused:
        town.withdraw(filed.tracking)
    assert refused.value.code == "not_filer"
    assert dump(town) == before
    town.review(filed.tracking, "accept")
    town.review(filed.tracking, "complete")
    with pytest.raises(DaibanError):
        town.evaluate(filed.tracking, 1)
    hand_down(town, village)
    assert village.show(filed.tracking)["status"] == "completed"
    village.evaluate(filed.tracking, 5)
    with pytest.raises(DaibanError):
        village.evaluate(filed.tracking, 4)
    hand_up(village, town)
    assert town.show(filed.tracking)["evaluation"] == 5


def test_an_envelope_whose_effect_fails_is_quarantined_and_the_node_still_opens(
    make_node: MakeNode, clock: FrozenClock
) -> None:
    """A `filed` envelope stored as queued by an older build that checked
    less (its applicant a string): opening the node applies what is queued,
    and that one goes to quarantine instead of stopping every command."""
    _city, _district, town, village, _village2 = network(make_node)
    good = village.file(filing(item="MZ001", name="李建国", fields=MZ001))
    bad_body = {
        "item": "MZ001",
        "item_name": "x",
        "level": "town",
        "region": VILLAGE,
        "office": TOWN,
        "materials": [],
        "owed": "not a list",
        "applicant": "a string",
    }
    from daiban.node import tracking

    poison = envelope.parse(
        forge(village, seq=99, kind="filed", to=TOWN, tracking=tracking.make(VILLAGE, 99), body=bad_body)
    )
    hand_up(village, town)
    with town.store.transaction():
        town.store.insert_envelopes([(poison, "queued")], received_at=NOW, received_from=VILLAGE)
    home = town.home
    town.store.close()
    reopened = open_node(home, clock=clock)
    try:
        assert reopened.show(good.tracking)["status"] == "received"
        [row] = reopened.store.quarantine_rows()
        assert row["code"] == "apply_failed" and row["envelope_id"] == poison.id and row["sender"] == VILLAGE
        assert not reopened.store.has_queued_effects()
        assert reopened.list()  # the node works
    finally:
        reopened.close()


def test_a_revocation_must_carry_the_revoked_certificate(make_node: MakeNode) -> None:
    city, district, town, village, village2 = network(make_node)
    root_chain = city.store.cert_chain(CITY)
    assert root_chain
    root_serial = root_chain[0]["serial"]
    attacks = {
        # village2 names the root, with the root's own certificate as the "chain"
        "root_revocation": {"code": CITY, "serial": root_serial, "chain": root_chain},
        # a 13-digit code "below" village2, with the root's serial
        "invalid_body": {"code": VILLAGE2 + "1", "serial": root_serial, "chain": root_chain},
        # a sibling, with the sibling's real chain
        "not_ancestor": {"code": VILLAGE, "serial": "0" * 32, "chain": village.store.cert_chain(VILLAGE)},
    }
    for seq, (code, body) in enumerate(attacks.items(), start=1):
        raw = forge(village2, seq=seq, kind="revocation", to=routing.BROADCAST, tracking=None, body=body)
        _stored, refused = journal.receive(
            town, [raw], sender=VILLAGE2, direction="up", chains=[village2.store.cert_chain(VILLAGE2)]
        )
        assert [v.code for v in refused] == [code], (code, refused)
    assert town.store.revoked() == set() or root_serial not in town.store.revoked()
    # The district names the town's serial but no chain, or another node's chain: refused.
    town_serial = town.store.cert_chain(TOWN)[-1]["serial"]
    villages_chain = village.store.cert_chain(VILLAGE)
    for seq, (body, code) in enumerate(
        [
            ({"code": TOWN, "serial": town_serial}, "invalid_body"),
            ({"code": TOWN, "serial": town_serial, "chain": villages_chain}, "serial_mismatch"),
        ],
        start=1,
    ):
        raw = forge(district, seq=50 + seq, kind="revocation", to=routing.BROADCAST, tracking=None, body=body)
        chains = [district.store.cert_chain(DISTRICT)]
        _stored, refused = journal.receive(village, [raw], sender=TOWN, direction="down", chains=chains)
        assert [v.code for v in refused] == [code]
    # The genuine revocation, made by `daiban revoke`, goes through.
    from daiban.node.revocation import revoke

    serial = revoke(district, TOWN)
    # Nothing is queued for the revoked town any more: it gets the revocation
    # with the 403 that refuses its next request (node/revocation.py).
    assert district.store.outbox(TOWN) == []
    chains = [district.store.cert_chain(DISTRICT)]
    raws = [district.store.revocation_raw(serial)]
    _stored, refused = journal.receive(town, raws, sender=DISTRICT, direction="down", chains=chains)
    assert refused == [] and serial in town.store.revoked()


def test_daiban_quarantine_lists_and_shows_what_was_refused(
    make_node: MakeNode, cli: Callable[..., Result]
) -> None:
    _city, _district, town, village, village2 = network(make_node)
    filed = village.file(filing(item="MZ001", name="李建国", fields=MZ001))
    hand_up(village, town)
    forged = forge(village2, seq=1, kind="accepted", to=VILLAGE, tracking=filed.tracking, body={"note": ""})
    chains = [village2.store.cert_chain(VILLAGE2)]
    journal.receive(town, [forged], sender=VILLAGE2, direction="up", chains=chains)
    home: Path = town.home
    listed = cli("quarantine", "list", "--json", home=home)
    assert listed.returncode == 0, listed.stderr
    [row] = listed.json()  # type: ignore[misc]
    keys = {"id", "envelope_id", "kind", "origin", "sender", "code", "reason", "first_at", "at", "count"}
    keys.add("held")
    assert set(row) == keys
    assert (row["kind"], row["origin"], row["sender"]) == ("accepted", VILLAGE2, VILLAGE2)
    shown = cli("quarantine", "show", str(row["id"]), "--json", home=home).json()
    assert shown["envelope"] == forged and shown["code"] == row["code"]  # type: ignore[index]
    text = cli("quarantine", home=home, lang="zh")
    assert text.returncode == 0 and VILLAGE2 in text.stdout and row["code"] in text.stdout
    missing = cli("quarantine", "show", "999", home=home)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    children = cli("children", "--json", home=home).json()
    assert {c["code"]: c["quarantined"] for c in children} == {VILLAGE: 0, VILLAGE2: 1}  # type: ignore[union-attr]


# -- anything at all: admitted or refused, never an exception ------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
KINDS = [*journal.APPLICATION_KINDS, "manifest", "revocation", "stats", "corrected", "amended", "", "x" * 40]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=JSON | st.text(max_size=200))
def test_any_raw_value_is_admitted_or_refused(make_node: MakeNode, raw: Any) -> None:
    town = _shared_town(make_node)
    stored, refused = journal.receive(town, [raw], sender=VILLAGE, direction="up")
    assert len(stored) + len(refused) <= 1


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(KINDS),
    body=st.dictionaries(st.text(max_size=12), JSON, max_size=6)
    | st.fixed_dictionaries({"item": st.just("MZ001"), "region": st.just(VILLAGE), "office": st.just(TOWN)}),
    tracking=st.none() | st.sampled_from(["37030310120100000013", "0" * 20, "370303101202" + "0000019"]),
    to=st.sampled_from([TOWN, VILLAGE, DISTRICT, CITY, routing.BROADCAST, "3703031012011"]),
    seq=st.integers(min_value=1, max_value=2**62),
)
def test_any_signed_envelope_is_admitted_or_refused(
    make_node: MakeNode, kind: str, body: dict[str, Any], tracking: str | None, to: str, seq: int
) -> None:
    """Signed by an enrolled village with its own key, whatever it holds:
    the town's journal admits or refuses it, and the town still works."""
    town = _shared_town(make_node)
    village: Node = _SHARED["village"]
    try:
        raw = forge(village, seq=seq, kind=kind, to=to, tracking=tracking, body=body)
    except Exception:  # not even signable (e.g. not JSON-serialisable): nothing to send
        return
    chains = [village.store.cert_chain(VILLAGE)]
    stored, refused = journal.receive(town, [raw], sender=VILLAGE, direction="up", chains=chains)
    assert len(stored) + len(refused) <= 1
    journal.drain(town)
    town.list()


_SHARED: dict[str, Any] = {}


def _shared_town(make_node: MakeNode) -> Node:
    """One network for all of a property test's examples (homes are slow to
    make); a new one for each test, whose make_node is a new fixture."""
    if _SHARED.get("maker") is not make_node:
        _city, _district, town, village, _village2 = network(make_node)
        _SHARED.update(maker=make_node, town=town, village=village)
    town: Node = _SHARED["town"]
    return town


def _ids(count: int) -> list[str]:
    from stdnum.cn import ric

    bodies = [f"37030319400101{n:03d}" for n in range(100, 100 + count)]
    return [body + ric.calc_check_digit(body + "0") for body in bodies]


def _queue_at(town: Node, village: Node, extra: list[str]) -> None:
    """The village's outbox and ``extra`` stored at the town as one push
    stores them, their effects queued, nothing applied yet."""
    raws = [r.raw for r in village.store.outbox(routing.UP)] + extra
    with town.store.transaction():
        taken = journal.take_in(
            town, raws, [village.store.cert_chain(VILLAGE)], sender=VILLAGE, direction="up"
        )
    assert not taken.refused


def _receipts_at(town: Node) -> dict[str, int]:
    conn = sqlite3.connect(town.home / "daiban.db")
    try:
        return dict(
            conn.execute(
                "SELECT tracking, COUNT(*) FROM events WHERE kind = 'received' GROUP BY tracking"
            ).fetchall()
        )
    finally:
        conn.close()


def test_a_failing_filing_in_a_run_received_in_bulk_is_quarantined_alone(make_node: MakeNode) -> None:
    """Filings queued together are received in bulk; one whose effect fails
    (stored as queued by an older build that checked less) undoes the bulk
    pass and goes to quarantine alone: every other one received, each with
    one receipt, all of them back at the village."""
    from daiban.node import tracking

    _city, _district, town, village, _village2 = network(make_node)
    good = [village.file(filing(item="MZ001", name="李建国", id_number=i, fields=MZ001)) for i in _ids(4)]
    bad_body = {
        "item": "MZ001",
        "item_name": "x",
        "level": "town",
        "region": VILLAGE,
        "office": TOWN,
        "materials": [],
        "owed": "not a list",
        "applicant": "a string",
    }
    poison = envelope.parse(
        forge(village, seq=99, kind="filed", to=TOWN, tracking=tracking.make(VILLAGE, 99), body=bad_body)
    )
    _queue_at(town, village, [])
    with town.store.transaction():  # in the middle of the run, as an older build left it
        town.store.insert_envelopes([(poison, "queued")], received_at=NOW, received_from=VILLAGE)
    more = [village.file(filing(item="MZ001", name="李建国", id_number=i, fields=MZ001)) for i in _ids(7)[4:]]
    _queue_at(town, village, [])
    journal.drain(town)
    [row] = town.store.quarantine_rows()
    assert row["code"] == "apply_failed" and row["envelope_id"] == poison.id
    assert _receipts_at(town) == {f.tracking: 1 for f in good + more}
    assert not town.store.has_queued_effects()
    hand_down(town, village)
    for f in good + more:
        assert village.show(f.tracking)["status"] == "received"


def test_one_tracking_number_filed_twice_in_one_run_keeps_the_first(make_node: MakeNode) -> None:
    """A compromised village files one tracking number twice, with other
    content, among good filings in one batch: the first stands, the second
    goes to quarantine alone (duplicate_tracking), the others are received
    once each."""
    from daiban.node import tracking

    _city, _district, town, village, _village2 = network(make_node)
    good = [village.file(filing(item="MZ001", name="李建国", id_number=i, fields=MZ001)) for i in _ids(3)]
    number = tracking.make(VILLAGE, 90)
    body = dict(envelope.parse(village.store.outbox(routing.UP)[0].raw).body)
    twice = [forge(village, seq=90 + k, kind="filed", to=TOWN, tracking=number, body=body) for k in range(2)]
    _queue_at(town, village, twice)
    journal.drain(town)
    [row] = town.store.quarantine_rows()
    assert row["code"] == "duplicate_tracking" and row["envelope_id"] == envelope.parse(twice[1]).id
    assert _receipts_at(town) == {**{f.tracking: 1 for f in good}, number: 1}
    assert not town.store.has_queued_effects()


def test_a_drain_for_one_sender_applies_only_what_that_sender_handed_here(make_node: MakeNode) -> None:
    """A child's pull applies what that child pushed (service.pull), not
    every child's: another village's filings stay queued, for the server's
    idle applier, and are applied in full after."""
    _city, _district, town, village, village2 = network(make_node)
    mine = [village.file(filing(item="MZ001", name="李建国", id_number=i, fields=MZ001)) for i in _ids(2)]
    theirs = [
        village2.file(filing(item="MZ001", name="李建国", id_number=i, fields=MZ001)) for i in _ids(5)[2:]
    ]
    _queue_at(town, village, [])
    raws = [r.raw for r in village2.store.outbox(routing.UP)]
    with town.store.transaction():
        taken = journal.take_in(
            town, raws, [village2.store.cert_chain(VILLAGE2)], sender=VILLAGE2, direction="up"
        )
    assert not taken.refused
    assert journal.drain(town, sender=VILLAGE) == 2
    assert set(_receipts_at(town)) == {f.tracking for f in mine}
    assert town.store.has_queued_effects(VILLAGE2) and not town.store.has_queued_effects(VILLAGE)
    assert journal.drain(town) == 3
    assert _receipts_at(town) == {f.tracking: 1 for f in mine + theirs}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    count=st.integers(1, 12),
    steps=st.lists(st.integers(1, 6), min_size=1, max_size=12),
    chunk=st.integers(1, 5),
)
def test_a_drain_in_steps_applies_each_filing_once_and_no_step_more_than_asked(
    make_node: MakeNode, count: int, steps: list[int], chunk: int
) -> None:
    """A pull applies only a part of a large push (service.PULL_APPLIES) and
    the server the rest in steps (server.Writer.apply_for): however the
    steps fall, no step applies more than it was asked, and every filing is
    received exactly once in the end."""
    town = _shared_town(make_node)
    village: Node = _SHARED["village"]
    start = _SHARED.get("next_id", 0)
    _SHARED["next_id"] = start + count
    filed = [
        village.file(filing(item="MZ001", name="李建国", id_number=i, fields=MZ001))
        for i in _ids(start + count)[start:]
    ]
    _queue_at(town, village, [])
    applied = []
    for most in [*steps, 10**6]:  # the last step takes whatever is left
        if not town.store.has_queued_effects(VILLAGE):
            break
        done = journal.drain(town, chunk=chunk, sender=VILLAGE, most=most)
        assert 1 <= done <= most
        applied.append(done)
    assert sum(applied) == count
    receipts = _receipts_at(town)
    assert [receipts.get(f.tracking) for f in filed] == [1] * count


def test_filings_received_in_bulk_match_one_received_alone(make_node: MakeNode) -> None:
    """A filing received alone (the ordinary way) and filings received
    together in bulk leave the same summary row, the filing's event then its
    receipt, the sealed part, and one receipt each back at the village."""
    _city, _district, town, village, _village2 = network(make_node)
    ids = _ids(4)
    alone = village.file(filing(item="MZ001", name="李建国", id_number=ids[0], fields=MZ001))
    _queue_at(town, village, [])
    journal.drain(town)
    hand_down(town, village)
    together = [village.file(filing(item="MZ001", name="李建国", id_number=i, fields=MZ001)) for i in ids[1:]]
    _queue_at(town, village, [])
    journal.drain(town)
    varying = {"tracking", "filed_at", "received_at", "updated_at", "id_hash", "id_masked", "phone"}

    def summary(tracking: str) -> dict[str, Any]:
        row = town.store.application(tracking)
        assert row is not None
        return {k: v for k, v in row.items() if k not in varying}

    for f in together:
        assert summary(f.tracking) == summary(alone.tracking)
        assert [e.kind for e in town.store.events_for(f.tracking)] == ["filed", "received"]
        assert len(town.store.personal_for(f.tracking)) == 1
    assert _receipts_at(town) == {f.tracking: 1 for f in [alone, *together]}
    assert not town.store.has_queued_effects() and not town.store.quarantine_rows()
    hand_down(town, village)
    for f in [alone, *together]:
        assert village.show(f.tracking)["status"] == "received"


@given(sizes=st.lists(st.integers(min_value=0, max_value=5000), max_size=30), limit=st.integers(1, 8000))
def test_a_batch_is_cut_into_slices_in_order_none_empty(sizes: list[int], limit: int) -> None:
    raws = ["x" * n for n in sizes]
    parts = list(journal.slices(raws, limit))
    assert [raw for part in parts for raw in part] == raws
    assert all(part for part in parts)
    # A slice ends as soon as it reaches the limit: all but its last envelope are below it.
    assert all(sum(map(len, part[:-1])) < limit for part in parts)


def test_a_batch_taken_in_slices_comes_to_what_one_batch_would(
    make_node: MakeNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pull's page is checked and stored a few envelopes at a time (memory);
    the verdicts and what is stored are those of the page taken at once,
    with an id met twice in it, a forged envelope and a conflict among them."""
    _city, _district, town, village, village2 = network(make_node)
    yb001 = {"pay_year": "2027", "person_category": "一般居民"}
    filed = [
        village.file(filing(item="MZ001", name="李建国", fields=MZ001)),
        village.file(filing(item="YB001", name="张伟", fields=yb001)),
    ]
    village.reseal_pending()
    rows = [r.raw for r in village.store.outbox(routing.UP)]
    assert len(rows) == 2
    forged = forge(
        village2, seq=1000, kind="withdrawn", to=TOWN, tracking=filed[0].tracking, body={"note": ""}
    )
    parsed = envelope.parse(rows[1])
    same_slot = forge(
        village, seq=parsed.seq, kind="withdrawn", to=TOWN, tracking=parsed.tracking, body={"note": ""}
    )
    batch = [rows[0], rows[0], forged, rows[1], same_slot, rows[1]]
    chains = [village.store.cert_chain(VILLAGE), village2.store.cert_chain(VILLAGE2)]
    conn = town.store.db.conn

    def take(limit: int) -> tuple[list[tuple[str, str, str]], list[str]]:
        monkeypatch.setattr(journal, "SLICE_BYTES", limit)
        conn.execute("BEGIN IMMEDIATE")
        try:
            with town.store.transaction():
                taken = journal.take_in(town, batch, chains, sender=VILLAGE, direction="up")
            tables = [
                line
                for line in conn.iterdump()
                if line.startswith(
                    ('INSERT INTO "envelopes"', 'INSERT INTO "outbox"', 'INSERT INTO "quarantine"')
                )
            ]
        finally:
            conn.execute("ROLLBACK")
        verdicts = taken.stored + taken.duplicates + taken.refused + taken.held
        return sorted((v.id, v.status, v.code) for v in verdicts), tables

    assert len(list(journal.slices(batch, 1))) == len(batch)
    at_once, one_by_one = take(10**9), take(1)
    assert one_by_one == at_once
    verdicts = at_once[0]
    assert sorted(v[1] for v in verdicts) == ["refused", "refused", "stored", "stored"]
    assert {v[2] for v in verdicts if v[1] == "refused"} == {"forged_origin", "conflict"}


def test_a_signature_checked_early_counts_only_with_the_origins_certified_key(make_node: MakeNode) -> None:
    """A server starts checking a request's envelopes against the key its
    request signature verified with (journal.prepare's ``signer``); check
    uses such a result only where the origin's certified key is that key.
    An enrolled village's PC swapped for an attacker's key that signs both
    the request and envelopes in the village's name gets nothing in."""
    from daiban.trust.crypto import NodeKeys

    _city, _district, town, village, _village2 = network(make_node)
    village.file(filing(item="MZ001", name="李建国", fields=MZ001))
    village.reseal_pending()
    [genuine] = [r.raw for r in village.store.outbox(routing.UP)]
    thief = NodeKeys.generate()
    forged = envelope.make(
        thief,
        id=random_id(),
        origin=VILLAGE,
        seq=900,
        kind="withdrawn",
        to=TOWN,
        tracking=envelope.parse(genuine).tracking,
        actor="x",
        at=NOW,
        body={"note": ""},
    ).raw
    chains = [village.store.cert_chain(VILLAGE)]

    def checked(raws: list[str], signer: tuple[str, bytes]) -> journal.Checked:
        prepared = journal.prepare(raws, signer)
        assert all(p.early is not None and p.early[0] == signer[1] for p in prepared)
        with town.store.transaction():
            extra = journal.verify_chains(town, chains)
            return journal.check(town, raws, sender=VILLAGE, direction="up", extra=extra, prepared=prepared)

    # Checked early against the thief's key, the forgery verifies there; the
    # writer finds the village's certified key and refuses it.
    out = checked([forged], (VILLAGE, thief.sign_public))
    assert [v.code for v in out.refused] == ["bad_signature"] and not out.accepted
    # The genuine envelope checked early against the wrong key still goes in:
    # the result of an early check with another key is not used.
    out = checked([genuine], (VILLAGE, thief.sign_public))
    assert [e.id for e in out.accepted] == [envelope.parse(genuine).id]
    # With the certified key the early results decide, both ways.
    out = checked([genuine, forged], (VILLAGE, village.keys.sign_public))
    assert [e.id for e in out.accepted] == [envelope.parse(genuine).id]
    assert [v.code for v in out.refused] == ["bad_signature"]
