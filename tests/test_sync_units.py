"""The sync layer's pure and library-level parts: routing by code prefix,
certificate chains and their name constraint, signed and sealed envelopes,
sealing to an office whose key arrives later, the gapless per-origin sequence,
and the manifest's refusal to roll back."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest

from daiban.node import catalog, identity, journal, manifest, revocation, routing
from daiban.node.applications import Node
from daiban.node.clock import stamp
from daiban.trust import certs, envelope
from daiban.trust.certs import Cert, CertError
from daiban.trust.crypto import NodeKeys, b64, canonical, random_id
from daiban.trust.envelope import EnvelopeError
from tests.conftest import BEIJING_ID, ZIBO_ID, filing

MakeNode = Callable[..., Node]

CITY, DISTRICT, TOWN, VILLAGE = "3703", "370303", "370303101", "370303101201"
NOW = "2026-11-27T10:00:00+08:00"


# -- helpers ------------------------------------------------------------------


@dataclasses.dataclass
class Tree:
    keys: dict[str, NodeKeys]
    certs: dict[str, Cert]

    def chain(self, *codes: str) -> list[Cert]:
        return [self.certs[c] for c in codes]

    @property
    def root_fingerprint(self) -> str:
        return self.certs[CITY].fingerprint


def _issue(issuer: str, issuer_keys: NodeKeys, code: str, keys: NodeKeys, name: str = "") -> Cert:
    return certs.issue(
        issuer_code=issuer,
        issuer_sign=issuer_keys.sign,
        code=code,
        name=name or f"node {code}",
        sign=keys.sign_public,
        enc=keys.enc_public,
        serial=random_id(),
        issued_at=NOW,
    )


def make_tree(codes: tuple[str, ...] = (CITY, DISTRICT, TOWN, VILLAGE)) -> Tree:
    """A chain of real keys and certificates, root first, each issued by the one before."""
    keys = {c: NodeKeys.generate() for c in codes}
    issued: dict[str, Cert] = {}
    issuer = codes[0]
    for code in codes:
        issued[code] = _issue(issuer, keys[issuer], code, keys[code])
        issuer = code
    return Tree(keys, issued)


def _forge(signer: NodeKeys, **fields: Any) -> Cert:
    """A certificate built by hand, signed over its fields, bypassing issue()'s checks."""
    draft = Cert(**{**fields, "sig": b""})
    return dataclasses.replace(draft, sig=signer.sign.sign(canonical(draft.unsigned())))


def _env(keys: NodeKeys, **overrides: Any) -> envelope.Envelope:
    values: dict[str, Any] = {
        "id": random_id(),
        "origin": VILLAGE,
        "seq": 7,
        "kind": "supplemented",
        "to": TOWN,
        "tracking": "T370303101201-0001",
        "actor": "王代办",
        "at": NOW,
        "body": {"materials": ["户口簿"], "note": "补交", "n": 12},
    }
    values.update(overrides)
    return envelope.make(keys, **values)


def _rewrite(raw: str, change: Callable[[dict[str, Any]], None]) -> str:
    """The canonical text of an envelope with one member changed (signature untouched)."""
    data = json.loads(raw)
    change(data)
    return canonical(data).decode()


def _cert_error(fn: Callable[[], object]) -> str:
    with pytest.raises(CertError) as info:
        fn()
    return info.value.code


def _envelope_error(fn: Callable[[], object]) -> str:
    with pytest.raises(EnvelopeError) as info:
        fn()
    return info.value.code


# -- routing ------------------------------------------------------------------


def test_next_hop_keeps_what_is_addressed_here() -> None:
    assert routing.next_hop(TOWN, TOWN, [VILLAGE]) == routing.Hop("keep")
    assert routing.next_hop(CITY, CITY, []) == routing.Hop("keep")


@pytest.mark.parametrize("children", [["370303101", "370303101201"], ["370303101201", "370303101"]])
def test_next_hop_goes_down_to_the_longest_prefix_child(children: list[str]) -> None:
    # A district with a town and one of that town's villages enrolled directly.
    assert routing.next_hop(DISTRICT, "370303101201", children) == routing.Hop("down", "370303101201")
    assert routing.next_hop(DISTRICT, "370303101202", children) == routing.Hop("down", "370303101")
    assert routing.next_hop(DISTRICT, "370303101", children) == routing.Hop("down", "370303101")


