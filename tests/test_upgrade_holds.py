"""The hold and the take-in of a rolling upgrade, in process, with real node
homes, real keys and real SQLite (node/upgrade.py): what a newer neighbour
sends that this build does not know is held when its origin's signature
verifies, and refused otherwise; after an upgrade, what the new build
admits is taken in through the journal exactly once, and what it still
cannot stays with its reason. The same over real ``daiban serve``
processes, with a district on the previous release: test_rolling_upgrade.py."""

from __future__ import annotations

import contextlib
import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daiban.node import admission, journal, statistics, upgrade
from daiban.node.applications import Node
from daiban.node.home import open_node
from daiban.sync import answers, protocol
from daiban.trust import envelope
from tests.conftest import Result, filing
from tests.sync_net import Network, network_at
from tests.test_journal import MZ001, VILLAGE2, forge, hand_up, network
from tests.test_stats_stream import CITY, NOW, TOWN, VILLAGE, file_mz001, stats_raws
from tests.test_wire_docs import component

MakeNode = Callable[..., Node]


def take(node: Node, raws: list[str], sender: str, chains: list[Any] | None = None) -> journal.Taken:
    direction = "up" if sender.startswith(node.code) and sender != node.code else "down"
    with node.store.transaction():
        taken = journal.take_in(node, raws, chains or [], sender=sender, direction=direction)
    journal.drain(node)
    return taken


def stored_ids(node: Node) -> set[str]:
    return {r[0] for r in node.store.db.conn.execute("SELECT id FROM envelopes")}


def _events(node: Node, tracking: str) -> dict[str, int]:
    rows = node.store.db.conn.execute(
        "SELECT kind, COUNT(*) FROM events WHERE tracking = ? GROUP BY kind", [tracking]
    )
    return {str(kind): int(n) for kind, n in rows}


def outbox_size(node: Node) -> int:
    return int(node.store.db.conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])


# -- held: a newer neighbour's kind or member, from a verified origin ---------------------


def test_an_unknown_kind_from_a_verified_origin_is_held_not_refused(make_node: MakeNode) -> None:
    _city, _district, town, village, _village2 = network(make_node)
    filed = village.file(filing(item="MZ001", name="李建国", fields=MZ001))
    hand_up(village, town)
    before, queued = stored_ids(town), outbox_size(town)
    newer = forge(village, seq=500, kind="amended", to=TOWN, tracking=filed.tracking, body={"note": "x"})
    member = forge(
        village, seq=501, kind="withdrawn", to=TOWN, tracking=filed.tracking, body={"note": "", "why": "搬家"}
    )
    taken = take(town, [newer, member], VILLAGE, [village.store.cert_chain(VILLAGE)])
    assert taken.refused == [] and taken.stored == []
    assert [(v.status, v.code) for v in taken.held] == [("held", "unknown_kind"), ("held", "invalid_body")]
    answer = taken.held[0].as_dict()  # what a push answers: custody passed
    assert answer["status"] == "held" and answer["received_at"] and answer["code"] == "unknown_kind"
    for verdict in taken.held:  # as docs/openapi.json says a push answers it
        component("PushResponse").validate({"ok": True, "results": [verdict.as_dict()], "high_water": {}})
    # Kept for an upgrade, and nothing else: not stored, applied nor routed.
    assert stored_ids(town) == before and outbox_size(town) == queued
    assert town.show(filed.tracking)["status"] == "received"
    rows = town.store.quarantine_rows()
    assert [(r["kind"], r["held"]) for r in rows] == [("withdrawn", True), ("amended", True)]
    assert town.store.quarantine_row(rows[1]["id"])["raw"] == newer
    # Counted apart from true refusals.
    assert town.store.quarantine_counts() == {} and town.store.held_count() == 2
    # The same again only counts up.
    take(town, [newer], VILLAGE)
    assert town.store.held_count() == 2
    assert {r["kind"]: r["count"] for r in town.store.quarantine_rows()}["amended"] == 2


def test_an_unknown_member_deeper_in_the_body_is_refused_not_held(make_node: MakeNode) -> None:
    _city, district, town, _village, _village2 = network(make_node)
    file_mz001(town)
    statistics.flush(town)
    body = next(b for b in (json.loads(r)["body"] for r in stats_raws(town)) if b["records"])
    body["records"][0]["name"] = "李建国"  # what a record may hold is no news to wait for
    forged = forge(town, seq=600, kind="stats", to=CITY, tracking=None, body=body)
    taken = take(district, [forged], TOWN, [town.store.cert_chain(TOWN)])
    assert taken.held == [] and [v.code for v in taken.refused] == ["invalid_body"]


