"""Sealing many personal parts at once, for a large ledger: HPKE sealing is
most of the cost of filing a row, and it parallelises cleanly across
processes (the cryptography library holds the GIL while it seals)."""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from daiban.sync import envelope
from daiban.sync.crypto import NodeKeys

Item = tuple[str, str, str, Mapping[str, Any], bytes]  # id, kind, tracking, personal, enc_public
PARALLEL_FROM = 1000
CHUNK = 250


def _seal_chunk(sign_private: bytes, items: Sequence[Item]) -> list[bytes]:
    # Only the signing key is needed to seal (the inner signature); the
    # encryption key here is a throwaway the seal never uses.
    keys = NodeKeys(Ed25519PrivateKey.from_private_bytes(sign_private), X25519PrivateKey.generate())
    return [
        envelope.seal_personal(keys, id=i, kind=k, tracking=t, personal=p, enc_public=e)
        for i, k, t, p, e in items
    ]


def seal_many(keys: NodeKeys, items: Sequence[Item]) -> list[bytes]:
    """Seal every item, in worker processes when there are many."""
    workers = min(4, os.cpu_count() or 1)
    if len(items) < PARALLEL_FROM or workers < 2:
        return _seal_chunk(keys.sign.private_bytes_raw(), items)
    chunks = [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
    secret = keys.sign.private_bytes_raw()
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
        results = pool.map(_seal_chunk, [secret] * len(chunks), chunks)
        return [sealed for chunk in results for sealed in chunk]
