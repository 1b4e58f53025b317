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
H_NODE, H_COUNTER, H_SIG = "X-Daiban-Node", "X-Daiban-Counter", "X-Daiban-Signature"
PROTOCOL = 1
"""The sync protocol version this build speaks: sent by the client on every
request (``X-Daiban-Protocol``) and shown by the server's /v1/healthz."""
H_PROTOCOL = "X-Daiban-Protocol"
PROTOCOL_HEADERS = {H_PROTOCOL: str(PROTOCOL)}
CONTENT_TYPE = "application/vnd.daiban+json+zlib"
MAX_BODY = 8 * 1024 * 1024  # compressed, as read from the socket
MAX_DECOMPRESSED = 32 * 1024 * 1024
MAX_BATCH = 1000
BATCH = 1000
REQUEST_TIMEOUT = 60.0


class ProtocolError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.extra = extra


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
    """Decompress with the decompressed size counted, then parse JSON."""
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(data, limit)
    except zlib.error:
        raise ProtocolError(400, "malformed", "body is not zlib-compressed JSON") from None
    if inflater.unconsumed_tail:
        raise ProtocolError(413, "too_large", "body is too large once decompressed")
    if not inflater.eof:
        raise ProtocolError(400, "malformed", "body is cut short")
    try:
        return orjson.loads(text)
    except ValueError:
        raise ProtocolError(400, "malformed", "body is not JSON") from None


def error_body(status: int, code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The one JSON error shape, for every error the server returns."""
    return {"ok": False, "status": status, "code": code, "error": message, **extra}
