"""Sealing and signing many filings at once, for a large ledger. HPKE sealing
and Ed25519 signing are most of the cost of filing a row, they need nothing
from the database, and they parallelise cleanly across processes (the
cryptography library holds the GIL while it works).

The worker processes die with the process that started them, whatever kills
it: a ``kill -9`` of ``daiban apply --from`` must not leave four workers of
~120 MB each running for minutes (see :func:`worker_pool`)."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from daiban.trust import envelope
from daiban.trust.crypto import NodeKeys

PARALLEL_FROM = 1000
CHUNK = 250
# How often a worker without PR_SET_PDEATHSIG looks for its parent, in seconds.
WATCH_EVERY = 0.5


def worker_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """A process pool whose workers die with this process. On Linux each
    worker asks the kernel for SIGKILL when its parent dies
    (prctl(PR_SET_PDEATHSIG)); elsewhere a thread in each worker exits it
    when its parent changes. With the fork and spawn start methods the
    workers' parent is this process; with forkserver it is the fork server,
    which itself exits when this process does.

    The kernel sends the signal when the *thread* that forked the worker
    ends, so the pool must be used (and shut down) by the thread that made
    it, as a ``with`` block does."""
    ctx = multiprocessing.get_context()
    parent = os.getpid() if ctx.get_start_method() in ("fork", "spawn") else 0
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=die_with_parent, initargs=(parent,)
    )


def die_with_parent(parent: int) -> None:
    """A pool initializer: end this worker when ``parent`` (0: the parent it
    has now) is gone."""
    parent = parent or os.getppid()
    if _death_signal():
        # The parent may have died between the fork and the prctl: then the
        # signal was never sent, and the worker was reparented already.
        if os.getppid() != parent:
            os._exit(1)
        return
    watch_parent(parent)


def watch_parent(parent: int) -> None:
    """Where the kernel cannot be asked: a daemon thread that ends this
    process within WATCH_EVERY of ``parent`` ceasing to be its parent."""
    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="daiban-parent-watch", daemon=True).start()


def _death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; False where
    that cannot be done."""
    from daiban.processes import signal_on_parent_death

    return signal_on_parent_death()


def _watch_parent(parent: int) -> None:
    # Runs as long as the worker does (a daemon thread); each turn is bounded.
    import time

    while os.getppid() == parent:
        time.sleep(WATCH_EVERY)
    os._exit(1)


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
    with worker_pool(workers) as pool:
        for chunk in pool.map(_make_chunk, [secret] * len(chunks), chunks):
            yield from chunk
