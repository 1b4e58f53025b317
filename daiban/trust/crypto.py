"""Keys and the primitives built on them (``cryptography``): Ed25519 signing,
X25519 + HPKE sealing (RFC 9180: DHKEM(X25519), HKDF-SHA256,
ChaCha20-Poly1305), canonical JSON for signed bytes, fingerprints.

A node's private keys live in its home, in keys/, readable only by the owner."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

SIGN_KEY = "keys/sign.key"
ENC_KEY = "keys/enc.key"
SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
MAX_PLAINTEXT = 256 * 1024


class CryptoError(Exception):
    """A signature that does not verify, or a seal that does not open."""


def canonical(value: Any) -> bytes:
    """The one byte form of a JSON value that gets signed: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    if not isinstance(text, str):
        raise CryptoError("expected base64 text")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise CryptoError("bad base64") from exc


def fingerprint(sign_public: bytes) -> str:
    """A public key's fingerprint: SHA-256, first 16 bytes, hex in groups of 4
    so it can be compared by eye or read over the phone."""
    digest = hashlib.sha256(sign_public).hexdigest()[:32]
    return "-".join(digest[i : i + 4] for i in range(0, 32, 4))


def raw_public(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def verify(sign_public: bytes, signature: bytes, message: bytes) -> None:
    """Check an Ed25519 signature (libsodium's strict verification, the same
    at every node, so no two hops can disagree about a signature)."""
    from nacl.exceptions import BadSignatureError
    from nacl.exceptions import CryptoError as NaclError

    try:
        _verify_key(sign_public).verify(message, signature)
    except (BadSignatureError, NaclError, ValueError, TypeError) as exc:
        raise CryptoError("signature does not verify") from exc


@lru_cache(maxsize=1024)
def _verify_key(sign_public: bytes) -> Any:
    from nacl.signing import VerifyKey

    return VerifyKey(sign_public)


VERIFY_THREADS = 2
VERIFY_CHUNK = 64


def _check_chunk(chunk: Sequence[tuple[bytes, bytes, bytes]]) -> list[bool]:
    out = []
    for public, signature, message in chunk:
        try:
            verify(public, signature, message)
            out.append(True)
        except CryptoError:
            out.append(False)
    return out


class Verifier:
    """Signatures checked in the background while the caller goes on (say,
    parsing the next envelopes of a batch): each full chunk goes to a thread
    as soon as it is added; libsodium releases the GIL, so the checks run on
    the other core. results() waits for them all."""

    def __init__(self) -> None:
        self._chunk: list[tuple[bytes, bytes, bytes]] = []
        self._parts: list[Any] = []
        self._count = 0
        self._results: list[bool] | None = None

    def add(self, public: bytes, signature: bytes, message: bytes) -> int:
        """Queue a check; returns its index in results()."""
        self._chunk.append((public, signature, message))
        if len(self._chunk) == VERIFY_CHUNK:
            self._parts.append(_verify_pool().submit(_check_chunk, self._chunk))
            self._chunk = []
        self._count += 1
        return self._count - 1

    def flush(self) -> None:
        """Hand what is queued to the threads now, however few: the checks
        go on while the caller passes the batch on (a server's decoder
        thread to its writer, journal.prepare)."""
        if self._chunk:
            self._parts.append(_verify_pool().submit(_check_chunk, self._chunk))
            self._chunk = []

    def results(self) -> list[bool]:
        """Every check's outcome, in the order added (waited for once;
        nothing may be added after)."""
        if self._results is None:
            done = [ok for part in self._parts for ok in part.result()]
            self._results = done + _check_chunk(self._chunk)
            self._chunk = []
        return self._results


@lru_cache(maxsize=1)
def _verify_pool() -> Any:
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(VERIFY_THREADS, thread_name_prefix="daiban-verify")


@lru_cache(maxsize=256)
def _x25519(public: bytes) -> X25519PublicKey:
    return X25519PublicKey.from_public_bytes(public)


LOCAL_PREFIX = b"DBK1"  # what NodeKeys.keep makes


def seal(plaintext: bytes, enc_public: bytes, info: bytes) -> bytes:
    """Compress, then seal to a node's X25519 key with HPKE base mode. ``info``
    binds the ciphertext to its envelope (id and kind)."""
    return SUITE.encrypt(zlib.compress(plaintext, 6), _x25519(enc_public), info=info)


@dataclass
class NodeKeys:
    sign: Ed25519PrivateKey
    enc: X25519PrivateKey

    @cached_property
    def sign_public(self) -> bytes:
        return raw_public(self.sign.public_key())

    @cached_property
    def enc_public(self) -> bytes:
        return raw_public(self.enc.public_key())

    def signature(self, message: bytes) -> bytes:
        return self.sign.sign(message)

    def open(self, sealed: bytes, info: bytes) -> bytes:
        try:
            compressed = SUITE.decrypt(sealed, self.enc, info=info)
        except (InvalidTag, ValueError) as exc:
            raise CryptoError("sealed data does not open with this node's key") from exc
        inflater = zlib.decompressobj()
        try:
            data = inflater.decompress(compressed, MAX_PLAINTEXT)
        except zlib.error as exc:
            raise CryptoError("sealed data is not valid compressed data") from exc
        if inflater.unconsumed_tail:
            raise CryptoError("sealed data is larger than allowed")
        return data

    @cached_property
    def _local_key(self) -> bytes:
        # A key of this node's own, for what it keeps for itself only: derived
        # from its X25519 private key, so it lives and dies with keys/.
        import hashlib
        import hmac

        return hmac.new(self.enc.private_bytes_raw(), b"daiban-local-v1", hashlib.sha256).digest()

    def keep(self, plaintext: bytes, context: bytes) -> bytes:
        """Encrypt (compressed, XChaCha20-Poly1305, ``context`` bound) what this
        node keeps for itself alone: several times cheaper than sealing to
        its own public key, and openable only with this node's keys."""
        from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_encrypt

        nonce = os.urandom(24)
        body = crypto_aead_xchacha20poly1305_ietf_encrypt(
            zlib.compress(plaintext, 6), context, nonce, self._local_key
        )
        return LOCAL_PREFIX + nonce + body

    def unkeep(self, blob: bytes, context: bytes) -> bytes:
        """Open what ``keep`` made, or CryptoError."""
        from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_decrypt
        from nacl.exceptions import CryptoError as NaclError

        if not blob.startswith(LOCAL_PREFIX) or len(blob) < len(LOCAL_PREFIX) + 24 + 16:
            raise CryptoError("not kept by this node")
        nonce, body = blob[len(LOCAL_PREFIX) : len(LOCAL_PREFIX) + 24], blob[len(LOCAL_PREFIX) + 24 :]
        try:
            compressed = crypto_aead_xchacha20poly1305_ietf_decrypt(body, context, nonce, self._local_key)
        except NaclError as exc:
            raise CryptoError("kept data does not open with this node's key") from exc
        inflater = zlib.decompressobj()
        try:
            data = inflater.decompress(compressed, MAX_PLAINTEXT)
        except zlib.error as exc:
            raise CryptoError("kept data is not valid compressed data") from exc
        return data

    @classmethod
    def generate(cls) -> NodeKeys:
        return cls(Ed25519PrivateKey.generate(), X25519PrivateKey.generate())

    def save(self, home: Path) -> None:
        from daiban.trust.files import write_secret

        write_secret(home / SIGN_KEY, self.sign.private_bytes_raw())
        write_secret(home / ENC_KEY, self.enc.private_bytes_raw())

    @classmethod
    def load(cls, home: Path) -> NodeKeys:
        return cls(
            Ed25519PrivateKey.from_private_bytes((home / SIGN_KEY).read_bytes()),
            X25519PrivateKey.from_private_bytes((home / ENC_KEY).read_bytes()),
        )


def keys_exist(home: Path) -> bool:
    return (home / SIGN_KEY).exists() and (home / ENC_KEY).exists()


def random_id() -> str:
    """32 lowercase hex digits, all random (a certificate's serial)."""
    return os.urandom(16).hex()


def new_id(at_ms: int | None = None) -> str:
    """A new envelope or event id: 32 lowercase hex digits, the first 12 the
    milliseconds since 1970 (``at_ms``, now by default), the other 20 random
    (80 bits: no two alike however many are made in one millisecond).

    Made one after another, ids sort together, so the tables and indexes
    keyed by them (envelopes, events, personal data) take new rows at their
    end. Wholly random ids scatter every batch across a large database, each
    row dirtying a page of its own: at 30,000 applications a district's apply
    wrote twice the WAL and a sync took 0.4 s more of 3 (docs/BENCHMARKS.md)."""
    ms = time.time_ns() // 1_000_000 if at_ms is None else at_ms
    return f"{ms & 0xFFFF_FFFF_FFFF:012x}{os.urandom(10).hex()}"
