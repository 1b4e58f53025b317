"""Sealing and signing many filings at once, for a large ledger. HPKE sealing
and Ed25519 signing are most of the cost of filing a row, they need nothing
from the database, and they parallelise cleanly across processes (the
cryptography library holds the GIL while it works)."""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from daiban.trust import envelope
from daiban.trust.crypto import NodeKeys

PARALLEL_FROM = 1000
CHUNK = 250


@dataclass(frozen=True)
class Job:
    id: str
    origin: str
    seq: int
    kind: str
    to: str
    tracking: str
    actor: str
    at: str
    body: Mapping[str, Any]
    personal: Mapping[str, Any]
    enc_public: bytes
    sealed_to: str
    make_envelope: bool


Made = tuple[bytes, str, "envelope.Envelope | None"]


def _make_chunk(sign_private: bytes, jobs: Sequence[Job]) -> list[Made]:
    # Only the signing key is needed (the inner and outer signatures); the
    # encryption key here is a throwaway that sealing never uses.
    keys = NodeKeys(Ed25519PrivateKey.from_private_bytes(sign_private), X25519PrivateKey.generate())
    out: list[Made] = []
    for j in jobs:
        sealed = envelope.seal_personal(
            keys, id=j.id, kind=j.kind, tracking=j.tracking, personal=j.personal, enc_public=j.enc_public
        )
        env = None
        if j.make_envelope:
            env = envelope.make(
                keys,
                id=j.id,
                origin=j.origin,
                seq=j.seq,
                kind=j.kind,
                to=j.to,
                tracking=j.tracking,
                actor=j.actor,
                at=j.at,
                body=j.body,
                sealed=sealed,
                sealed_to=j.sealed_to,
            )
        out.append((sealed, j.sealed_to, env))
    return out


def make_many(keys: NodeKeys, jobs: Sequence[Job]) -> Iterator[Made]:
    """Seal (and, where the office's key is known, sign as envelopes) every
    job, in order; in worker processes when there are many, yielding each
    chunk as it is done so the caller can store while the rest are sealed."""
    secret = keys.sign.private_bytes_raw()
    workers = min(4, os.cpu_count() or 1)
    if len(jobs) < PARALLEL_FROM or workers < 2:
        yield from _make_chunk(secret, jobs)
        return
    chunks = [jobs[i : i + CHUNK] for i in range(0, len(jobs), CHUNK)]
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
        for chunk in pool.map(_make_chunk, [secret] * len(chunks), chunks):
            yield from chunk
