"""Taking envelopes in, the same way whether they come in a push from a child,
a pull from the parent or a bundle on a USB stick: check every envelope
(shape, origin's certificate chain, signature, that the sender may carry it),
then, in one transaction, store each new one exactly once, apply it if it is
addressed here, and queue it for its next hop.

Idempotency is the contract: the same envelope again is acknowledged as it was
the first time; the same id with other content is refused as a conflict and
flagged."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from daiban.errors import NotFound, TransitionRefused
from daiban.node import identity, lifecycle, retired, routing, statistics
from daiban.node.clock import stamp
from daiban.node.lifecycle import AppState, Kind, Status
from daiban.node.store import Event
from daiban.node.text import clean_text, clean_tree
from daiban.trust import certs as certs_mod
from daiban.trust import envelope as env_mod
from daiban.trust.crypto import Verifier
from daiban.trust.envelope import Envelope, EnvelopeError

if TYPE_CHECKING:
    from daiban.node.applications import Node

APPLICATION_KINDS = frozenset(k.value for k in Kind)


@dataclass
class Verdict:
    id: str
    status: str  # stored | duplicate | refused
    code: str = ""
    reason: str = ""
    received_at: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "status": self.status}
        if self.code:
            out["code"], out["reason"] = self.code, self.reason
        if self.received_at:
            out["received_at"] = self.received_at
        return out


@dataclass
class Checked:
    accepted: list[Envelope] = field(default_factory=list)
    duplicates: list[Verdict] = field(default_factory=list)
    refused: list[Verdict] = field(default_factory=list)


def verify_chains(node: Node, chains: Iterable[Any]) -> dict[str, tuple[certs_mod.Cert, list[Any]]]:
    """Certificates that arrive with a batch, checked against the pinned root
    but not yet stored: {code: (leaf, chain)}."""
    root = identity.root_fingerprint(node)
    revoked = node.store.revoked()
    out: dict[str, tuple[certs_mod.Cert, list[Any]]] = {}
    if root is None:
        return out
    for chain in chains or ():
        if not isinstance(chain, list) or not chain or len(chain) > 5:
            continue
        try:
            leaf = certs_mod.verify_chain(chain, root, revoked)
        except certs_mod.CertError:
            continue
        if leaf.code != node.code:
            out[leaf.code] = (leaf, chain)
    return out


def remember(node: Node, extra: Mapping[str, tuple[certs_mod.Cert, list[Any]]]) -> None:
    now = stamp(node.clock())
    for code, (leaf, chain) in extra.items():
        known = identity.known(node, code)
        if known is None or known.serial != leaf.serial:
            node.store.put_cert(code, leaf.serial, chain, "directory", now)


def check(
    node: Node,
    raws: Sequence[Any],
    *,
    sender: str,
    direction: str,
    extra: Mapping[str, tuple[certs_mod.Cert, list[Any]]] | None = None,
) -> Checked:
    """Verify a batch without changing anything. ``direction`` is "up" for
    envelopes a child hands up, "down" for those the parent hands down.
    The store is asked once per batch, and the signatures are checked on
    the other core while the batch is parsed (crypto.Verifier)."""
    out = Checked()
    parsed: list[Envelope] = []
    certs: dict[str, certs_mod.Cert | None] = {}
    # Signatures are checked on the other core while the rest is parsed:
    # ahead of the checks below, for every envelope whose origin is known.
    verifier = Verifier()
    ahead: dict[int, int] = {}  # position in parsed -> index in the verifier's results
    misplaced: dict[int, EnvelopeError] = {}  # position -> why its signature cannot be cut out
    for raw in raws:
        try:
            env = env_mod.parse(raw)
        except EnvelopeError as exc:
            out.refused.append(Verdict("?", "refused", exc.code, str(exc)))
            continue
        parsed.append(env)
        cert = _origin_cert(node, env.origin, certs, extra)
        if cert is not None:
            try:
                ahead[len(parsed) - 1] = verifier.add(cert.sign, env.sig, env_mod.signed_bytes(env))
            except EnvelopeError as exc:
                misplaced[len(parsed) - 1] = exc  # refused below, in its turn
    known = node.store.envelope_rows([e.id for e in parsed]) if parsed else {}
    taken = node.store.envelopes_at([(e.origin, e.seq) for e in parsed]) if parsed else {}
    revoked = node.store.revoked()
    seen: set[str] = set()
    slots: set[tuple[str, int]] = set()
    candidates: list[tuple[Envelope, int, bool]] = []
    for position, env in enumerate(parsed):
        try:
            stored = known.get(env.id)
            if stored is not None:
                if stored["digest"] == env.digest:
                    out.duplicates.append(Verdict(env.id, "duplicate", received_at=stored["received_at"]))
                    continue
                raise EnvelopeError(
                    "conflict", "an envelope with this id and other content was stored before"
                )
            if env.id in seen:
                continue
            if (env.origin, env.seq) in taken or (env.origin, env.seq) in slots:
                raise EnvelopeError("conflict", f"sequence number {env.seq} of {env.origin} is already taken")
            if direction == "up" and not env.origin.startswith(sender):
                raise EnvelopeError("forged_origin", f"{sender} may not hand up envelopes of {env.origin}")
            cert = _origin_cert(node, env.origin, certs, extra)
            if env.origin == node.code:
                raise EnvelopeError("forged_origin", "an envelope claiming to come from this node")
            if cert is None:
                raise EnvelopeError("unknown_origin", f"no certificate known for {env.origin}")
            was_revoked = cert.serial in revoked
            if position in misplaced:
                raise misplaced[position]
        except EnvelopeError as exc:
            out.refused.append(Verdict(env.id, "refused", exc.code, str(exc)))
            continue
        seen.add(env.id)
        slots.add((env.origin, env.seq))
        candidates.append((env, position, was_revoked))
    checked = verifier.results()
    for env, position, was_revoked in candidates:
        ok = position in ahead and checked[ahead[position]]
        try:
            # Made by a replaced PC before it was lost (retired.py)?
            if (was_revoked or not ok) and not retired.signed_before_retirement(node, env, out.accepted):
                if was_revoked:
                    raise EnvelopeError("revoked", f"{env.origin} is revoked")
                raise EnvelopeError("bad_signature", "envelope signature does not verify: tampered or forged")
            _check_kind(node, env)
        except EnvelopeError as exc:
            out.refused.append(Verdict(env.id, "refused", exc.code, str(exc)))
            continue
        out.accepted.append(env)
    return out


def _origin_cert(
    node: Node,
    origin: str,
    certs: dict[str, certs_mod.Cert | None],
    extra: Mapping[str, tuple[certs_mod.Cert, list[Any]]] | None,
) -> certs_mod.Cert | None:
    """The certificate an origin's envelopes are checked against (one that came
    with the batch wins over an older one held here); remembered per batch."""
    if origin not in certs:
        cert = identity.known(node, origin) if origin != node.code else None
        if extra and origin in extra and (cert is None or cert.serial != extra[origin][0].serial):
            cert = extra[origin][0]
        certs[origin] = cert
    return certs[origin]


def _check_kind(node: Node, env: Envelope) -> None:
    if env.kind in APPLICATION_KINDS:
        if not env.tracking or env.to in (routing.BROADCAST, ""):
            raise EnvelopeError(
                "malformed", "an application envelope needs a tracking number and an addressee"
            )
        return
    if env.kind == "manifest":
        root = node.store.setting("root_code")
        if env.origin != root or env.to != routing.BROADCAST:
            raise EnvelopeError("forged_origin", "only the city root publishes the manifest")
        version = env.body.get("version")
        current = int(node.store.setting("manifest_version", "0") or 0)
        if not isinstance(version, int) or version <= current:
            raise EnvelopeError("rollback", f"manifest version {version} is not newer than {current}")
        return
    if env.kind == "revocation":
        code = str(env.body.get("code", ""))
        if not certs_mod.extends(code, env.origin) or env.to != routing.BROADCAST:
            raise EnvelopeError("name_constraint", f"{env.origin} may not revoke {code}")
        return
    if env.kind == statistics.KIND:
        return statistics.check(node, env)
    raise EnvelopeError("malformed", f"unknown envelope kind {env.kind!r}")


def store(node: Node, envelopes: Sequence[Envelope], *, sender: str, defer: bool = False) -> list[Verdict]:
    """Store checked envelopes and act on them; call inside a transaction.

    With ``defer`` (a server taking a child's push), envelopes addressed
    here are stored with their effect queued, and apply_queued() applies
    them: the push is acknowledged as soon as it is durable. Envelopes for
    other nodes are stored and queued for their next hop in bulk."""
    now = stamp(node.clock())
    rows: list[tuple[Envelope, str]] = []
    relayed: list[Envelope] = []
    inline: list[Envelope] = []
    for env in envelopes:
        if env.to == routing.BROADCAST or env.kind == statistics.KIND or (env.to == node.code and not defer):
            inline.append(env)  # broadcasts and statistics are few, and act at every hop
        elif env.to == node.code:
            rows.append((env, "queued"))
        else:
            rows.append((env, "none"))
            relayed.append(env)
    node.store.insert_envelopes(rows, received_at=now, received_from=sender)
    node.route_many([(env.id, env.to) for env in relayed], now, came_from=sender)
    for env in inline:
        node.store.insert_envelope(env, dest=env.to, received_at=now, received_from=sender)
        if env.to == routing.BROADCAST:
            _apply_broadcast(node, env, now)
            for hop in routing.flood(node.code, sender, node.parent(), node.children()):
                node.store.enqueue(env.id, hop, "up" if hop == routing.UP else "down", now)
        elif env.kind == statistics.KIND:
            statistics.take(node, env, now, sender)
        else:
            apply_to_application(node, env, now)
    return [Verdict(env.id, "stored", received_at=now) for env in envelopes]


def apply_queued(node: Node, limit: int = 200) -> int:
    """Apply up to ``limit`` queued effects, oldest first, in one
    transaction (each exactly once: its effect is marked in the same
    transaction). Returns how many were applied."""
    with node.store.transaction():
        raws = node.store.queued_effects(limit)
        now = stamp(node.clock())
        for raw in raws:
            apply_to_application(node, env_mod.parse(raw, checked=True), now)
    return len(raws)


def drain(node: Node, chunk: int = 500) -> int:
    """Apply every queued effect, a chunk per transaction."""
    total = 0
    while node.store.has_queued_effects():
        total += apply_queued(node, chunk)
    return total


def _apply_broadcast(node: Node, env: Envelope, now: str) -> None:
    if env.kind == "manifest":
        from daiban.node import manifest

        manifest.install(node, env, now)
    elif env.kind == "revocation":
        node.store.revoke(str(env.body["serial"]), str(env.body["code"]), env.origin, now)
        retired.remember(node, env)
    node.store.set_effect(env.id, "applied")


def apply_to_application(node: Node, env: Envelope, now: str) -> None:
    """The effect of an application envelope at its addressee, exactly once
    (it is stored in the same transaction). One that cannot apply yet (its
    application's earlier events have not arrived) waits as pending."""
    env = replace(env, actor=clean_text(env.actor), body=clean_tree(env.body))  # untrusted text
    if env.kind == Kind.FILED:
        _receive_filing(node, env, now)
    elif not _apply_event(node, env, now):
        node.store.set_effect(env.id, "pending")
        return
    node.store.set_effect(env.id, "applied")
    retry_pending(node, env.tracking or "", now)


def retry_pending(node: Node, tracking: str, now: str) -> None:
    progress = True
    while progress:
        progress = False
        for raw in node.store.pending_effects(tracking):
            env = env_mod.parse(raw)
            env = replace(env, actor=clean_text(env.actor), body=clean_tree(env.body))  # untrusted text
            if _apply_event(node, env, now):
                node.store.set_effect(env.id, "applied")
                progress = True


def event_of(env: Envelope, now: str) -> Event:
    return Event(
        id=env.id,
        origin=env.origin,
        seq=env.seq,
        tracking=env.tracking or "",
        kind=env.kind,
        actor=env.actor,
        at=env.at,
        recorded_at=now,
        body=env.body,
    )


def filed_summary(node: Node, env: Envelope, now: str, *, office: str) -> tuple[AppState, dict[str, Any]]:
    """The state and the masked summary row of an application from its
    filing envelope (``office``: where it goes when the body does not say).
    The ID number's hash stays empty: it is sealed to the office, which keys
    it when first searched (Node.index_personal)."""
    body = env.body
    masked = body.get("applicant") or {}
    item_code = str(body.get("item", ""))
    try:
        item = node.item(item_code)
        item_name, time_limit = item.name, item.time_limit_days
    except NotFound:  # an item this node's catalog does not have yet
        item_name, time_limit = str(body.get("item_name", item_code)), None
    state = lifecycle.apply(None, Kind.FILED, body)
    row: dict[str, Any] = {
        "tracking": env.tracking or "",
        "item": item_code,
        "item_name": item_name,
        "level": body.get("level", ""),
        "office": body.get("office", office),
        "region": body.get("region", ""),
        "origin": env.origin,
        "status": state.status.value,
        "owed": list(state.owed),
        "missing": [],
        "materials": list(body.get("materials", [])),
        "evaluation": None,
        "filed_at": env.at,
        "received_at": None,
        "time_limit_days": time_limit,
        "due_state": "pending",
        "name_masked": masked.get("name", ""),
        "id_masked": masked.get("id_number", ""),
        "phone_masked": masked.get("phone", ""),
        "id_hash": "",
        "updated_at": now,
    }
    return state, row


def _receive_filing(node: Node, env: Envelope, now: str) -> None:
    """An application arrives at its office: keep it (personal part still
    sealed), and send the receipt back to the filer."""
    from daiban.node.applications import project

    tracking = env.tracking or ""
    if node.store.application(tracking) is not None:
        return
    node.store.insert_event(event_of(env, now))
    # The personal part stays sealed; it is opened in memory when staff look
    # at it, and indexed for search by ID number when first searched
    # (Node.index_personal), so receiving costs no decryption.
    if env.sealed_text is not None and env.sealed_to == node.code:
        node.store.insert_personal(env.id, tracking, env.sealed_text, node.code)
    state, row = filed_summary(node, env, now, office=node.code)
    receipt = node._event(tracking, Kind.RECEIVED, {"office": node.code}, now)
    node._emit(receipt, row)
    state = lifecycle.apply(state, Kind.RECEIVED, receipt.body)
    project(row, state, Kind.RECEIVED, receipt.body, now)
    node.store.save_application(row)


def _apply_event(node: Node, env: Envelope, now: str) -> bool:
    from daiban.node.applications import project

    row = node.store.application(env.tracking or "")
    if row is None:
        return False
    state = AppState(Status(row["status"]), tuple(row["owed"]), tuple(row["missing"]), row["evaluation"])
    try:
        new = lifecycle.apply(state, env.kind, env.body)
    except TransitionRefused:
        return False
    node.store.insert_event(event_of(env, now))
    project(row, new, env.kind, env.body, now)
    row["sync_problem"] = None
    node.store.save_application(row)
    return True


def receive(
    node: Node, raws: Sequence[Any], *, sender: str, direction: str, chains: Iterable[Any] = ()
) -> tuple[list[Verdict], list[Verdict]]:
    """Check and store a batch in one go: (stored and duplicate verdicts, refused)."""
    with node.store.transaction():
        extra = verify_chains(node, chains)
        checked = check(node, raws, sender=sender, direction=direction, extra=extra)
        remember(node, extra)
        stored = store(node, checked.accepted, sender=sender)
    return stored + checked.duplicates, checked.refused


def as_results(verdicts: Iterable[Verdict]) -> list[Mapping[str, Any]]:
    return [v.as_dict() for v in verdicts]