def test_next_hop_ignores_children_that_are_not_prefixes() -> None:
    children = ["370303102", "370303101201"]
    assert routing.next_hop(DISTRICT, "370303102005", children) == routing.Hop("down", "370303102")
    # 370303101 is not a child; its village 370303101201 is not a prefix of 370303101.
    assert routing.next_hop(DISTRICT, "370303101", children, from_parent=True) == routing.Hop("hold")


def test_next_hop_holds_what_came_down_when_no_child_matches() -> None:
    assert routing.next_hop(DISTRICT, "370303105001", ["370303101"], from_parent=True) == routing.Hop("hold")
    assert routing.next_hop(TOWN, VILLAGE, [], from_parent=True) == routing.Hop("hold")
    assert routing.next_hop(CITY, "370305", [DISTRICT], from_parent=True) == routing.Hop("hold")


def test_next_hop_hands_up_what_no_child_takes_unless_it_came_down() -> None:
    # A village enrolled directly at its district: its town's decisions go up
    # to the district, which hands them down to the village.
    assert routing.next_hop(TOWN, "370303101202", [VILLAGE]) == routing.Hop("up")
    assert routing.next_hop(TOWN, "370303101202", [VILLAGE], from_parent=True) == routing.Hop("hold")
    assert routing.next_hop(DISTRICT, "370303105001", ["370303101"]) == routing.Hop("up")


def test_next_hop_goes_up_otherwise() -> None:
    assert routing.next_hop(VILLAGE, TOWN, []) == routing.Hop("up")
    assert routing.next_hop(VILLAGE, "370303101202", []) == routing.Hop("up")  # a sibling village
    assert routing.next_hop(DISTRICT, "370304", ["370303101"]) == routing.Hop("up")  # a sibling district
    assert routing.next_hop(DISTRICT, "370304101001", ["370303101"]) == routing.Hop("up")
    assert routing.next_hop(TOWN, CITY, [VILLAGE]) == routing.Hop("up")
    assert routing.next_hop(TOWN, DISTRICT, [VILLAGE]) == routing.Hop("up")


def test_flood_skips_where_it_came_from_and_has_up_only_with_a_parent() -> None:
    kids = ["370303101", "370303102", "370303101201"]
    assert routing.flood(DISTRICT, None, CITY, kids) == [*kids, routing.UP]
    assert routing.flood(DISTRICT, CITY, CITY, kids) == kids  # came down from the parent
    from_child = routing.flood(DISTRICT, "370303102", CITY, kids)
    assert "370303102" not in from_child
    assert sorted(from_child) == sorted(["370303101", "370303101201", routing.UP])
    assert routing.flood(CITY, None, None, [DISTRICT]) == [DISTRICT]
    assert routing.flood(CITY, DISTRICT, None, [DISTRICT]) == []
    assert routing.flood(VILLAGE, TOWN, TOWN, []) == []
    for came_from in (None, CITY, *kids):
        hops = routing.flood(DISTRICT, came_from, CITY, kids)
        assert came_from not in hops
        assert (routing.UP in hops) == (came_from != CITY)


@pytest.mark.parametrize("kind", sorted(routing.OFFICE_KINDS))
def test_destination_of_office_decisions_is_the_filer(kind: str) -> None:
    assert routing.destination(kind, TOWN, VILLAGE, TOWN) == VILLAGE


@pytest.mark.parametrize("kind", ["filed", "supplemented", "withdrawn", "evaluated"])
def test_destination_of_filer_events(kind: str) -> None:
    assert routing.destination(kind, VILLAGE, VILLAGE, TOWN) == TOWN
    # Recorded at the office itself (e.g. a supplement handed in at the counter): to the filer.
    assert routing.destination(kind, TOWN, VILLAGE, TOWN) == VILLAGE


def test_destination_covers_every_application_kind() -> None:
    from daiban.node.lifecycle import Kind

    for kind in Kind:
        dest = routing.destination(kind.value, VILLAGE, VILLAGE, TOWN)
        assert dest == (VILLAGE if kind.value in routing.OFFICE_KINDS else TOWN), kind


# -- certificates ---------------------------------------------------------------