# -- the attacker: holding is no way around a signature -------------------------------------


def _tampered(make_node: MakeNode, nodes: dict[str, Node]) -> tuple[str, str]:
    raw = forge(nodes["village"], seq=700, kind="amended", to=TOWN, tracking=None, body={"n": 1})
    doc = json.loads(raw)
    doc["body"] = {"n": 2}
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":")), VILLAGE


def _unenrolled(make_node: MakeNode, nodes: dict[str, Node]) -> tuple[str, str]:
    stranger = make_node(role="village", code="370303101209", name="无名村")
    return forge(stranger, seq=1, kind="amended", to=TOWN, tracking=None, body={}), "370303101209"


def _another_origin(make_node: MakeNode, nodes: dict[str, Node]) -> tuple[str, str]:
    # village2 hands up an envelope village signed: a sender may hand up only its own and below.
    return forge(nodes["village"], seq=701, kind="amended", to=TOWN, tracking=None, body={}), VILLAGE2


def _not_a_kind(make_node: MakeNode, nodes: dict[str, Node]) -> tuple[str, str]:
    return forge(nodes["village"], seq=702, kind="Amended!", to=TOWN, tracking=None, body={}), VILLAGE


def _replayed_slot(make_node: MakeNode, nodes: dict[str, Node]) -> tuple[str, str]:
    # A sequence number of the village's already taken by another envelope.
    taken_seq = min(r.seq for r in nodes["village"].store.outbox("^"))
    return forge(nodes["village"], seq=taken_seq, kind="amended", to=TOWN, tracking=None, body={}), VILLAGE


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (_tampered, "bad_signature"),
        (_unenrolled, "unknown_origin"),
        (_another_origin, "forged_origin"),
        (_not_a_kind, "unknown_kind"),
        (_replayed_slot, "conflict"),
    ],
)
def test_an_unknown_kind_is_refused_unless_all_else_checks_out(
    make_node: MakeNode, make: Callable[[MakeNode, dict[str, Node]], tuple[str, str]], code: str
) -> None:
    _city, _district, town, village, village2 = network(make_node)
    village.file(filing(item="MZ001", name="李建国", fields=MZ001))
    hand_up(village, town)
    raw, sender = make(make_node, {"village": village, "village2": village2})
    before = stored_ids(town)
    taken = take(town, [raw], sender, [village.store.cert_chain(VILLAGE)])
    assert taken.held == [] and [v.code for v in taken.refused] == [code]
    assert stored_ids(town) == before
    [row] = town.store.quarantine_rows()
    assert row["held"] is False and row["code"] == code
    assert town.store.held_count() == 0 and sum(town.store.quarantine_counts().values()) == 1


# -- after an upgrade: taken in once --------------------------------------------------------


def _put(node: Node, raw: str, sender: str, code: str, *, held: bool) -> None:
    env = envelope.parse(raw)
    verdict = journal.Verdict(
        env.id,
        "held" if held else "refused",
        code,
        "as an older build said",
        raw=raw,
        kind=env.kind,
        origin=env.origin,
    )
    with node.store.transaction():
        journal.quarantine(node, [verdict], sender=sender)


