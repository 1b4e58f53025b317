"""Custody across a restore: what a node keeps until the office has it, its
incarnation, and the sequence numbers it takes after a restore.

- **Kept until the office has it.** A filing this node handed up (its own
  or a child's it relayed) is kept, sealed as it is, after the parent
  acknowledged it, until an event of its office on that application arrives
  (``received``, or a later decision). A kept filing is not pushed in
  ordinary syncs; it goes up again when the parent turns out to have been
  restored. Later events of an application (a supplement, a withdrawal, an
  evaluation) are not kept: the office need not answer them, so nothing
  would end their keeping; a restored parent gets them again all the same,
  with everything above what it ``holds`` (below).
- **Incarnation.** A random id in the node's settings, made anew by every
  restore; the node's pull (and push) answers carry it, signed. A child sends
  with its pull the incarnation its cursor belongs to: a parent that sees an
  earlier one does not take the cursor (it would drop what it never
  delivered) but hands out its queue for that child from the start (the child
  skips what it has by id), with ``holds``: per origin in the child's area,
  and its own, how far it holds that origin's envelopes without a gap (its
  own: as it caught up after the restore).
- **The child then sends again** what the restored parent may have held: the
  kept envelopes, every envelope of its area above ``holds`` that went up,
  and ("returned") the parent's own envelopes it holds above the parent's
  number — decisions and receipts that only went down. The parent takes its
  own back like a recovery page (its own signature, an empty slot); the rest
  goes through the journal's gate like any push. The addressee's
  exactly-once check by id makes sending again harmless.
- **Keys lost.** A filing made here is also kept sealed to this node's own
  key until its office answers (``kept_personal``); should the office have
  lost its keys and enrolled again (its answers carry its new chain), the
  filing goes again as a new envelope sealed to the office's new key, in
  place of the old one, so the office can open it.
- **Sequence numbers.** A restored node first takes back from its parent
  everything of its own the parent holds (recovery.py). A node without
  children has sent everything it numbered up, so it goes on from there.
  One with children may have numbered envelopes that only went down; it goes
  on ``GAP`` numbers higher (more than any node numbers between two
  backups), so no number is issued twice; its children return the ones below
  at their next sync."""

from __future__ import annotations

import itertools
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from daiban.node import identity, moving, receipts, routing
from daiban.node.clock import stamp
from daiban.node.lifecycle import Kind

if TYPE_CHECKING:
    from daiban.node.applications import Node
    from daiban.node.store import Store
    from daiban.trust.envelope import Envelope

INCARNATION = "incarnation"
SEQ_FLOOR = "seq_floor"  # numbers up to here are not this incarnation's to issue
RESTORED_SEQ = "restored_seq"  # the highest own number held after catching up from the parent
RETURN_ABOVE = "return_above"  # at a child: the parent's own envelopes above this go back to it
REKEYED = "rekeyed_at"  # restored without its keys: its answers carry its new chain
GAP = 2**32
MAX_HOLDS = 1000


def incarnation(store: Store) -> str:
    return store.setting(INCARNATION) or ""


def new_incarnation(store: Store) -> str:
    """A restored node's new incarnation; call inside a transaction."""
    value = secrets.token_hex(8)
    store.set_setting(INCARNATION, value)
    return value


def catching_up(store: Store) -> bool:
    """Restored and not caught up with its parent yet (sync/recovery.py)."""
    return store.setting("rejoin_pending") == "1"


def seq_floor(store: Store) -> int:
    return int(store.setting(SEQ_FLOOR, "0") or 0)


def caught_up(store: Store, code: str) -> None:
    """A restored node has taken back what its parent held of it (the city:
    at once, it has none): with children, it goes on GAP numbers higher;
    call inside a transaction."""
    # Children hand back what is above the first gap: the numbers that
    # came back from the parent may leave some between that went only down.
    store.set_setting(RESTORED_SEQ, str(store.high_water([code])[code]))
    if store.peers("child") or store.peers("moved"):
        highest = max(store.next_seq(code) - 1, seq_floor(store))
        store.set_setting(SEQ_FLOOR, str(highest + GAP))


def issued_before_retirement(chain: Sequence[Any], retired: Mapping[str, str]) -> bool:
    """Whether every certificate of a (verified) chain issued under a retired
    one was issued before that retirement."""
    for issuer, cert in itertools.pairwise(chain):
        at = retired.get(str(issuer.get("serial")))
        if at is not None and not moving.later(at, str(cert.get("issued_at"))):
            return False
    return True


# -- kept until the office has it -------------------------------------------------


def keep(node: Node, envelope_ids: Sequence[str]) -> None:
    """The parent acknowledged these: keep the filings among them until
    their office answers; call inside a transaction."""
    if envelope_ids:
        node.store.keep(envelope_ids, Kind.FILED.value, node.code, stamp(node.clock()))


def receipted(node: Node, envelopes: Iterable[Envelope]) -> None:
    """Office events stored here: what was kept for their applications ends
    (one statement per table for a whole batch)."""
    envelopes = list(envelopes)
    answered = [
        (env.tracking, env.origin) for env in envelopes if env.kind in routing.OFFICE_KINDS and env.tracking
    ] + receipts.answered(envelopes)
    if answered:
        node.store.release_kept_many(answered)


# -- at a parent: a child whose cursor is of an earlier incarnation -------------------


def own_chain_if_rekeyed(node: Node) -> list[Any] | None:
    """This node's chain, for its answers, once it was restored without its
    keys and enrolled again: its children hold its old certificate."""
    if not node.store.setting(REKEYED):
        return None
    return identity.own_chain(node)