def test_four_level_chain_verifies_to_its_leaf() -> None:
    tree = make_tree()
    chain = tree.chain(CITY, DISTRICT, TOWN, VILLAGE)
    leaf = certs.verify_chain(chain, tree.root_fingerprint)
    assert leaf.code == VILLAGE and leaf.role == "village"
    assert leaf.sign == tree.keys[VILLAGE].sign_public
    assert leaf.enc == tree.keys[VILLAGE].enc_public
    assert [c.role for c in chain] == ["city", "district", "town", "village"]
    # As dicts (how chains travel) too, and every prefix of the chain.
    as_dicts = [c.as_dict() for c in chain]
    assert certs.verify_chain(as_dicts, tree.root_fingerprint) == leaf
    assert certs.verify_chain(as_dicts[:2], tree.root_fingerprint).code == DISTRICT
    assert Cert.from_dict(json.loads(json.dumps(as_dicts[3]))) == leaf


def test_a_village_enrolled_directly_at_its_district_verifies() -> None:
    tree = make_tree((CITY, DISTRICT, VILLAGE))
    assert certs.verify_chain(tree.chain(CITY, DISTRICT, VILLAGE), tree.root_fingerprint).code == VILLAGE


def test_issue_refuses_a_code_outside_the_issuer() -> None:
    tree = make_tree()
    stranger = NodeKeys.generate()
    assert _cert_error(lambda: _issue(TOWN, tree.keys[TOWN], "370304101201", stranger)) == "name_constraint"
    assert _cert_error(lambda: _issue(TOWN, tree.keys[TOWN], "370303102001", stranger)) == "name_constraint"
    assert _cert_error(lambda: _issue(TOWN, tree.keys[TOWN], DISTRICT, stranger)) == "name_constraint"
    assert _cert_error(lambda: _issue(TOWN, tree.keys[TOWN], "37030310120", stranger)) == "bad_code"


def test_verify_chain_refuses_a_code_sneaked_past_the_name_constraint() -> None:
    tree = make_tree()
    stranger = NodeKeys.generate()
    sneaked = _forge(
        tree.keys[TOWN],
        code="370304101201",
        name="不属于本镇",
        role="village",
        sign=stranger.sign_public,
        enc=stranger.enc_public,
        issuer=TOWN,
        serial=random_id(),
        issued_at=NOW,
    )
    chain = [*tree.chain(CITY, DISTRICT, TOWN), sneaked]
    assert _cert_error(lambda: certs.verify_chain(chain, tree.root_fingerprint)) == "name_constraint"
    # And a town certifying another district's town.
    sneaked_town = _forge(
        tree.keys[DISTRICT],
        code="370304101",
        name="邻区的镇",
        role="town",
        sign=stranger.sign_public,
        enc=stranger.enc_public,
        issuer=DISTRICT,
        serial=random_id(),
        issued_at=NOW,
    )
    chain = [*tree.chain(CITY, DISTRICT), sneaked_town]
    assert _cert_error(lambda: certs.verify_chain(chain, tree.root_fingerprint)) == "name_constraint"


# (A root with another signing key is the untrusted_root case, below.)
@pytest.mark.parametrize(
    ("position", "field"),
    [
        (p, f)
        for p in range(4)
        for f in ("name", "enc", "sign", "serial", "issued_at")
        if (p, f) != (0, "sign")
    ],
)
def test_verify_chain_refuses_a_tampered_field(position: int, field: str) -> None:
    tree = make_tree()
    chain = tree.chain(CITY, DISTRICT, TOWN, VILLAGE)
    cert = chain[position]
    new_value: Any = {
        "name": cert.name + "x",
        "enc": NodeKeys.generate().enc_public,
        "sign": NodeKeys.generate().sign_public,
        "serial": random_id(),
        "issued_at": "2030-01-01T00:00:00+08:00",
    }[field]
    chain[position] = dataclasses.replace(cert, **{field: new_value})
    assert _cert_error(lambda: certs.verify_chain(chain, tree.root_fingerprint)) == "bad_signature"


def test_verify_chain_refuses_a_tampered_dict_and_a_foreign_signature() -> None:
    tree = make_tree()
    as_dicts = [c.as_dict() for c in tree.chain(CITY, DISTRICT, TOWN, VILLAGE)]
    as_dicts[2] = {**as_dicts[2], "enc": b64(NodeKeys.generate().enc_public)}
    assert _cert_error(lambda: certs.verify_chain(as_dicts, tree.root_fingerprint)) == "bad_signature"
    # The village's certificate signed by the district instead of its town.
    chain = tree.chain(CITY, DISTRICT, TOWN, VILLAGE)
    v = chain[3]
    chain[3] = _forge(
        tree.keys[DISTRICT], **{f.name: getattr(v, f.name) for f in dataclasses.fields(v) if f.name != "sig"}
    )
    assert _cert_error(lambda: certs.verify_chain(chain, tree.root_fingerprint)) == "bad_signature"