def test_after_an_upgrade_what_an_older_build_could_not_take_is_taken_in_once(
    make_node: MakeNode, cli: Callable[..., Result]
) -> None:
    _city, _district, town, village, _village2 = network(make_node)
    filed = village.file(filing(item="MZ001", name="李建国", fields=MZ001))
    hand_up(village, town)
    town.review(filed.tracking, "accept")
    received, accepted = [r.raw for r in town.store.outbox(VILLAGE)]
    still = forge(town, seq=900, kind="amended", to=VILLAGE, tracking=filed.tracking, body={})
    # What the village's older build left: the receipt refused as an unknown
    # kind (it could not hold), the acceptance held, a kind no build knows yet.
    _put(village, received, TOWN, "unknown_kind", held=False)
    _put(village, accepted, TOWN, "invalid_body", held=True)
    _put(village, still, TOWN, "unknown_kind", held=True)
    with village.store.transaction():
        village.store.set_setting(upgrade.SETTING, "0.0.9+older")
    assert village.show(filed.tracking)["status"] == "submitted"
    home = village.home
    village.close()

    upgraded = open_node(home)  # a new build opens the node
    try:
        assert upgraded.show(filed.tracking)["status"] == "accepted"
        [left] = upgraded.store.quarantine_rows()
        assert (left["kind"], left["held"], left["code"]) == ("amended", True, "unknown_kind")
        assert upgraded.store.setting(upgrade.SETTING) == upgrade.build()
        events = _events(upgraded, filed.tracking)
        assert events == {"filed": 1, "received": 1, "accepted": 1}
        # The parent sends them again: duplicates, nothing applied twice.
        stored, refused = journal.receive(upgraded, [received, accepted], sender=TOWN, direction="down")
        assert refused == [] and [v.status for v in stored] == ["duplicate", "duplicate"]
        assert _events(upgraded, filed.tracking) == events
    finally:
        upgraded.close()
    again = open_node(home)  # the same build again: nothing to examine
    try:
        assert _events(again, filed.tracking) == events and len(again.store.quarantine_rows()) == 1
    finally:
        again.close()
    retried = cli("quarantine", "retry", "--json", home=home)
    assert retried.returncode == 0, retried.stderr
    assert retried.json() == {"taken": 0, "duplicates": 0, "held": 1, "refused": 0}
    listed = cli("quarantine", "list", home=home)
    assert "held for an upgrade" in listed.stdout and "0 refused" in listed.stdout
    missing = cli("quarantine", "retry", "999", home=home)
    assert missing.returncode == 1 and "999" in missing.stderr and "Traceback" not in missing.stderr
    [row] = cli("quarantine", "list", "--json", home=home).json()  # type: ignore[misc]
    one = cli("quarantine", "retry", str(row["id"]), "--json", home=home)
    assert one.json() == {"taken": 0, "duplicates": 0, "held": 1, "refused": 0}


