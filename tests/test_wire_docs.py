"""The wire-format documents against the code they describe: docs/openapi.json
(OpenAPI 3.1; JSON because PyYAML is not a dependency) must name exactly the
routes the server registers and every status each handler can answer, and
daiban/schemas/envelope.schema.json must accept the envelopes a real node
makes — and say truthfully what is signed and what is sealed."""

from __future__ import annotations

import ast
import base64
import copy
import datetime as dt
import hashlib
import json
import sqlite3
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from daiban import i18n
from daiban.node.applications import Filing
from daiban.node.clock import CST
from daiban.node.home import init_home
from daiban.node.store import DB_NAME
from daiban.sync import protocol, server
from daiban.trust import envelope as env_mod

ROOT = Path(__file__).resolve().parent.parent
OPENAPI_PATH = ROOT / "docs" / "openapi.json"
SCHEMA_PATH = ROOT / "daiban" / "schemas" / "envelope.schema.json"
SCHEMA_ID = "https://daiban.example/schemas/envelope.schema.json"
# Where the OpenAPI document pretends to live, so that its relative reference
# ../daiban/schemas/envelope.schema.json resolves like a file path does.
OPENAPI_URI = "https://daiban.example/docs/openapi.json"
SCHEMA_AS_SEEN_FROM_DOCS = "https://daiban.example/daiban/schemas/envelope.schema.json"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

OPENAPI: dict[str, Any] = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))
SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))

# Every status each operation can answer, read from the code (hard-coded on
# purpose: a change there must come with a change to the document).
#   every route:  server.errors middleware: 500 internal (any exception).
#   every POST:   server.errors: 503 timeout (REQUEST_TIMEOUT), 413 too_large
#                 (aiohttp client_max_size = MAX_BODY); server._raw: 415
#                 unsupported, 503 database_gone; protocol.decode,
#                 protocol.check_request, server._parse: 400 malformed, 413
#                 too_large.
#   push, pull:   service.authenticate: 401 unauthenticated / unknown_node /
#                 bad_signature, 403 revoked, 409 replayed.
#   push:         service._list: 400 malformed; service.push: 422 refused.
#   pull:         service.pull: 400 malformed (cursor, limit).
#   enroll:       service.enroll: 400 malformed, 404 no_code, 409 code_used,
#                 410 code_expired, 429 code_locked, 403 wrong_code.
#   healthz:      server.healthz: 200 (plain JSON), 503 database_gone (plain
#                 JSON in the error shape), or 500 from the middleware; it
#                 waits for the writer only until the node has enrolled. HEAD
#                 is the same handler (aiohttp's add_get registers HEAD too).
#   metrics:      server.metrics_page: 200 (Prometheus text), 500, and 503
#                 timeout (it waits for the writer thread to read the store).
# 404 and 405 (unknown path, wrong method) come from aiohttp's router through
# the same middleware; they belong to no operation and are described in
# info.description.
POST_COMMON = {200, 400, 413, 415, 500, 503}
SIGNED = {401, 403, 409}
STATUSES: dict[tuple[str, str], set[int]] = {
    ("GET", protocol.HEALTH): {200, 500, 503},
    ("HEAD", protocol.HEALTH): {200, 500, 503},
    ("POST", protocol.PUSH): POST_COMMON | SIGNED | {422},
    ("POST", protocol.PULL): POST_COMMON | SIGNED,
    ("POST", "/v1/recover"): POST_COMMON | SIGNED,
    ("POST", protocol.ENROLL): POST_COMMON | {403, 404, 409, 410, 429},
    ("GET", server.METRICS_PATH): {200, 500, 503},
    ("HEAD", server.METRICS_PATH): {200, 500, 503},
}
# Tracking numbers and filing data as in tests/conftest.py.
ZIBO_ID = "370303198001010012"
APPLICATION_KINDS = [
    "filed",
    "received",
    "accepted",
    "supplement_requested",
    "supplemented",
    "rejected",
    "completed",
    "withdrawn",
    "evaluated",
]