def test_verify_chain_refuses_another_root() -> None:
    tree = make_tree()
    other = make_tree()
    chain = tree.chain(CITY, DISTRICT, TOWN, VILLAGE)
    assert _cert_error(lambda: certs.verify_chain(chain, other.root_fingerprint)) == "untrusted_root"
    # A whole other city's chain against this pin.
    assert (
        _cert_error(lambda: certs.verify_chain(other.chain(CITY, DISTRICT), tree.root_fingerprint))
        == "untrusted_root"
    )
    # A chain that starts below the city.
    assert (
        _cert_error(lambda: certs.verify_chain(tree.chain(DISTRICT, TOWN), tree.root_fingerprint))
        == "untrusted_root"
    )


@pytest.mark.parametrize("position", [0, 1, 2, 3])
def test_verify_chain_refuses_a_revoked_serial_anywhere(position: int) -> None:
    tree = make_tree()
    chain = tree.chain(CITY, DISTRICT, TOWN, VILLAGE)
    unrelated = {random_id()}
    assert certs.verify_chain(chain, tree.root_fingerprint, unrelated).code == VILLAGE
    revoked = {chain[position].serial, *unrelated}
    assert _cert_error(lambda: certs.verify_chain(chain, tree.root_fingerprint, revoked)) == "revoked"


def test_verify_chain_refuses_a_broken_issuer_link() -> None:
    tree = make_tree()
    # The district left out: the town names 370303 as its issuer, not the city.
    assert (
        _cert_error(lambda: certs.verify_chain(tree.chain(CITY, TOWN, VILLAGE), tree.root_fingerprint))
        == "broken_chain"
    )
    # Out of order.
    assert (
        _cert_error(
            lambda: certs.verify_chain(tree.chain(CITY, TOWN, DISTRICT, VILLAGE), tree.root_fingerprint)
        )
        == "broken_chain"
    )
    assert _cert_error(lambda: certs.verify_chain([], tree.root_fingerprint)) == "broken_chain"


def test_malformed_certificate_is_bad_cert() -> None:
    tree = make_tree()
    d = tree.certs[CITY].as_dict()
    del d["enc"]
    assert _cert_error(lambda: Cert.from_dict(d)) == "bad_cert"
    assert _cert_error(lambda: Cert.from_dict({**tree.certs[CITY].as_dict(), "v": 2})) == "bad_cert"


# -- envelopes ----------------------------------------------------------------


def test_make_parse_round_trip() -> None:
    keys = NodeKeys.generate()
    env = _env(keys)
    back = envelope.parse(env.raw)
    assert back == env
    assert (back.origin, back.seq, back.kind, back.to, back.tracking) == (
        VILLAGE,
        7,
        "supplemented",
        TOWN,
        "T370303101201-0001",
    )
    assert back.body == {"materials": ["户口簿"], "note": "补交", "n": 12}
    assert back.sealed is None and back.sealed_to is None
    assert back.digest == env.digest and len(back.digest) == 64
    assert "王代办" in back.raw  # UTF-8, not \u escapes
    envelope.check_signature(back, keys.sign_public)


