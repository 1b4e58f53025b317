"""Admission (daiban/node/admission.py) and the body schemas
(daiban/schemas/bodies/): every body a real node makes, of every kind, is
admitted; wrong types, missing or unknown members, dates that do not exist,
integers beyond 64 bits, deep nesting, unknown kinds and bodies that are not
objects are refused with their reason code, and nothing fed to admission ever
raises anything but ``Refused``. The compiled validators agree with the
schema files read by jsonschema, which are the contract."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastjsonschema import JsonSchemaValueException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator, FormatChecker
from referencing import Registry
from referencing.jsonschema import DRAFT7, DRAFT202012
from stdnum.cn import ric

from daiban import i18n
from daiban.node import admission, catalog, identity, journal, manifest, retired, revocation, statistics
from daiban.node.admission import KINDS, Refused, check_body, check_envelope, check_value
from daiban.node.applications import Node
from daiban.node.clock import CST
from daiban.node.home import init_home
from daiban.node.store import DB_NAME
from daiban.trust import certs
from daiban.trust.crypto import random_id
from tests.conftest import FrozenClock, filing

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "daiban" / "schemas"
CITY, DISTRICT, TOWN, VILLAGE = "3703", "370303", "370303101", "370303101201"
NOW = "2026-11-27T10:00:00+08:00"
DEEP = 900


def resident(n: int) -> str:
    """A valid resident ID number (Zibo, born 1980), distinct per n."""
    body = f"37030319800101{n:03d}"
    return body + ric.calc_check_digit(body + "0")  # stdnum wants a placeholder check digit


# -- real envelopes of every kind ------------------------------------------------


@dataclasses.dataclass
class Real:
    envelopes: list[dict[str, Any]]
    district_cert: dict[str, Any]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.envelopes if e["kind"] == kind]

    def body(self, kind: str) -> dict[str, Any]:
        return copy.deepcopy(self.of(kind)[0]["body"])


def _enroll(parent: Node, child: Node) -> dict[str, Any]:
    """What `daiban enroll` leaves at both ends, without HTTP (as in
    tests/test_stats_stream.py), and the parent's chain at the child so that
    the child seals to it."""
    cert = certs.issue(
        issuer_code=parent.code,
        issuer_sign=parent.keys.sign,
        code=child.code,
        name=child.name,
        sign=child.keys.sign_public,
        enc=child.keys.enc_public,
        serial=random_id(),
        issued_at=NOW,
    )
    parent_chain = identity.own_chain(parent) or []
    chain = [*parent_chain, cert.as_dict()]
    with parent.store.transaction():
        parent.store.put_cert(child.code, cert.serial, chain, "child", NOW)
        parent.store.put_peer(child.code, "child")
    with child.store.transaction():
        child.store.set_setting("root_fingerprint", identity.root_fingerprint(parent) or "")
        child.store.set_setting("root_code", parent.store.setting("root_code") or "")
        child.store.put_cert(child.code, cert.serial, chain, "self", NOW)
        child.store.put_cert(parent.code, parent_chain[-1]["serial"], parent_chain, "parent", NOW)
        child.store.put_peer(parent.code, "parent")
    return cert.as_dict()


def _raws(home: Path) -> list[str]:
    with sqlite3.connect(home / DB_NAME) as db:
        return [row[0] for row in db.execute("SELECT raw FROM envelopes ORDER BY n")]


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Real:
    """A city, district, town and village with real keys; the town files and
    decides applications through every path of the lifecycle, the village
    files one to the town, the city publishes a manifest and revokes, the
    district retires a replaced town's key, the town publishes statistics.
    Every envelope is read back from the nodes' tables, as sent."""
    i18n.set_language("en")
    base = tmp_path_factory.mktemp("admission")
    clock = FrozenClock(dt.datetime(2026, 11, 27, 10, 0, tzinfo=CST))
    homes = {code: base / code for code in (CITY, DISTRICT, TOWN, VILLAGE)}
    roles = {CITY: "city", DISTRICT: "district", TOWN: "town", VILLAGE: "village"}
    names = {CITY: "淄博市", DISTRICT: "张店区", TOWN: "南定镇", VILLAGE: "大张村代办点"}
    nodes = {
        code: init_home(homes[code], role=roles[code], code=code, name=names[code], clock=clock)
        for code in homes
    }
    city, district, town, village = (nodes[c] for c in (CITY, DISTRICT, TOWN, VILLAGE))
    try:
        district_cert = _enroll(city, district)
        town_cert = _enroll(district, town)
        _enroll(town, village)

        def mz003(n: int, **extra: Any) -> str:
            fields = {"assistance_kind": "急难型", "hardship_reason": "房屋失火", "requested_amount": 3721}
            return town.file(
                filing(item="MZ003", id_number=resident(n), region=VILLAGE, fields=fields, **extra)
            ).tracking

        # Owed at filing, accepted owing, supplied, completed by post, evaluated.
        first = mz003(1, missing=["困难情况证明材料"])
        town.review(first, "accept", note="容缺受理", missing=["困难情况证明材料"])
        town.supplement(first, ["困难情况证明材料"], note="已补齐")
        town.review(
            first,
            "complete",
            note="准予救助",
            delivery="post",
            post_tracking="1180123456789",
            address="山东省淄博市张店区南定镇大张村幸福路12号",
        )
        town.evaluate(first, 5, comment="很满意")
        # A supplement asked for, then rejected.
        second = mz003(2)
        town.review(second, "supplement", missing=["临时救助申请书", "困难情况证明材料"], note="请补正")
        town.review(second, "reject", note="不符合救助条件")
        # Corrected (a phone and a form field), then withdrawn.
        third = mz003(3)
        town.correct(
            third, {"phone": "13900000000", "fields": {"hardship_reason": "房屋失火受损"}}, reason="录入错误"
        )
        town.withdraw(third, note="申请人撤回")
        # Accepted where the calendar does not cover the due date's year yet
        # (due null, due_missing_year set), completed for pickup.
        clock.set("2026-12-30T09:00:00")
        fourth = mz003(4)
        town.review(fourth, "accept")
        town.review(fourth, "complete", note="已办结")
        clock.set("2026-11-27T10:00:00")
        # A landline phone, a one-character name, filed at the village.
        village.file(
            filing(
                item="MZ003",
                name="王",
                id_number=resident(5),
                phone="053-1234567",
                fields={"assistance_kind": "急难型", "hardship_reason": "房屋失火"},
            )
        )
        # The village's filing pushed to the town, as a server takes it in:
        # the town's receipt goes back in bulk (`receipts`).
        filed = [r for r in _raws(homes[VILLAGE]) if json.loads(r)["kind"] == "filed"]
        stored, refused = journal.receive(town, filed, sender=VILLAGE, direction="up")
        assert [v.status for v in stored] == ["stored"] and not refused
        # The city's manifest, a revocation, a retired key; the town's statistics.
        doc = catalog.read_document(catalog.bundled_path())
        manifest.publish(city, {**doc, "version": doc["version"] + 1})
        revocation.revoke(city, DISTRICT)
        with district.store.transaction():
            chain = district.store.cert_chain(TOWN) or []
            retired.retire(district, TOWN, certs.Cert.from_dict(town_cert), chain, 7, NOW)
        statistics.flush(town)
    finally:
        for node in nodes.values():
            node.close()
    envelopes = [json.loads(raw) for home in homes.values() for raw in _raws(home)]
    return Real(envelopes, district_cert)