def canonical(value: Any) -> bytes:
    """The canonical form as the documents state it: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def registry() -> Registry:
    envelope_resource = DRAFT202012.create_resource(SCHEMA)
    return Registry().with_resources(
        [
            (SCHEMA_ID, envelope_resource),
            (SCHEMA_AS_SEEN_FROM_DOCS, envelope_resource),
            (OPENAPI_URI, DRAFT202012.create_resource(OPENAPI)),
        ]
    )


def validator(ref: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": ref}, registry=registry())


ENVELOPE = Draft202012Validator(SCHEMA, registry=registry())


def component(name: str) -> Draft202012Validator:
    return validator(f"{OPENAPI_URI}#/components/schemas/{name}")


def resolve(node: Any) -> Any:
    """Follow local $refs (#/...) inside the OpenAPI document."""
    while isinstance(node, dict) and str(node.get("$ref", "")).startswith("#/"):
        node = pointer(OPENAPI, node["$ref"][1:])
    return node


def pointer(doc: Any, path: str) -> Any:
    for part in path.lstrip("/").split("/") if path.strip("/") else []:
        part = part.replace("~1", "/").replace("~0", "~")
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in OPENAPI["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield method.upper(), path, operation


# -- a real node's envelopes ------------------------------------------------


class RealNode:
    def __init__(self, raws: list[str], sign_public: bytes, enc_private: Any, chain: list[Any]) -> None:
        self.raws = raws
        self.sign_public = sign_public
        self.enc_private = enc_private
        self.chain = chain

    @property
    def envelopes(self) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.raws]


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> RealNode:
    """A town that files an application it handles itself and accepts it; its
    envelopes read back from its SQLite table as any outside tool would."""
    i18n.set_language("en")
    base = tmp_path_factory.mktemp("wire")
    clock: Callable[[], dt.datetime] = lambda: dt.datetime(2026, 11, 27, 10, 0, tzinfo=CST)  # noqa: E731
    home = base / "h"
    node = init_home(home, role="town", code="370303101", name="南定镇", clock=clock)
    try:
        filed = node.file(
            Filing(
                item="MZ003",
                name="王秀兰",
                id_number=ZIBO_ID,
                phone="13805331234",
                fields={"assistance_kind": "急难型", "hardship_reason": "火灾"},
            )
        )
        node.review(filed.tracking, "accept")
        sign_public, enc_private = node.keys.sign_public, node.keys.enc
    finally:
        node.close()
    with sqlite3.connect(home / DB_NAME) as db:
        raws = [row[0] for row in db.execute("SELECT raw FROM envelopes ORDER BY n")]
    city_home = base / "city"
    city = init_home(city_home, role="city", code="3703", name="淄博市", clock=clock)
    try:
        chain = city.store.cert_chain("3703") or []
    finally:
        city.close()
    return RealNode(raws, sign_public, enc_private, chain)


# -- the OpenAPI document ---------------------------------------------------


def test_openapi_document_parses_and_is_openapi_3_1() -> None:
    assert OPENAPI["openapi"].startswith("3.1.")
    assert OPENAPI["jsonSchemaDialect"] == "https://json-schema.org/draft/2020-12/schema"
    assert OPENAPI["info"]["title"] and OPENAPI["info"]["version"]
    for schema in OPENAPI["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def test_openapi_paths_are_exactly_the_routes_the_server_registers(tmp_path: Path) -> None:
    app = server.create_app(tmp_path)  # not started: the node opens only at startup
    registered = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None}
    documented = {(method, path) for method, path, _op in operations()}
    assert documented == registered
    assert set(STATUSES) == registered
    assert "/metrics" in OPENAPI["paths"]


def test_every_metric_the_server_exposes_is_documented(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from daiban.sync import metrics

    registry = metrics.ServerMetrics()
    # Touch every labelled metric once so that it shows in the page.
    registry.pushed({"results": [{"status": "duplicate"}]}, {"filed": 1})
    registry.count_kinds(registry.envelopes_out, {"received": 1}, "child")
    registry.refused("refused", {"refused": [{"code": "conflict"}]})
    registry.answered("/v1/push", 200, 0.01)
    registry.forwarded(True, 1, 1, 0.0)
    snap = metrics.Snapshot("370303", "district", {"370303101": 0, "parent": 0}, [])
    body, content_type = registry.render(snap)
    assert content_type.startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(body.decode())}
    assert len(names) >= 12
    text = OPENAPI["info"]["description"]
    for name in names:
        exposed = name + "_total" if f"{name}_total" in body.decode() else name
        assert f"`{exposed}`" in text, exposed


def test_every_status_the_server_can_return_is_documented() -> None:
    for method, path, operation in operations():
        documented = {int(code) for code in operation["responses"]}
        assert documented == STATUSES[(method, path)], f"{method} {path}"


def test_the_status_list_covers_every_error_the_code_raises() -> None:
    """A new ProtocolError(...) status in daiban/sync must be added above (and to the document)."""
    raised: set[int] = set()
    for source in sorted((ROOT / "daiban" / "sync").glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            first = node.args[0]
            if name in ("ProtocolError", "_error") and isinstance(first, ast.Constant):
                assert isinstance(first.value, int), ast.dump(node)
                raised.add(first.value)
    assert raised, "found no ProtocolError calls: has the code moved?"
    assert raised <= set().union(*STATUSES.values())


def test_error_responses_have_the_one_error_shape() -> None:
    error = OPENAPI["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"ok", "status", "code", "error"}
    for method, path, operation in operations():
        for code, response in operation["responses"].items():
            if int(code) < 400:
                continue
            response = resolve(response)
            if method == "HEAD" and "content" not in response:
                continue  # no body to describe
            # Healthz answers plain JSON, its 503 included; every other error is compressed.
            plain = path == protocol.HEALTH and code != "500"
            media_type = "application/json" if plain else protocol.CONTENT_TYPE
            assert set(response["content"]) == {media_type}, f"{method} {path} {code}"
            media = response["content"][media_type]
            schema = resolve(media["schema"])
            assert schema is error or any(resolve(part) is error for part in schema.get("allOf", [])), (
                f"{method} {path} {code} does not use the Error schema"
            )
            check = validator(OPENAPI_URI + media["schema"]["$ref"])
            examples = [e["value"] for e in media.get("examples", {}).values()]
            for example in examples + ([media["example"]] if "example" in media else []):
                check.validate(example)
                assert example["status"] == int(code)
    # What the server really sends validates, with and without extra members.
    component("Error").validate(
        protocol.error_body(401, "bad_signature", "request signature does not verify")
    )
    component("ReplayedError").validate(protocol.error_body(409, "replayed", "used before", counter=7))
    with pytest.raises(ValidationError):
        component("ReplayedError").validate(protocol.error_body(409, "replayed", "used before"))


def test_auth_headers_limits_and_content_type_match_the_protocol_module() -> None:
    parameters = OPENAPI["components"]["parameters"]
    assert {p["name"] for p in parameters.values()} == {
        protocol.H_NODE,
        protocol.H_COUNTER,
        protocol.H_SIG,
        protocol.H_PROTOCOL,
    }
    assert f"this release: {protocol.PROTOCOL}" in parameters["Protocol"]["description"]
    schemes = OPENAPI["components"]["securitySchemes"]
    assert {s["name"] for s in schemes.values()} == {protocol.H_NODE, protocol.H_COUNTER, protocol.H_SIG}
    for method, path, operation in operations():
        signed = path in (protocol.PUSH, protocol.PULL, "/v1/recover")
        assert (operation.get("security", OPENAPI["security"]) != []) == signed, path
        names = {resolve(p)["name"] for p in operation.get("parameters", [])}
        signed_names = {protocol.H_NODE, protocol.H_COUNTER, protocol.H_SIG}
        sent = {protocol.H_PROTOCOL} if method == "POST" else set()  # by daiban's own client
        assert names == ((signed_names if signed else set()) | sent), path
        if method == "POST":
            assert set(operation["requestBody"]["content"]) == {protocol.CONTENT_TYPE}
    schemas = OPENAPI["components"]["schemas"]
    assert schemas["PushRequest"]["properties"]["envelopes"]["maxItems"] == protocol.MAX_BATCH
    assert schemas["PullRequest"]["properties"]["limit"]["maximum"] == protocol.MAX_BATCH
    assert schemas["PullRequest"]["properties"]["limit"]["default"] == protocol.BATCH
    assert schemas["EnvelopeText"]["maxLength"] == env_mod.MAX_RAW
    text = OPENAPI["info"]["description"]
    assert protocol.CONTENT_TYPE in text
    assert f"{protocol.MAX_BODY:,} bytes" in text
    assert f"{protocol.MAX_DECOMPRESSED:,} bytes" in text
    assert f"{protocol.MAX_BATCH} envelopes" in text
    assert f"{int(protocol.REQUEST_TIMEOUT)} seconds" in text
    assert f"{env_mod.MAX_RAW:,} characters" in text


def test_the_documented_request_signature_is_what_the_protocol_signs() -> None:
    template = (
        "DAIBAN-REQUEST-1\n<METHOD>\n<path>\n<sha256 hex of the body bytes as sent>\n"
        "<counter>\n<node code>\n<server code>"
    )
    escaped = template.replace("\n", "\\n")
    assert escaped in OPENAPI["info"]["description"]
    assert escaped in OPENAPI["components"]["parameters"]["Signature"]["description"]
    body = protocol.encode({"cursor": 3, "limit": 500})
    filled = (
        template.replace("<METHOD>", "POST")
        .replace("<path>", protocol.PULL)
        .replace("<sha256 hex of the body bytes as sent>", hashlib.sha256(body).hexdigest())
        .replace("<counter>", "42")
        .replace("<node code>", "370303101201")
        .replace("<server code>", "370303101")
    )
    assert protocol.request_message("post", protocol.PULL, body, 42, "370303101201", "370303101") == (
        filled.encode()
    )


def test_bodies_are_zlib_compressed_canonical_json() -> None:
    value = {"envelopes": [], "certs": [], "名": "南定镇"}
    assert zlib.decompress(protocol.encode(value)) == canonical(value)
    assert protocol.decode(zlib.compress(canonical(value))) == value


def test_every_reference_resolves() -> None:
    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str):
                    yield value
                else:
                    yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    found = list(refs(OPENAPI))
    assert any(ref.startswith("../daiban/schemas/envelope.schema.json") for ref in found)
    for ref in found:
        target, _, fragment = ref.partition("#")
        doc = OPENAPI
        if target:
            path = (OPENAPI_PATH.parent / target).resolve()
            assert path == SCHEMA_PATH, ref
            doc = SCHEMA
        pointer(doc, fragment)  # raises if it does not resolve
    for ref in refs(SCHEMA):
        assert ref.startswith("#/"), ref
        pointer(SCHEMA, ref[1:])


# -- the envelope schema ----------------------------------------------------


def test_envelope_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA["$id"] == SCHEMA_ID
    assert SCHEMA["additionalProperties"] is False
    assert set(SCHEMA["required"]) == set(SCHEMA["properties"])
    assert {"certificate", "chain"} <= set(SCHEMA["$defs"])


def test_real_envelopes_validate(real: RealNode) -> None:
    envelopes = real.envelopes
    assert [e["kind"] for e in envelopes] == ["filed", "received", "accepted"]
    for envelope in envelopes:
        ENVELOPE.validate(envelope)
    assert envelopes[0]["sealed"] and envelopes[0]["sealed_to"] == "370303101"
    # What a push carries, built the way the client builds it, fits the document too.
    component("PushRequest").validate({"certs": [real.chain], "envelopes": real.raws})
    component("PullResponse").validate(
        {"ok": True, "envelopes": real.raws, "cursor": 3, "more": False, "certs": [real.chain]}
    )


def test_what_is_signed_is_the_canonical_text_without_sig(real: RealNode) -> None:
    key = Ed25519PublicKey.from_public_bytes(real.sign_public)
    for raw in real.raws:
        envelope = json.loads(raw)
        assert raw.encode() == canonical(envelope), "hops carry the canonical text"
        signature = unb64(envelope.pop("sig"))
        assert len(signature) == 64
        key.verify(signature, canonical(envelope))  # raises if the description is wrong


def test_what_is_sealed_is_as_documented(real: RealNode) -> None:
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
    key = Ed25519PublicKey.from_public_bytes(real.sign_public)
    sealed = [e for e in real.envelopes if e["sealed"] is not None]
    assert sealed
    for envelope in sealed:
        info = f"daiban/v1|{envelope['id']}|{envelope['kind']}".encode()
        plaintext = zlib.decompress(suite.decrypt(unb64(envelope["sealed"]), real.enc_private, info=info))
        inner = json.loads(plaintext)
        assert plaintext == canonical(inner)
        assert set(inner) == {"personal", "sig"}
        assert inner["personal"]["name"] == "王秀兰"
        signed = {
            "id": envelope["id"],
            "kind": envelope["kind"],
            "tracking": envelope["tracking"],
            "personal": inner["personal"],
        }
        key.verify(unb64(inner["sig"]), canonical(signed))
        assert "王秀兰" not in json.dumps(envelope["body"], ensure_ascii=False)


def _tampered(envelope: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    copied = copy.deepcopy(envelope)
    change(copied)
    return copied


TAMPERINGS: dict[str, Callable[[dict[str, Any]], None]] = {
    "id of 31 characters": lambda e: e.update(id=e["id"][:31]),
    "id in upper case": lambda e: e.update(id=e["id"].upper()),
    "extra property": lambda e: e.update(received_at="2026-11-27T10:00:00+08:00"),
    "seq 0": lambda e: e.update(seq=0),
    "seq as text": lambda e: e.update(seq="1"),
    "version 2": lambda e: e.update(v=2),
    "unknown kind": lambda e: e.update(kind="deleted"),
    "origin of 5 digits": lambda e: e.update(origin="37030"),
    "tracking of 19 digits": lambda e: e.update(tracking=e["tracking"][:19]),
    "application event without tracking": lambda e: e.update(tracking=None),
    "application event to everyone": lambda e: e.update(to="*"),
    "body not an object": lambda e: e.update(body=[]),
    "missing body": lambda e: e.pop("body"),
    "signature of 63 bytes": lambda e: e.update(sig=base64.urlsafe_b64encode(bytes(63)).decode().rstrip("=")),
    "padded signature": lambda e: e.update(sig=e["sig"][:84] + "=="),
    "sealed without its addressee": lambda e: e.update(sealed_to=None),
    "addressee without sealed data": lambda e: e.update(sealed=None),
    "sealed with padding": lambda e: e.update(sealed=e["sealed"] + "="),
    "manifest not broadcast": lambda e: e.update(kind="manifest", tracking=None, body={"version": 2}),
}


@pytest.mark.parametrize("name", sorted(TAMPERINGS))
def test_tampered_envelopes_fail(real: RealNode, name: str) -> None:
    filed = real.envelopes[0]
    ENVELOPE.validate(filed)
    with pytest.raises(ValidationError):
        ENVELOPE.validate(_tampered(filed, TAMPERINGS[name]))


def test_real_certificate_chains_validate_and_tampered_ones_fail(real: RealNode) -> None:
    chain = validator(f"{SCHEMA_ID}#/$defs/chain")
    chain.validate(real.chain)
    assert real.chain[0]["issuer"] == real.chain[0]["code"] == "3703"
    for change in (
        lambda c: c.update(extra=1),
        lambda c: c.update(role="province"),
        lambda c: c.update(sign=c["sign"][:42]),
        lambda c: c.update(serial=c["serial"][:31]),
        lambda c: c.pop("issued_at"),
    ):
        bad = copy.deepcopy(real.chain)
        change(bad[0])
        with pytest.raises(ValidationError):
            chain.validate(bad)
    with pytest.raises(ValidationError):
        chain.validate([])


# -- signed answers, enrollment, bounds (issue 10) ----------------------------------------

SIGNED_PATHS = (protocol.PUSH, protocol.PULL, "/v1/recover", protocol.ENROLL)
ANSWER_TEMPLATE = (
    "DAIBAN-ANSWER-1\n<status>\n<sha256 hex of the body bytes as sent>\n<binding>\n<server code>"
)


def test_the_documented_answer_signature_is_what_the_server_signs() -> None:
    from daiban.sync import answers

    escaped = ANSWER_TEMPLATE.replace("\n", "\\n")
    assert escaped in OPENAPI["info"]["description"]
    assert escaped in OPENAPI["components"]["headers"]["AnswerSignature"]["description"]
    assert f"`{answers.H_ANSWER}`" in OPENAPI["info"]["description"]
    body = protocol.encode(protocol.error_body(409, "replayed", "used before", counter=7))
    binding = "A" * 86
    filled = (
        ANSWER_TEMPLATE.replace("<status>", "409")
        .replace("<sha256 hex of the body bytes as sent>", hashlib.sha256(body).hexdigest())
        .replace("<binding>", binding)
        .replace("<server code>", "370303101")
    )
    assert answers.message(409, body, binding, "370303101") == filled.encode()


def test_every_answer_of_the_signed_paths_documents_the_signature_header() -> None:
    from daiban.sync import answers

    for method, path, operation in operations():
        for code, response in operation["responses"].items():
            headers = resolve(response).get("headers", {})
            signed = path in SIGNED_PATHS
            assert (answers.H_ANSWER in headers) == signed, f"{method} {path} {code}"


def test_a_real_answer_verifies_as_the_document_says(tmp_path: Path) -> None:
    """A real server's error answer, checked with nothing but the document's
    recipe, the town's certified key and the request's signature header."""
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    from daiban.sync import answers

    i18n.set_language("en")
    node = init_home(tmp_path / "town", role="town", code="370303101", name="南定镇")
    public = node.keys.sign_public
    node.close()
    request_sig = "B" * 86

    async def ask() -> tuple[int, bytes, str]:
        async with TestClient(TestServer(server.create_app(tmp_path / "town"))) as client:
            resp = await client.post(
                protocol.PULL,
                data=protocol.encode({"cursor": 0}),
                headers={
                    "Content-Type": protocol.CONTENT_TYPE,
                    protocol.H_NODE: "370303101201",
                    protocol.H_COUNTER: "1",
                    protocol.H_SIG: request_sig,
                },
            )
            return resp.status, await resp.read(), resp.headers[answers.H_ANSWER]

    status, body, header = asyncio.run(ask())
    assert status == 401 and json.loads(zlib.decompress(body))["code"] == "unknown_node"
    message = "\n".join(
        ["DAIBAN-ANSWER-1", str(status), hashlib.sha256(body).hexdigest(), request_sig, "370303101"]
    )
    Ed25519PublicKey.from_public_bytes(public).verify(unb64(header), message.encode())


def test_the_documented_enrollment_proof_is_what_the_server_computes() -> None:
    import hmac

    from daiban.sync import service

    text = OPENAPI["info"]["description"]
    assert (
        "salt = UTF-8 of \"daiban-enroll|\" + the request's `code` (the child's division code), "
        "N = 32768, r = 8, p = 1" in text
    )
    request = {"v": 1, "code": "370303101201", "name": "大张村", "sign": "x" * 43, "enc": "y" * 43}
    code = "12345678901"
    key = hashlib.scrypt(
        code.encode(), salt=b"daiban-enroll|370303101201", n=32768, r=8, p=1, dklen=32, maxmem=64 * 2**20
    )
    documented = hmac.new(key, canonical(request), "sha256").hexdigest()
    assert service.mac(code, {**request, "mac": "ignored"}, "370303101201") == documented


def test_batch_and_chain_lengths_are_one_number_each() -> None:
    from daiban.trust import certs

    schemas = OPENAPI["components"]["schemas"]
    assert (
        f"clients send batches of {protocol.BATCH})"
        in schemas["PushRequest"]["properties"]["envelopes"]["description"]
    )
    assert "batches of 500" not in json.dumps(OPENAPI)
    assert SCHEMA["$defs"]["chain"]["maxItems"] == certs.MAX_CHAIN
    assert (
        f"longer than {certs.MAX_CHAIN} certificates"
        in schemas["PushRequest"]["properties"]["certs"]["description"]
    )
    assert "longer than 5" not in json.dumps(OPENAPI)
    bound = schemas["PullResponse"]["properties"]["cursor"]["maximum"]
    assert bound == protocol.MAX_POSITION == schemas["RecoverResponse"]["properties"]["after"]["maximum"]
    assert f"{protocol.MAX_COUNTER_JUMP:,} (2^32)" in OPENAPI["info"]["description"]
    assert f"{protocol.MAX_POSITION:,} (2^53)" in OPENAPI["info"]["description"]


def test_enroll_code_json_output_is_documented(tmp_path: Path) -> None:
    import subprocess
    import sys

    daiban_cli = str(Path(sys.executable).with_name("daiban"))
    env = {"DAIBAN_HOME": str(tmp_path / "city"), "DAIBAN_LANG": "en", "PATH": "/usr/bin:/bin"}
    subprocess.run(
        [daiban_cli, "init", "--role", "city", "--code", "3703", "--name", "淄博市"],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    out = subprocess.run(
        [daiban_cli, "enroll-code", "--code", "370303", "--name", "张店区", "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    component("EnrollCodeOutput").validate(json.loads(out))
