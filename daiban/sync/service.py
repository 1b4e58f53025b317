"""What the server does for each request, as plain functions that run on the
node's single writer thread: authenticate, push, pull, enroll. The aiohttp
layer (server.py) only moves bytes to and from them."""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from stdnum import damm

from daiban.node import codechanges, custody, identity, journal, moving, retired, revocation
from daiban.node.clock import CST, stamp
from daiban.sync import faults
from daiban.sync.protocol import (
    BATCH,
    H_COUNTER,
    H_NODE,
    H_SIG,
    MAX_BATCH,
    MAX_INTEGER,
    ProtocolError,
    request_message,
)
from daiban.trust import certs as certs_mod
from daiban.trust.crypto import CryptoError, canonical, random_id, unb64, verify

if TYPE_CHECKING:
    from daiban.node.applications import Node

ENROLL_DIGITS = 10
PULL_APPLIES = 1000
"""A pull applies at most about this many of what its child pushed before
it answers: the receipts of a large push come back a page at a time, the
server applying the next part while the child folds the last (the server
goes on by itself, server.py), instead of the child waiting for all of it."""
MAX_ENROLL_FAILURES = 5


def request_parts(headers: Mapping[str, str]) -> tuple[str, int, bytes]:
    """The code, counter and signature a request claims (401 when they are
    not shaped as they must be); nothing checked against anything yet."""
    code = headers.get(H_NODE, "")
    text = headers.get(H_COUNTER, "")
    # Plain decimal digits only (int() would also take "+1", " 1", "1_0"),
    # within the 64 bits the counter is stored in.
    if not (text.isascii() and text.isdigit() and len(text) <= 19 and int(text) <= MAX_INTEGER):
        raise ProtocolError(401, "unauthenticated", "request is not signed")
    try:
        sig = unb64(headers.get(H_SIG, ""))
    except CryptoError:
        raise ProtocolError(401, "unauthenticated", "request is not signed") from None
    return code, int(text), sig


def signature_ok(
    key: bytes, sig: bytes, method: str, path: str, body: bytes, counter: int, code: str, server: str
) -> bool:
    """Whether ``sig`` is ``code``'s signature (``key``) over this request to ``server``."""
    try:
        verify(key, sig, request_message(method, path, body, counter, code, server))
    except CryptoError:
        return False
    return True


def children_keys(node: Node) -> list[tuple[str, bytes, int]]:
    """Each enrolled child's certified signing key and last counter, as
    authenticate finds them (a revoked one left out): what a server's first
    look at a request needs (sync/server.py, Senders)."""
    revoked = node.store.revoked()
    out = []
    for peer in node.store.peers("child"):
        cert = identity.known(node, peer["code"])
        if cert is not None and cert.serial not in revoked:
            out.append((str(peer["code"]), cert.sign, int(peer["counter"])))
    return out


def authenticate(
    node: Node,
    headers: Mapping[str, str],
    method: str,
    path: str,
    body: bytes,
    verified: bytes | None = None,
) -> tuple[str, int, bytes]:
    """The child a request comes from, its counter and its certified signing
    key, after checking its signature and counter. It reads and changes
    nothing else: the server calls it over the body as sent, before
    inflating anything (unless sync/server.py's Senders could tell), and
    again in the transaction that acts on the request and records the
    counter. ``verified``: the key this very request's signature was
    verified with already (the server, off its writer thread); when it is
    the child's certified key now, the signature is not verified twice."""
    code, counter, sig = request_parts(headers)
    peer = node.store.peer(code)
    cert = identity.known(node, code)
    if peer is None or peer["relation"] not in ("child", "revoked") or cert is None:
        raise ProtocolError(401, "unknown_node", f"{code or '?'} is not enrolled here")
    if cert.serial in node.store.revoked():
        # The signed revocation goes with the refusal: the revoked node can
        # check it, and show its own children (node/revocation.py).
        raise ProtocolError(403, "revoked", f"{code} is revoked", **revocation.proof(node, cert.serial))
    if peer["relation"] != "child":
        raise ProtocolError(401, "unknown_node", f"{code} is not enrolled here")
    if not (verified is not None and hmac.compare_digest(verified, cert.sign)) and not signature_ok(
        cert.sign, sig, method, path, body, counter, code, node.code
    ):
        raise ProtocolError(401, "bad_signature", "request signature does not verify")
    own = revocation.own_revocation(node)
    if own is not None:
        # This node is revoked: its children must enroll elsewhere. It only
        # passes on the ancestor's signed revocation; they check it themselves.
        raise ProtocolError(
            403, "parent_revoked", f"{node.code} is revoked: enroll elsewhere", **revocation.proof(node, own)
        )
    if counter <= peer["counter"]:
        raise ProtocolError(409, "replayed", "request counter was used before", counter=peer["counter"])
    return code, counter, cert.sign