def test_real_envelopes_of_every_kind_are_admitted(real: Real) -> None:
    assert {e["kind"] for e in real.envelopes} == set(KINDS)
    for envelope in real.envelopes:
        check_envelope(envelope)
        check_body(envelope["kind"], envelope["body"])
        check_value(envelope)


def test_the_real_bodies_cover_the_optional_members(real: Real) -> None:
    accepted = [e["body"] for e in real.of("accepted")]
    assert any("owed" in b for b in accepted) and any("owed" not in b for b in accepted)
    assert any(b["due"] is None and b["due_missing_year"] == 2027 for b in accepted)
    assert any(b["due"] is not None and b["due_missing_year"] is None for b in accepted)
    methods = {
        (b["delivery"]["method"], b["delivery"]["post_tracking"]) for b in map(_body, real.of("completed"))
    }
    assert methods == {("post", "1180123456789"), ("pickup", None)}
    revocations = [e["body"] for e in real.of("revocation")]
    assert any(set(b) == {"code", "serial", "chain"} for b in revocations)
    assert any(set(b) == {"code", "serial", "chain", "sign", "upto"} and b["upto"] == 7 for b in revocations)
    applicants = [b["applicant"] for b in map(_body, real.of("filed"))]
    masked_id = "3703" + "*" * 10 + resident(5)[-4:]
    assert {"name": "*", "id_number": masked_id, "phone": "053***4567"} in applicants


def _body(envelope: dict[str, Any]) -> dict[str, Any]:
    return envelope["body"]


def test_a_revocation_carries_the_revoked_certificates_chain(real: Real) -> None:
    body = real.body("revocation")
    body = {"code": DISTRICT, "serial": real.district_cert["serial"], "chain": [real.district_cert]}
    check_body("revocation", body)
    assert _refusal(check_body, "revocation", {"code": DISTRICT, "serial": body["serial"]}) == "invalid_body"
    for change in (
        lambda c: c.update(extra=1),
        lambda c: c.update(serial="x"),
        lambda c: c.update(issued_at="2026-02-30T10:00:00+08:00"),
        lambda c: c.pop("sig"),
    ):
        cert = copy.deepcopy(real.district_cert)
        change(cert)
        assert _refusal(check_body, "revocation", {**body, "chain": [cert]}) == "invalid_body"


