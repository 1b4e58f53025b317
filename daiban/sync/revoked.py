"""A parent's refusal because of a revocation, taken at its word only as far
as a signature carries it (node/revocation.py).

The parent answers 403 ``revoked`` (this node is revoked) or
``parent_revoked`` (the parent itself is), with the revocation envelope and
its origin's chain. This node checks that envelope as it checks any that
comes down — the revoking ancestor's signature, the authorisation table —
and that it names the certificate in question (this node's own, or the
parent's in this node's chain); only then does it keep it. A parent that
says "revoked" without a revocation that verifies has made this node do
nothing but fail this sync: its queue stays as it is."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from daiban.i18n import _
from daiban.node import journal, revocation
from daiban.trust import envelope as env_mod
from daiban.trust.envelope import EnvelopeError

if TYPE_CHECKING:
    from daiban.node.applications import Node
    from daiban.sync.client import SyncFailed

CODES = frozenset({"revoked", "parent_revoked"})


def refusal(node: Node, parent: str, code: str, data: Any) -> SyncFailed:
    """The failure to report for a verified 403 ``revoked`` or
    ``parent_revoked`` answer; keeps the revocation it carries if it
    verifies and names the right certificate."""
    learned = learn(node, parent, code, data)
    if code == "parent_revoked":
        found = revocation.parent_revocation(node) if learned else None
        if found is None:
            return _failed(
                _(
                    "The parent {parent} says it is revoked but sent no revocation that verifies; "
                    "nothing was changed here."
                ).format(parent=parent),
                "bad_answer",
            )
        return parent_revoked(parent, found[1])
    return _failed(
        _(
            "The parent refuses this node: its certificate is revoked. Ask the "
            "town or district to enroll it again."
        ),
        "revoked",
    )


def parent_revoked(parent: str, by: str) -> SyncFailed:
    return _failed(
        _(
            "The parent {parent} is revoked (by {by}): enroll this node elsewhere, at {by} unless "
            "told otherwise (`daiban enroll URL CODE` with a code from there); everything queued "
            "here is kept until then."
        ).format(parent=parent, by=by),
        "parent_revoked",
    )


def learn(node: Node, parent: str, code: str, data: Any) -> bool:
    """Keep the revocation a refusal carries, if it verifies and revokes the
    certificate the refusal is about; whether this node now holds it."""
    if not isinstance(data, dict) or not isinstance(data.get("revocation"), str):
        return False
    raw, certs = data["revocation"], data.get("certs", [])
    if not isinstance(certs, list) or len(certs) > 4:
        return False
    chain = node.store.cert_chain(node.code) or []
    index = -1 if code == "revoked" else -2
    if len(chain) < -index:
        return False
    try:
        env = env_mod.parse(raw)
    except EnvelopeError:
        return False
    wanted = chain[index]
    if (
        env.kind != "revocation"
        or env.body.get("code") != wanted.get("code")
        or env.body.get("serial") != wanted.get("serial")
    ):
        return False
    with node.store.transaction():
        extra = journal.verify_chains(node, certs)
        checked = journal.check(node, [raw], sender=parent, direction="down", extra=extra)
        if checked.refused:
            return False
        journal.take_in(node, [raw], certs, sender=parent, direction="down")
    journal.drain(node)
    return wanted.get("serial") in node.store.revoked()


def _failed(message: str, code: str) -> SyncFailed:
    from daiban.sync.client import SyncFailed

    return SyncFailed(message, code=code)
