"""Sync on a USB stick, both ways, through the same checks as the network:
a child exports what it hands up (and how far it has pulled); the parent
imports it, then exports for that child what waits for it (and which of the
child's envelopes it now holds); the child imports that. The sender signs the
bundle; importing the same bundle twice changes nothing, and an old stick can
neither roll the catalog back nor move a cursor backwards."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daiban.errors import DaibanError
from daiban.i18n import _
from daiban.node import admission, identity, journal, moving, revocation, routing, statistics
from daiban.node.clock import stamp
from daiban.trust.crypto import CryptoError, b64, canonical, unb64, verify

if TYPE_CHECKING:
    from daiban.node.applications import Node

MAGIC = "daiban-bundle"
MAX_BUNDLE = 256 * 1024 * 1024
# A bundle holds envelopes as text; its own members nest a few levels
# (payload, up, certs, a chain, a certificate, its members).
MAX_DEPTH = 16
MAX_CHAINS = 1000  # chains of a bundle's children inside the receiver's area, at most


class BundleRefused(DaibanError):
    code = "bundle"


def export(node: Node, path: Path, child: str | None = None) -> dict[str, Any]:
    """Write a bundle for the parent (default) or for ``child``."""
    now = stamp(node.clock())
    payload: dict[str, Any] = {
        "v": 1,
        "type": MAGIC,
        "from": node.code,
        "made_at": now,
        "chain": identity.own_chain(node) or [],
    }
    if child is None and revocation.own_revocation(node) is not None:
        payload.update(_carry_out(node))
    elif child is None:
        parent = node.parent()
        if parent is None:
            raise BundleRefused(
                _("This node has not enrolled with a parent yet: run `daiban enroll URL CODE`.")
            )
        statistics.flush(node)
        rows = node.store.outbox(routing.UP, limit=10**9)
        peer = node.store.peer(parent)
        # Children newly enrolled here travel along (node/moving.py): the
        # parent learns from them that one of its children moved here.
        announced = [chain for _code, chain in node.store.announced()]
        payload.update(
            to=parent,
            up={"envelopes": [r.raw for r in rows], "certs": identity.chains_for(node, rows) + announced},
            cursor_ack=peer["cursor"] if peer else 0,
        )
    else:
        peer = node.store.peer(child)
        moved_to = node.store.moved_to(child)
        if moved_to is not None:
            raise BundleRefused(
                _(
                    "{child} has moved to {parent}: what waited for it here goes there; "
                    "make its bundles at {parent}."
                ).format(child=child, parent=moved_to),
                code="moved",
            )
        if peer is None or peer["relation"] != "child":
            raise BundleRefused(_("{child} is not enrolled here.").format(child=child))
        rows = node.store.outbox(child, after=peer["cursor"], limit=10**9)
        chains = identity.chains_for(node, rows)
        payload.update(
            to=child,
            down={
                "envelopes": [r.raw for r in rows],
                "cursor": rows[-1].n if rows else peer["cursor"],
                "certs": chains + moving.chains_below(node, child, MAX_CHAINS - len(chains)),
            },
            acks={
                "ids": node.store.bundle_acks(child),
                "high_water": node.store.high_water(node.store.origins_from(child)),
                "refused": node.store.bundle_refusals(child),
            },
        )
    payload["sig"] = b64(node.keys.signature(canonical(payload)))
    data = zlib.compress(canonical(payload), 6)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    count = len(payload.get("up", payload.get("down", {})).get("envelopes", []))
    count += len(payload.get("held", {}).get("envelopes", []))
    return {"file": str(path), "to": payload["to"], "envelopes": count}


def _carry_out(node: Node) -> dict[str, Any]:
    """At a revoked node: everything it holds that others signed, for its
    parent — what waits to go up, and what it held for its children (they
    enroll elsewhere). Its own envelopes stay: no node takes them any more
    (node/revocation.py)."""
    parent = node.parent() or ""
    up = [r for r in node.store.outbox(routing.UP, limit=10**9) if r.origin != node.code]
    held = [
        r
        for hop in sorted(node.store.outbox_counts())
        if hop != routing.UP
        for r in node.store.outbox(hop, limit=10**9)
        if r.origin != node.code
    ]
    dests = dict(node.store.dests_of([r.id for r in held]))
    held = list({r.id: r for r in held if dests.get(r.id) != routing.BROADCAST}.values())
    return {
        "to": parent,
        "up": {"envelopes": [r.raw for r in up], "certs": identity.chains_for(node, up)},
        "held": {"envelopes": [r.raw for r in held], "certs": identity.chains_for(node, held)},
        "cursor_ack": 0,
    }


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            # Larger than a bundle may be: refused unread.
            data = b"" if path.stat().st_size > MAX_BUNDLE else fh.read(MAX_BUNDLE + 1)
    except FileNotFoundError:
        raise BundleRefused(_("Bundle {path} does not exist.").format(path=path)) from None
    except IsADirectoryError:
        raise BundleRefused(_("{path} is a folder, not a bundle file.").format(path=path)) from None
    except OSError as exc:
        raise BundleRefused(
            _("Cannot read {path}: {error}").format(path=path, error=exc.strerror or type(exc).__name__)
        ) from None
    not_bundle = BundleRefused(_("{path} is not a Daiban bundle.").format(path=path.name))
    if not data or len(data) > MAX_BUNDLE:
        raise not_bundle
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(data, MAX_BUNDLE)
        if inflater.unconsumed_tail or not inflater.eof or inflater.unused_data:
            raise not_bundle
        payload = json.loads(text)
        # What Daiban writes is a few levels deep, its integers fit in 64
        # bits and its numbers are finite; anything else is refused here,
        # before a deep value can exhaust a recursive walk further on.
        admission.check_value(payload, max_depth=MAX_DEPTH)
    except (zlib.error, ValueError, RecursionError, admission.Refused):
        raise not_bundle from None
    if not isinstance(payload, dict) or payload.get("type") != MAGIC:
        raise not_bundle
    return payload


def import_(node: Node, path: Path) -> dict[str, Any]:
    payload = _read(path)
    sender, to = str(payload.get("from", "")), payload.get("to")
    if to != node.code:
        raise BundleRefused(
            _("This bundle is for {to}, not for this node ({code}).").format(to=to, code=node.code)
        )
    cert = identity.known(node, sender)
    if cert is None:
        raise BundleRefused(
            _("The bundle's sender {sender} is not a neighbour of this node.").format(sender=sender)
        )
    peer = node.store.peer(sender)
    # What a revoked child carried out (_carry_out: "held" beside "up");
    # any other bundle of a revoked sender is refused whole, as before.
    carried_out = "held" in payload and "up" in payload and peer is not None and peer["relation"] == "revoked"
    if cert.serial in node.store.revoked() and not carried_out:
        raise BundleRefused(
            _("The bundle's sender {sender} is revoked; it is refused.").format(sender=sender), code="revoked"
        )
    unsigned = {k: v for k, v in payload.items() if k != "sig"}
    try:
        verify(cert.sign, unb64(str(payload.get("sig", ""))), canonical(unsigned))
    except CryptoError:
        raise BundleRefused(_("The bundle's signature does not verify: it was altered or forged.")) from None
    now = stamp(node.clock())
    if carried_out:
        # From a child revoked here: its signature proves nothing; each
        # envelope stands on its origin's (node/revocation.py).
        result: dict[str, Any] | None = _import_from_revoked(node, sender, payload, now)
    elif "up" in payload and peer is not None and peer["relation"] == "child":
        result = _import_from_child(node, sender, payload, now)
    elif "down" in payload and sender == node.parent():
        result = _import_from_parent(node, sender, payload, now)
    elif peer is not None and (
        ("down" in payload and peer["relation"] == "former")
        or ("up" in payload and peer["relation"] == "moved")
    ):
        result = _import_from_former(node, sender, payload, now)
    else:
        result = None
    if result is not None:
        journal.drain(node)  # fold what the bundle brought for this node
        return result
    raise BundleRefused(
        _("The bundle's sender {sender} is not a neighbour of this node.").format(sender=sender)
    )


def _import_from_child(node: Node, child: str, payload: dict[str, Any], now: str) -> dict[str, Any]:
    up = payload["up"]
    with node.store.transaction():
        checked = journal.take_in(
            node, up.get("envelopes", []), up.get("certs", []), sender=child, direction="up"
        )
        stored = checked.stored
        node.store.reset_bundle_acks(child, [v.id for v in stored + checked.duplicates + checked.held])
        for v in checked.refused:
            node.store.add_bundle_refusal(child, v.id, v.code, v.reason, now)
        cursor = int(payload.get("cursor_ack", 0))
        node.store.release_through(child, cursor)
        peer = node.store.peer(child)
        node.store.update_peer(
            child, cursor=max(cursor, peer["cursor"] if peer else 0), last_seen_at=now, last_sync_at=now
        )
    return {
        "from": child,
        "stored": len(stored),
        "duplicates": len(checked.duplicates),
        "refused": len(checked.refused),
    }


def _import_from_revoked(node: Node, sender: str, payload: dict[str, Any], now: str) -> dict[str, Any]:
    """What a revoked child carried out (``_carry_out``): each envelope is
    checked as from anyone (chain, signature, the table, exactly once) —
    the revoked node's own are refused. What it held for its children is
    held here for them (or handed to them, if they enrolled here since)."""
    up = payload["up"] if isinstance(payload.get("up"), dict) else {}
    held = payload["held"] if isinstance(payload.get("held"), dict) else {}
    with node.store.transaction():
        first = journal.take_in(
            node, up.get("envelopes", []), up.get("certs", []), sender=sender, direction="up"
        )
        second = journal.take_in(
            node, held.get("envelopes", []), held.get("certs", []), sender=sender, direction="down"
        )
        ids = [v.id for v in second.duplicates]
        for envelope_id, dest in node.store.dests_of(ids):
            if dest != node.code and dest.startswith(node.code):
                node.route(envelope_id, dest, now)
    stored = first.stored + second.stored
    duplicates = first.duplicates + second.duplicates
    return {
        "from": sender,
        "stored": len(stored),
        "duplicates": len(duplicates),
        "refused": len(first.refused) + len(second.refused),
    }


def _import_from_former(node: Node, sender: str, payload: dict[str, Any], now: str) -> dict[str, Any]:
    """A bundle made before a move, by the parent this node has left or by
    the child that has left it. Its sender is no neighbour any more, but what
    it carries is checked envelope by envelope as from anyone (chain,
    signature, the table, exactly once), so it is taken in and routed on;
    its cursor and acknowledgements belong to the old link and are ignored."""
    part = payload["down"] if "down" in payload else payload["up"]
    part = part if isinstance(part, dict) else {}
    direction = "down" if "down" in payload else "up"
    with node.store.transaction():
        checked = journal.take_in(
            node, part.get("envelopes", []), part.get("certs", []), sender=sender, direction=direction
        )
    return {
        "from": sender,
        "stored": len(checked.stored),
        "duplicates": len(checked.duplicates),
        "refused": len(checked.refused),
    }


def _import_from_parent(node: Node, parent: str, payload: dict[str, Any], now: str) -> dict[str, Any]:
    down, acks = payload["down"], payload.get("acks", {})
    with node.store.transaction():
        checked = journal.take_in(
            node, down.get("envelopes", []), down.get("certs", []), sender=parent, direction="down"
        )
        stored = checked.stored
        peer = node.store.peer(parent)
        current = peer["cursor"] if peer else 0
        node.store.update_peer(parent, cursor=max(current, int(down.get("cursor", 0))), last_sync_at=now)
        high = acks.get("high_water", {})
        acked = set(acks.get("ids", []))
        done = []
        for row in node.store.outbox(routing.UP, limit=10**9):
            if row.id in acked or row.seq <= int(high.get(row.origin, 0)):
                done.append(row.id)
        node.store.release(routing.UP, done)
        ids = {row.id for row in node.store.outbox(routing.UP, limit=10**9)}
        for r in acks.get("refused", []):
            if r.get("id") in ids:
                node.store.set_aside(
                    r["id"], routing.UP, str(r.get("code", "")), str(r.get("reason", "")), now
                )
    return {
        "from": parent,
        "stored": len(stored),
        "duplicates": len(checked.duplicates),
        "refused": len(checked.refused),
        "released": len(done),
    }