def test_parse_refuses_non_canonical_text() -> None:
    env = _env(NodeKeys.generate())
    data = json.loads(env.raw)
    spaced = json.dumps(data, ensure_ascii=False, sort_keys=True)  # ", " and ": "
    assert _envelope_error(lambda: envelope.parse(spaced)) == "malformed"
    escaped = json.dumps(data, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
    assert _envelope_error(lambda: envelope.parse(escaped)) == "malformed"
    unsorted = json.dumps(dict(reversed(list(data.items()))), ensure_ascii=False, separators=(",", ":"))
    assert _envelope_error(lambda: envelope.parse(unsorted)) == "malformed"
    assert _envelope_error(lambda: envelope.parse(env.raw + " ")) == "malformed"
    assert _envelope_error(lambda: envelope.parse("not json")) == "malformed"


@pytest.mark.parametrize("bad_id", ["xyz", "0" * 31, "A" * 32, "g" * 32, "0" * 33])
def test_parse_refuses_a_bad_id(bad_id: str) -> None:
    env = _env(NodeKeys.generate(), id=bad_id)
    assert _envelope_error(lambda: envelope.parse(env.raw)) == "malformed"


@pytest.mark.parametrize("seq", [0, -1])
def test_parse_refuses_a_sequence_below_one(seq: int) -> None:
    env = _env(NodeKeys.generate(), seq=seq)
    assert _envelope_error(lambda: envelope.parse(env.raw)) == "malformed"


def test_parse_refuses_a_boolean_or_text_sequence() -> None:
    env = _env(NodeKeys.generate())
    for value in (True, "7"):
        data = json.loads(env.raw)
        data["seq"] = value
        raw = canonical(data).decode()
        with pytest.raises(EnvelopeError) as info:
            envelope.parse(raw)
        assert info.value.code == "malformed"


@pytest.mark.parametrize("member", ["id", "origin", "seq", "kind", "to", "body", "actor", "at", "sig", "v"])
def test_parse_refuses_a_missing_field(member: str) -> None:
    env = _env(NodeKeys.generate())
    raw = _rewrite(env.raw, lambda d: d.pop(member))
    assert _envelope_error(lambda: envelope.parse(raw)) == "malformed"


def test_parse_refuses_sealed_data_without_its_addressee() -> None:
    keys = NodeKeys.generate()
    env = _env(keys, sealed=b"0123456789abcdef", sealed_to=TOWN)
    raw = _rewrite(env.raw, lambda d: d.__setitem__("sealed_to", None))
    assert _envelope_error(lambda: envelope.parse(raw)) == "malformed"
    with pytest.raises(ValueError):
        _env(keys, sealed=b"x")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('"seq":7', '"seq":8'),
        ('"to":"370303101"', '"to":"370303102"'),
        ('"actor":"王代办"', '"actor":"王代力"'),
        ('"at":"2026-11-27T10:00:00+08:00"', '"at":"2026-11-27T10:00:01+08:00"'),
        ('"n":12', '"n":13'),
        ('"note":"补交"', '"note":"补文"'),
        ('"kind":"supplemented"', '"kind":"supplementee"'),
        ('"origin":"370303101201"', '"origin":"370303101202"'),
        ('"tracking":"T370303101201-0001"', '"tracking":"T370303101201-0002"'),
        ('"sealed_to":"370303101"', '"sealed_to":"370303100"'),
    ],
)
def test_check_signature_refuses_one_changed_character(old: str, new: str) -> None:
    keys = NodeKeys.generate()
    env = _env(keys, sealed=b"\x01" * 40, sealed_to=TOWN)
    envelope.check_signature(envelope.parse(env.raw), keys.sign_public)
    assert env.raw.count(old) == 1, old
    tampered = envelope.parse(env.raw.replace(old, new))  # still well-formed and canonical
    assert _envelope_error(lambda: envelope.check_signature(tampered, keys.sign_public)) == "bad_signature"


def test_check_signature_refuses_a_changed_sealed_byte_and_id() -> None:
    keys = NodeKeys.generate()
    env = _env(keys, sealed=bytes(range(48)), sealed_to=TOWN)
    altered = bytearray(env.sealed or b"")
    altered[20] ^= 0x01
    raw = _rewrite(env.raw, lambda d: d.__setitem__("sealed", b64(bytes(altered))))
    assert _envelope_error(lambda: envelope.check_signature(envelope.parse(raw), keys.sign_public)) == (
        "bad_signature"
    )
    other_id = "f" + env.id[1:] if env.id[0] != "f" else "e" + env.id[1:]
    raw = env.raw.replace(env.id, other_id)
    assert _envelope_error(lambda: envelope.check_signature(envelope.parse(raw), keys.sign_public)) == (
        "bad_signature"
    )


def test_check_signature_refuses_a_changed_signature() -> None:
    keys = NodeKeys.generate()
    env = _env(keys)
    sig = bytearray(env.sig)
    sig[5] ^= 0x80
    raw = _rewrite(env.raw, lambda d: d.__setitem__("sig", b64(bytes(sig))))
    assert _envelope_error(lambda: envelope.check_signature(envelope.parse(raw), keys.sign_public)) == (
        "bad_signature"
    )


