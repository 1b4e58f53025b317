"""Routing by division-code prefix, as pure functions. At node N an envelope
addressed to D is kept if D = N, handed down to the child whose code is the
longest prefix of D, and otherwise handed up — except that one that came down
from the parent for a D below N with no such child is held until one enrolls.
Broadcasts (the city's manifest, revocations) flood the tree: every neighbour
but the one it came from."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from daiban.node.codechanges import Change, route_target

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
    changes: Sequence[Change] = (),
) -> Hop:
    """Hand up what no child of ours can take — unless it just came down from
    the parent, which would only send it back: that is held here until a
    child for it enrolls. (A village may enroll at its district directly, so
    its town must hand envelopes for it up.) One for a child that has moved
    to another parent (``moved``) goes up all the same: the parent that sent
    it did not know yet, and routes it down the new branch once it does.
    One for the branch of a child whose certificate was revoked (``revoked``)
    is held here, whoever sent it, until a node of that branch enrolls here
    again (node/revocation.py).

    Once the city changed a code (``changes``, node/codechanges.py), a node
    whose code was changed away keeps nothing for it and takes no more for
    the old code's area from its parent (it hands such envelopes up), a
    child changed away is passed over, and an envelope for the old code or
    below it takes the new code's branch: on the rewritten digits only
    (below the new office a village's own code finds it)."""
    gone = {c.old for c in changes}
    if dest == node and node not in gone:
        return Hop("keep")
    target, rewritten = route_target(dest, changes) if changes else (dest, 0)
    if target == node and node not in gone:
        return Hop("keep")
    best: str | None = None
    for child in children:
        if child in gone:
            continue
        if dest.startswith(child) or (rewritten and len(child) <= rewritten and target.startswith(child)):
            if best is None or len(child) > len(best):
                best = child
    if best is not None:
        return Hop("down", best)
    if any(dest.startswith(r) or target.startswith(r) for r in revoked):
        return Hop("hold")
    mine = node not in gone and (dest.startswith(node) or target.startswith(node))
    if from_parent and mine and not any(dest.startswith(m) for m in moved):
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
