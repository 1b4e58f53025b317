"""A node's keys sealed under a recovery passphrase: the one file that lets a
restored node carry on with its own identity.

The file is UTF-8 JSON, one object, version 1::

    {"format": "daiban-keys", "version": 1,
     "code": "370303101", "fingerprint": "…",          # whose keys (public)
     "kdf": {"name": "argon2id", "time_cost": 3, "memory_kib": 65536,
             "parallelism": 4, "salt": "<16 random bytes, base64url>"},
     "aead": {"name": "chacha20-poly1305", "nonce": "<12 random bytes>"},
     "sealed": "<ciphertext and tag, base64url>"}

The passphrase (Unicode NFC, UTF-8) goes through Argon2id (RFC 9106's second
recommended setting: 3 passes over 64 MiB, 4 lanes) with the file's random
salt to a 32-byte key; ChaCha20-Poly1305 under that key and the random nonce
seals the canonical JSON of the three secrets (signing key, encryption key,
lookup key; raw bytes, base64url). Every member but ``sealed`` is the
associated data, so the code, the fingerprint and the parameters cannot be
changed without the file failing to open. The parameters are read from the
file (bounded, so a crafted file cannot ask for gigabytes), so a later version
may raise them and still open files written now. Nothing else is in the file:
no key bytes in the clear, and never the passphrase."""

from __future__ import annotations

import json
import os
import unicodedata
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from daiban.trust.crypto import CryptoError, b64, canonical, fingerprint, raw_public, unb64

FORMAT = "daiban-keys"
VERSION = 1
KDF = "argon2id"
AEAD = "chacha20-poly1305"
TIME_COST = 3
MEMORY_KIB = 64 * 1024
PARALLELISM = 4
SALT_BYTES = 16
NONCE_BYTES = 12
KEY_BYTES = 32
MAX_FILE = 64 * 1024
# What a file may ask of the KDF when it is opened: enough room to raise the
# cost later, not enough to be made to spend minutes or gigabytes.
BOUNDS = {"time_cost": (1, 16), "memory_kib": (8 * 1024, 1024 * 1024), "parallelism": (1, 16)}
SECRETS = ("sign", "enc", "lookup")


class KeyFileError(Exception):
    """A key file that does not open: ``reason`` is ``wrong_passphrase``,
    ``unsupported`` (a later version) or ``malformed``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Opened:
    """What a key file held: whose keys they are, and the three secrets."""

    code: str
    fingerprint: str
    sign: bytes
    enc: bytes
    lookup: bytes


def normalize(passphrase: str) -> bytes:
    """The bytes a passphrase stands for: NFC, so the same words typed on two
    computers give the same key."""
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def sign_fingerprint(sign: bytes) -> str:
    """The fingerprint of the public half of a raw Ed25519 private key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return fingerprint(raw_public(Ed25519PrivateKey.from_private_bytes(sign).public_key()))


def _derive(passphrase: str, salt: bytes, time_cost: int, memory_kib: int, parallelism: int) -> bytes:
    from argon2.low_level import Type, hash_secret_raw

    return hash_secret_raw(
        normalize(passphrase),
        salt,
        time_cost=time_cost,
        memory_cost=memory_kib,
        parallelism=parallelism,
        hash_len=KEY_BYTES,
        type=Type.ID,
    )


def seal(passphrase: str, *, code: str, fingerprint: str, sign: bytes, enc: bytes, lookup: bytes) -> bytes:
    """The key file's bytes: the three secrets sealed under the passphrase."""
    salt, nonce = os.urandom(SALT_BYTES), os.urandom(NONCE_BYTES)
    header: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "code": code,
        "fingerprint": fingerprint,
        "kdf": {
            "name": KDF,
            "time_cost": TIME_COST,
            "memory_kib": MEMORY_KIB,
            "parallelism": PARALLELISM,
            "salt": b64(salt),
        },
        "aead": {"name": AEAD, "nonce": b64(nonce)},
    }
    key = _derive(passphrase, salt, TIME_COST, MEMORY_KIB, PARALLELISM)
    secrets = canonical({"sign": b64(sign), "enc": b64(enc), "lookup": b64(lookup)})
    sealed = ChaCha20Poly1305(key).encrypt(nonce, secrets, canonical(header))
    return canonical({**header, "sealed": b64(sealed)}) + b"\n"


def header(data: bytes) -> dict[str, Any]:
    """The public part of a key file (whose keys, which parameters), checked
    for shape and bounds; raises KeyFileError."""
    if len(data) > MAX_FILE:
        raise KeyFileError("malformed", "larger than any key file")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise KeyFileError("malformed", f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise KeyFileError("malformed", "not a Daiban key file")
    if doc.get("version") != VERSION:
        raise KeyFileError("unsupported", f"key file version {doc.get('version')!r}")
    kdf, aead = doc.get("kdf"), doc.get("aead")
    if not isinstance(kdf, dict) or kdf.get("name") != KDF:
        raise KeyFileError("unsupported", "unknown key derivation")
    if not isinstance(aead, dict) or aead.get("name") != AEAD:
        raise KeyFileError("unsupported", "unknown cipher")
    for name, (low, high) in BOUNDS.items():
        value = kdf.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise KeyFileError("malformed", f"{name} out of bounds")
    if not isinstance(doc.get("code"), str) or not isinstance(doc.get("fingerprint"), str):
        raise KeyFileError("malformed", "no code or fingerprint")
    texts = (kdf.get("salt"), aead.get("nonce"), doc.get("sealed"))
    if not all(isinstance(text, str) for text in texts):
        raise KeyFileError("malformed", "no salt, nonce or ciphertext")
    try:
        salt, nonce, sealed = (unb64(str(text)) for text in texts)
    except CryptoError as exc:
        raise KeyFileError("malformed", str(exc)) from None
    if len(salt) != SALT_BYTES or len(nonce) != NONCE_BYTES or len(sealed) < 16:
        raise KeyFileError("malformed", "salt, nonce or ciphertext of the wrong length")
    return doc


def open_file(data: bytes, passphrase: str) -> Opened:
    """The secrets in a key file, if the passphrase is the one it was sealed
    under; raises KeyFileError (``wrong_passphrase`` when it is not)."""
    doc = header(data)
    kdf, aead = doc["kdf"], doc["aead"]
    public = {k: v for k, v in doc.items() if k != "sealed"}
    key = _derive(passphrase, unb64(kdf["salt"]), kdf["time_cost"], kdf["memory_kib"], kdf["parallelism"])
    try:
        plain = ChaCha20Poly1305(key).decrypt(unb64(aead["nonce"]), unb64(doc["sealed"]), canonical(public))
    except InvalidTag:
        raise KeyFileError("wrong_passphrase", "the passphrase does not open the key file") from None
    try:
        values = json.loads(plain)
        sign, enc, lookup = (unb64(values[name]) for name in SECRETS)
    except (ValueError, KeyError, TypeError, CryptoError) as exc:
        raise KeyFileError("malformed", f"sealed content is not three keys: {exc}") from None
    if not all(len(secret) == KEY_BYTES for secret in (sign, enc, lookup)):
        raise KeyFileError("malformed", "a key of the wrong length")
    if sign_fingerprint(sign) != doc["fingerprint"]:
        raise KeyFileError("malformed", "the signing key is not the one the file names")
    return Opened(doc["code"], doc["fingerprint"], sign, enc, lookup)