def test_check_signature_refuses_a_forged_origin() -> None:
    village, forger = NodeKeys.generate(), NodeKeys.generate()
    forged = envelope.parse(_env(forger, origin=VILLAGE).raw)
    assert _envelope_error(lambda: envelope.check_signature(forged, village.sign_public)) == "bad_signature"
    envelope.check_signature(forged, forger.sign_public)  # it is a good signature, just not the village's


PERSONAL = {"name": "王秀兰", "id_number": ZIBO_ID, "phone": "13805331234", "fields": {"family_size": 3}}


def _sealed_env(origin: NodeKeys, office: NodeKeys, **overrides: Any) -> envelope.Envelope:
    env_id = overrides.pop("id", random_id())
    kind = overrides.pop("kind", "filed")
    tracking = overrides.pop("tracking", "T370303101201-0001")
    sealed = envelope.seal_personal(
        origin, id=env_id, kind=kind, tracking=tracking, personal=PERSONAL, enc_public=office.enc_public
    )
    return _env(origin, id=env_id, kind=kind, tracking=tracking, sealed=sealed, sealed_to=TOWN, **overrides)


def test_seal_and_open_at_the_addressee() -> None:
    village, town = NodeKeys.generate(), NodeKeys.generate()
    env = envelope.parse(_sealed_env(village, town).raw)
    assert env.sealed_to == TOWN
    assert envelope.open_sealed(env, town, village.sign_public) == PERSONAL
    assert ZIBO_ID not in env.raw and "王秀兰" not in env.raw
    assert _envelope_error(lambda: envelope.open_sealed(_env(village), town, village.sign_public)) == (
        "not_sealed"
    )


def test_another_nodes_key_cannot_open() -> None:
    village, town, relay = NodeKeys.generate(), NodeKeys.generate(), NodeKeys.generate()
    env = _sealed_env(village, town)
    assert _envelope_error(lambda: envelope.open_sealed(env, relay, village.sign_public)) == "bad_seal"
    assert _envelope_error(lambda: envelope.open_sealed(env, village, village.sign_public)) == "bad_seal"


def test_sealed_part_is_bound_to_its_id_kind_and_tracking() -> None:
    village, town = NodeKeys.generate(), NodeKeys.generate()
    env = _sealed_env(village, town)
    assert env.sealed is not None
    sealed, tracking = env.sealed, env.tracking
    assert envelope.open_blob(sealed, env.id, env.kind, tracking, town, village.sign_public) == PERSONAL
    other_id = random_id()
    for env_id, kind, trk in (
        (other_id, env.kind, tracking),
        (env.id, "supplemented", tracking),
        (env.id, env.kind, "T370303101201-0002"),
    ):
        with pytest.raises(EnvelopeError) as info:
            envelope.open_blob(sealed, env_id, kind, trk, town, village.sign_public)
        assert info.value.code == "bad_seal"


def test_inner_signature_is_checked() -> None:
    village, town, impostor = NodeKeys.generate(), NodeKeys.generate(), NodeKeys.generate()
    env = _sealed_env(village, town)
    # The same personal part re-sealed to the office by someone else, under the same id and kind.
    resealed = envelope.seal_personal(
        impostor,
        id=env.id,
        kind=env.kind,
        tracking=env.tracking,
        personal=PERSONAL,
        enc_public=town.enc_public,
    )
    opened = envelope.open_blob(resealed, env.id, env.kind, env.tracking, town, impostor.sign_public)
    assert opened == PERSONAL
    assert (
        _envelope_error(
            lambda: envelope.open_blob(resealed, env.id, env.kind, env.tracking, town, village.sign_public)
        )
        == "bad_seal"
    )
    # And swapped into an envelope the village really signed: the outer signature still holds,
    # the inner one does not.
    swapped = envelope.parse(_rewrite(env.raw, lambda d: d.__setitem__("sealed", b64(resealed))))
    assert _envelope_error(lambda: envelope.check_signature(swapped, village.sign_public)) == "bad_signature"
    assert _envelope_error(lambda: envelope.open_sealed(swapped, town, village.sign_public)) == "bad_seal"


# -- node level: sealing to an office whose key arrives later ---------------------