def test_a_row_that_cannot_be_examined_never_stops_the_node_opening(
    make_node: MakeNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    _city, _district, town, village, _village2 = network(make_node)
    filed = village.file(filing(item="MZ001", name="李建国", fields=MZ001))
    hand_up(village, town)
    received = town.store.outbox(VILLAGE)[0].raw
    _put(village, received, TOWN, "unknown_kind", held=False)
    with village.store.transaction():
        village.store.set_setting(upgrade.SETTING, "0.0.9+older")
    home = village.home
    village.close()

    def broken(*args: Any, **kwargs: Any) -> journal.Verdict:
        raise RuntimeError("disk trouble")

    monkeypatch.setattr(journal, "retake", broken)
    node = open_node(home)  # opens all the same; the row stays, and the build is not recorded
    try:
        assert len(node.store.quarantine_rows()) == 1
        assert node.store.setting(upgrade.SETTING) == "0.0.9+older"
    finally:
        node.close()
    monkeypatch.undo()
    node = open_node(home)  # the next opening tries again
    try:
        assert node.show(filed.tracking)["status"] == "received"
        assert node.store.quarantine_rows() == [] and node.store.setting(upgrade.SETTING) == upgrade.build()
    finally:
        node.close()


def test_an_older_refusal_the_new_build_still_refuses_stays_with_its_reason(make_node: MakeNode) -> None:
    _city, _district, town, village, village2 = network(make_node)
    filed = village.file(filing(item="MZ001", name="李建国", fields=MZ001))
    hand_up(village, town)
    # village2 withdraws village's application: an older build called it an unknown body.
    forged = forge(village2, seq=40, kind="withdrawn", to=TOWN, tracking=filed.tracking, body={"note": ""})
    _put(town, forged, VILLAGE2, "invalid_body", held=False)
    done = upgrade.reexamine(town)
    assert done.as_dict() == {"taken": 0, "duplicates": 0, "held": 0, "refused": 1}
    [row] = town.store.quarantine_rows()
    assert (row["code"], row["held"]) == ("not_filer", False)
    assert town.show(filed.tracking)["status"] == "received"


# -- anything at all, from a verified origin or not ------------------------------------------

_SHARED: dict[str, Any] = {}
KIND = st.sampled_from([*admission.KINDS, "amended", "x" * 41, "", "A", "new_kind_2"]) | st.text(
    max_size=12
)
BODY = st.dictionaries(
    st.text(max_size=8),
    st.none() | st.integers(-5, 5) | st.text(max_size=6) | st.lists(st.integers(0, 3)),
    max_size=4,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=KIND, body=BODY, to=st.sampled_from([TOWN, VILLAGE, "3703", "*"]), tamper=st.booleans())
def test_held_only_when_signed_by_a_verified_origin_and_never_stored_unknown(
    make_node: MakeNode, kind: str, body: dict[str, Any], to: str, tamper: bool
) -> None:
    if _SHARED.get("maker") is not make_node:
        _c, _d, town, village, _v2 = network(make_node)
        _SHARED.update(maker=make_node, town=town, village=village, seq=10_000)
    town, village = _SHARED["town"], _SHARED["village"]
    _SHARED["seq"] += 1
    try:
        raw = forge(village, seq=_SHARED["seq"], kind=kind, to=to, tracking=None, body=body)
    except Exception:  # not even signable: nothing to send
        return
    if tamper:
        raw = re.sub(r'"sig":"(.)', lambda m: '"sig":"' + ("B" if m.group(1) == "A" else "A"), raw, count=1)
    taken = take(town, [raw], VILLAGE, [village.store.cert_chain(VILLAGE)])
    verdicts = taken.stored + taken.duplicates + taken.held + taken.refused
    assert len(verdicts) == 1
    if taken.held:
        assert not tamper
        assert kind not in admission.KINDS or taken.held[0].code == "invalid_body"
        assert re.fullmatch(r"[a-z][a-z0-9_]{0,39}", kind)
    if kind not in admission.KINDS:
        assert not taken.stored
        assert (
            town.store.db.conn.execute("SELECT COUNT(*) FROM envelopes WHERE kind = ?", [kind]).fetchone()[0]
            == 0
        )
    if tamper:
        assert taken.held == [] and taken.stored == []


# -- the protocol version, on a real server -----------------------------------------------------


def test_check_protocol_takes_one_version_either_side() -> None:
    for header in (None, "1", "2", "3", " 2 "):
        protocol.check_protocol(header)
    for header in ("0", "4", "01", "", "x", "2.0", "9" * 10, "٢"):
        with pytest.raises(protocol.ProtocolError) as caught:
            protocol.check_protocol(header)
        assert caught.value.status == 400 and caught.value.code == "protocol_version"


@pytest.fixture
def city_server(tmp_path: Path) -> Iterator[Network]:
    with network_at(tmp_path / "net") as net:
        net.init("city")
        net.start("city")
        yield net


def _post(url: str, version: str | None) -> tuple[int, bytes, dict[str, str]]:
    headers = {"Content-Type": protocol.CONTENT_TYPE}
    if version is not None:
        headers[protocol.H_PROTOCOL] = version
    request = urllib.request.Request(
        url + protocol.PUSH, data=protocol.encode({"envelopes": []}), headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        with contextlib.closing(exc):
            return exc.code, exc.read(), dict(exc.headers)


def test_a_server_refuses_a_client_two_protocols_away_with_a_signed_answer(city_server: Network) -> None:
    url = city_server.url("city")
    node = open_node(city_server.home("city"))
    try:
        key = node.keys.sign_public
    finally:
        node.close()
    for version in ("4", "0"):
        status, body, headers = _post(url, version)
        assert status == 400
        answer = protocol.decode(body)
        assert answer["code"] == "protocol_version" and answer["protocol"] == protocol.PROTOCOL
        assert "upgrade" in answer["error"] or "protocol version" in answer["error"]
        answers.check(key, headers.get(answers.H_ANSWER), status, body, "", "3703")
    for version in (None, "1", "3"):  # one apart, or before the header: on to the next check
        status, body, _headers = _post(url, version)
        assert (status, protocol.decode(body)["code"]) == (401, "unauthenticated"), version
    assert NOW  # the fixtures' clock, shared with the other in-process tests


def test_a_child_refused_for_its_protocol_says_so_in_one_line() -> None:
    from daiban.sync import client

    answer = protocol.error_body(400, "protocol_version", "far apart", protocol=protocol.PROTOCOL + 2)
    failed = client._refusal(400, answer)
    assert failed.code == "protocol_version"
    text = str(failed)
    assert str(protocol.PROTOCOL + 2) in text and str(protocol.PROTOCOL) in text and "\n" not in text