def holds(node: Node, child: str) -> dict[str, int]:
    """How far this node holds each origin of ``child``'s area without a gap
    (at most MAX_HOLDS of them), and its own highest number as it caught up."""
    out = node.store.high_water(node.store.origins_under(child, MAX_HOLDS))
    restored = node.store.setting(RESTORED_SEQ)
    out[node.code] = int(restored) if restored else node.store.next_seq(node.code) - 1
    return out


# -- at a child: the parent was restored -------------------------------------------------


def reseal_kept(node: Node) -> int:
    """Filings made here that their office has not answered, sealed to a key
    of the office that is no longer its certified one (it lost its keys and
    enrolled again): each goes again as a new envelope sealed to the new key,
    in place of the old one (journal.reseal_filing). How many; call inside a
    transaction."""
    from daiban.node import journal
    from daiban.trust import envelope as env_mod
    from daiban.trust.crypto import CryptoError, b64, unb64

    now = stamp(node.clock())
    done = 0
    # Asked per office, in SQL: nearly always every key is still the one sealed to.
    stale: list[tuple[dict[str, Any], bytes]] = []
    for office in node.store.kept_offices():
        enc = identity.enc_key_for(node, office)
        if enc is not None:
            stale += [(row, enc) for row in node.store.kept_personal_not_sealed_to(office, b64(enc))]
    for row, enc in stale:
        raw = node.store.raw_envelope(row["event_id"])
        if raw is None:
            continue
        env = env_mod.parse(raw, checked=True)
        try:
            text = node.keys.unkeep(unb64(row["sealed"]), journal.kept_context(env.id, env.tracking or ""))
            personal = json.loads(text)
        except (CryptoError, ValueError):
            continue  # kept under a key this node has lost itself: nothing to seal again
        journal.reseal_filing(node, env, personal, enc, now)
        node.store.resealed(row["event_id"], env.id, b64(enc))
        done += 1
    return done


def parent_restored(node: Node, parent: str, held: Mapping[str, int]) -> int:
    """Queue up again what the restored parent may have lost, and mark its
    own envelopes to return; how many were queued. Call inside a transaction,
    after the page that told it (and may have brought the parent's new
    certificate) is taken in."""
    now = stamp(node.clock())
    reseal_kept(node)
    ids = node.store.kept_ids()
    for origin in node.store.origins_under(node.code, None):
        ids += node.store.sent_up_above(origin, int(held.get(origin, 0)), node.code)
    rows = [(i, routing.UP, "up") for i in dict.fromkeys(ids)]
    node.store.enqueue_many(rows, now)
    node.store.set_setting(f"{RETURN_ABOVE}:{parent}", str(int(held.get(parent, 0))))
    return len(rows)


def to_return(node: Node, parent: str) -> int | None:
    value = node.store.setting(f"{RETURN_ABOVE}:{parent}")
    return int(value) if value not in (None, "") else None


def returned(node: Node, parent: str) -> None:
    node.store.set_setting(f"{RETURN_ABOVE}:{parent}", "")


def returning(node: Node, parent: str, above: int, after: int, limit: int) -> list[tuple[int, str]]:
    """(arrival number, raw) of the parent's own envelopes held here above ``above``."""
    return node.store.origin_above(parent, above, after, limit)


def take_back(node: Node, raws: Sequence[Any], sender: str) -> list[dict[str, Any]]:
    """This node's own envelopes, returned by a child after a restore: each
    taken back as before the loss when it is in the envelope's and its
    kind's schema (admission.py), this node's own key (or a retired one)
    signed it and its number is free; its effect then goes through the
    authorisation table like any other (journal.restore_own). A known one is
    a duplicate; anything else is refused and quarantined. Nothing is routed
    (the child has it). Call inside a transaction."""
    from daiban.node import admission, journal, retired
    from daiban.trust import envelope as env_mod
    from daiban.trust.envelope import EnvelopeError

    now = stamp(node.clock())
    keys = retired.signing_keys(node, node.code, node.keys.sign_public)
    results: list[dict[str, Any]] = []
    refused: list[journal.Verdict] = []
    for raw in raws:
        try:
            env = env_mod.parse(raw)
        except EnvelopeError as exc:
            refused.append(journal.refused_verdict(None, raw, exc.code, str(exc)))
            continue
        known = node.store.envelope_row(env.id)
        if known is not None and known["digest"] == env.digest:
            results.append({"id": env.id, "status": "duplicate"})
            continue
        try:
            if env.origin != node.code:
                raise EnvelopeError("forged_origin", f"only {node.code}'s own envelopes come back to it")
            admission.check_parsed_envelope(env)
            if not env_mod.signed_by_any(env, keys):
                raise EnvelopeError("bad_signature", "not signed by this node's key")
            if known is not None or node.store.envelope_at(env.origin, env.seq) is not None:
                # Signed here, and its number taken by another: flagged.
                node.store.record_conflict(env.id, env.digest, sender, now)
                raise EnvelopeError("conflict", f"sequence number {env.seq} of {env.origin} is taken")
        except admission.Refused as exc:
            refused.append(journal.refused_verdict(env, raw, exc.code, exc.reason))
            continue
        except EnvelopeError as exc:
            refused.append(journal.refused_verdict(env, raw, exc.code, str(exc)))
            continue
        journal.restore_own(node, env, sender, now)
        results.append({"id": env.id, "status": "stored"})
    journal.quarantine(node, refused, sender=sender)
    return results + [v.as_dict() for v in refused]
