"""The journal: the one writer of events. What this node records (a filing,
a decision, a supplement, a withdrawal, an evaluation, a broadcast, a batch
of statistics) and what it receives (a push from a child, a pull from the
parent, a bundle, a recovery page) take one path:

    check → authorise → fold → store → route

- **check**: the envelope's shape, its kind's body schema (node/admission.py),
  exactly once by id and (origin, seq), the origin's certificate chain and
  signature;
- **authorise**: who may record what (node/authority.py, one table), with
  what this node knows of the application;
- **fold**: the state machine (node/lifecycle.py) and the one projection to
  the summary row (node/projection.py);
- **store** the event, the envelope as it came, the summary row, in the
  caller's transaction;
- **route** it to its next hop (node/routing.py).

Computing (sealing, signing, routing) is pure and happens before the one
write. An envelope refused at a hop is kept in quarantine with its reason,
origin and sender, and the rest of its batch goes on; an admitted envelope
whose effect fails to apply goes to quarantine alone. Nothing a node
receives stops it from opening, serving or syncing.

Idempotency is the contract: the same envelope again is acknowledged as it
was the first time; the same id with other content is refused as a conflict
and flagged."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from daiban.errors import TransitionRefused
from daiban.node import (
    admission,
    authority,
    codechanges,
    custody,
    lifecycle,
    moving,
    projection,
    receipts,
    retired,
    routing,
    statistics,
)
from daiban.node import identity as identity_mod
from daiban.node.clock import stamp
from daiban.node.lifecycle import Kind
from daiban.node.store import Event
from daiban.node.text import clean_text, clean_tree, json_is_clean
from daiban.trust import certs as certs_mod
from daiban.trust import envelope as env_mod
from daiban.trust.crypto import Verifier, b64, canonical, new_id
from daiban.trust.envelope import Envelope, EnvelopeError

if TYPE_CHECKING:
    from daiban.node.applications import Node

APPLICATION_KINDS = frozenset(k.value for k in Kind)
QUARANTINE_RAW = 70_000  # what a quarantine row keeps of an envelope's text (one is at most 64 KiB)


@dataclass
class Verdict:
    id: str
    status: str  # stored | duplicate | held | refused
    code: str = ""
    reason: str = ""
    received_at: str = ""
    # What quarantine keeps of a refused envelope; never sent back.
    raw: str = ""
    kind: str | None = None
    origin: str | None = None

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
    # Signed by a verified origin, of a kind or with a body member this build
    # does not know: kept in quarantine for an upgrade (node/upgrade.py).
    held: list[Verdict] = field(default_factory=list)


def _held(env: Envelope, raw: Any, why: admission.Refused, now: str) -> Verdict:
    verdict = _refused(env, raw, why.code, why.reason)
    verdict.status, verdict.received_at = "held", now
    return verdict


def _refused(env: Envelope | None, raw: Any, code: str, reason: str) -> Verdict:
    text = raw if isinstance(raw, str) else repr(raw)
    return Verdict(
        env.id if env is not None else "?",
        "refused",
        code,
        reason,
        raw=text[:QUARANTINE_RAW],
        # Shown to an operator: no control characters, however it came.
        kind=clean_text(env.kind)[:40] if env is not None and isinstance(env.kind, str) else None,
        origin=env.origin if env is not None else None,
    )


def refused_verdict(env: Envelope | None, raw: Any, code: str, reason: str) -> Verdict:
    """The verdict, kept for quarantine, of an envelope refused here."""
    return _refused(env, raw, code, reason)


# -- check and authorise what arrives ----------------------------------------


def verify_chains(node: Node, chains: Iterable[Any]) -> dict[str, tuple[certs_mod.Cert, list[Any]]]:
    """Certificates that arrive with a batch, checked against the pinned root
    but not yet stored: {code: (leaf, chain)}."""
    root = identity_mod.root_fingerprint(node)
    revoked = node.store.revoked()
    kept = node.store.kept_certs() if revoked else set()
    renamed = codechanges.renamed(node.division_changes())
    # A certificate retired because its node lost its keys and enrolled
    # again (retired.py) certified honestly until then: what it issued
    # before its retirement still verifies (custody.py).
    retired = node.store.retired_serials()
    issuers = revoked - retired.keys() if retired else revoked
    out: dict[str, tuple[certs_mod.Cert, list[Any]]] = {}
    if root is None or not isinstance(chains, list | tuple):
        return out
    for chain in chains:
        if not isinstance(chain, list) or not chain or len(chain) > certs_mod.MAX_CHAIN:
            continue
        try:
            leaf = certs_mod.verify_chain(chain, root, issuers, kept, renamed)
            if leaf.serial in revoked or (retired and not custody.issued_before_retirement(chain, retired)):
                continue
        except (certs_mod.CertError, KeyError, TypeError, ValueError):
            continue
        if leaf.code != node.code:
            out[leaf.code] = (leaf, chain)
    return out


def remember(node: Node, extra: Mapping[str, tuple[certs_mod.Cert, list[Any]]]) -> None:
    """Keep certificates that came with a batch (verified): a new one, or
    one issued later than the one held here; never an older one over a
    newer. A later one for a child of this node, issued by another parent,
    means the child has moved (node/moving.py)."""
    now = stamp(node.clock())
    for code, (leaf, chain) in extra.items():
        known = identity_mod.known(node, code)
        if known is not None and (
            known.serial == leaf.serial or moving.later(known.issued_at, leaf.issued_at)
        ):
            continue
        peer = node.store.peer(code)
        if peer is not None and peer["relation"] == "child" and leaf.issuer != node.code:
            # Another parent's certificate for a child of this node: proof
            # that it moved if later than ours, else nothing to keep.
            if moving.moved_away(node, code, leaf, known):
                moving.child_moved(node, code, leaf, chain, now)
            continue
        node.store.put_cert(code, leaf.serial, chain, "directory", now)


@dataclass(frozen=True, slots=True)
class Prepared:
    """One envelope as received, parsed and checked for shape and body
    (``prepare``): the envelope, or why it is refused; the bytes its origin
    signed, or why they cannot be cut out."""

    raw: Any
    env: Envelope | None
    refusal: tuple[str, str] | None
    signed: bytes | EnvelopeError = b""
    # What this build does not know in it (a newer neighbour's kind or body
    # member): held, not refused, if all the rest checks out (``check``).
    newer: admission.Refused | None = None
    # Its signature, being checked already against this key (``prepare``'s
    # ``signer``): (the key, the checks, its index in their results).
    early: tuple[bytes, Verifier, int] | None = None


def prepare(raws: Sequence[Any], signer: tuple[str, bytes] | None = None) -> list[Prepared]:
    """Parse a batch and check each envelope's shape and body against its
    kind's schema: the part of ``check`` that needs nothing of the node, so
    a server runs it on a decoder thread while its writer stores the batch
    before (sync/server.py). ``signer``: the (code, certified key) the
    request came from, as far as the caller can tell; the signatures of that
    code's own envelopes start being checked against that key at once, on
    the verifying threads, so the writer finds them done. ``check`` uses such
    a result only where the key it finds for the origin is that same key."""
    out: list[Prepared] = []
    early = Verifier() if signer is not None else None
    for raw in raws:
        try:
            env = env_mod.parse(raw)
        except EnvelopeError as exc:
            out.append(Prepared(raw, None, (exc.code, str(exc))))
            continue
        try:
            admission.check_parsed_envelope(env)
        except admission.Refused as exc:
            if not exc.newer:
                out.append(Prepared(raw, env, (exc.code, exc.reason)))
                continue
            newer: admission.Refused | None = exc
        else:
            newer = None
        try:
            signed: bytes | EnvelopeError = env_mod.signed_bytes(env)
        except EnvelopeError as exc:
            signed = exc
        # Worked out here, off a server's writer, for the checks and the
        # store to find done: the digest (cached on the envelope) and the
        # filer its tracking number names, Damm digit checked (cached in
        # authority.filer_of).
        env.digest  # noqa: B018
        if env.tracking is not None:
            authority.filer_of(env.tracking)
        ahead = None
        if early is not None and signer is not None and env.origin == signer[0] and isinstance(signed, bytes):
            ahead = (signer[1], early, early.add(signer[1], env.sig, signed))
        out.append(Prepared(raw, env, None, signed, newer, ahead))
    if early is not None:
        early.flush()
    return out


def check(
    node: Node,
    raws: Sequence[Any],
    *,
    sender: str,
    direction: str,
    extra: Mapping[str, tuple[certs_mod.Cert, list[Any]]] | None = None,
    prepared: Sequence[Prepared] | None = None,
) -> Checked:
    """Check and authorise a batch without changing anything. ``direction``
    is "up" for envelopes a child hands up, "down" for those the parent
    hands down. The store is asked once per batch, and the signatures are
    checked on the other core while the batch is looked up (crypto.Verifier).
    ``prepared``: ``prepare(raws)``, done beforehand off the writer."""
    out = Checked()
    parsed: list[tuple[Envelope, Any]] = []
    certs: dict[str, certs_mod.Cert | None] = {}
    verifier = Verifier()
    ahead: dict[int, tuple[Verifier, int]] = {}  # position in parsed -> (checks, index in their results)
    misplaced: dict[int, EnvelopeError] = {}  # position -> why its signature cannot be cut out
    newer: dict[int, admission.Refused] = {}  # position -> held, not refused, if all else checks out
    for item in prepared if prepared is not None else prepare(raws):
        if item.refusal is not None:
            out.refused.append(_refused(item.env, item.raw, *item.refusal))
            continue
        env = item.env
        assert env is not None
        parsed.append((env, item.raw))
        if item.newer is not None:
            newer[len(parsed) - 1] = item.newer
        cert = _origin_cert(node, env.origin, certs, extra)
        if cert is not None:
            if isinstance(item.signed, EnvelopeError):
                misplaced[len(parsed) - 1] = item.signed  # refused below, in its turn
            elif item.early is not None and item.early[0] == cert.sign:
                ahead[len(parsed) - 1] = item.early[1:]  # the same check, begun in prepare()
            else:
                ahead[len(parsed) - 1] = (verifier, verifier.add(cert.sign, env.sig, item.signed))
    envs = [e for e, _raw in parsed]
    known = node.store.envelope_rows([e.id for e in envs]) if envs else {}
    taken = node.store.envelopes_at([(e.origin, e.seq) for e in envs]) if envs else {}
    revoked = node.store.revoked()
    changes = node.division_changes()
    seen: set[str] = set()
    slots: set[tuple[str, int]] = set()
    candidates: list[tuple[Envelope, Any, int, bool]] = []
    for position, (env, raw) in enumerate(parsed):
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
            if direction == "up" and not codechanges.within(env.origin, sender, changes):
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
            out.refused.append(_refused(env, raw, exc.code, str(exc)))
            continue
        seen.add(env.id)
        slots.add((env.origin, env.seq))
        candidates.append((env, raw, position, was_revoked))
    verifier.flush()

    def verified(position: int) -> bool:
        checks, index = ahead[position]
        return checks.results()[index]

    gate = _Gate(node, [env for env, _raw, p, _r in candidates if p not in newer])
    now = stamp(node.clock()) if newer else ""
    # A retirement anywhere in the batch (signed and authorised) vouches for
    # the old key's envelopes queued before it (a node restored without its
    # keys: what its old key signed after its backup was on its way already).
    vouching = [
        env
        for env, _raw, position, was_revoked in candidates
        if env.kind == "revocation"
        and not was_revoked
        and position not in newer
        and position in ahead
        and verified(position)
        and gate.authorise(env) is None
    ]
    for env, raw, position, was_revoked in candidates:
        ok = position in ahead and verified(position)
        try:
            # Made by a replaced PC before it was lost (retired.py)?
            if (was_revoked or not ok) and not retired.signed_before_retirement(
                node, env, [*out.accepted, *vouching]
            ):
                if was_revoked:
                    raise EnvelopeError("revoked", f"{env.origin} is revoked")
                raise EnvelopeError("bad_signature", "envelope signature does not verify: tampered or forged")
            if position in newer:
                # Its origin's signature verified, and this build cannot
                # tell more: held for an upgrade, neither stored, applied
                # nor routed. A build that knows it examines it again in
                # full (upgrade.reexamine); nothing here admits it.
                out.held.append(_held(env, raw, newer[position], now))
                continue
            refusal = gate.authorise(env)
            if refusal is not None:
                raise EnvelopeError(refusal.code, refusal.reason)
            _check_kind(node, env)
        except EnvelopeError as exc:
            out.refused.append(_refused(env, raw, exc.code, str(exc)))
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
        cert = identity_mod.known(node, origin) if origin != node.code else None
        if extra and origin in extra and (cert is None or cert.serial != extra[origin][0].serial):
            cert = extra[origin][0]
        certs[origin] = cert
    return certs[origin]


# Kinds the gate authorises against the application's row (a filing has none yet).
_DECIDED_ON_A_ROW = APPLICATION_KINDS - {Kind.FILED}


class _Gate:
    """What this node knows that the authorisation table asks about, read
    once per batch: the root, the applications the batch is about, the
    catalog."""

    def __init__(self, node: Node, envelopes: Sequence[Envelope]) -> None:
        self.node = node
        self.root = node.root_code()
        self.changes = node.division_changes()
        trackings = sorted(
            {e.tracking for e in envelopes if e.tracking and e.kind in _DECIDED_ON_A_ROW}
            | {t for t, _office in receipts.answered(envelopes)}
        )
        self.apps = node.store.parties_of(trackings) if trackings else {}
        self._filings: dict[tuple[str, bool], authority.Known] = {}

    def known(self, env: Envelope, row: Mapping[str, Any] | None = None) -> authority.Known:
        node = self.node
        addressee = codechanges.addressed_here(env.to, node.code, self.changes)
        if env.kind == Kind.FILED:
            # What a filing's check needs depends only on its item and where
            # it goes: asked once per batch (a ledger's filings share both).
            key = (str(env.body.get("item", "")), addressee)
            known = self._filings.get(key)
            if known is None:
                item = _item_or_none(node, key[0])
                known = self._filings[key] = authority.Known(
                    root=self.root,
                    citywide=item.citywide if item is not None else None,
                    item_level=item.level if item is not None else None,
                    is_addressee=addressee,
                    changes=self.changes,
                )
            return known
        if env.kind in APPLICATION_KINDS:
            row = row if row is not None else self.apps.get(env.tracking or "")
            if row is None:
                return authority.Known(root=self.root, is_addressee=addressee, changes=self.changes)
            return authority.known_from_row(row, self.root, self.changes, addressee=addressee)
        return authority.Known(root=self.root, is_addressee=addressee, changes=self.changes)

    def authorise(self, env: Envelope, row: Mapping[str, Any] | None = None) -> authority.Refusal | None:
        claim = authority.Claim(
            kind=env.kind, origin=env.origin, to=env.to, tracking=env.tracking, body=env.body, at=env.at
        )
        known = self.known(env, row)
        if env.kind == "revocation":
            # The revoked certificate travels with its revocation, so every
            # hop can tell the serial (and a retired key) is one issued for
            # the code it names.
            found = _revoked_cert(self.node, env.body)
            if found is None or ("sign" in env.body and env.body["sign"] != found[2]):
                return authority.Refusal(
                    "serial_mismatch",
                    "a revocation must carry the revoked certificate's chain to the city root, "
                    "and name that certificate's serial and key",
                )
            known = replace(known, revoked_cert=(found[0], found[1]))
        refusal = authority.authorise(claim, known)
        if refusal is None and env.kind == receipts.KIND:
            # Each receipt is asked as a lone `received` would be, where
            # this node holds its application.
            for entry in receipts.entries(env):
                held = self.apps.get(str(entry.get("tracking")))
                if held is not None:
                    refusal = authority.authorise(
                        receipts.claim_of(env, entry),
                        authority.known_from_row(held, self.root, self.changes, addressee=known.is_addressee),
                    )
                    if refusal is not None:
                        break
        return refusal


def _item_or_none(node: Node, code: str) -> Any:
    """The item a filing names, as this node knows it: in force, or as it
    was before the city withdrew it (a filing made before then is on its way)."""
    return node.known_item(code)


def _revoked_cert(node: Node, body: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """The (code, serial, signing key) of the certificate a revocation names,
    from the chain it carries, verified against the pinned root; None when
    it carries none that verifies (the table then refuses it)."""
    root = identity_mod.root_fingerprint(node)
    chain = body.get("chain")
    if root is None or not isinstance(chain, list) or not 1 <= len(chain) <= certs_mod.MAX_CHAIN:
        return None
    try:
        leaf = certs_mod.verify_chain(chain, root, (), renamed=codechanges.renamed(node.division_changes()))
    except (certs_mod.CertError, KeyError, TypeError, ValueError):
        return None
    return leaf.code, leaf.serial, b64(leaf.sign)


def _check_kind(node: Node, env: Envelope) -> None:
    """What a kind needs beyond its schema and the table: the manifest's
    version only goes up; statistics in the documented shape."""
    if env.kind == "manifest":
        version = env.body.get("version")
        current = int(node.store.setting("manifest_version", "0") or 0)
        if not isinstance(version, int) or version <= current:
            raise EnvelopeError("rollback", f"manifest version {version} is not newer than {current}")
    elif env.kind == statistics.KIND:
        statistics.check(node, env)


def quarantine(node: Node, refused: Iterable[Verdict], *, sender: str) -> None:
    """Keep what this node refused, for an operator (`daiban quarantine`);
    call inside a transaction."""
    rows = [
        {
            "envelope_id": v.id if v.id != "?" else None,
            "digest": _digest(v.raw),
            "kind": v.kind,
            "origin": v.origin,
            "sender": sender,
            "code": v.code,
            "reason": v.reason[:1000],
            "raw": v.raw,
            "held": int(v.status == "held"),
        }
        for v in refused
        if v.code != "rollback"  # an older manifest again is no news
    ]
    if rows:
        node.store.put_quarantine(rows, stamp(node.clock()))


def _digest(raw: str) -> str:
    import hashlib

    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class Taken:
    stored: list[Verdict]
    duplicates: list[Verdict]
    refused: list[Verdict]
    held: list[Verdict] = field(default_factory=list)


SLICE_BYTES = 128 * 1024


def slices(raws: Sequence[Any], limit: int | None = None) -> Iterator[Sequence[Any]]:
    """A batch in runs of about ``limit`` bytes of envelopes (at least one
    each): a pull's page of bulk receipts (up to 500 receipts an envelope) is
    checked and stored a few envelopes at a time, so what is parsed of it at
    once stays small (a village PC's memory, issue 9's peak RSS)."""
    limit = SLICE_BYTES if limit is None else limit
    start, size = 0, 0
    for i, raw in enumerate(raws):
        size += len(raw) if isinstance(raw, str | bytes) else 1
        if size >= limit:
            yield raws[start : i + 1]
            start, size = i + 1, 0
    if start < len(raws):
        yield raws[start:]


def take_in(node: Node, raws: Sequence[Any], chains: Any, *, sender: str, direction: str) -> Taken:
    """Check, authorise, store and route a batch, a slice at a time, to the
    same verdicts as all at once; quarantine what is refused. Call inside a
    transaction, and drain() after it."""
    extra = verify_chains(node, chains)
    taken = Taken([], [], [], [])
    earlier: set[str] = set()  # ids stored by an earlier slice of this batch
    for part in slices(raws):
        checked = check(node, part, sender=sender, direction=direction, extra=extra)
        if earlier:
            # An id met again in one batch is passed over, whatever it holds.
            checked.duplicates[:] = [v for v in checked.duplicates if v.id not in earlier]
            checked.refused[:] = [v for v in checked.refused if v.code != "conflict" or v.id not in earlier]
        remember(node, extra)
        stored = store(node, checked.accepted, sender=sender)
        earlier.update(v.id for v in stored)
        taken.stored += stored
        quarantine(node, checked.refused + checked.held, sender=sender)
        if direction == "up" and checked.duplicates:
            moving.pass_on(node, [v.id for v in checked.duplicates], sender, stamp(node.clock()))
        elif direction == "down" and checked.duplicates:
            moving.came_back_down(node, [v.id for v in checked.duplicates], stamp(node.clock()))
        taken.duplicates += checked.duplicates
        taken.refused += checked.refused
        taken.held += checked.held
    return taken


def retake(node: Node, raw: str, *, sender: str, direction: str) -> Verdict:
    """One envelope kept in quarantine, examined again by this build as if
    ``sender`` had just handed it over: checked, authorised and, if
    admitted, stored and routed (its effect queued: drain() after the
    transaction). Its verdict; the caller decides what becomes of the
    quarantine row. Call inside a transaction."""
    checked = check(node, [raw], sender=sender, direction=direction)
    if checked.accepted:
        return store(node, checked.accepted, sender=sender)[0]
    return (checked.duplicates + checked.held + checked.refused)[0]


def receive(
    node: Node, raws: Sequence[Any], *, sender: str, direction: str, chains: Iterable[Any] = ()
) -> tuple[list[Verdict], list[Verdict]]:
    """Check and store a batch in one go: (stored and duplicate verdicts, refused)."""
    with node.store.transaction():
        taken = take_in(node, raws, list(chains), sender=sender, direction=direction)
    drain(node)
    return taken.stored + taken.duplicates, taken.refused


def as_results(verdicts: Iterable[Verdict]) -> list[Mapping[str, Any]]:
    return [v.as_dict() for v in verdicts]


# -- store, fold and route what was admitted --------------------------------


def store(node: Node, envelopes: Sequence[Envelope], *, sender: str) -> list[Verdict]:
    """Store checked envelopes; call inside a transaction. Application
    events addressed here are stored with their effect queued: apply_queued()
    folds them (drain() after the transaction that stored them; a server
    when requests pause and before it answers a pull; any node when it
    opens), so what was received is durable, and acknowledged, before it is
    applied. Broadcasts and statistics, few and acting at every hop, act
    here at once. Envelopes for other nodes are stored and queued for their
    next hop in bulk."""
    now = stamp(node.clock())
    custody.receipted(node, envelopes)  # an office answered: what was kept for it ends
    rows: list[tuple[Envelope, str]] = []
    relayed: list[Envelope] = []
    inline: list[Envelope] = []
    changes = node.division_changes()
    for env in envelopes:
        if env.to == routing.BROADCAST or env.kind == statistics.KIND:
            inline.append(env)
        elif codechanges.addressed_here(env.to, node.code, changes):
            rows.append((env, "queued"))
        elif (
            changes
            and (env.tracking or env.kind == receipts.KIND)
            and codechanges.succeeds(node.code, env.origin, changes)
        ):
            # The old office's own events, handed over (node/manifest.py):
            # this node, its successor, folds them into the application's
            # history, and passes them on to the filer all the same.
            rows.append((env, "queued"))
            relayed.append(env)
        else:
            rows.append((env, "none"))
            relayed.append(env)
    node.store.insert_envelopes(rows, received_at=now, received_from=sender)
    node.route_many([(env.id, env.to) for env in relayed], now, came_from=sender)

    def act() -> None:
        for env in inline:
            node.store.insert_envelope(env, dest=env.to, received_at=now, received_from=sender)
            if env.to == routing.BROADCAST:
                _guarded(node, env, sender, partial(_apply_broadcast, node, env, now))
                for hop in routing.flood(node.code, sender, node.parent(), node.children()):
                    node.store.enqueue(env.id, hop, "up" if hop == routing.UP else "down", now)
            else:
                _guarded(node, env, sender, partial(statistics.take, node, env, now, sender))

    _all_or_each(node, act)
    return [Verdict(env.id, "stored", received_at=now) for env in envelopes]


class _Mode(threading.local):
    optimistic = False


_MODE = _Mode()


def _all_or_each(node: Node, work: Callable[[], None]) -> None:
    """Apply a batch's effects in one savepoint; should any fail, undo them
    all and apply them again one by one, each in a savepoint of its own
    (_guarded), so the one that fails goes to quarantine alone. The common
    case pays for one savepoint, not one per envelope."""
    if _MODE.optimistic:
        work()
        return
    _MODE.optimistic = True
    try:
        with node.store.transaction():
            work()
        return
    except Exception:
        pass
    finally:
        _MODE.optimistic = False
    work()


def _guarded(node: Node, env: Envelope, sender: str, effect: Callable[[], bool | None]) -> str:
    """Apply one envelope's effect in a savepoint: "done", or "waiting" when
    the effect says it must wait (False). If it fails, whatever it was, its
    effect is undone, the envelope goes to quarantine ("quarantined"), and
    the node carries on with the rest."""
    if _MODE.optimistic:  # the batch's savepoint catches a failure (_all_or_each)
        return "waiting" if effect() is False else "done"
    collected = len(_RECEIPTS.owed) if _RECEIPTS.owed is not None else 0
    try:
        with node.store.transaction():  # inside the caller's transaction: a savepoint
            result = effect()
        return "waiting" if result is False else "done"
    except EnvelopeError as exc:  # refused now that the application is known
        _forget_receipts(collected)
        node.store.set_effect(env.id, "quarantined", exc.code)
        quarantine(node, [_refused(env, env.raw, exc.code, str(exc))], sender=sender)
        return "quarantined"
    except Exception as exc:  # a bug or a bad value: one envelope must never stop the node
        _forget_receipts(collected)
        node.store.set_effect(env.id, "quarantined", type(exc).__name__)
        reason = f"its effect failed to apply ({type(exc).__name__}: {exc})"
        quarantine(node, [_refused(env, env.raw, "apply_failed", reason[:500])], sender=sender)
        return "quarantined"


def apply_queued(node: Node, limit: int = 200, sender: str | None = None) -> int:
    """Apply up to ``limit`` queued effects, oldest first, in one
    transaction (each exactly once: its effect is marked in the same
    transaction); only those ``sender`` handed here, if given. Returns how
    many were taken.

    Optimistic: the batch is applied with no savepoint at all; should any
    envelope's effect fail, the whole transaction is rolled back and the
    batch applied again, each envelope in a savepoint of its own, so the
    one that fails goes to quarantine alone (a savepoint around every
    envelope, or around the batch, costs a tenth of the work).

    A node restored from a backup applies nothing until it has caught up
    with its parent (a receipt needs a sequence number it may not take
    yet): what it received waits, stored, until then."""
    if custody.catching_up(node.store):
        return 0

    def act() -> int:
        queued = node.store.queued_effects_from(limit, sender)
        now = stamp(node.clock())
        # The receipts this batch's filings earn go back in bulk, one
        # envelope per filing node (run again from the start if rolled back).
        _RECEIPTS.owed = []
        try:
            filings: list[tuple[Envelope, str]] = []  # a run of filings, received in bulk
            for envelope_id, raw, handed_by in queued:
                try:
                    env = env_mod.parse(raw, checked=True)
                except EnvelopeError as exc:  # stored by an older build, unreadable now
                    node.store.set_effect(envelope_id, "quarantined", exc.code)
                    quarantine(node, [_refused(None, raw, exc.code, str(exc))], sender=handed_by)
                    continue
                if _MODE.optimistic and env.kind == Kind.FILED:
                    filings.append((env, handed_by))
                    continue
                _receive_filings(node, filings, now)
                filings = []
                apply_to_application(node, env, now, sender=handed_by)
            _receive_filings(node, filings, now)
            send_receipts(node, _RECEIPTS.owed, now)
        finally:
            _RECEIPTS.owed = None
        return len(queued)

    if node.store.in_transaction() or _MODE.optimistic:
        done: list[int] = []
        _all_or_each(node, lambda: done.append(act()))
        return done[-1]
    _MODE.optimistic = True
    try:
        with node.store.transaction():
            return act()
    except Exception:  # rolled back: done again below, carefully
        pass
    finally:
        _MODE.optimistic = False
    with node.store.transaction():
        return act()


def drain(node: Node, chunk: int = 500, sender: str | None = None, most: int | None = None) -> int:
    """Apply every queued effect (every one ``sender`` handed here, if
    given), a chunk per transaction; with ``most``, stop once at least that
    many are applied (the rest stays queued). An effect waiting for
    another's (a decision before its filing) is marked pending and applied
    when that one is (retry_pending), so draining one sender's alone is
    safe."""
    if custody.catching_up(node.store):
        return 0
    total = 0
    while (most is None or total < most) and node.store.has_queued_effects(sender):
        total += apply_queued(node, chunk if most is None else min(chunk, most - total), sender)
    return total


def _apply_broadcast(node: Node, env: Envelope, now: str) -> None:
    if env.kind == "manifest":
        from daiban.node import manifest

        manifest.install(node, env, now)
    elif env.kind == "revocation":
        from daiban.node import revocation

        node.store.revoke(str(env.body["serial"]), str(env.body["code"]), env.origin, now)
        retired.remember(node, env)
        revocation.applied(node, env.body, now)
    node.store.set_effect(env.id, "applied")


def apply_to_application(node: Node, env: Envelope, now: str, *, sender: str = "") -> None:
    """The effect of an application envelope at its addressee, exactly once
    (it is stored in the same transaction). One that cannot apply yet (its
    application's earlier events have not arrived) waits as pending; one
    the table refuses, now that the application is known, or whose effect
    fails, goes to quarantine."""
    env = _cleaned(env)  # untrusted text
    sender = sender or env.origin
    if env.kind == receipts.KIND:
        _apply_receipts(node, env, now, sender)
        return

    def effect() -> bool:
        if env.kind == Kind.FILED:
            _receive_filing(node, env, now)
            return True
        return _apply_event(node, env, now, sender)

    if _guarded(node, env, sender, effect) != "done":
        return
    node.store.set_effect(env.id, "applied")
    retry_pending(node, env.tracking or "", now)


def _apply_receipts(node: Node, env: Envelope, now: str, sender: str, only: str | None = None) -> None:
    """A `receipts` envelope at its addressee: its receipts folded, each
    exactly once; those that cannot apply yet wait (its effect pending until
    the last has applied). One receipt the table refuses quarantines the
    whole envelope: a genuine office makes none."""
    outcome: list[tuple[list[str], list[str]]] = []

    def effect() -> bool:
        outcome.append(receipts.fold(node, env, now, only=only))
        return True

    if _guarded(node, env, sender, effect) != "done":
        node.store.stop_waiting(env.id)  # quarantined: none of it applies
        return
    folded, waiting = outcome[-1]
    if only is not None:
        if folded:
            node.store.receipt_applied(env.id, only)
    elif waiting:
        node.store.wait_receipts(env.id, waiting)
    else:
        node.store.set_effect(env.id, "applied")
    for tracking in node.store.trackings_waiting(folded) if len(folded) > 1 else folded:
        retry_pending(node, tracking, now)


def retry_pending(node: Node, tracking: str, now: str) -> None:
    progress = True
    while progress:
        progress = False
        for envelope_id, raw, sender in node.store.waiting_receipts(tracking):
            env = env_mod.parse(raw, checked=True)
            env = _cleaned(env)  # untrusted text
            _apply_receipts(node, env, now, sender, only=tracking)
            if not any(w[0] == envelope_id for w in node.store.waiting_receipts(tracking)):
                progress = True
        for raw, sender in node.store.pending_effects_from(tracking):
            env = env_mod.parse(raw, checked=True)
            env = _cleaned(env)  # untrusted text
            if _guarded(node, env, sender, partial(_apply_event, node, env, now, sender)) == "done":
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


def filed_summary(
    node: Node, env: Envelope, now: str, *, office: str
) -> tuple[lifecycle.AppState, dict[str, Any]]:
    """The state and the masked summary row of an application from its
    filing envelope (``office``: where it goes when the body does not say).
    The ID number's hash stays empty: it is sealed to the office, which keys
    it when first searched (Node.index_personal)."""
    item = _item_or_none(node, str(env.body.get("item", "")))
    return projection.filed_row(
        tracking=env.tracking or "",
        origin=env.origin,
        body=env.body,
        filed_at=env.at,
        now=now,
        item_name=item.name if item is not None else None,
        time_limit_days=item.time_limit_days if item is not None else None,
        office=office,
        item_digest=item.digest if item is not None else None,
    )


class _Owed(threading.local):
    owed: list[tuple[str, Event]] | None = None
    """While apply_queued folds a batch: the receipts it made, by filing node."""


_RECEIPTS = _Owed()


def _forget_receipts(keep: int) -> None:
    """A filing's effect was undone (its savepoint rolled back): so is its receipt."""
    if _RECEIPTS.owed is not None:
        del _RECEIPTS.owed[keep:]


def send_receipts(node: Node, owed: Sequence[tuple[str, Event]], now: str) -> None:
    """The receipts of a batch, recorded as events already, sent back in
    bulk: one signed `receipts` envelope per filing node and up to
    receipts.MAX_RECEIPTS of them (node/receipts.py), stored and routed
    like any envelope of this node's. Call inside the transaction that
    recorded them."""
    by_dest: dict[str, list[Event]] = {}
    for dest, event in owed:
        by_dest.setdefault(dest, []).append(event)
    for dest, events in by_dest.items():
        for start in range(0, len(events), receipts.MAX_RECEIPTS):
            part = events[start : start + receipts.MAX_RECEIPTS]
            _record_to(node, receipts.KIND, receipts.body_of(node.code, part), dest, now)


def _receive_filing(node: Node, env: Envelope, now: str) -> None:
    """An application arrives at its office: keep it (personal part still
    sealed), and send the receipt back to the filer."""
    tracking = env.tracking or ""
    if node.store.application(tracking) is not None:
        # The same tracking number filed twice with other content: the
        # table refuses another origin's number, so this is the filer's own
        # bug or replay; the first one stands.
        raise EnvelopeError("duplicate_tracking", f"application {tracking} was filed here before")
    node.store.insert_event(event_of(env, now))
    # The personal part stays sealed; it is opened in memory when staff look
    # at it, and indexed for search by ID number when first searched
    # (Node.index_personal), so receiving costs no decryption.
    if env.sealed_text is not None and env.sealed_to == node.code:
        node.store.insert_personal(env.id, tracking, env.sealed_text, node.code)
    state, row = filed_summary(node, env, now, office=node.code)
    row["office"] = node.code  # the office now, also for a filing addressed to its old code
    if (env.to != node.code and _received_before(node, tracking)) or node.store.has_own_receipt(
        tracking, node.code
    ):
        # Its receipt is here already, waiting for this filing: handed over
        # by the office's old code, which had received it (its receipt comes
        # before the filing in the handover); or made here before this node
        # was restored from a backup and come back from the filer's side
        # (custody.take_back). It applies now; no second one is made.
        node.store.save_application(row)
        return
    receipt = new_event(node, tracking, Kind.RECEIVED, {"office": node.code}, now)
    dest = routing.destination(Kind.RECEIVED, node.code, row["origin"], row["office"])
    if _RECEIPTS.owed is not None and dest != node.code:
        node.store.insert_event(receipt)  # its envelope goes in bulk (send_receipts)
        _RECEIPTS.owed.append((dest, receipt))
    else:
        record_own(node, receipt, row)
    state = lifecycle.apply(state, Kind.RECEIVED, receipt.body)
    projection.project(row, state, Kind.RECEIVED, receipt.body, now)
    node.store.save_application(row)


def _cleaned(env: Envelope) -> Envelope:
    """``env`` with its actor and every string in its body cleaned of
    control characters (text.clean_text). Most envelopes have none to clean,
    and their text says so at once (text.json_is_clean): then ``env`` as is."""
    if json_is_clean(env.raw):
        return env
    return replace(env, actor=clean_text(env.actor), body=clean_tree(env.body))


def _receive_filings(node: Node, run: Sequence[tuple[Envelope, str]], now: str) -> None:
    """A run of filings in a batch applied optimistically (apply_queued): what
    ``apply_to_application`` does for each, with the rows computed here and
    written in one statement per table. Any failure rolls the whole batch
    back and it is applied again one envelope at a time (_all_or_each), so
    one bad envelope still goes to quarantine alone. A run this path does
    not cover in full (a tracking number twice, one already here, a receipt
    already here or addressed to this node) goes the ordinary way."""
    if not run:
        return
    assert _MODE.optimistic and _RECEIPTS.owed is not None
    envs = [_cleaned(env) for env, _s in run]
    trackings = [env.tracking or "" for env in envs]
    simple = (
        len(run) > 1
        and len(set(trackings)) == len(trackings)
        and all(env.to == node.code for env in envs)
        and not node.store.applications_many(trackings)
    )
    if simple:
        filers = {env.origin for env in envs}
        simple = node.code not in filers and not node.store.receipts_here(trackings, node.code)
    if not simple:
        for env, sender in run:  # each cleaned by apply_to_application itself
            apply_to_application(node, env, now, sender=sender)
        return
    events: list[Event] = []
    personal: list[tuple[str, str, str, str]] = []
    rows: list[dict[str, Any]] = []
    owed: list[tuple[str, Event]] = []
    with node.seqs_in_memory():
        for env, tracking in zip(envs, trackings, strict=True):
            events.append(event_of(env, now))
            if env.sealed_text is not None and env.sealed_to == node.code:
                personal.append((env.id, tracking, env.sealed_text, node.code))
            state, row = filed_summary(node, env, now, office=node.code)
            row["office"] = node.code
            receipt = new_event(node, tracking, Kind.RECEIVED, {"office": node.code}, now)
            events.append(receipt)
            owed.append((routing.destination(Kind.RECEIVED, node.code, row["origin"], node.code), receipt))
            state = lifecycle.apply(state, Kind.RECEIVED, receipt.body)
            projection.project(row, state, Kind.RECEIVED, receipt.body, now)
            rows.append(row)
    node.store.insert_events(events)
    node.store.insert_personals(personal)
    node.store.save_applications(rows)
    node.store.set_effects([env.id for env in envs], "applied")
    _RECEIPTS.owed.extend(owed)
    for tracking in node.store.trackings_waiting(trackings):
        retry_pending(node, tracking, now)


def _received_before(node: Node, tracking: str) -> bool:
    """Whether an office's receipt for ``tracking`` waits here for its filing
    (the old office's, handed over ahead of the filing it received)."""
    for raw, _sender in node.store.pending_effects_from(tracking):
        if env_mod.parse(raw, checked=True).kind == Kind.RECEIVED:
            return True
    return bool(node.store.waiting_receipts(tracking))


def _apply_event(node: Node, env: Envelope, now: str, sender: str) -> bool:
    """Fold one event into its application; False when it must wait for the
    application (pending). A refusal raises, and quarantines it: the table
    is asked again here, with the application as it is now."""
    row = node.store.application(env.tracking or "")
    if row is None:
        node.store.set_effect(env.id, "pending")
        return False
    refusal = _Gate(node, ()).authorise(env, row)
    if refusal is not None:
        raise EnvelopeError(refusal.code, refusal.reason)
    try:
        new = lifecycle.apply(projection.state_of(row), env.kind, env.body)
    except TransitionRefused:
        # Not yet: an earlier event of this application has not arrived.
        node.store.set_effect(env.id, "pending")
        return False
    node.store.insert_event(event_of(env, now))
    if env.kind == Kind.CORRECTED and env.sealed_text is not None and env.sealed_to == node.code:
        # The corrected values, sealed to this office: kept beside the
        # filing's, and the summary keyed again from both (index_personal).
        node.store.insert_personal(env.id, row["tracking"], env.sealed_text, node.code)
        row["id_hash"] = ""
    projection.project(row, new, env.kind, env.body, now, node.calendar())
    row["sync_problem"] = None
    node.store.save_application(row)
    return True


# -- what this node records itself -------------------------------------------


def new_event(
    node: Node, tracking_no: str, kind: str, body: Mapping[str, Any], now: str, event_id: str | None = None
) -> Event:
    """An event of this node's, with its next sequence number."""
    return Event(
        id=event_id or new_id(),
        origin=node.code,
        seq=node.take_seq(),
        tracking=tracking_no,
        kind=kind,
        actor=node.actor,
        at=now,
        recorded_at=now,
        body=dict(body),
    )


def record(
    node: Node,
    row: dict[str, Any],
    kind: str,
    body: Mapping[str, Any],
    now: str,
    *,
    kept: Mapping[str, Any] | None = None,
) -> None:
    """Record an event this node makes about an application it holds
    (a decision, a supplement, a withdrawal, an evaluation): authorise, fold,
    store, route, and bring ``row`` up to date; call inside a transaction.
    ``kept``: personal data of the event this node keeps for itself (an
    office's delivery address), sealed to its own key and never sent."""
    authorise_own(node, kind, body, row)
    new = lifecycle.apply(projection.state_of(row), kind, body)
    event = new_event(node, row["tracking"], kind, body, now)
    record_own(node, event, row)
    if kept is not None:
        sealed = seal(node, event, kept, node.keys.enc_public)
        node.store.insert_personal(event.id, event.tracking, b64(sealed), node.code)
    projection.project(row, new, kind, body, now, node.calendar())
    node.store.save_application(row)


def record_correction(
    node: Node, row: dict[str, Any], body: Mapping[str, Any], personal: Mapping[str, Any], now: str
) -> None:
    """Record a correction of this node's filing: authorised and folded like
    any event; the corrected values sealed to the office (record_own); the
    masked summary here shows the corrected name, ID number and phone."""
    authorise_own(node, Kind.CORRECTED, body, row)
    new = lifecycle.apply(projection.state_of(row), Kind.CORRECTED, body)
    record_own(node, new_event(node, row["tracking"], Kind.CORRECTED, body, now), row, personal)
    projection.project(row, new, Kind.CORRECTED, body, now, node.calendar())
    projection.mask_corrected(row, personal)
    node.store.save_application(row)


def record_filing(
    node: Node,
    event: Event,
    state: lifecycle.AppState,
    row: dict[str, Any],
    personal: Mapping[str, Any],
    premade: tuple[bytes, str, Envelope | None] | None = None,
) -> lifecycle.AppState:
    """Record a filing made here (its summary ``row`` from
    projection.filed_row): the event, the sealed personal part, the
    envelope; filed at the office that handles it, it is received here at
    once. Returns the application's state; call inside a transaction."""
    record_own(node, event, row, personal, premade)
    if row["office"] == node.code:
        received = new_event(node, event.tracking, Kind.RECEIVED, {"office": node.code}, event.at)
        record_own(node, received, row)
        state = lifecycle.apply(state, Kind.RECEIVED, received.body)
        projection.project(row, state, Kind.RECEIVED, received.body, event.at)
    node.store.save_application(row)
    return state


def record_own(
    node: Node,
    event: Event,
    row: Mapping[str, Any],
    personal: Mapping[str, Any] | None = None,
    premade: tuple[bytes, str, Envelope | None] | None = None,
) -> None:
    """Record an event this node makes: the event row, its personal part
    sealed (to the office if its key is known, else to this node until it
    is), and the signed envelope queued for its next hop. ``premade``: the
    sealed part, its target and the envelope made ahead in worker
    processes (a large ledger)."""
    node.store.insert_event(event)
    dest = routing.destination(event.kind, event.origin, row["origin"], row["office"])
    sealed: bytes | None = None
    sealed_to: str | None = None
    made: Envelope | None = None
    if personal is not None:
        if premade is not None:
            sealed, target, made = premade
            if made is not None and (made.seq != event.seq or made.tracking != event.tracking):
                raise RuntimeError("a premade envelope does not match its event")
        else:
            target, enc = seal_target(node, row["office"])
            sealed = seal(node, event, personal, enc)
        sealed_to = target
        node.store.insert_personal(event.id, event.tracking, b64(sealed), target)
        if target != row["office"]:
            return  # the envelope is made when the office's key arrives (reseal_pending)
        if target != node.code and event.kind == Kind.FILED:
            # Kept sealed to this node too until the office answers: should
            # the office lose its keys, it goes sealed again (custody.py).
            office_enc = identity_mod.enc_key_for(node, target) or b""
            mine = node.keys.keep(canonical(personal), kept_context(event.id, event.tracking))
            node.store.keep_personal(event.id, event.tracking, target, b64(mine), b64(office_enc))
    send(node, event, dest, sealed, sealed_to, event.recorded_at, made)


def kept_context(event_id: str, tracking: str) -> bytes:
    """What a filing's copy kept for this node alone is bound to."""
    return f"daiban-kept|{event_id}|{tracking}".encode()


def send(
    node: Node,
    event: Event,
    dest: str,
    sealed: bytes | None,
    sealed_to: str | None,
    now: str,
    premade: Envelope | None = None,
) -> None:
    """Sign an event of this node's as its envelope, keep it, and queue it."""
    env = premade or env_mod.make(
        node.keys,
        id=event.id,
        origin=node.code,
        seq=event.seq,
        kind=event.kind,
        to=dest,
        tracking=event.tracking,
        actor=event.actor,
        at=event.at,
        body=event.body,
        sealed=sealed,
        sealed_to=sealed_to,
    )
    node.store.insert_envelope(
        env, dest=dest, received_at=event.recorded_at, received_from=node.code, effect="applied"
    )
    node.route(env.id, dest, now)


def seal(node: Node, event: Event, personal: Mapping[str, Any], enc_public: bytes) -> bytes:
    """Seal an event's personal part to an X25519 key, the origin's signature inside."""
    return env_mod.seal_personal(
        node.keys,
        id=event.id,
        kind=event.kind,
        tracking=event.tracking,
        personal=personal,
        enc_public=enc_public,
    )


def seal_target(node: Node, office: str) -> tuple[str, bytes]:
    """Whom to seal to: the office, or this node until the office's key is known."""
    enc = identity_mod.enc_key_for(node, office)
    if enc is None:
        return node.code, node.keys.enc_public
    return office, enc


def record_broadcast(node: Node, kind: str, body: Mapping[str, Any], now: str) -> Envelope:
    """Sign, keep and flood a broadcast of this node's (the city's manifest,
    an ancestor's revocation); call inside a transaction."""
    env = env_mod.make(
        node.keys,
        id=new_id(),
        origin=node.code,
        seq=node.take_seq(),
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


def record_stats(node: Node, records: Sequence[Mapping[str, Any]], dest: str, now: str) -> Envelope:
    """Sign, keep and queue one envelope of this office's statistics records."""
    return _record_stats_body(node, {"records": [dict(r) for r in records]}, dest, now)


def record_heartbeats(node: Node, children: Sequence[Mapping[str, Any]], dest: str, now: str) -> Envelope:
    """Sign, keep and queue one statistics envelope of this node's children's
    heartbeats (no application records in it: see node/statistics.py)."""
    return _record_stats_body(node, {"records": [], "children": [dict(c) for c in children]}, dest, now)


def _record_stats_body(node: Node, body: Mapping[str, Any], dest: str, now: str) -> Envelope:
    return _record_to(node, statistics.KIND, dict(body), dest, now)


def _record_to(node: Node, kind: str, body: Mapping[str, Any], dest: str, now: str) -> Envelope:
    """Sign, keep and route an envelope of this node's that names no
    application and is never sealed (statistics, receipts in bulk) to one
    node; call inside a transaction."""
    env = env_mod.make(
        node.keys,
        id=new_id(),
        origin=node.code,
        seq=node.take_seq(),
        kind=kind,
        to=dest,
        tracking=None,
        actor=node.actor,
        at=now,
        body=body,
    )
    node.store.insert_envelope(env, dest=dest, received_at=now, received_from=node.code, effect="applied")
    node.route(env.id, dest, now)
    return env


def reseal_filing(node: Node, env: Envelope, personal: Mapping[str, Any], enc: bytes, now: str) -> Envelope:
    """A filing of this node's that its office has not received, whose
    office lost its keys and enrolled again: the same filing as a new
    envelope (a new id and sequence number), its personal part sealed to the
    office's new key, queued in place of the old one; call inside a
    transaction."""
    office = env.sealed_to or env.to
    fresh = new_id()
    sealed = env_mod.seal_personal(
        node.keys, id=fresh, kind=env.kind, tracking=env.tracking, personal=personal, enc_public=enc
    )
    new = env_mod.make(
        node.keys,
        id=fresh,
        origin=node.code,
        seq=node.take_seq(),
        kind=env.kind,
        to=env.to,
        tracking=env.tracking,
        actor=env.actor,
        at=env.at,
        body=env.body,
        sealed=sealed,
        sealed_to=office,
    )
    node.store.insert_envelope(new, dest=env.to, received_at=now, received_from=node.code, effect="applied")
    node.route(new.id, env.to, now)
    return new


def restore_filed(node: Node, env: Envelope, sender: str, now: str) -> None:
    """A filing event back from the parent after a restore (this node's own,
    or one addressed to it as the office): the envelope, the event, the
    sealed personal part, the summary row — nothing sent anywhere."""
    node.store.insert_envelope(env, dest=env.to, received_at=now, received_from=sender, effect="applied")
    node.store.insert_event(event_of(env, now))
    tracking = env.tracking or ""
    if env.sealed_text is not None and env.sealed_to is not None:
        node.store.insert_personal(env.id, tracking, env.sealed_text, env.sealed_to)
    state, row = filed_summary(node, env, now, office="")
    projection.project(row, state, Kind.FILED, env.body, env.at)
    node.store.save_application(row)
    retry_pending(node, tracking, now)


def restore_own(node: Node, env: Envelope, sender: str, now: str) -> None:
    """One of this node's own envelopes back from the parent after a
    restore, its signature already checked: as before the loss."""
    if env.kind == Kind.FILED:
        restore_filed(node, env, sender, now)
    elif env.kind in APPLICATION_KINDS or env.kind == receipts.KIND:
        node.store.insert_envelope(env, dest=env.to, received_at=now, received_from=sender)
        apply_to_application(node, env, now, sender=sender)
    else:  # a broadcast this node made (a revocation)
        node.store.insert_envelope(env, dest=env.to, received_at=now, received_from=sender, effect="applied")
        if env.kind == "revocation":
            from daiban.node import revocation

            node.store.revoke(str(env.body.get("serial", "")), str(env.body.get("code", "")), env.origin, now)
            revocation.applied(node, env.body, now)


def authorise_own(node: Node, kind: str, body: Mapping[str, Any], row: Mapping[str, Any]) -> None:
    """The table, for an event this node is about to record on an
    application: what every hop will check, refused here first with a
    sentence for the person at the keyboard."""
    from daiban.errors import DaibanError
    from daiban.i18n import _

    claim = authority.Claim(
        kind=kind,
        origin=node.code,
        to=routing.destination(kind, node.code, row["origin"], row["office"]),
        tracking=row["tracking"],
        body=body,
        at=stamp(node.clock()),
    )
    known = authority.known_from_row(row, node.root_code(), node.division_changes())
    refusal = authority.authorise(claim, known)
    if refusal is None:
        return
    messages = {
        "not_office": _(
            "Only the office that handles it ({office}) can review {tracking}; this node is {code}."
        ),
        "not_filer": _("Only the node that filed {tracking} ({filer}) can do this; this node is {code}."),
        "not_party": _("Only the node that filed {tracking} or its office can do this."),
        "already_evaluated": _("{tracking} has been evaluated already; an evaluation is recorded once."),
    }
    message = messages.get(refusal.code)
    text = (
        message.format(office=row["office"], tracking=row["tracking"], code=node.code, filer=row["origin"])
        if message
        else refusal.reason
    )
    raise DaibanError(text, code=refusal.code)
