"""The wire protocol's fixed parts: paths, headers, limits, how a request is
signed, how bodies are compressed, and the one JSON error shape.

A request from a node is signed over its method, path, body digest, the
node's request counter and the server's code. The counter only goes up, and
the server keeps the last one it accepted per node, so a replayed or altered
request fails — without trusting anyone's clock, and without resting on TLS."""

from __future__ import annotations

import hashlib
import zlib
from typing import Any

import orjson

from daiban.trust.crypto import canonical

PUSH, PULL, ENROLL, HEALTH = "/v1/push", "/v1/pull", "/v1/enroll", "/v1/healthz"
RECOVER = "/v1/recover"
H_NODE, H_COUNTER, H_SIG = "X-Daiban-Node", "X-Daiban-Counter", "X-Daiban-Signature"
PROTOCOL = 2
"""The sync protocol version this build speaks: sent by the client on every
request (``X-Daiban-Protocol``) and shown by the server's /v1/healthz.
2: a push's verdict may be ``held`` (an envelope this server cannot admit
yet, kept for its upgrade: the child lets go of it). A server works with
clients one version older or newer (a request without the header is from
protocol 1, which came before it) and refuses any other with 400
``protocol_version``."""
H_PROTOCOL = "X-Daiban-Protocol"
PROTOCOL_HEADERS = {H_PROTOCOL: str(PROTOCOL)}
OLDEST_PEER, NEWEST_PEER = PROTOCOL - 1, PROTOCOL + 1
CONTENT_TYPE = "application/vnd.daiban+json+zlib"
MAX_BODY = 8 * 1024 * 1024  # compressed, as read from the socket
MAX_DECOMPRESSED = 32 * 1024 * 1024
# What an unauthenticated body (an enrollment request, well under 2 KiB) may
# inflate to: nobody unknown gets to make the server inflate megabytes.
MAX_UNSIGNED_DECOMPRESSED = 64 * 1024
# How deep a request body may nest (the deepest a client sends is a push's
# certificate chains, 4 levels: envelopes travel as strings).
MAX_REQUEST_DEPTH = 16
MAX_INTEGER = 2**63 - 1  # counters, cursors, positions: SQLite integers
MAX_BATCH = 1000
MAX_INCARNATION = 64  # characters of a node's incarnation id (node/custody.py)
BATCH = 1000
REQUEST_TIMEOUT = 60.0
# Bounds a child puts on the numbers it takes from a (verified) answer: a
# cursor, a recovery position or a request counter never exceeds MAX_POSITION
# (2^53, exact in every JSON implementation), and a 409's counter is at most
# MAX_COUNTER_JUMP above the counter of the request it answers.
MAX_POSITION = 2**53
MAX_COUNTER_JUMP = 2**32
MAX_ANSWER = MAX_DECOMPRESSED  # bytes of an answer as read from the socket


class ProtocolError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.extra = extra


def check_protocol(header: str | None) -> None:
    """A request's protocol version, from its header: 400 ``protocol_version``
    unless it is within one of this build's."""
    text = "1" if header is None else header.strip()
    if not (text.isascii() and text.isdigit() and 1 <= len(text) <= 9 and text[0] != "0"):
        raise ProtocolError(
            400,
            "protocol_version",
            f"{H_PROTOCOL} must be a protocol version (1 to 9 digits)",
            protocol=PROTOCOL,
        )
    sent = int(text)
    if not OLDEST_PEER <= sent <= NEWEST_PEER:
        raise ProtocolError(
            400,
            "protocol_version",
            f"this server speaks sync protocol {PROTOCOL} and works with protocols {OLDEST_PEER} to "
            f"{NEWEST_PEER}; the request is from protocol {sent}: upgrade the older node first",
            protocol=PROTOCOL,
        )


def request_message(method: str, path: str, body: bytes, counter: int, node: str, server: str) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join(["DAIBAN-REQUEST-1", method.upper(), path, digest, str(counter), node, server]).encode()


