"""A node's identity: its keys, its certificate chain, and the keys it knows
of other nodes (to seal to offices and to verify origins). Certificates enter
the store only after their chain has been verified against the pinned root."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from daiban.node import codechanges
from daiban.trust import certs as certs_mod
from daiban.trust.crypto import NodeKeys, random_id

if TYPE_CHECKING:
    from daiban.node.applications import Node
    from daiban.node.store import OutboxRow


def create(node: Node, now: str) -> None:
    """At init: make the node's keys; a city also certifies itself as the root."""
    keys = NodeKeys.generate()
    keys.save(node.home)
    node._keys = keys
    if node.role == "city":
        cert = certs_mod.issue(
            issuer_code=node.code,
            issuer_sign=keys.sign,
            code=node.code,
            name=node.name,
            sign=keys.sign_public,
            enc=keys.enc_public,
            serial=random_id(),
            issued_at=now,
        )
        node.store.put_cert(node.code, cert.serial, [cert.as_dict()], "self", now)
        node.store.set_setting("root_fingerprint", cert.fingerprint)
        node.store.set_setting("root_code", node.code)


def root_fingerprint(node: Node) -> str | None:
    return node.store.setting("root_fingerprint")


def own_chain(node: Node) -> list[dict[str, Any]] | None:
    return node.store.cert_chain(node.code)


def trust(node: Node, chain: Sequence[Any], relation: str, now: str) -> certs_mod.Cert:
    """Verify a chain against the pinned root and remember its leaf."""
    root = root_fingerprint(node)
    if root is None:
        raise certs_mod.CertError("not_enrolled", "this node has not pinned a city root yet")
    renamed = codechanges.renamed(node.division_changes())
    leaf = certs_mod.verify_chain(chain, root, node.store.revoked(), node.store.kept_certs(), renamed)
    node.store.put_cert(
        leaf.code, leaf.serial, [c if isinstance(c, dict) else c.as_dict() for c in chain], relation, now
    )
    return leaf


def known(node: Node, code: str) -> certs_mod.Cert | None:
    chain = node.store.cert_chain(code)
    if not chain:
        return None
    return certs_mod.Cert.from_dict(chain[-1])


def enc_key_for(node: Node, code: str) -> bytes | None:
    if code == node.code:
        return node.keys.enc_public
    cert = known(node, code)
    return cert.enc if cert is not None else None


def sign_key_for(node: Node, code: str) -> bytes | None:
    if code == node.code:
        return node.keys.sign_public
    cert = known(node, code)
    if cert is None or cert.serial in node.store.revoked():
        return None
    return cert.sign


def chains_for(node: Node, rows: Iterable[OutboxRow]) -> list[Any]:
    """The certificate chains of the origins of outbox rows, sent along so
    the next hop can check envelopes from nodes it has not met."""
    origins = sorted({row.origin for row in rows})
    return [c for c in (node.store.cert_chain(o) for o in origins) if c]