def _mz001() -> Any:
    return filing(
        item="MZ001",
        fields={"family_size": "3", "monthly_income": "420", "bank_account": "6222021234567890123"},
    )


def test_filing_before_the_office_key_is_known_then_resealed(make_node: MakeNode) -> None:
    village = make_node()  # 370303101201, not enrolled
    assert village.code == VILLAGE
    filed = village.file(_mz001())
    assert filed.office == TOWN
    tracking = filed.tracking

    held = village.store.personal_for(tracking)
    assert len(held) == 1
    assert held[0]["sealed_to"] == VILLAGE
    assert ZIBO_ID not in held[0]["data"]
    pending = village.store.events_without_envelope()
    assert [(e.tracking, e.kind, e.seq) for e in pending] == [(tracking, "filed", 1)]
    assert village.store.envelope_row(pending[0].id) is None
    assert village.store.raw_envelopes(tracking) == []
    # Until then, the village can open what it sealed to itself.
    opened = village.personal(tracking)
    assert opened is not None and opened["id_number"] == ZIBO_ID
    assert village.reseal_pending() == 0  # still no key for the town

    tree = make_tree((CITY, DISTRICT, TOWN))
    now = stamp(village.clock())
    with village.store.transaction():
        village.store.set_setting("root_fingerprint", tree.root_fingerprint)
        village.store.set_setting("root_code", CITY)
        leaf = identity.trust(village, tree.chain(CITY, DISTRICT, TOWN), "directory", now)
    assert leaf.code == TOWN
    assert identity.enc_key_for(village, TOWN) == tree.keys[TOWN].enc_public

    assert village.reseal_pending() == 1
    assert village.store.events_without_envelope() == []
    raws = village.store.raw_envelopes(tracking)
    assert len(raws) == 1
    env = envelope.parse(raws[0])
    assert (env.id, env.origin, env.seq, env.kind, env.to) == (pending[0].id, VILLAGE, 1, "filed", TOWN)
    assert env.sealed_to == TOWN
    assert ZIBO_ID not in env.raw
    envelope.check_signature(env, village.keys.sign_public)
    personal = envelope.open_sealed(env, tree.keys[TOWN], village.keys.sign_public)
    assert personal["name"] == "王秀兰"
    assert personal["id_number"] == ZIBO_ID
    assert personal["phone"] == "13805331234"
    assert personal["fields"]["family_size"] == 3
    assert village.store.personal_sealed(env.id)["sealed_to"] == TOWN  # type: ignore[index]
    assert village.personal(tracking) is None
    # Queued for the parent; nothing more to reseal.
    assert [row.raw for row in village.store.outbox(routing.UP)] == raws
    assert village.reseal_pending() == 0


def test_reseal_refuses_an_office_chain_from_another_root(make_node: MakeNode) -> None:
    village = make_node()
    tracking = village.file(_mz001()).tracking
    ours, theirs = make_tree((CITY, DISTRICT, TOWN)), make_tree((CITY, DISTRICT, TOWN))
    with village.store.transaction():
        village.store.set_setting("root_fingerprint", ours.root_fingerprint)
    with pytest.raises(CertError) as info:
        identity.trust(village, theirs.chain(CITY, DISTRICT, TOWN), "directory", NOW)
    assert info.value.code == "untrusted_root"
    assert village.reseal_pending() == 0
    assert village.store.personal_for(tracking)[0]["sealed_to"] == VILLAGE


# -- the gapless per-origin sequence, and the manifest's version ---------------------


def _bumped(version: int) -> dict[str, Any]:
    """The bundled catalog at ``version`` counted from its own (1 is it)."""
    doc = catalog.read_document(catalog.bundled_path())
    doc["version"] += version - 1
    return doc


def _seqs(node: Node, table: str, origin: str) -> list[int]:
    return [
        r[0]
        for r in node.store.db.conn.execute(
            f"SELECT seq FROM {table} WHERE origin = ? ORDER BY seq", [origin]
        )
    ]


def _gj001(id_number: str) -> Any:
    return filing(
        item="GJ001",
        id_number=id_number,
        fields={"retire_date": "2025-01-01", "bank_name": "工商银行", "bank_account": "6222021234567890123"},
    )


