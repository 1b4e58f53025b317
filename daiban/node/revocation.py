"""Revocation: an ancestor signs a revocation of a descendant's certificate;
it takes effect here at once and floods the tree, and the city folds it into
its next manifest. A revoked node is refused at every hop."""

from __future__ import annotations

from typing import TYPE_CHECKING

from daiban.errors import DaibanError
from daiban.i18n import _
from daiban.node import codechanges, identity, journal
from daiban.node.clock import stamp
from daiban.trust import certs as certs_mod

if TYPE_CHECKING:
    from daiban.node.applications import Node


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
        body = {"code": code, "serial": cert.serial, "chain": chain}
        journal.record_broadcast(node, "revocation", body, now)
        node.store.revoke(cert.serial, code, node.code, now)
    return cert.serial