def push(
    node: Node,
    headers: Mapping[str, str],
    path: str,
    body: bytes,
    data: Any,
    prepared: Sequence[journal.Prepared] | None = None,
    verified: bytes | None = None,
) -> dict[str, Any]:
    """Check, authorise and store a batch a child hands up; ``prepared``:
    the batch already parsed and checked for shape (journal.prepare) off the
    writer; ``verified``: as authenticate takes it."""
    envelopes = _list(data, "envelopes")
    chains = data.get("certs", []) if isinstance(data, dict) else []
    if not isinstance(chains, list) or len(chains) > MAX_BATCH:
        raise ProtocolError(400, "malformed", "certs must be a list of certificate chains")
    refused: list[journal.Verdict] = []
    returned = data.get("returned", []) if isinstance(data, dict) else []
    with node.store.transaction():
        code, counter, _key = authenticate(node, headers, "POST", path, body, verified)
        # This node's own envelopes back from a child after a restore
        # (node/custody.py): taken back first, so that the receipts and
        # decisions they hold are here before the filings they answer.
        taken_back = custody.take_back(node, returned, code) if returned else None
        extra = journal.verify_chains(node, chains)
        checked = journal.check(node, envelopes, sender=code, direction="up", extra=extra, prepared=prepared)
        if checked.refused:
            refused = checked.refused
        else:
            journal.remember(node, extra)
            stored = journal.store(node, checked.accepted, sender=code)
            # Held for an upgrade: in this node's custody now, the child lets go.
            journal.quarantine(node, checked.held, sender=code)
            now = stamp(node.clock())
            if checked.duplicates:
                moving.pass_on(node, [v.id for v in checked.duplicates], code, now)
            node.store.update_peer(code, counter=counter, last_seen_at=now, last_sync_at=now)
            origins = sorted({e.origin for e in checked.accepted})
            answer = {
                "ok": True,
                "results": journal.as_results(stored + checked.duplicates + checked.held),
                "high_water": node.store.high_water(origins),
                "incarnation": custody.incarnation(node.store),
            }
            if taken_back is not None:
                answer["returned"] = taken_back
            rekeyed = custody.own_chain_if_rekeyed(node)
            if rekeyed is not None:
                answer["chain"] = rekeyed
    if not refused:
        faults.after_commit("push-stored")
        return answer
    # Nothing from a batch with a refused envelope is stored; the child sets
    # those aside and pushes the rest again. Conflicts are flagged all the same.
    now = stamp(node.clock())
    with node.store.transaction():
        for v in refused:
            if v.code == "conflict":
                node.store.record_conflict(v.id, "", code, now)
        journal.quarantine(node, refused, sender=code)
    raise ProtocolError(
        422,
        "refused",
        f"{len(refused)} envelope(s) refused; nothing was stored",
        refused=journal.as_results(refused),
    )