def test_sequence_is_gapless_across_events_and_broadcasts(make_node: MakeNode) -> None:
    city = make_node(role="city", code=CITY, name="淄博市")
    city.file(_gj001(ZIBO_ID))  # filed + received, both at the city
    assert manifest.publish(city, _bumped(2)) == 1
    assert city.store.setting("manifest_version") == "1"
    # A district the city certified, then revoked: the revocation takes a number too.
    district_keys = NodeKeys.generate()
    cert = _issue(CITY, city.keys, DISTRICT, district_keys)
    root_chain = city.store.cert_chain(CITY)
    assert root_chain is not None and len(root_chain) == 1
    with city.store.transaction():
        identity.trust(city, [*root_chain, cert.as_dict()], "child", NOW)
    assert revocation.revoke(city, DISTRICT) == cert.serial
    city.file(_gj001(BEIJING_ID))
    assert manifest.publish(city, _bumped(3)) == 2
    assert city.store.setting("manifest_version") == "2"
    assert city.catalog_info()["version"] == _bumped(3)["version"]

    envelope_seqs = _seqs(city, "envelopes", CITY)
    event_seqs = _seqs(city, "events", CITY)
    assert envelope_seqs == list(range(1, len(envelope_seqs) + 1))
    assert len(envelope_seqs) == 2 + 1 + 1 + 2 + 1
    assert set(event_seqs) <= set(envelope_seqs)
    assert len(event_seqs) == 4
    kinds = [
        r[0]
        for r in city.store.db.conn.execute(
            "SELECT kind FROM envelopes WHERE origin = ? ORDER BY seq", [CITY]
        )
    ]
    assert kinds == ["filed", "received", "manifest", "revocation", "filed", "received", "manifest"]
    assert city.store.events_without_envelope() == []
    # Each stored envelope is the one it claims to be: its seq is in its signed text.
    for row in city.store.db.conn.execute("SELECT seq, raw FROM envelopes WHERE origin = ?", [CITY]):
        env = envelope.parse(row[1])
        assert env.seq == row[0]
        envelope.check_signature(env, city.keys.sign_public)
    latest = envelope.parse(city.store.latest_manifest() or "")
    assert latest.body["version"] == 2
    assert latest.body["revoked"] == [cert.serial]
    assert city.store.next_seq(CITY) == len(envelope_seqs) + 1


def test_manifest_rollback_is_refused(make_node: MakeNode) -> None:
    city = make_node(role="city", code=CITY, name="淄博市")
    manifest.publish(city, _bumped(2))
    raw_v1 = city.store.latest_manifest()
    manifest.publish(city, _bumped(3))
    raw_v2 = city.store.latest_manifest()
    assert raw_v1 and raw_v2 and raw_v1 != raw_v2
    v1, v2 = envelope.parse(raw_v1), envelope.parse(raw_v2)
    assert (v1.body["version"], v2.body["version"]) == (1, 2)
    assert _envelope_error(lambda: journal._check_kind(city, v1)) == "rollback"
    assert _envelope_error(lambda: journal._check_kind(city, v2)) == "rollback"  # not newer either

    # A district that pinned this city: takes version 1 while it holds none, not once it holds 2.
    district = make_node(role="district", code=DISTRICT, name="张店区")
    city_chain = city.store.cert_chain(CITY)
    assert city_chain is not None
    with district.store.transaction():
        district.store.set_setting("root_fingerprint", identity.root_fingerprint(city) or "")
        district.store.set_setting("root_code", CITY)
        identity.trust(district, city_chain, "parent", NOW)
    fresh = journal.check(district, [raw_v1], sender=CITY, direction="down")
    assert [e.id for e in fresh.accepted] == [v1.id] and not fresh.refused
    stored, refused = journal.receive(district, [raw_v2], sender=CITY, direction="down")
    assert [v.status for v in stored] == ["stored"] and refused == []
    assert district.store.setting("manifest_version") == "2"
    assert district.catalog_info()["version"] == _bumped(3)["version"]
    old = journal.check(district, [raw_v1], sender=CITY, direction="down")
    assert old.accepted == []
    assert [(v.id, v.code) for v in old.refused] == [(v1.id, "rollback")]
    stored, refused = journal.receive(district, [raw_v1], sender=CITY, direction="down")
    assert stored == [] and [v.code for v in refused] == ["rollback"]
    assert district.store.setting("manifest_version") == "2"
    assert district.catalog_info()["version"] == _bumped(3)["version"]
    assert district.store.envelope_row(v1.id) is None
