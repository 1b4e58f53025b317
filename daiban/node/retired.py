"""Retired signing keys: what lets a node carry on with its history after its
PC is replaced.

A node restored from its backup onto a new PC has new keys (keys/ is never in
the replica) and enrolls again under the same division code. Its parent
retires the old certificate — by serial, so the new key for the same code
works at once — and floods the retirement to every node as a signed
revocation that also names the old signing key and the highest sequence
number the node held when it was restored (``upto``). From then on:

- no request signed with the old key is accepted (the parent knows only the
  new certificate, every hop refuses the old serial);
- an envelope the old PC signed *before* it was lost, with a sequence number
  up to ``upto``, still verifies everywhere against the retired key — those
  are the applications the replica kept and the parent had not received,
  which the new PC now hands up itself, and the personal parts sealed under
  the old key, which their office still opens.

A stolen old PC gains nothing: its requests are refused, and an envelope it
made can only enter the tree through the new PC's authenticated pushes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from daiban.trust import envelope as env_mod
from daiban.trust.certs import Cert
from daiban.trust.crypto import CryptoError, b64, unb64
from daiban.trust.envelope import Envelope, EnvelopeError

if TYPE_CHECKING:
    from daiban.node.applications import Node


def retire(node: Node, child: str, previous: Cert, chain: list[Any], upto: Any, now: str) -> None:
    """At a parent, as ``child`` enrolls again: retire its previous
    certificate here and flood the retirement; call inside a transaction."""
    upto_seq = upto if isinstance(upto, int) and not isinstance(upto, bool) and upto >= 0 else 0
    # A node restored without its keys knows only what its backup held; what
    # its old key signed that reached this node (verified as it came) counts too.
    upto_seq = max(upto_seq, node.store.next_seq(child) - 1)
    sign = b64(previous.sign)
    node.store.revoke(previous.serial, child, node.code, now)
    node.store.put_retired_key(previous.serial, child, sign, upto_seq, now)
    body: dict[str, Any] = {
        "code": child,
        "serial": previous.serial,
        "sign": sign,
        "upto": upto_seq,
        "chain": chain,
    }
    from daiban.node import journal, revocation  # journal reads retired keys: imported when needed

    # The children the old certificate enrolled still count (node/revocation.py).
    kept = revocation.issued_under(node, previous.serial)
    if kept:
        body["kept"] = kept
        node.store.keep_certs(kept, previous.serial, now)
    journal.record_broadcast(node, "revocation", body, now)


def remember(node: Node, env: Envelope) -> None:
    """A revocation that came in: if it retires a replaced PC's key, keep the key."""
    found = _retirement(env)
    if found is not None:
        code, sign, upto = found
        node.store.put_retired_key(str(env.body.get("serial", "")), code, sign, upto, env.at)


def _retirement(env: Envelope) -> tuple[str, str, int] | None:
    if env.kind != "revocation":
        return None
    body = env.body
    code, sign, upto = body.get("code"), body.get("sign"), body.get("upto")
    if not (isinstance(code, str) and isinstance(sign, str) and isinstance(upto, int)) or isinstance(
        upto, bool
    ):
        return None
    return code, sign, upto


def signed_before_retirement(node: Node, env: Envelope, batch: Iterable[Envelope] = ()) -> bool:
    """Whether ``env`` was signed by a retired key of its origin, within the
    sequence numbers that key still vouches for. ``batch`` holds envelopes
    checked earlier in the same batch: a retirement may travel with the very
    envelopes it vouches for."""
    keys = list(node.store.retired_keys(env.origin))
    for other in batch:
        found = _retirement(other)
        if found is not None and found[0] == env.origin:
            keys.append((found[1], found[2]))
    for sign, upto in keys:
        if env.seq > upto:
            continue
        try:
            env_mod.check_signature(env, unb64(sign))
        except (EnvelopeError, CryptoError):
            continue
        return True
    return False


def signing_keys(node: Node, origin: str, current: bytes | None) -> list[bytes]:
    """The keys an origin's signature may be under, current first: its
    current certificate's, then any retired ones."""
    keys = [current] if current is not None else []
    for sign, _upto in node.store.retired_keys(origin):
        try:
            key = unb64(sign)
        except CryptoError:
            continue
        if key not in keys:
            keys.append(key)
    return keys
