"""Rejoining after a restore. A replica lags the database by a moment, so a
node restored from it may lack what it did last: applications it filed and
its parent already stored, statuses it had pulled. Until it has caught up it
takes no new sequence number (Node.take_seq refuses), so it never reuses one
its parent has seen.

- ``restore_node`` (``daiban restore``) brings back the database and, given
  the recovery passphrase, the keys kept beside it (node/keybackup.py): the
  node then keeps its identity and needs no new enrollment.
- ``after_restore`` marks the home as rejoining; on a new PC without its keys
  it makes new keys and keeps the old signing key as retired, so the
  envelopes the old PC signed still count (retired.py).
- At the parent, ``/v1/recover`` (``serve``) hands back, page by page in the
  order they arrived there, every envelope the child made and every one
  addressed to it, below it (statuses it had pulled for its children) or to
  everyone.
- ``rejoin`` (the first ``daiban sync`` after a restore) takes them in, each
  exactly once: its own envelopes become its events and applications again
  (without going anywhere: the parent has them), the others are checked and
  applied like any pull. Then the tracking-number counter moves past the
  highest number the node has issued, and the node files again.
- The restored node is a new incarnation (node/custody.py): its children,
  at their next sync, send again what it may have lost and hand back its own
  envelopes that only went down to them; with children, it numbers its own
  envelopes from far above what it held (custody.GAP)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daiban.node import custody, identity, journal, retired, routing
from daiban.node.clock import stamp
from daiban.node.lifecycle import Kind
from daiban.sync import protocol
from daiban.sync.protocol import MAX_BATCH, ProtocolError
from daiban.trust import envelope as env_mod
from daiban.trust.crypto import b64
from daiban.trust.envelope import Envelope, EnvelopeError

if TYPE_CHECKING:
    from daiban.node.applications import Node
    from daiban.sync.client import Connection

RECOVER = protocol.RECOVER
PENDING = "rejoin_pending"
PAGE = 500


def pending(node: Node) -> bool:
    return node.store.setting(PENDING) == "1"


# -- after a restore ------------------------------------------------------------


@dataclass
class Restored:
    """What ``after_restore`` found and did."""

    code: str
    role: str
    name: str
    applications: int
    events: int
    last_seq: int
    new_keys: bool
    must_enroll: bool
    unopenable: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "role": self.role,
            "name": self.name,
            "applications": self.applications,
            "events": self.events,
            "last_seq": self.last_seq,
            "new_keys": self.new_keys,
            "must_enroll": self.must_enroll,
            "unopenable": self.unopenable,
        }


def after_restore(home: Path, now: str) -> Restored:
    """Make a freshly restored database a node that can rejoin: keys (new ones
    when the home has none: a new PC), the old key retired, the rejoin mark."""
    import secrets

    from daiban.node.home import LOOKUP_KEY, write_secret
    from daiban.node.store import DB_NAME, Store
    from daiban.trust.crypto import NodeKeys, keys_exist

    store = Store.open(home / DB_NAME)
    try:
        settings = store.settings()
        code, role = settings["code"], settings["role"]
        last_seq = store.next_seq(code) - 1
        chain = store.cert_chain(code)
        own = chain[-1] if chain else None
        new_keys = not keys_exist(home)
        if new_keys:
            if role == "city":
                from daiban.errors import HomeError
                from daiban.i18n import _

                raise HomeError(
                    _(
                        "A city never restores without its root key: restore with the recovery "
                        "passphrase (--passphrase-stdin), or copy keys/ from the old PC's key backup "
                        "into {home} first, then restore again."
                    ).format(home=home)
                )
            keys = NodeKeys.generate()
            keys.save(home)
        else:
            keys = NodeKeys.load(home)
        if not (home / LOOKUP_KEY).exists():
            write_secret(home / LOOKUP_KEY, secrets.token_bytes(32))
        must_enroll = own is not None and own.get("sign") != b64(keys.sign_public)
        unopenable = 0
        with store.transaction():
            if must_enroll and own is not None:
                # The old PC's key still vouches for what it signed up to here.
                store.put_retired_key(str(own["serial"]), code, str(own["sign"]), last_seq, now)
                # Its children know its old certificate: its answers carry the new one.
                store.set_setting(custody.REKEYED, now)
            if new_keys:
                unopenable = store.unsent_sealed_to(code)
                # The ID-number hashes were keyed with the lost lookup key:
                # key again what opens, name what does not (Node.unopenable).
                store.unindex_sealed_to(code)
            if role != "city":  # the root has no parent to catch up with
                store.set_setting(PENDING, "1")
            store.set_setting("restored_at", now)
            # A new incarnation: its children send again what it may have
            # lost, and their cursors of the old one do not count (custody.py).
            custody.new_incarnation(store)
            if role == "city":
                custody.caught_up(store, code)
        return Restored(
            code=code,
            role=role,
            name=settings.get("name", ""),
            applications=store.application_count(),
            events=store.count_events(),
            last_seq=last_seq,
            new_keys=new_keys,
            must_enroll=must_enroll or (new_keys and own is None and role != "city"),
            unopenable=unopenable,
        )
    finally:
        store.close()


# -- at the parent ------------------------------------------------------------------


def serve_recover(
    node: Node, headers: Mapping[str, str], path: str, body: bytes, data: Any
) -> dict[str, Any]:
    """A restored child asks for what it may have lost; runs on the writer thread."""
    from daiban.sync import service

    after = data.get("after") if isinstance(data, dict) else None
    limit = data.get("limit", PAGE) if isinstance(data, dict) else None
    if (
        not isinstance(after, int)
        or isinstance(after, bool)
        or after < 0
        or not isinstance(limit, int)
        or isinstance(limit, bool)
        or not 1 <= limit <= MAX_BATCH
    ):
        raise ProtocolError(400, "malformed", "recover needs after >= 0 and a limit of 1 to 1000")
    journal.drain(node)  # what the child pushed before it was lost is applied, its receipts made
    with node.store.transaction():
        code, counter, _key = service.authenticate(node, headers, "POST", path, body)
        node.store.update_peer(code, counter=counter, last_seen_at=stamp(node.clock()))
        rows = node.store.recovery_page(code, after, limit)
    return {
        "ok": True,
        "envelopes": [row.raw for row in rows],
        "after": rows[-1].n if rows else after,
        "more": len(rows) == limit,
        "certs": identity.chains_for(node, rows),
    }


# -- at the restored child --------------------------------------------------------------


@dataclass
class Caught:
    own: int = 0  # own envelopes taken back
    other: int = 0  # statuses, broadcasts
    refused: int = 0


async def rejoin(conn: Connection) -> Caught:
    """Take back from the parent what the replica missed, then file again."""
    from daiban.errors import DaibanError
    from daiban.i18n import _
    from daiban.sync.client import _refusal, bounded_page

    node = conn.node
    caught = Caught()
    after = 0
    for _page in range(1_000_000):  # bounded by what the parent holds
        status, data = await conn.post(RECOVER, {"after": after, "limit": PAGE})
        if status != 200 or not isinstance(data, dict):
            if isinstance(data, dict) and data.get("code") in ("revoked", "unknown_node", "bad_signature"):
                raise _refusal(status, data)  # a new PC that has not enrolled again yet
            message = data.get("error") if isinstance(data, dict) else status
            raise DaibanError(
                _("The parent could not hand back this node's history ({message}); try again.").format(
                    message=message
                ),
                code="rejoin",
            )
        # The answer verified (Connection.post); its numbers are bounded too.
        raws, certs, after, more = bounded_page(data, "after", after, PAGE, conn.url)
        with node.store.transaction():
            take_page(node, raws, certs, conn.parent, caught)
        if not more:
            break
    with node.store.transaction():
        _counter_past_own(node)
        # With children, numbers may have gone only down: go on above them.
        custody.caught_up(node.store, node.code)
        node.store.set_setting(PENDING, "0")
    journal.drain(node)
    node.rejoined()
    return caught


def take_page(node: Node, raws: list[Any], chains: list[Any], parent: str, caught: Caught) -> None:
    """Take in one page, in order; call inside a transaction."""
    now = stamp(node.clock())
    extra = journal.verify_chains(node, chains)
    journal.remember(node, extra)
    own_keys = retired.signing_keys(node, node.code, node.keys.sign_public)
    for raw in raws:
        try:
            env = env_mod.parse(raw)
        except EnvelopeError:
            caught.refused += 1
            continue
        known = node.store.envelope_row(env.id)
        if known is not None:
            continue  # the replica kept it
        if env.origin == node.code:
            if _take_own(node, env, own_keys, parent, now):
                caught.own += 1
            else:
                caught.refused += 1
            continue
        checked = journal.check(node, [raw], sender=parent, direction="down", extra=extra)
        journal.quarantine(node, checked.held, sender=parent)  # waits here for an upgrade
        if not checked.accepted:
            if env.kind not in routing.BROADCAST_KINDS:  # an old manifest is no news
                caught.refused += len(checked.refused)
            continue
        if env.kind == Kind.FILED and env.to == node.code:
            # An application addressed to this office: its receipt, if it
            # was made, is among this node's own envelopes; make none again.
            journal.restore_filed(node, env, parent, now)
        else:
            journal.store(node, checked.accepted, sender=parent)
        caught.other += 1


def _take_own(node: Node, env: Envelope, keys: list[bytes], parent: str, now: str) -> bool:
    """One of this node's own envelopes, back from the parent: its event, its
    application, its sealed personal part, as before the loss. It goes
    nowhere: the parent has it."""
    if node.store.envelope_at(env.origin, env.seq) is not None:
        node.store.record_conflict(env.id, env.digest, parent, now)
        return False
    if not env_mod.signed_by_any(env, keys):
        return False
    journal.restore_own(node, env, parent, now)
    return True


def _counter_past_own(node: Node) -> None:
    """The tracking-number counter never hands out a number already issued."""
    highest = node.store.highest_own_tracking(node.code)
    if not highest:
        return
    issued = int(highest[12:19])
    if issued > int(node.store.setting("tracking_counter", "0") or 0):
        node.store.set_setting("tracking_counter", str(issued))


def _certified(home: Path, code: str) -> str | None:
    """The fingerprint of the signing key a restored node's own certificate
    names (None before it enrolled, or at a city without one)."""
    from daiban.node.store import DB_NAME, Store
    from daiban.trust.crypto import fingerprint, unb64

    store = Store.open(home / DB_NAME)
    try:
        chain = store.cert_chain(code)
    finally:
        store.close()
    if not chain or not isinstance(chain[-1].get("sign"), str):
        return None
    return fingerprint(unb64(chain[-1]["sign"]))


def restore_node(
    home: Path, url: str, now: str, *, litestream: str | None = None, passphrase: str | None = None
) -> dict[str, Any]:
    """``daiban restore``: the database back from the replica, then made a
    node that rejoins. With the recovery passphrase, the keys kept beside the
    replica come back too and the node keeps its identity; a passphrase that
    does not open them is refused before anything is written. A restore that
    cannot finish leaves the home empty."""
    from daiban.node import backup, keybackup
    from daiban.node.store import DB_NAME
    from daiban.trust.crypto import keys_exist

    backup.refuse_occupied(home)
    recovered = None
    data = keybackup.in_replica(backup.folder_of(url))
    if data is not None and passphrase is not None and not keys_exist(home):
        recovered = keybackup.open_kept(data, passphrase, url)
    done = backup.restore(home, url, litestream=litestream)
    written: list[Path] = []
    try:
        if recovered is not None:
            written = keybackup.install(home, recovered, done["code"], _certified(home, done["code"]))
        restored = after_restore(home, now)
    except BaseException:
        keybackup.remove(written)
        for suffix in ("", "-wal", "-shm"):
            (home / (DB_NAME + suffix)).unlink(missing_ok=True)
        raise
    kept = {"keys_kept": data is not None, "keys_restored": recovered is not None}
    return {**done, **restored.as_dict(), **kept}