def pull(
    node: Node,
    headers: Mapping[str, str],
    path: str,
    body: bytes,
    data: Any,
    verified: bytes | None = None,
    *,
    following: bool = False,
) -> dict[str, Any]:
    """A child's pull. ``following``: this server is applying the rest of
    that child's pushes on its own already (server.Writer.apply_for); then
    receipts it has made since are handed out at once, nothing more applied
    first."""
    cursor = data.get("cursor") if isinstance(data, dict) else None
    limit = data.get("limit", BATCH) if isinstance(data, dict) else None
    if (
        not isinstance(cursor, int)
        or isinstance(cursor, bool)
        or cursor < 0
        or not isinstance(limit, int)
        or isinstance(limit, bool)
        or not 0 <= limit <= MAX_BATCH
    ):
        raise ProtocolError(400, "malformed", "pull needs a cursor >= 0 and a limit up to 1000")
    with node.store.transaction():
        code, counter, _key = authenticate(node, headers, "POST", path, body, verified)
        # What this child pushed is applied before it pulls, so its
        # push-then-pull brings back the receipts of what it just pushed
        # (of a large push, the first PULL_APPLIES: the child pulls again
        # while receipts keep coming). Only its own: no pull waits for every
        # other child's filings (the idle applier takes those, server.py).
        if not (following and node.store.receipts_after(code, cursor)):
            journal.drain(node, sender=code, most=PULL_APPLIES)
        mine = custody.incarnation(node.store)
        # A cursor of an earlier incarnation of this node (it was restored
        # since): it does not count here; the queue is handed out from the
        # start, and the child learns what this node holds (custody.py).
        stale = data.get("incarnation", mine) != mine
        if stale:
            cursor = 0
        else:
            # The child has durably stored everything up to its cursor: custody ends.
            node.store.release_through(code, cursor)
        now = stamp(node.clock())
        node.store.update_peer(code, counter=counter, cursor=cursor, last_seen_at=now, last_sync_at=now)
        rows = node.store.outbox(code, after=cursor, limit=limit) if limit else []
        chains = identity.chains_for(node, rows)
        # Children enrolled here inside this child's area: should one have
        # been this child's before, it sees that it moved (node/moving.py).
        chains += moving.chains_below(node, code, MAX_BATCH - len(chains))
        # Asked (a push of the child's went unanswered), or after a restore.
        held = custody.holds(node, code) if stale or data.get("holds") is True else None
        rekeyed = custody.own_chain_if_rekeyed(node)
    faults.after_commit("pull-served")
    answer = {
        "ok": True,
        "envelopes": [row.raw for row in rows],
        "cursor": rows[-1].n if rows else cursor,
        "more": len(rows) == limit and limit > 0,
        "certs": chains,
        "incarnation": mine,
    }
    if held is not None:
        answer["holds"] = held
    if rekeyed is not None:
        answer["chain"] = rekeyed
    return answer


def _list(data: Any, key: str) -> list[Any]:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, list) or len(value) > MAX_BATCH:
        raise ProtocolError(400, "malformed", f"{key} must be a list of at most {MAX_BATCH}")
    return value


# -- enrollment -------------------------------------------------------------


def new_enroll_code(node: Node, child: str, name: str, hours: float) -> tuple[str, str]:
    """At a parent: a one-time code for ``child``, with a Damm check digit."""
    if not certs_mod.extends(child, node.code, codechanges.renamed(node.division_changes())):
        raise certs_mod.CertError("name_constraint", f"{node.code} may not enroll {child}")
    if identity.own_chain(node) is None:
        raise certs_mod.CertError("not_enrolled", "this node is not enrolled itself yet")
    digits = "".join(secrets.choice("0123456789") for _ in range(ENROLL_DIGITS))
    code = digits + damm.calc_check_digit(digits)
    expires = stamp(node.clock() + dt.timedelta(hours=hours))
    with node.store.transaction():
        node.store.put_enroll_code(child, code, name, expires)
    return code, expires


def enroll_key(enroll_code: str, child: str) -> bytes:
    """The enrollment code stretched with scrypt (about a quarter of a
    second): someone who overhears an enrollment cannot try the 10^10 codes
    offline in any useful time. The server derives it off its writer thread."""
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=f"daiban-enroll|{child}".encode(), length=32, n=2**15, r=8, p=1).derive(
        enroll_code.encode()
    )


def mac_with(key: bytes, value: Mapping[str, Any]) -> str:
    """HMAC (``key``: enroll_key) over a message, its own "mac" left out."""
    return hmac.new(key, canonical({k: v for k, v in value.items() if k != "mac"}), "sha256").hexdigest()


def mac(enroll_code: str, value: Mapping[str, Any], child: str) -> str:
    """HMAC over a message, keyed by the enrollment code stretched with scrypt."""
    return mac_with(enroll_key(enroll_code, child), value)


