"""Envelopes: every change travels as an immutable envelope signed by its
origin node, with a unique id and a gapless per-origin sequence number.
Personal data rides inside, compressed and sealed to the addressee's key with
HPKE; the origin's signature is inside the sealed plaintext as well as on the
envelope, because HPKE's base mode does not authenticate the sender.

Hops keep the exact bytes they received (``raw``) and never alter them; they
record their own receipt time beside, not inside."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import orjson

from daiban.trust.crypto import CryptoError, NodeKeys, b64, canonical, seal, unb64, verify

VERSION = 1
MAX_RAW = 64 * 1024
BROADCAST = "*"
ID_CHARS = frozenset("0123456789abcdef")
CODE_LENGTHS = (4, 6, 9, 12)
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
MEMBERS = frozenset(
    {
        "v",
        "id",
        "origin",
        "seq",
        "kind",
        "to",
        "tracking",
        "actor",
        "at",
        "body",
        "sealed",
        "sealed_to",
        "sig",
    }
)


class EnvelopeError(Exception):
    """An envelope that is malformed, tampered with or not from its origin."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Envelope:
    id: str
    origin: str
    seq: int
    kind: str
    to: str
    tracking: str | None
    actor: str
    at: str
    body: Mapping[str, Any]
    sealed_text: str | None  # base64url, as it stands in the text; decoded only where it is opened
    sealed_to: str | None
    sig: bytes
    raw: str

    @property
    def sealed(self) -> bytes | None:
        return unb64(self.sealed_text) if self.sealed_text is not None else None

    @cached_property
    def digest(self) -> str:
        # Cached (the frozen fields never change): a server's decoder thread
        # works it out in journal.prepare, so its writer finds it done.
        return hashlib.sha256(self.raw.encode()).hexdigest()

    def info(self) -> bytes:
        return seal_info(self.id, self.kind)


def seal_info(envelope_id: str, kind: str) -> bytes:
    return f"daiban/v{VERSION}|{envelope_id}|{kind}".encode()


def _unsigned(
    *,
    id: str,
    origin: str,
    seq: int,
    kind: str,
    to: str,
    tracking: str | None,
    actor: str,
    at: str,
    body: Mapping[str, Any],
    sealed: bytes | None,
    sealed_to: str | None,
) -> dict[str, Any]:
    return {
        "v": VERSION,
        "id": id,
        "origin": origin,
        "seq": seq,
        "kind": kind,
        "to": to,
        "tracking": tracking,
        "actor": actor,
        "at": at,
        "body": dict(body),
        "sealed": b64(sealed) if sealed is not None else None,
        "sealed_to": sealed_to,
    }


def seal_personal(
    keys: NodeKeys,
    *,
    id: str,
    kind: str,
    tracking: str | None,
    personal: Mapping[str, Any],
    enc_public: bytes,
) -> bytes:
    """Seal personal data for one envelope, with the origin's signature inside."""
    inner = {"id": id, "kind": kind, "tracking": tracking, "personal": dict(personal)}
    plaintext = canonical({"personal": dict(personal), "sig": b64(keys.signature(canonical(inner)))})
    return seal(plaintext, enc_public, seal_info(id, kind))


def make(
    keys: NodeKeys,
    *,
    id: str,
    origin: str,
    seq: int,
    kind: str,
    to: str,
    tracking: str | None,
    actor: str,
    at: str,
    body: Mapping[str, Any],
    sealed: bytes | None = None,
    sealed_to: str | None = None,
) -> Envelope:
    """Sign an envelope around an (optional) sealed personal part."""
    if not (tracking is None or isinstance(tracking, str)):
        raise EnvelopeError("malformed", "bad tracking number")
    if not (sealed_to is None or (isinstance(sealed_to, str) and sealed_to.isdigit())):
        raise EnvelopeError("malformed", "bad sealed_to")
    if (sealed is None) != (sealed_to is None):
        raise ValueError("a sealed part needs its addressee")
    unsigned = _unsigned(
        id=id,
        origin=origin,
        seq=seq,
        kind=kind,
        to=to,
        tracking=tracking,
        actor=actor,
        at=at,
        body=body,
        sealed=sealed,
        sealed_to=sealed_to,
    )
    sig = keys.signature(canonical(unsigned))
    raw = canonical({**unsigned, "sig": b64(sig)}).decode()
    return Envelope(
        id,
        origin,
        seq,
        kind,
        to,
        tracking,
        actor,
        at,
        unsigned["body"],
        unsigned["sealed"],
        sealed_to,
        sig,
        raw,
    )


