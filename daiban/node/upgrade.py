"""Rolling upgrades: each node works with neighbours one version older or
newer, and what a newer neighbour sends that this build does not know is
held, not lost.

- **Held.** An envelope of a kind this build does not know, or whose body
  has a member its schema does not know (node/admission.py marks both as
  ``newer``), is held when everything else about it checks out: its shape,
  exactly once, the sender may hand it over, and its origin's certificate
  and signature verify. It is kept in quarantine with ``held = 1``
  (`daiban quarantine` shows it as waiting for an upgrade), acknowledged to
  the sender as ``held`` (custody passes), and neither stored, applied nor
  routed: holding admits nothing. Anything else wrong is a refusal, as
  before.
- **Taken in after the upgrade.** The build a node's database was last
  opened with is recorded (``build``: the package version and a digest of
  the schemas it admits by). When a different build opens it, every held
  envelope, and every one an older build refused as ``unknown_kind`` or
  ``invalid_body`` (it had no way to hold), is examined again through the
  journal, as if its sender had just handed it over: what this build
  admits is stored, folded and routed on, and leaves quarantine in the
  same transaction (so exactly once: it is by id from then on); what it
  still cannot admit stays with this build's reason. `daiban quarantine
  retry` does the same on an operator's word."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from importlib.abc import Traversable
from typing import TYPE_CHECKING

from daiban.node.clock import stamp

if TYPE_CHECKING:
    from daiban.node.applications import Node

log = logging.getLogger("daiban.upgrade")

SETTING = "build"
"""The setting that records the build that last opened the database."""
REEXAMINED = ("unknown_kind", "invalid_body")
"""Refusal codes a later build may no longer give: examined again after an
upgrade even when an older build, which could not hold, refused them."""


@dataclass
class Reexamined:
    """What one re-examination did: envelopes taken in (``taken``; already
    held here: ``duplicates``), still waiting (``held``), refused for a
    reason this build gives (``refused``)."""

    taken: int = 0
    duplicates: int = 0
    held: int = 0
    refused: int = 0
    failed: int = 0
    """Rows that could not be examined (logged; left as they were)."""

    def as_dict(self) -> dict[str, int]:
        return {
            "taken": self.taken,
            "duplicates": self.duplicates,
            "held": self.held,
            "refused": self.refused,
        }


@lru_cache(maxsize=1)
def build() -> str:
    """This build: its version and a digest of the schemas it admits by
    (two builds of one version that admit differently are told apart)."""
    import daiban

    digest = hashlib.sha256()
    for name, data in sorted(_files(resources.files("daiban").joinpath("schemas"), "")):
        digest.update(name.encode() + b"\0" + data + b"\0")
    return f"{daiban.__version__}+{digest.hexdigest()[:12]}"


def _files(folder: Traversable, prefix: str) -> Iterator[tuple[str, bytes]]:
    for entry in folder.iterdir():
        if entry.is_dir():
            yield from _files(entry, f"{prefix}{entry.name}/")
        elif entry.name.endswith(".json"):
            yield f"{prefix}{entry.name}", entry.read_bytes()


def record_build(node: Node) -> None:
    """Note this build as the one that last opened the database; call inside a transaction."""
    node.store.set_setting(SETTING, build())


def after_upgrade(node: Node) -> Reexamined | None:
    """When the database was last opened by another build (or by one from
    before builds were recorded): examine again what it holds for an
    upgrade, then record this build (unless a row failed to be examined:
    the next opening tries again). None when nothing changed."""
    if node.store.setting(SETTING) == build():
        return None
    done = reexamine(node)
    if not done.failed:  # else the next opening tries again
        with node.store.transaction():
            record_build(node)
    return done


def reexamine(node: Node, ids: Iterable[int] | None = None) -> Reexamined:
    """Examine quarantined envelopes again (``ids``; by default those held
    for an upgrade and those refused as unknown_kind or invalid_body), each
    in a transaction of its own, then apply what was taken in (drain)."""
    from daiban.node import journal  # only when there is something to examine: opening stays light

    chosen = list(ids) if ids is not None else node.store.reexaminable(REEXAMINED)
    out = Reexamined()
    for quarantine_id in chosen:
        try:
            with node.store.transaction():
                _one(node, quarantine_id, out)
        except Exception:  # never a reason for a node not to open: it stays as it was
            log.exception("quarantine row %s could not be examined again", quarantine_id)
            out.failed += 1
    journal.drain(node)
    return out


def _one(node: Node, quarantine_id: int, out: Reexamined) -> None:
    from daiban.node import journal

    row = node.store.quarantine_row(quarantine_id)
    if row is None:  # another process took it in meanwhile
        return
    sender = str(row["sender"])
    verdict = journal.retake(node, str(row["raw"]), sender=sender, direction=_direction(node, sender))
    if verdict.status in ("stored", "duplicate"):
        node.store.drop_quarantine(quarantine_id)
        if verdict.status == "stored":
            out.taken += 1
        else:
            out.duplicates += 1
        return
    held = verdict.status == "held"
    node.store.requarantine(quarantine_id, verdict.code, verdict.reason[:1000], held, stamp(node.clock()))
    if held:
        out.held += 1
    else:
        out.refused += 1


def _direction(node: Node, sender: str) -> str:
    """How the sender stands to this node: a node below it hands up, any
    other (its parent) hands down."""
    return "up" if sender != node.code and sender.startswith(node.code) else "down"