def issued_code(node: Node, data: Any) -> str | None:
    """The one-time code issued here for the child an enrollment request
    names, if any (read only: the server stretches it off the writer)."""
    if not isinstance(data, dict):
        return None
    record = node.store.enroll_code(str(data.get("code", "")))
    if record is None or record["used_at"] or record["failures"] >= MAX_ENROLL_FAILURES:
        return None  # refused before any stretching (enroll)
    return str(record["enroll_code"])


def enroll(node: Node, data: Any, derived: tuple[str, bytes] | None = None) -> dict[str, Any]:
    """A child enrolls with its one-time code. The code never crosses the
    wire: both sides prove they know it with an HMAC over what they send.
    ``derived``: (a code, its enroll_key) stretched beforehand; used only if
    it is the code on record now (a new code issued meanwhile is stretched
    here), for the request's mac and the answer's alike."""
    if not isinstance(data, dict):
        raise ProtocolError(400, "malformed", "enrollment request must be a JSON object")
    child = str(data.get("code", ""))
    with node.store.transaction():
        record = node.store.enroll_code(child)
        if record is None:
            raise ProtocolError(404, "no_code", f"no enrollment code was issued here for {child}")
        if record["used_at"]:
            raise ProtocolError(409, "code_used", "this enrollment code has been used")
        now_dt = node.clock()
        if dt.datetime.fromisoformat(record["expires"]) < now_dt:
            raise ProtocolError(410, "code_expired", "this enrollment code has expired")
        if record["failures"] >= MAX_ENROLL_FAILURES:
            raise ProtocolError(429, "code_locked", "too many wrong attempts; issue a new code")
        if derived is not None and hmac.compare_digest(derived[0], str(record["enroll_code"])):
            key = derived[1]
        else:
            key = enroll_key(record["enroll_code"], child)
        if not hmac.compare_digest(mac_with(key, data), str(data.get("mac", ""))):
            node.store.update_enroll_code(child, failures=record["failures"] + 1)
            failed = True
        else:
            failed = False
    if failed:
        raise ProtocolError(403, "wrong_code", "the enrollment code does not match")
    try:
        sign, enc = unb64(data["sign"]), unb64(data["enc"])
    except (KeyError, CryptoError):
        raise ProtocolError(400, "malformed", "enrollment request lacks the child's keys") from None
    if len(sign) != 32 or len(enc) != 32:
        raise ProtocolError(400, "malformed", "the child's keys must be 32-byte Ed25519 and X25519 keys")
    now = stamp(node.clock())
    with node.store.transaction():
        previous = identity.known(node, child)
        previous_chain = node.store.cert_chain(child) or []
        cert = certs_mod.issue(
            issuer_code=node.code,
            issuer_sign=node.keys.sign,
            code=child,
            name=record["name"],
            sign=sign,
            enc=enc,
            serial=random_id(),
            # Milliseconds: of two certificates for one code, the later is in
            # force (a child that moved, node/moving.py), even a second apart.
            issued_at=node.clock().astimezone(CST).isoformat(timespec="milliseconds"),
            renamed=codechanges.renamed(node.division_changes()),
        )
        chain = [*(identity.own_chain(node) or []), cert.as_dict()]
        if previous is not None and previous.serial != cert.serial and previous.sign != cert.sign:
            # A replaced PC enrolls again under the same code: retire the old
            # certificate. (A child that moves here from another parent, or
            # enrolls again, keeps its keys: there is nothing to retire.)
            retired.retire(node, child, previous, previous_chain, data.get("resume_seq"), now)
        node.store.put_cert(child, cert.serial, chain, "child", now)
        node.store.set_cert_relation(child, "child")
        node.store.update_enroll_code(child, used_at=now)
        # A child again if it had moved away; envelopes held for it, or
        # queued toward it by another way, go to it now (node/moving.py).
        moving.child_enrolled(node, child, now)
        manifest = node.store.latest_manifest()
        response = {
            "ok": True,
            "chain": chain,
            "root": identity.root_fingerprint(node),
            "root_code": node.store.setting("root_code"),
            "parent": {"code": node.code, "name": node.name},
            "offices": [c["chain"] for c in node.store.certs() if len(c["code"]) < 12],
            "manifest": manifest,
        }
    response["mac"] = mac_with(key, response)
    return response