def parse(raw: str, *, checked: bool = False) -> Envelope:
    """Parse an envelope's exact text and check its shape (not yet its signature).
    ``checked``: text this node stored after checking it, parsed again
    without re-encoding it to prove it canonical."""
    if not isinstance(raw, str) or len(raw) > MAX_RAW:
        raise EnvelopeError("malformed", "envelope is not text or is too large")
    text = raw.encode()
    try:
        data = orjson.loads(text)
    except ValueError:
        raise EnvelopeError("malformed", "envelope is not JSON") from None
    if not isinstance(data, dict) or data.get("v") != VERSION:
        raise EnvelopeError("malformed", "not a version-1 envelope")
    if data.keys() != MEMBERS:
        # The signature covers the whole text: a member nobody reads would
        # still be signed, stored and relayed as it came.
        raise EnvelopeError("malformed", "envelope lacks a member or has one it may not have")
    try:
        env_id, origin, seq, kind, to = data["id"], data["origin"], data["seq"], data["kind"], data["to"]
        body, actor, at = data["body"], data["actor"], data["at"]
        tracking, sealed_text, sealed_to = data.get("tracking"), data.get("sealed"), data.get("sealed_to")
        sig = unb64(data["sig"])
    except (KeyError, CryptoError):
        raise EnvelopeError("malformed", "envelope lacks a field or has bad base64") from None
    if sealed_text is not None and not (
        isinstance(sealed_text, str) and len(sealed_text) % 4 != 1 and _B64URL.fullmatch(sealed_text)
    ):
        raise EnvelopeError("malformed", "envelope lacks a field or has bad base64")
    if not (isinstance(env_id, str) and len(env_id) == 32 and set(env_id) <= ID_CHARS):
        raise EnvelopeError("malformed", "bad envelope id")
    if not (isinstance(origin, str) and origin.isdigit() and len(origin) in CODE_LENGTHS):
        raise EnvelopeError("malformed", "bad origin")
    if not (isinstance(to, str) and (to == BROADCAST or (to.isdigit() and len(to) in CODE_LENGTHS))):
        raise EnvelopeError("malformed", "bad destination")
    if not (isinstance(seq, int) and not isinstance(seq, bool) and seq >= 1):
        raise EnvelopeError("malformed", "bad sequence number")
    if not (
        isinstance(kind, str) and isinstance(body, dict) and isinstance(actor, str) and isinstance(at, str)
    ):
        raise EnvelopeError("malformed", "bad kind, body, actor or time")
    if (sealed_text is None) != (sealed_to is None):
        raise EnvelopeError("malformed", "sealed data without its addressee")
    if not checked and not _is_canonical(data, text):
        # Only the canonical form is signed; anything else has been re-encoded.
        raise EnvelopeError("malformed", "envelope is not in canonical form")
    return Envelope(
        env_id, origin, seq, kind, to, tracking, actor, at, body, sealed_text, sealed_to, sig, raw
    )


def _is_canonical(data: Any, text: bytes) -> bool:
    """Whether ``text`` is the canonical form of ``data``. orjson renders
    almost every envelope exactly as canonical() does, several times faster;
    where it differs (some floats), canonical() decides."""
    try:
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS) == text or canonical(data) == text
    except (TypeError, ValueError, RecursionError):
        # Nested deeper than orjson renders (about 255): no envelope of
        # ours is; node/admission.py bounds the depth of what is admitted.
        return False


def signed_bytes(env: Envelope) -> bytes:
    """The bytes the origin signed: the canonical text without its "sig"
    member. parse() has checked the text is canonical, so cutting the member
    out gives exactly canonical(unsigned), without parsing it again."""
    member = f',"sig":"{b64(env.sig)}"'
    if member not in env.raw:
        raise EnvelopeError("malformed", "envelope signature is not where the canonical form puts it")
    return env.raw.replace(member, "", 1).encode()


def check_signature(env: Envelope, sign_public: bytes) -> None:
    try:
        verify(sign_public, env.sig, signed_bytes(env))
    except CryptoError:
        raise EnvelopeError(
            "bad_signature", "envelope signature does not verify: tampered or forged"
        ) from None


def signed_by_any(env: Envelope, keys: Iterable[bytes]) -> bool:
    """Whether one of ``keys`` (a node's key, and the keys it retired) signed ``env``."""
    for key in keys:
        try:
            check_signature(env, key)
        except EnvelopeError:
            continue
        return True
    return False


def open_sealed(env: Envelope, keys: NodeKeys, origin_sign_public: bytes) -> dict[str, Any]:
    """Open the personal part at its addressee and check the origin's inner signature."""
    if env.sealed_text is None:
        raise EnvelopeError("not_sealed", "envelope carries no personal data")
    try:
        sealed = unb64(env.sealed_text)
    except CryptoError:
        raise EnvelopeError("bad_seal", "sealed data is not base64") from None
    return open_blob(sealed, env.id, env.kind, env.tracking, keys, origin_sign_public)


def open_blob(
    sealed: bytes, env_id: str, kind: str, tracking: str | None, keys: NodeKeys, origin_sign_public: bytes
) -> dict[str, Any]:
    try:
        data = json.loads(keys.open(sealed, seal_info(env_id, kind)))
        personal = data["personal"]
        inner = {"id": env_id, "kind": kind, "tracking": tracking, "personal": personal}
        verify(origin_sign_public, unb64(data["sig"]), canonical(inner))
    except (CryptoError, ValueError, KeyError, TypeError) as exc:
        raise EnvelopeError("bad_seal", f"sealed data does not open or verify: {exc}") from None
    return dict(personal)
