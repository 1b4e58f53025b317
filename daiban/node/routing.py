"""Routing by division-code prefix, as pure functions. At node N an envelope
addressed to D is kept if D = N, handed down to the child whose code is the
longest prefix of D, and otherwise handed up — except that one that came down
from the parent for a D below N with no such child is held until one enrolls.
Broadcasts (the city's manifest, revocations) flood the tree: every neighbour
but the one it came from."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

BROADCAST = "*"
UP = "^"  # the outbox's name for "the parent, whoever it is once enrolled"
HELD = "?"  # for "a child not enrolled yet": re-routed when a child enrolls

# Application events written by the office travel to the node that filed the
# application; those written by the filer travel to the office.
OFFICE_KINDS = frozenset({"received", "accepted", "supplement_requested", "rejected", "completed"})
BROADCAST_KINDS = frozenset({"manifest", "revocation"})


@dataclass(frozen=True)
class Hop:
    """Where an envelope goes next from this node: kept here, down to a
    child, up to the parent, or held until a child for it enrolls."""

    action: str  # "keep" | "down" | "up" | "hold"
    child: str | None = None


def next_hop(
    node: str,
    dest: str,
    children: Iterable[str],
    *,
    from_parent: bool = False,
    moved: Iterable[str] = (),
    revoked: Iterable[str] = (),
) -> Hop:
    """Hand up what no child of ours can take — unless it just came down from
    the parent, which would only send it back: that is held here until a
    child for it enrolls. (A village may enroll at its district directly, so
    its town must hand envelopes for it up.) One for a child that has moved
    to another parent (``moved``) goes up all the same: the parent that sent
    it did not know yet, and routes it down the new branch once it does.
    One for the branch of a child whose certificate was revoked (``revoked``)
    is held here, whoever sent it, until a node of that branch enrolls here
    again (node/revocation.py)."""
    if dest == node:
        return Hop("keep")
    best: str | None = None
    for child in children:
        if dest.startswith(child) and (best is None or len(child) > len(best)):
            best = child
    if best is not None:
        return Hop("down", best)
    if any(dest.startswith(r) for r in revoked):
        return Hop("hold")
    if from_parent and dest.startswith(node) and not any(dest.startswith(m) for m in moved):
        return Hop("hold")
    return Hop("up")


def flood(node: str, came_from: str | None, parent: str | None, children: Iterable[str]) -> list[str]:
    """Neighbours a broadcast goes on to: all but the one it came from."""
    hops = [c for c in children if c != came_from]
    if parent is not None and parent != came_from:
        hops.append(UP)
    return hops


def destination(kind: str, event_origin: str, filer: str, office: str) -> str:
    """Who an application event is for: the office's decisions go back to the
    filer; everything else (filing, supplements, withdrawal, evaluation) goes
    to the office — or back to the filer when the office itself recorded it."""
    if kind in OFFICE_KINDS or event_origin == office:
        return filer
    return office
