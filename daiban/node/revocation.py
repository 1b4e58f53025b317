"""Revocation: an ancestor signs a revocation of a descendant's certificate;
it takes effect here at once and floods the tree, and the city folds it into
its next manifest. A revoked node is refused at every hop.

Revoking a node loses none of the work others entrusted to it:

- **What it issued before counts, nothing after.** The revocation lists
  (``kept``) the serials of the certificates the revoked one issued that the
  revoking ancestor knows of — the children it has seen, from its own
  directory — and every node keeps them: a chain through the revoked
  certificate verifies only when the certificate it issued next is kept
  (trust/certs.verify_chain). A certificate the revoked key mints later is in
  no such list, whatever issue time it was given: the revoked node's clock is
  never asked.
- **Its children are told.** The revoking parent answers the revoked node's
  requests with 403 ``revoked`` *and the signed revocation*; the revoked node,
  once it holds it, answers its own children with 403 ``parent_revoked`` and
  the same envelope. A child believes it only once the revocation verifies on
  its own (the ancestor's signature, the authorisation table): the revoked
  node's word alone can make a child do nothing but stop talking to it. The
  child keeps its queue and enrolls where the operator chooses — the
  revoker, named in the revocation, by default.
- **What it held is carried out.** The parent that holds a revoked child
  marks it ``revoked``: what waits for its branch is held until the branch's
  nodes enroll again elsewhere. A bundle made at the revoked node is taken in
  envelope by envelope, each on its origin's signature (sync/bundle.py); its
  own envelopes are refused."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from daiban.errors import DaibanError
from daiban.i18n import _
from daiban.node import codechanges, identity, journal, moving, routing
from daiban.node.clock import stamp
from daiban.trust import certs as certs_mod

if TYPE_CHECKING:
    from daiban.node.applications import Node

MAX_KEPT = 1000  # the schema's bound on a revocation's kept list


def revoke(node: Node, code: str) -> str:
    if not certs_mod.extends(code, node.code, codechanges.renamed(node.division_changes())):
        raise DaibanError(
            _("{node} may revoke only nodes below it, not {code}.").format(node=node.code, code=code),
            code="name_constraint",
        )
    cert = identity.known(node, code)
    chain = node.store.cert_chain(code)
    if cert is None or not chain:
        raise DaibanError(_("No certificate of {code} is known here.").format(code=code), code="not_found")
    with node.store.transaction():
        now = stamp(node.clock())
        # The revoked certificate's chain travels with it: every hop can tell
        # the serial is one issued for that code (node/authority.py).
        body: dict[str, Any] = {"code": code, "serial": cert.serial, "chain": chain}
        kept = issued_under(node, cert.serial)
        if kept:
            body["kept"] = kept
        journal.record_broadcast(node, "revocation", body, now)
        node.store.revoke(cert.serial, code, node.code, now)
        applied(node, body, now)
    return cert.serial


def issued_under(node: Node, serial: str) -> list[str]:
    """Serials of the certificates this node holds that the certificate
    ``serial`` issued (the next one down in their chains)."""
    found: set[str] = set()
    for row in node.store.certs():
        chain = row["chain"]
        for upper, lower in itertools.pairwise(chain):
            if isinstance(upper, Mapping) and isinstance(lower, Mapping) and upper.get("serial") == serial:
                found.add(str(lower.get("serial", "")))
    found.discard("")
    return sorted(found)[:MAX_KEPT]


def applied(node: Node, body: Mapping[str, Any], now: str) -> None:
    """A revocation is in force here (made here, or come in): keep the
    certificates it lists, and if it revokes a child of this node, stop
    routing to that child; call inside a transaction."""
    serial, code = str(body.get("serial", "")), str(body.get("code", ""))
    kept = body.get("kept")
    if isinstance(kept, list):
        node.store.keep_certs([str(s) for s in kept if isinstance(s, str)], serial, now)
    peer = node.store.peer(code)
    held = identity.known(node, code)
    if peer is None or peer["relation"] != "child" or held is None or held.serial != serial:
        return
    node.store.set_relation(code, "revoked", moved_to=None, moved_at=now, announce=0)
    node.children_changed()
    queued = node.store.queued_for(code)
    # Broadcasts are not for it any more; what was for its branch is routed
    # again (held here until its nodes enroll again, or up).
    node.store.release(code, [i for i, dest in queued if dest == routing.BROADCAST])
    moving.reroute(node, [(i, code, dest) for i, dest in queued if dest != routing.BROADCAST], now)


def own_revocation(node: Node) -> str | None:
    """The serial of this node's own certificate, if a revocation of it is held here."""
    chain = node.store.cert_chain(node.code) or []
    serial = _serial(chain, -1)
    if serial is None or serial not in node.store.revoked() or serial in node.store.retired_serials():
        return None
    return serial


def parent_revocation(node: Node) -> tuple[str, str] | None:
    """(serial, revoker) when this node's parent's certificate — the one in
    this node's chain — is revoked here."""
    chain = node.store.cert_chain(node.code) or []
    serial = _serial(chain, -2) if len(chain) >= 2 else None
    if serial is None or serial in node.store.retired_serials():
        # Retired, not revoked: the parent lost its keys and enrolled again
        # (retired.py); what it certified before still counts (custody.py).
        return None
    by = node.store.revoked_by(serial)
    return (serial, by) if by is not None else None


def proof(node: Node, serial: str) -> dict[str, Any]:
    """What goes with a refusal for a revoked certificate: the revocation
    envelope held here, and its origin's chain (so anyone can check it)."""
    raw = node.store.revocation_raw(serial)
    if raw is None:
        return {}
    by = node.store.revoked_by(serial) or ""
    chain = node.store.cert_chain(by) if by != node.code else identity.own_chain(node)
    return {"revocation": raw, "certs": [chain] if chain else []}


def _serial(chain: Any, index: int) -> str | None:
    try:
        return certs_mod.Cert.from_dict(chain[index]).serial
    except (certs_mod.CertError, IndexError, KeyError, TypeError, ValueError):
        return None
