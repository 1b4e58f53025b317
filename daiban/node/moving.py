"""A child that moves to another parent (a village enrolled at its town that
enrolls at its district instead, or back).

The proof is the new certificate: issued by the new parent, for the same
code, later than the one this node issued. A node that holds that code as
its child and sees such a chain — with a batch, a pull answer, a push or a
bundle (journal.remember) — treats the child as moved:

- the peer stays, for the record, as ``moved`` with the parent it went to
  (`daiban children` says so), and requests signed by it are refused here;
- what was queued here for it is routed again like any envelope whose
  addressee is no child of this node's: up to the parent, who routes it
  down the new branch (routing.next_hop, with ``moved`` so that what comes
  down from the parent for it later goes back up instead of being held).

How the old parent gets to see the chain (the old and the new parent of a
village are always a town and its district, so one is the other's parent):

- moved up (town → district): the district's pull answers to a child carry
  the chains of the district's own children inside that child's area
  (``chains_below``), so the town sees the village's new chain at its next
  pull;
- moved down (district → town): a child enrolled here is *announced*: the
  next push to the parent carries its chain (an empty push if nothing else
  waits), and only the parent's verified acknowledgement ends that.

The new parent, as it enrolls the child, routes again whatever it had
queued toward that child for another hop (``child_enrolled``). A relay that
gets back an envelope it holds already (a duplicate) from one child,
addressed below another child, queues it for that child again
(``pass_on``): the old parent hands up what the new parent had sent it
before the move, and the addressee's exactly-once check makes the copy
harmless."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from daiban.node import routing
from daiban.trust.certs import Cert

if TYPE_CHECKING:
    from daiban.node.applications import Node


def later(a: str, b: str) -> bool:
    """Whether issue time ``a`` is strictly later than ``b`` (ISO 8601 with
    offset); False when either does not parse."""
    try:
        return dt.datetime.fromisoformat(a) > dt.datetime.fromisoformat(b)
    except (TypeError, ValueError):
        return False


def moved_away(node: Node, code: str, leaf: Cert, known: Cert | None) -> bool:
    """Whether ``leaf`` (verified) proves that a child of this node has moved:
    issued by another node, later than the certificate held here."""
    peer = node.store.peer(code)
    return (
        peer is not None
        and peer["relation"] == "child"
        and known is not None
        and leaf.issuer != node.code
        and later(leaf.issued_at, known.issued_at)
    )


def child_moved(node: Node, code: str, leaf: Cert, chain: list[Any], now: str) -> None:
    """Record that child ``code`` moved to ``leaf.issuer`` and hand on what
    waits here for it; call inside a transaction."""
    node.store.put_cert(code, leaf.serial, chain, "directory", now)
    node.store.set_cert_relation(code, "directory")
    node.store.set_relation(code, "moved", moved_to=leaf.issuer, moved_at=now, announce=0)
    node.children_changed()
    queued = node.store.queued_for(code)
    # Broadcasts are not handed on: the latest manifest came with the new
    # enrollment, and the new parent floods to it whatever comes from now on.
    node.store.release(code, [i for i, dest in queued if dest == routing.BROADCAST])
    rows = [(i, code, dest) for i, dest in queued if dest != routing.BROADCAST]
    rows += [(i, hop, dest) for i, hop, dest in node.store.queued_toward(code) if hop == routing.HELD]
    reroute(node, rows, now)


def child_enrolled(node: Node, code: str, now: str) -> None:
    """At a parent, as ``code`` enrolls (its certificate stored): a child
    again if it had moved away and came back, announced to this node's
    parent, and whatever was queued toward it for another hop (up, held,
    or a shorter child's) routed to it; call inside a transaction."""
    peer = node.store.peer(code)
    if peer is None:
        node.store.put_peer(code, "child")
    elif peer["relation"] != "child":
        # Back after a move: a new link, so its pull cursor starts again
        # (the request counter stays, so no old request can be replayed).
        node.store.set_relation(code, "child", cursor=0, moved_to=None, moved_at=None)
    node.store.update_peer(code, announce=1 if node.parent() is not None else 0)
    node.children_changed()
    rows = [row for row in node.store.queued_toward(code) if row[1] != code]
    changes = node.division_changes()
    if changes:
        # Held for an old office code (or a village below it) whose new
        # office is the child enrolling now (node/codechanges.py).
        seen = {row[0] for row in rows}
        for envelope_id, dest in node.store.queued_for(routing.HELD):
            target, _rewritten = routing.route_target(dest, changes)
            if envelope_id not in seen and target.startswith(code):
                rows.append((envelope_id, routing.HELD, dest))
    reroute(node, rows, now)


def reroute(node: Node, rows: Iterable[tuple[str, str, str]], now: str) -> None:
    """Take (envelope id, hop, destination) rows out of their hop's queue and
    route each again from here."""
    for envelope_id, hop, dest in rows:
        node.store.release(hop, [envelope_id])
        node.route(envelope_id, dest, now)


def pass_on(node: Node, envelope_ids: Sequence[str], sender: str, now: str) -> None:
    """Envelopes a child handed up that this node holds already: one
    addressed below another child of this node is queued for that child
    again (a former parent handing on what it held for a child that moved).
    Never back to the sender, so nothing goes round in circles."""
    children = node.children()
    for envelope_id, dest in node.store.dests_of(envelope_ids):
        if dest in (routing.BROADCAST, node.code):
            continue
        hop = routing.next_hop(node.code, dest, children, changes=node.division_changes())
        if hop.action == "down" and hop.child is not None and hop.child != sender:
            node.store.enqueue(envelope_id, hop.child, "down", now)


def chains_below(node: Node, child: str, room: int) -> list[list[Any]]:
    """Chains of this node's children inside ``child``'s area (at most
    ``room``): sent with every pull answer and bundle for ``child``, so a
    child that held one of them before sees that it moved."""
    if room <= 0:
        return []
    return node.store.child_chains_under(child, room)


def came_back_down(node: Node, envelope_ids: Sequence[str], now: str) -> None:
    """Envelopes the parent hands down that this node holds already, while a
    division code change is in force (node/codechanges.py): the new office's
    own, sent up for a village still under its old town, come back down to
    it; each is held here (or handed to the child, if it has enrolled) like
    anything else that comes down for this node's area. The addressee's
    exactly-once check makes a second delivery harmless."""
    changes = node.division_changes()
    if not changes:
        return
    children, moved = node.children(), node.moved_children()
    for envelope_id, dest in node.store.dests_of(envelope_ids):
        if dest in (routing.BROADCAST, node.code):
            continue
        hop = routing.next_hop(node.code, dest, children, from_parent=True, moved=moved, changes=changes)
        if hop.action in ("hold", "down"):
            node.route(envelope_id, dest, now, came_from=node.parent())
