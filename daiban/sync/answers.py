"""Signed answers: every answer of a parent to /v1/push, /v1/pull,
/v1/recover and /v1/enroll — errors included — carries an Ed25519 signature
by the parent's key, in the header ``X-Daiban-Answer-Signature``, over

    DAIBAN-ANSWER-1\\n<status>\\n<sha256 hex of the body as sent>\\n<binding>\\n<server code>

The binding ties the answer to the request it answers: for push, pull and
recover the request's ``X-Daiban-Signature`` exactly as received (which
covers the request's path, body, counter and node); for enroll the
request's ``mac`` (which covers the child's code and keys). A binding that is
not shaped like one (missing, or not base64url of a signature / not 64 hex
digits) is the empty string, so nothing a client typed can add a line.

A child verifies an answer with its parent's certified key before it acts
on it. At enrollment it has no pinned key yet: it verifies a 200 answer
with the key of the parent's certificate in the chain the answer carries,
once that chain has verified against the root it pins; an enroll error
cannot be verified by a first-time child, and changes nothing there.

Pure functions, no I/O."""

from __future__ import annotations

import hashlib
import re

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daiban.trust.crypto import CryptoError, b64, unb64, verify

H_ANSWER = "X-Daiban-Answer-Signature"
TAG = "DAIBAN-ANSWER-1"
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{86}")
_MAC = re.compile(r"[0-9a-f]{64}")


class AnswerError(Exception):
    """An answer whose signature is missing or does not verify."""


def binding(value: object) -> str:
    """What an answer is bound to: a request signature (86 base64url
    characters) or an enrollment mac (64 lowercase hex digits), else ""."""
    if isinstance(value, str) and (_SIGNATURE.fullmatch(value) or _MAC.fullmatch(value)):
        return value
    return ""


def message(status: int, body: bytes, bound_to: str, server: str) -> bytes:
    """The bytes an answer's signature covers."""
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join([TAG, str(int(status)), digest, binding(bound_to), server]).encode()


def sign(sign_key: Ed25519PrivateKey, status: int, body: bytes, bound_to: str, server: str) -> str:
    """The header value: base64url (no padding) of the Ed25519 signature."""
    return b64(sign_key.sign(message(status, body, bound_to, server)))


def check(
    public: bytes | None, header: str | None, status: int, body: bytes, bound_to: str, server: str
) -> None:
    """Raise AnswerError unless ``header`` is the signature of ``public``
    over this answer to this request."""
    if public is None:
        raise AnswerError("no certified key is known for the parent")
    if not isinstance(header, str) or not _SIGNATURE.fullmatch(header):
        raise AnswerError("the answer is not signed")
    try:
        verify(public, unb64(header), message(status, body, bound_to, server))
    except CryptoError:
        raise AnswerError("the answer's signature does not verify") from None