def encode(value: Any) -> bytes:
    """A request or response body: compact JSON with sorted keys (rendered by
    orjson, several times faster than the json module), zlib-compressed."""
    try:
        text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # a value orjson does not take (e.g. a mapping proxy)
        text = canonical(value)
    return zlib.compress(text, 3)  # level 3: nearly level 6's size at two thirds of its time


def decode(data: bytes, limit: int = MAX_DECOMPRESSED) -> Any:
    """Decompress with the decompressed size counted, then parse JSON. A body
    is one whole zlib stream and nothing after it."""
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(data, limit)
    except zlib.error:
        raise ProtocolError(400, "malformed", "body is not zlib-compressed JSON") from None
    if inflater.unconsumed_tail:
        raise ProtocolError(413, "too_large", "body is too large once decompressed")
    if not inflater.eof:
        raise ProtocolError(400, "malformed", "body is cut short")
    if inflater.unused_data:
        raise ProtocolError(400, "malformed", "bytes follow the end of the zlib stream")
    try:
        return orjson.loads(text)
    except ValueError:
        raise ProtocolError(400, "malformed", "body is not JSON") from None


def _integer(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def check_request(path: str, data: Any) -> None:
    """A request body's shape, as docs/openapi.json describes it: each member
    the server reads of its type and within its range (members it does not
    read are ignored). 400 ``malformed`` otherwise, before any work."""
    if not isinstance(data, dict):
        raise ProtocolError(400, "malformed", f"a request to {path} is a JSON object")
    if path == PUSH:
        envelopes, certs = data.get("envelopes"), data.get("certs", [])
        if not (
            isinstance(envelopes, list)
            and len(envelopes) <= MAX_BATCH
            and all(isinstance(text, str) for text in envelopes)
        ):
            raise ProtocolError(400, "malformed", f"envelopes must be a list of at most {MAX_BATCH} texts")
        if not (
            isinstance(certs, list)
            and len(certs) <= MAX_BATCH
            and all(isinstance(chain, list) and all(isinstance(c, dict) for c in chain) for chain in certs)
        ):
            raise ProtocolError(400, "malformed", "certs must be a list of certificate chains")
        returned = data.get("returned", [])
        if not (
            isinstance(returned, list)
            and len(returned) <= MAX_BATCH
            and all(isinstance(text, str) for text in returned)
        ):
            raise ProtocolError(400, "malformed", f"returned must be a list of at most {MAX_BATCH} texts")
    elif path == PULL:
        incarnation = data.get("incarnation", "-")
        if not (
            _integer(data.get("cursor"), 0, MAX_INTEGER)
            and _integer(data.get("limit", BATCH), 0, MAX_BATCH)
            and isinstance(incarnation, str)
            and 1 <= len(incarnation) <= MAX_INCARNATION
            and isinstance(data.get("holds", False), bool)
        ):
            raise ProtocolError(
                400,
                "malformed",
                "pull needs a cursor >= 0, a limit up to 1000, (if given) an incarnation "
                "of 1 to 64 characters and (if given) holds true or false",
            )
    elif path == RECOVER:
        if not (_integer(data.get("after"), 0, MAX_INTEGER) and _integer(data.get("limit", 1), 1, MAX_BATCH)):
            raise ProtocolError(400, "malformed", "recover needs after >= 0 and a limit of 1 to 1000")
    elif path == ENROLL:
        texts = [data.get(key) for key in ("code", "sign", "enc", "mac")] + [data.get("name", "")]
        if not (
            all(isinstance(text, str) for text in texts)
            and _integer(data.get("resume_seq", 0), 0, MAX_INTEGER)
        ):
            raise ProtocolError(
                400,
                "malformed",
                "enrollment needs code, sign, enc and mac as text (name too, if given) "
                "and resume_seq an integer >= 0",
            )


def error_body(status: int, code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The one JSON error shape, for every error the server returns."""
    return {"ok": False, "status": status, "code": code, "error": message, **extra}
