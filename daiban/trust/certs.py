"""Certificates: a parent certifies each child it enrolls; a chain of
certificates leads from any node to the city root. Every hop checks the chain,
the name constraint (a parent certifies only codes that extend its own) and
each signature, against the root fingerprint it pinned at enrollment. Plain
values in and out; no I/O."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from daiban.trust.codes import resolve, role_of
from daiban.trust.crypto import CryptoError, b64, canonical, fingerprint, unb64, verify

CERT_VERSION = 1
# A chain is at most city, district, town, village: 4 certificates (the name
# constraint allows no more). The envelope schema's $defs/chain says the same.
MAX_CHAIN = 4


class CertError(Exception):
    """A chain that does not lead to the pinned root, breaks the name constraint,
    or holds a revoked certificate. ``code`` says which, for the JSON error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Cert:
    code: str
    name: str
    role: str
    sign: bytes
    enc: bytes
    issuer: str
    serial: str
    issued_at: str
    sig: bytes

    def unsigned(self) -> dict[str, Any]:
        return {
            "v": CERT_VERSION,
            "code": self.code,
            "name": self.name,
            "role": self.role,
            "sign": b64(self.sign),
            "enc": b64(self.enc),
            "issuer": self.issuer,
            "serial": self.serial,
            "issued_at": self.issued_at,
        }

    def as_dict(self) -> dict[str, Any]:
        return {**self.unsigned(), "sig": b64(self.sig)}

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.sign)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cert:
        try:
            if data.get("v") != CERT_VERSION:
                raise CertError("bad_cert", "unsupported certificate version")
            return cls(
                code=str(data["code"]),
                name=str(data["name"]),
                role=str(data["role"]),
                sign=unb64(data["sign"]),
                enc=unb64(data["enc"]),
                issuer=str(data["issuer"]),
                serial=str(data["serial"]),
                issued_at=str(data["issued_at"]),
                sig=unb64(data["sig"]),
            )
        except (KeyError, TypeError, CryptoError) as exc:
            raise CertError("bad_cert", f"malformed certificate: {exc}") from None


def issue(
    *,
    issuer_code: str,
    issuer_sign: Any,
    code: str,
    name: str,
    sign: bytes,
    enc: bytes,
    serial: str,
    issued_at: str,
    renamed: Mapping[str, str] | None = None,
) -> Cert:
    """Certify ``code`` with the issuer's signing key. Refuses a code that does
    not extend the issuer's (the root certifies itself), as ``renamed`` (the
    city's code changes) places it."""
    role = role_of(code)
    if role is None:
        raise CertError("bad_code", f"{code} is not a division code")
    if code != issuer_code and not extends(code, issuer_code, renamed):
        raise CertError("name_constraint", f"{issuer_code} may not certify {code}")
    draft = Cert(code, name, role, sign, enc, issuer_code, serial, issued_at, b"")
    return Cert(**{**draft.__dict__, "sig": issuer_sign.sign(canonical(draft.unsigned()))})


def extends(code: str, ancestor: str, renamed: Mapping[str, str] | None = None) -> bool:
    """Whether ``code`` lies below ``ancestor``: by its own digits, or, once
    the city changed a code above it (``renamed``, old -> new, from its
    signed manifest), where the change put it (a village under a town whose
    code changed keeps its code, and lies below the new town)."""
    if len(code) > len(ancestor) and code.startswith(ancestor):
        return True
    if renamed:
        moved = resolve(code, renamed)
        return moved != code and len(moved) > len(ancestor) and moved.startswith(ancestor)
    return False


def verify_chain(
    chain: Sequence[Mapping[str, Any] | Cert],
    root_fingerprint: str,
    revoked: Collection[str] = (),
    kept: Collection[str] = (),
    renamed: Mapping[str, str] | None = None,
) -> Cert:
    """Check a chain, root first; return the leaf certificate. A revoked
    certificate refuses the chain, unless it is not the leaf and the one it
    issued next in the chain is ``kept``: listed by the revoking ancestor as
    issued before the revocation (node/revocation.py). The revoked node's own
    word (the issue time it wrote) counts for nothing here. ``renamed``: the
    code changes of the city's manifest (old -> new), under which a village
    keeps its code below a town whose code changed."""
    if not chain:
        raise CertError("broken_chain", "empty certificate chain")
    certs = [c if isinstance(c, Cert) else Cert.from_dict(c) for c in chain]
    root = certs[0]
    if root.issuer != root.code or root.role != "city":
        raise CertError("untrusted_root", "the chain does not start at a city root")
    if root.fingerprint != root_fingerprint:
        raise CertError("untrusted_root", "the chain's root is not the pinned city root")
    parent = root
    for index, cert in enumerate(certs):
        if cert.serial in revoked and (index == len(certs) - 1 or certs[index + 1].serial not in kept):
            raise CertError("revoked", f"certificate of {cert.code} is revoked")
        if role_of(cert.code) != cert.role:
            raise CertError("bad_cert", f"{cert.code} is not a {cert.role} code")
        if index > 0:
            if cert.issuer != parent.code:
                raise CertError("broken_chain", f"{cert.code} was not issued by {parent.code}")
            if not extends(cert.code, parent.code, renamed):
                raise CertError("name_constraint", f"{parent.code} may not certify {cert.code}")
        if not _signed_by(parent.sign, cert.sig, canonical(cert.unsigned())):
            raise CertError("bad_signature", f"certificate of {cert.code} has a bad signature")
        parent = cert
    return certs[-1]


@lru_cache(maxsize=4096)
def _signed_by(sign_public: bytes, signature: bytes, message: bytes) -> bool:
    """Whether the signature verifies. Remembered: a child sends the same
    chain with every push, and a signature over the same bytes with the
    same key verifies the same way every time (what a chain's other checks
    depend on — revocations, the root, renamed codes — is checked anew)."""
    try:
        verify(sign_public, signature, message)
    except CryptoError:
        return False
    return True