# -- the schema files ----------------------------------------------------------


def _schema_files() -> list[Path]:
    return sorted((SCHEMAS / "bodies").glob("*.schema.json"))


def test_there_is_one_schema_per_kind_and_each_is_a_documented_draft_07_schema() -> None:
    kinds = {p.name.removesuffix(".schema.json") for p in _schema_files()}
    assert kinds == {*KINDS, "common"}
    for path in _schema_files():
        schema = json.loads(path.read_text(encoding="utf-8"))
        Draft7Validator.check_schema(schema)
        assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
        assert schema["$id"] == f"{admission.SCHEMA_BASE}bodies/{path.name}"
        assert schema["title"] and "draft-07" in schema["description"].lower(), path.name
        if path.name != "common.schema.json":
            assert schema["type"] == "object" and schema["additionalProperties"] is False, path.name
        for where, member in _members(schema):
            assert member.get("description"), f"{path.name}: {where} has no description"


def _members(schema: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every member described under properties, and every definition."""
    if not isinstance(schema, dict):
        return
    for group in ("properties", "definitions"):
        for name, sub in (schema.get(group) or {}).items():
            if group == "definitions" and name == "bounds":
                continue  # tightens statsRecord's members, described there
            yield f"{where}/{name}", sub
            yield from _members(sub, f"{where}/{name}")
    for sub in (schema.get("items"), *(schema.get("allOf") or [])):
        yield from _members(sub, f"{where}[]")


def _registry() -> Registry:
    resources = [
        (
            f"{admission.SCHEMA_BASE}bodies/{p.name}",
            DRAFT7.create_resource(json.loads(p.read_text(encoding="utf-8"))),
        )
        for p in _schema_files()
    ]
    envelope = json.loads((SCHEMAS / "envelope.schema.json").read_text(encoding="utf-8"))
    resources.append((envelope["$id"], DRAFT202012.create_resource(envelope)))
    return Registry().with_resources(resources)


REGISTRY = _registry()
FORMATS = FormatChecker(formats=())
FORMATS.checks("date")(lambda v: not isinstance(v, str) or admission.is_date(v))
FORMATS.checks("date-time")(lambda v: not isinstance(v, str) or admission.is_datetime(v))


def contract(kind: str) -> Draft7Validator:
    """The schema file as jsonschema reads it: the contract."""
    schema = json.loads((SCHEMAS / "bodies" / f"{kind}.schema.json").read_text(encoding="utf-8"))
    return Draft7Validator(schema, registry=REGISTRY, format_checker=FORMATS)


def test_the_stats_body_reuses_the_envelope_schemas_record(real: Real) -> None:
    stats = json.loads((SCHEMAS / "bodies" / "stats.schema.json").read_text(encoding="utf-8"))
    parts = stats["properties"]["records"]["items"]["allOf"]
    assert parts[0] == {"$ref": "../envelope.schema.json#/$defs/statsRecord"}
    envelope = json.loads((SCHEMAS / "envelope.schema.json").read_text(encoding="utf-8"))
    record = envelope["$defs"]["statsRecord"]
    # What the bounds tighten are members the record has, never new ones.
    assert set(stats["definitions"]["bounds"]["properties"]) <= set(record["properties"])
    for envelope_ in real.of("stats"):
        contract("stats").validate(envelope_["body"])


def test_the_real_bodies_fit_the_schema_files_as_jsonschema_reads_them(real: Real) -> None:
    for envelope in real.envelopes:
        contract(envelope["kind"]).validate(envelope["body"])


# -- refusals ----------------------------------------------------------------------


def _refusal(check: Callable[..., None], *args: Any) -> str:
    """The code ``check(*args)`` refuses with, or "admitted"."""
    try:
        check(*args)
    except Refused as refused:
        assert refused.reason and isinstance(refused.reason, str)
        return refused.code
    return "admitted"


def _envelope_with(real: Real, kind: str, body: Any) -> dict[str, Any]:
    envelope = copy.deepcopy(real.of(kind)[0])
    envelope["body"] = body
    return envelope


WRONG_TYPES: list[Any] = [None, True, 0, -1, "", "text", [], {}, ["x"], {"a": 1}]


@pytest.mark.parametrize("kind", KINDS)
def test_every_member_of_the_wrong_type_is_refused(real: Real, kind: str) -> None:
    body = real.body(kind)
    validator = contract(kind)
    for member in body:
        for wrong in WRONG_TYPES:
            changed = {**body, member: wrong}
            if validator.is_valid(changed):
                continue  # e.g. an empty list of owed materials, an empty note
            assert _refusal(check_body, kind, changed) == "invalid_body", (member, wrong)
            envelope = _envelope_with(real, kind, changed)
            assert _refusal(check_envelope, envelope) == "invalid_body", (member, wrong)


@pytest.mark.parametrize("kind", KINDS)
def test_a_missing_member_or_an_unknown_one_is_refused(real: Real, kind: str) -> None:
    body = real.body(kind)
    required = json.loads((SCHEMAS / "bodies" / f"{kind}.schema.json").read_text("utf-8"))["required"]
    assert required
    for member in required:
        less = {k: v for k, v in body.items() if k != member}
        with pytest.raises(Refused) as refused:
            check_body(kind, less)
        assert refused.value.code == "invalid_body"
        assert refused.value.reason == f"body: lacks the member {member}"
    with pytest.raises(Refused) as refused:
        check_body(kind, {**body, "name": "王秀兰"})
    assert (refused.value.code, refused.value.reason) == ("invalid_body", "body: has an unknown member name")


@pytest.mark.parametrize("kind", KINDS)
def test_bodies_that_are_not_objects_are_refused(real: Real, kind: str) -> None:
    for body in (None, [], [real.body(kind)], "body", 1, 1.5, True):
        with pytest.raises(Refused) as refused:
            check_body(kind, body)
        assert (refused.value.code, refused.value.reason) == ("invalid_body", "body: must be an object")
        assert _refusal(check_envelope, _envelope_with(real, kind, body)) == "invalid_body"


@pytest.mark.parametrize("kind", KINDS)
def test_big_integers_and_deep_nesting_are_refused_in_every_kind(real: Real, kind: str) -> None:
    body = real.body(kind)
    deep: Any = []
    for _ in range(DEEP):  # built iteratively: no recursion to make it
        deep = [deep]
    deep_object: Any = {}
    for _ in range(DEEP):
        deep_object = {"a": deep_object}
    member = next(iter(body))
    for poison in (2**63, 2**63 + 1, 10**30, -(2**63) - 1, deep, deep_object, float("nan"), float("inf")):
        for where in ({**body, member: poison}, {**body, "extra": [poison]}):
            assert _refusal(check_body, kind, where) == "invalid_body"
            envelope = _envelope_with(real, kind, where)
            assert _refusal(check_envelope, envelope) == "malformed"
            assert _refusal(check_value, envelope) == "malformed"


def test_the_64_bit_bounds_are_exact() -> None:
    check_value([2**63 - 1, -(2**63)])
    for n in (2**63, -(2**63) - 1):
        with pytest.raises(Refused) as refused:
            check_value({"n": n})
        assert refused.value.code == "malformed"


def test_nesting_is_counted_in_containers() -> None:
    value: Any = 1
    for _ in range(16):
        value = [value]
    check_value(value)
    with pytest.raises(Refused):
        check_value([value])
    check_value([value], max_depth=17)
    with pytest.raises(Refused):
        check_value({"a": {"b": {}}}, max_depth=2)


def test_lone_surrogates_and_values_that_are_not_json_are_refused() -> None:
    for bad in ("\ud800", {"\udfff": 1}, ["ok", "王\ud83d"], {1: "x"}, {"a": {1, 2}}, object(), b"bytes"):
        with pytest.raises(Refused) as refused:
            check_value(bad)
        assert refused.value.code == "malformed"
    check_value({"王": ["😀", "秀兰", (1, 2)], "n": None, "f": 1.5, "b": False})


def test_a_number_with_a_fraction_is_not_an_integer(real: Real) -> None:
    body = {**real.body("evaluated"), "score": 5.0}
    assert contract("evaluated").is_valid(body)  # draft-07 counts 5.0 as an integer
    with pytest.raises(Refused) as refused:
        check_body("evaluated", body)
    assert refused.value.reason == "body.score: must be an integer, without a fraction or an exponent"
    record = {**real.body("stats")["records"][0], "working_days": 3.0}
    with pytest.raises(Refused) as refused:
        check_envelope(_envelope_with(real, "stats", {"records": [record]}))
    assert refused.value.reason.startswith("body.records[0].working_days: must be an integer")


DATES: dict[str, list[tuple[str, ...]]] = {
    "accepted": [("accepted_on",), ("due",)],
    "stats": [("records", "0", field) for field in ("filed_on", "received_on", "accepted_on", "due")],
}
BAD_DATES = [
    "2026-02-30",
    "2026-13-01",
    "2026-00-10",
    "20261127",
    "2026-W48-5",
    "2026-11-27T10:00:00",
    "二〇二六",
    "2026-1-1",
]


def _set(body: Any, path: tuple[str, ...], value: Any) -> Any:
    changed = copy.deepcopy(body)
    node = changed
    for part in path[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[path[-1]] = value
    return changed


@pytest.mark.parametrize("kind", sorted(DATES))
def test_dates_that_do_not_exist_or_are_not_yyyy_mm_dd_are_refused(real: Real, kind: str) -> None:
    body = real.body(kind)
    for path in DATES[kind]:
        for bad in BAD_DATES:
            with pytest.raises(Refused) as refused:
                check_body(kind, _set(body, path, bad))
            assert refused.value.code == "invalid_body"
            assert path[-1] in refused.value.reason, refused.value.reason
        check_body(kind, _set(body, path, "2028-02-29"))
    for bad in (
        "2026-02-30T10:00:00+08:00",
        "2026-11-27 10:00:00+08:00",
        "2026-11-27T10:00:00",
        "2026-11-27T25:00:00+08:00",
        "2026-11-27T10:00:00+24:00",
    ):
        envelope = {**real.of(kind)[0], "at": bad}
        with pytest.raises(Refused) as refused:
            check_envelope(envelope)
        assert refused.value.code == "malformed" and refused.value.reason.startswith("at:")
    check_envelope({**real.of(kind)[0], "at": "2026-11-27T02:00:00Z"})


@pytest.mark.parametrize(
    ("kind", "path", "value", "reason"),
    [
        ("evaluated", ("score",), 6, "body.score: must be at most 5"),
        ("evaluated", ("score",), 0, "body.score: must be at least 1"),
        ("evaluated", ("score",), True, "body.score: must be an integer"),
        ("accepted", ("time_limit_days",), 3651, "body.time_limit_days: must be at most 3650"),
        ("accepted", ("time_limit_days",), -1, "body.time_limit_days: must be at least 0"),
        ("filed", ("materials",), ["材料"] * 101, "body.materials: has more than 100 items"),
        ("filed", ("materials",), ["x" * 101], "body.materials[0]: is longer than 100 characters"),
        ("filed", ("materials",), [""], "body.materials[0]: must not be empty"),
        ("filed", ("level",), "province", "body.level: must be one of town, district, city"),
        (
            "filed",
            ("region",),
            "3703031012011",
            "body.region: must be a division code of 4, 6, 9 or 12 digits",
        ),
        ("filed", ("region",), "370303\n", "body.region: must be a division code of 4, 6, 9 or 12 digits"),
        ("filed", ("region",), "٣٧٠٣", "body.region: must be a division code of 4, 6, 9 or 12 digits"),
        ("filed", ("applicant", "name"), "王秀兰", "body.applicant.name: must be a masked name (王*兰)"),
        (
            "filed",
            ("applicant", "id_number"),
            "370303198001010012",
            "body.applicant.id_number: must be a masked ID number (3703**********0012)",
        ),
        (
            "filed",
            ("applicant", "phone"),
            "13805331234",
            "body.applicant.phone: must be a masked phone number (138****5678)",
        ),
        ("filed", ("applicant",), "王秀兰", "body.applicant: must be an object"),
        ("rejected", ("reason",), "", "body.reason: must not be empty"),
        ("withdrawn", ("note",), "注" * 2001, "body.note: is longer than 2000 characters"),
        ("supplement_requested", ("missing",), [], "body.missing: must not be empty"),
        ("completed", ("delivery", "method"), "drone", "body.delivery.method: must be one of pickup, post"),
        ("accepted", ("due",), 20261127, "body.due: must be a string or null"),
        ("manifest", ("version",), 0, "body.version: must be at least 1"),
        ("manifest", ("version",), 2**53, "body.version: must be at most 9007199254740991"),
        ("manifest", ("revoked",), ["X" * 32], "body.revoked[0]: must be 32 lowercase hex digits"),
        ("manifest", ("offices",), [[]], "body.offices[0]: must not be empty"),
        (
            "revocation",
            ("code",),
            "3703031012011",
            "body.code: must be a division code of 4, 6, 9 or 12 digits",
        ),
        ("revocation", ("upto",), 7, "body: has upto without sign"),
        ("stats", ("records",), [], "body.records: must not be empty"),
        (
            "stats",
            ("records", "0", "time_limit_days"),
            3651,
            "body.records[0].time_limit_days: must be at most 3650",
        ),
        ("stats", ("records", "0", "name"), "王秀兰", "body.records[0]: has an unknown member name"),
    ],
)
def test_reasons_name_the_member_and_what_is_wrong(
    real: Real, kind: str, path: tuple[str, ...], value: Any, reason: str
) -> None:
    with pytest.raises(Refused) as refused:
        check_body(kind, _set(real.body(kind), path, value))
    assert (refused.value.code, refused.value.reason) == ("invalid_body", reason)


def test_a_post_delivery_needs_its_tracking_number(real: Real) -> None:
    body = real.body("completed")
    body["delivery"] = {"method": "post", "post_tracking": None}
    assert _refusal(check_body, "completed", body) == "invalid_body"
    body["delivery"] = {"method": "pickup", "post_tracking": None}
    check_body("completed", body)


def test_a_retired_key_comes_with_its_upto(real: Real) -> None:
    body = next(e["body"] for e in real.of("revocation") if "sign" in e["body"])
    for member in ("sign", "upto"):
        less = {k: v for k, v in body.items() if k != member}
        with pytest.raises(Refused) as refused:
            check_body("revocation", less)
        assert "without" in refused.value.reason
    for upto, reason in (
        (-1, "body.upto: must be at least 0"),
        (2**53, "body.upto: must be at most 9007199254740991"),
    ):
        with pytest.raises(Refused) as refused:
            check_body("revocation", {**body, "upto": upto})
        assert refused.value.reason == reason
    with pytest.raises(Refused) as refused:
        check_body("revocation", {**body, "sign": "A" * 44})
    assert refused.value.reason == "body.sign: must be a public key in base64url (43 characters)"


def test_a_manifests_catalog_is_checked_against_the_catalog_schema(real: Real) -> None:
    body = real.body("manifest")
    check_body("manifest", body)
    for change, where in (
        (lambda c: c.update(published="2026-02-30"), "body.catalog.published"),
        (lambda c: c["items"][0].update(time_limit_days="5"), "body.catalog.items[0].time_limit_days"),
        (lambda c: c.pop("items"), "body.catalog"),
        (lambda c: c["items"].append(copy.deepcopy(c["items"][0])), "body.catalog.items"),
    ):
        bad = copy.deepcopy(body)
        change(bad["catalog"])
        with pytest.raises(Refused) as refused:
            check_body("manifest", bad)
        assert refused.value.code == "invalid_body"
        assert refused.value.reason.startswith(where + ":"), refused.value.reason


@pytest.mark.parametrize("kind", ["deleted", "", "FILED", "correction", 7, None])
def test_unknown_kinds_are_refused(real: Real, kind: Any) -> None:
    assert _refusal(check_body, kind, {}) == "unknown_kind"
    envelope = {**real.of("withdrawn")[0], "kind": kind}
    expected = "unknown_kind" if isinstance(kind, str) else "malformed"
    assert _refusal(check_envelope, envelope) == expected


ENVELOPE_TAMPERINGS: dict[str, Callable[[dict[str, Any]], None]] = {
    "not version 1": lambda e: e.update(v=2),
    "version true": lambda e: e.update(v=True),
    "id of 31 characters": lambda e: e.update(id=e["id"][:31]),
    "id in upper case": lambda e: e.update(id=e["id"].upper()),
    "origin of 5 digits": lambda e: e.update(origin="37030"),
    "origin of 13 digits": lambda e: e.update(origin="3703031012011"),
    "origin with a newline": lambda e: e.update(origin="370303\n"),
    "seq 0": lambda e: e.update(seq=0),
    "seq as text": lambda e: e.update(seq="1"),
    "seq true": lambda e: e.update(seq=True),
    "seq 2^63": lambda e: e.update(seq=2**63),
    "seq 1.0": lambda e: e.update(seq=1.0),
    "kind a number": lambda e: e.update(kind=1),
    "to a list": lambda e: e.update(to=["3703"]),
    "tracking of 19 digits": lambda e: e.update(tracking=e["tracking"][:19]),
    "application event without tracking": lambda e: e.update(tracking=None),
    "application event to everyone": lambda e: e.update(to="*"),
    "actor a number": lambda e: e.update(actor=1),
    "actor of 101 characters": lambda e: e.update(actor="员" * 101),
    "at a date only": lambda e: e.update(at="2026-11-27"),
    "at a number": lambda e: e.update(at=1764208800),
    "sealed without its addressee": lambda e: e.update(sealed_to=None),
    "addressee without sealed data": lambda e: e.update(sealed=None),
    "sealed with padding": lambda e: e.update(sealed=e["sealed"] + "="),
    "sealed not base64": lambda e: e.update(sealed="秘密"),
    "sealed of one character": lambda e: e.update(sealed="A"),
    "signature of 85 characters": lambda e: e.update(sig=e["sig"][:85]),
    "signature padded": lambda e: e.update(sig=e["sig"][:84] + "=="),
    "extra member": lambda e: e.update(received_at=NOW),
    "missing body": lambda e: e.pop("body"),
    "missing sig": lambda e: e.pop("sig"),
}


@pytest.mark.parametrize("name", sorted(ENVELOPE_TAMPERINGS))
def test_tampered_envelopes_are_malformed(real: Real, name: str) -> None:
    filed = copy.deepcopy(real.of("filed")[0])
    assert filed["sealed"] is not None
    check_envelope(filed)
    ENVELOPE_TAMPERINGS[name](filed)
    with pytest.raises(Refused) as refused:
        check_envelope(filed)
    assert refused.value.code == "malformed", refused.value.reason


def test_broadcasts_and_statistics_go_where_the_envelope_schema_says(real: Real) -> None:
    for kind in ("manifest", "revocation"):
        envelope = real.of(kind)[0]
        assert _refusal(check_envelope, {**envelope, "to": CITY}) == "malformed"
        assert _refusal(check_envelope, {**envelope, "tracking": "3" * 20}) == "malformed"
    stats = real.of("stats")[0]
    assert _refusal(check_envelope, {**stats, "to": DISTRICT}) == "malformed"
    assert _refusal(check_envelope, {**stats, "sealed": "AAAA", "sealed_to": CITY}) == "malformed"


def test_envelopes_that_are_not_objects_are_malformed() -> None:
    for value in (None, [], "envelope", 1, [{"v": 1}]):
        assert _refusal(check_envelope, value) == "malformed"


def test_reasons_are_translated(real: Real) -> None:
    i18n.set_language("zh")
    try:
        with pytest.raises(Refused) as refused:
            check_body("filed", {**real.body("filed"), "applicant": "x"})
    finally:
        i18n.set_language("en")
    assert refused.value.code == "invalid_body" and "body.applicant" in refused.value.reason


def test_unknown_member_names_are_shown_escaped_and_bounded(real: Real) -> None:
    with pytest.raises(Refused) as refused:
        check_body("withdrawn", {"note": "", "\x1b[31m" + "x" * 100: 1})
    assert "\x1b" not in refused.value.reason and len(refused.value.reason) < 100


# -- property tests ------------------------------------------------------------


def _surrogate_text() -> st.SearchStrategy[str]:
    return st.text(st.characters(categories=["Cs", "Lo", "Nd", "Ll", "Cc"]), max_size=8)


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**62, max_value=2**70)
    | st.integers(min_value=-(2**70), max_value=-(2**62))
    | st.floats()
    | st.text(max_size=12)
    | _surrogate_text()
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=24,
)
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _admitted_or_refused(call: Callable[[], None]) -> None:
    try:
        call()
    except Refused as refused:
        assert refused.code in ("malformed", "unknown_kind", "invalid_body")
        assert isinstance(refused.reason, str) and refused.reason


@PROPERTY
@given(value=JSON, kind=st.sampled_from(KINDS) | st.text(max_size=12))
def test_any_json_value_is_admitted_or_refused_never_an_exception(value: Any, kind: str) -> None:
    _admitted_or_refused(lambda: check_value(value))
    _admitted_or_refused(lambda: check_body(kind, value))
    _admitted_or_refused(lambda: check_envelope(value))


def _valid_or(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return valid | JSON


ENVELOPES = st.fixed_dictionaries(
    {
        "v": _valid_or(st.just(1)),
        "id": _valid_or(st.just("0123456789abcdef0123456789abcdef")),
        "origin": _valid_or(st.sampled_from([CITY, DISTRICT, TOWN, VILLAGE])),
        "seq": _valid_or(st.integers(min_value=1, max_value=2**63 + 5)),
        "kind": _valid_or(st.sampled_from(KINDS)),
        "to": _valid_or(st.sampled_from([CITY, TOWN, "*"])),
        "tracking": _valid_or(st.sampled_from([None, "37030310120100000427"])),
        "actor": _valid_or(st.text(max_size=120)),
        "at": _valid_or(st.sampled_from([NOW, "2026-02-29T10:00:00+08:00", "2026-11-27T10:00:00Z"])),
        "body": JSON,
        "sealed": _valid_or(st.sampled_from([None, "AAAA"])),
        "sealed_to": _valid_or(st.sampled_from([None, TOWN])),
        "sig": _valid_or(st.just("A" * 86)),
    },
    optional={"extra": JSON},
)


@PROPERTY
@given(envelope=ENVELOPES)
def test_any_envelope_shaped_value_is_admitted_or_refused(envelope: dict[str, Any]) -> None:
    _admitted_or_refused(lambda: check_envelope(envelope))
    _admitted_or_refused(lambda: check_value(envelope))
    _admitted_or_refused(lambda: check_body(envelope["kind"], envelope["body"]))


DATETIMES = ["2026-02-29T10:00:00+08:00", "2026-02-30T10:00:00+08:00", "2026-11-27T10:00:00+99:00"]
NEAR_MISSES: dict[str, list[Any]] = {
    "v": [0, 1, 2, True, 1.0],
    "id": ["0" * 32, "0" * 31, "G" * 32],
    "origin": [CITY, VILLAGE, "37030", "3" * 13],
    "seq": [0, 1, 2**63 - 1, 2**63, -1, True],
    "kind": [*KINDS, "", "FILED"],
    "to": ["*", CITY, TOWN, "37030"],
    "tracking": [None, "3" * 20, "3" * 19],
    "actor": ["", "员" * 100, "员" * 101],
    "at": [*DATETIMES, "2026-11-27T10:00:00.1234567+08:00", "2026-11-27"],
    "sealed": [None, "", "AAAA", "AAAAA", "A=", "秘"],
    "sealed_to": [None, CITY, TOWN, "*"],
    "sig": ["A" * 86, "A" * 85, "=" * 86],
    "body": [{}, [], None],
}


@PROPERTY
@given(data=st.data())
def test_real_envelopes_with_members_changed_are_admitted_or_refused(real: Real, data: st.DataObject) -> None:
    """Near misses where every other member is right, so that the checks deep
    in admission are reached: each change is admitted or refused, never an
    exception."""
    envelope = copy.deepcopy(data.draw(st.sampled_from(real.envelopes)))
    for member in data.draw(st.sets(st.sampled_from(sorted(NEAR_MISSES)), max_size=2)):
        envelope[member] = data.draw(st.sampled_from(NEAR_MISSES[member]) | JSON)
    if isinstance(envelope["body"], dict) and data.draw(st.booleans()):
        path = data.draw(st.sampled_from(list(_paths(envelope["body"]))))
        envelope["body"] = _replace(envelope["body"], path, data.draw(MUTANTS | JSON))
    _admitted_or_refused(lambda: check_envelope(envelope))
    _admitted_or_refused(lambda: check_body(envelope["kind"], envelope["body"]))


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from _paths(item, (*path, n))


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    changed = copy.deepcopy(value)
    node = changed
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = new
    return changed


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return False


@pytest.fixture(scope="module")
def real_bodies(real: Real) -> list[tuple[str, dict[str, Any]]]:
    # The manifest's catalog is checked beyond its schema; its other members
    # are covered through the schema alone.
    return [
        (e["kind"], e["body"] if e["kind"] != "manifest" else {**e["body"], "catalog": {}})
        for e in real.envelopes
    ]


MUTANTS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-3, max_value=2**53 + 2)
    | st.sampled_from(
        ["", "2026-02-30", "2026-11-27", "3703", "*", "王*兰", "pickup", "post", "town", "a" * 101]
    )
    | st.text(max_size=6)
    | st.lists(st.text(max_size=4), max_size=3)
    | st.dictionaries(st.sampled_from(["code", "serial", "x"]), st.text(max_size=4), max_size=2)
)


@PROPERTY
@given(data=st.data())
def test_the_compiled_validators_agree_with_the_schema_files(
    real_bodies: list[tuple[str, dict[str, Any]]], data: st.DataObject
) -> None:
    """fastjsonschema (with references inlined) against jsonschema reading
    the files, on real bodies with one member replaced: the same verdict.
    Outside: floats (refused by admission, allowed as integers by draft-07)
    and a string ending in a newline (jsonschema's $ matches before it)."""
    kind, body = data.draw(st.sampled_from(real_bodies))
    path = data.draw(st.sampled_from(list(_paths(body))))
    mutant = _replace(body, path, data.draw(MUTANTS))
    if _has_float(mutant) or "\\n" in json.dumps(mutant):
        return
    expected = contract(kind).is_valid(mutant)
    try:
        admission._validator(kind)(mutant)
        compiled = True
    except JsonSchemaValueException:
        compiled = False
    assert compiled == expected, (kind, path, mutant)
    if kind != "manifest":
        assert _refusal(check_body, kind, mutant) == ("admitted" if expected else "invalid_body")


FILED_VALUES = st.one_of(
    st.none(),
    st.integers(min_value=-3, max_value=2**64),
    st.floats(allow_nan=True),
    st.text(max_size=110),
    st.text(alphabet="0123456789*X王兰-", max_size=22),
    st.lists(st.text(max_size=101), max_size=3),
    st.dictionaries(st.sampled_from(["name", "id_number", "phone", "x"]), st.text(max_size=20), max_size=4),
)


@PROPERTY
@given(data=st.data())
def test_the_fast_test_of_a_filing_accepts_only_what_its_schema_accepts(
    real: Real, data: st.DataObject
) -> None:
    """admission.filed_surely_valid decides the common case without the
    validator: whatever it accepts, the body schema must accept too (and the
    real bodies it must accept)."""
    from daiban.node.admission import filed_surely_valid

    body = copy.deepcopy(data.draw(st.sampled_from([e["body"] for e in real.of("filed")])))
    assert filed_surely_valid(body)
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        members = [*sorted(body), "applicant.name", "applicant.id_number", "applicant.phone"]
        where = data.draw(st.sampled_from(members))
        value = data.draw(FILED_VALUES)
        if where.startswith("applicant.") and isinstance(body.get("applicant"), dict):
            body["applicant"][where.split(".", 1)[1]] = value
        elif data.draw(st.booleans()):
            body[where] = value
        else:
            body.pop(where, None)
    if filed_surely_valid(body):
        check_body("filed", body)  # raises if the schema refuses what the fast test let through
