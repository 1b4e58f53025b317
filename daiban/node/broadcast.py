"""A node's own broadcast (the city's manifest, an ancestor's revocation):
signed as an envelope to every node, kept here, and queued for every
neighbour — the flood the routing module describes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from daiban.node import routing
from daiban.trust import envelope
from daiban.trust.crypto import random_id
from daiban.trust.envelope import Envelope

if TYPE_CHECKING:
    from daiban.node.applications import Node


def send(node: Node, kind: str, body: Mapping[str, Any], now: str) -> Envelope:
    """Sign, keep and queue a broadcast; call inside a transaction."""
    env = envelope.make(
        node.keys,
        id=random_id(),
        origin=node.code,
        seq=node._take_seq(),
        kind=kind,
        to=routing.BROADCAST,
        tracking=None,
        actor=node.actor,
        at=now,
        body=body,
    )
    node.store.insert_envelope(
        env, dest=routing.BROADCAST, received_at=now, received_from=node.code, effect="applied"
    )
    for hop in routing.flood(node.code, None, node.parent(), node.children()):
        node.store.enqueue(env.id, hop, "up" if hop == routing.UP else "down", now)
    return env
