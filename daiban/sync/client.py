"""The sync client: push this node's outbox to its parent in batches, then
pull what the parent holds for it. Custody ends only on the parent's
acknowledgement; the pull cursor moves only once pulled envelopes are stored.
Every request is signed over its body and a counter that only goes up."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp

from daiban.errors import DaibanError
from daiban.i18n import _
from daiban.node import (
    codechanges,
    custody,
    identity,
    journal,
    receipts,
    revocation,
    routing,
    statistics,
    upgrade,
)
from daiban.node.clock import stamp
from daiban.sync import answers, faults, protocol, recovery, revoked, status
from daiban.sync.protocol import ProtocolError
from daiban.trust.crypto import b64

if TYPE_CHECKING:
    from daiban.node.applications import Node
    from daiban.node.store import OutboxRow

TIMEOUT = aiohttp.ClientTimeout(total=120, connect=10, sock_read=60)
UNANSWERED = "push_unanswered"  # a setting: "1" while a push may have gone out unanswered


class SyncFailed(DaibanError):
    code = "sync"


@dataclass
class Report:
    pushed: int = 0
    duplicates: int = 0
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    pulled: int = 0
    left: int = 0
    recovered: int = 0  # taken back from the parent after a restore (recovery.py)
    push_seconds: float = 0.0
    pull_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "pushed": self.pushed,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined,
            "pulled": self.pulled,
            "left": self.left,
            "recovered": self.recovered,
            "ok": self.left == 0,
            "push_seconds": round(self.push_seconds, 3),
            "pull_seconds": round(self.pull_seconds, 3),
        }


class Connection:
    def __init__(self, node: Node, session: aiohttp.ClientSession, url: str, parent: str) -> None:
        self.node = node
        self.session = session
        self.url = url.rstrip("/")
        self.parent = parent

    def _next_counter(self) -> int:
        # Not waiting for the disk: a counter a crash undoes is used again,
        # the parent answers 409 with the one it holds, and post() jumps past.
        with self.node.store.transaction(durable=False):
            peer = self.node.store.peer(self.parent)
            counter = (peer["counter"] if peer else 0) + 1
            self.node.store.update_peer(self.parent, counter=counter)
        return counter

    async def post(self, path: str, value: Any) -> tuple[int, Any]:
        """Send a signed request; the parent's answer, once its signature has
        verified against the parent's certified key (answers.py). Nothing is
        taken from an answer that does not verify, and a 409's counter only
        within bounds."""
        body = protocol.encode(value)
        for _attempt in range(3):
            counter = self._next_counter()
            message = protocol.request_message("POST", path, body, counter, self.node.code, self.parent)
            signature = b64(self.node.keys.signature(message))
            headers = {
                protocol.H_NODE: self.node.code,
                protocol.H_COUNTER: str(counter),
                protocol.H_SIG: signature,
                "Content-Type": protocol.CONTENT_TYPE,
            }
            async with self.session.post(self.url + path, data=body, headers=headers) as resp:
                status, raw = resp.status, await read_answer(resp, self.url)
                header = resp.headers.get(answers.H_ANSWER)
            try:
                key = identity.sign_key_for(self.node, self.parent)
                answers.check(key, header, status, raw, signature, self.parent)
            except answers.AnswerError:
                # The parent lost its keys and enrolled again: its new
                # certificate, later than ours, verifies the answer (custody.py).
                if not parent_rekeyed(self.node, self.parent, header, status, raw, signature):
                    raise unverified(self.url) from None
            data = protocol.decode(raw)
            if status == 403 and isinstance(data, dict) and data.get("code") in revoked.CODES:
                raise revoked.refusal(self.node, self.parent, str(data["code"]), data)
            if status == 409 and isinstance(data, dict) and data.get("code") == "replayed":
                # Our counter is behind the parent's (a restored home): jump past it.
                theirs = data.get("counter")
                highest = min(counter + protocol.MAX_COUNTER_JUMP, protocol.MAX_POSITION)
                if not isinstance(theirs, int) or not _within(theirs, counter, highest):
                    raise bad_answer(self.url)
                with self.node.store.transaction():
                    peer = self.node.store.peer(self.parent)
                    mine = peer["counter"] if peer else 0
                    self.node.store.update_peer(self.parent, counter=max(mine, theirs))
                continue
            return status, data
        raise SyncFailed(_("The parent keeps refusing this node's request counter."))


def parent_rekeyed(
    node: Node, parent: str, header: str | None, status: int, raw: bytes, signature: str
) -> bool:
    """An answer the parent's known key does not verify: True (and the new
    certificate kept) when the answer carries a chain for the parent that
    verifies against the pinned root, was issued later than the one held
    here, and whose key verifies the answer. A parent restored without its
    keys, and enrolled again, answers so (node/custody.py)."""
    from daiban.node import moving
    from daiban.trust import certs as certs_mod

    root = identity.root_fingerprint(node)
    try:
        data = protocol.decode(raw)
        chain = data.get("chain") if isinstance(data, dict) else None
        if root is None or not isinstance(chain, list) or not 2 <= len(chain) <= certs_mod.MAX_CHAIN:
            return False
        leaf = certs_mod.verify_chain(chain, root, node.store.revoked())
        known = identity.known(node, parent)
        if leaf.code != parent or (known is not None and not moving.later(leaf.issued_at, known.issued_at)):
            return False
        answers.check(leaf.sign, header, status, raw, signature, parent)
    except (ProtocolError, certs_mod.CertError, answers.AnswerError, KeyError, TypeError, ValueError):
        return False
    with node.store.transaction():
        node.store.put_cert(parent, leaf.serial, chain, "ancestor", stamp(node.clock()))
    return True


async def read_answer(resp: aiohttp.ClientResponse, url: str) -> bytes:
    """An answer's body, read up to protocol.MAX_ANSWER bytes."""
    if resp.content_length is not None and resp.content_length > protocol.MAX_ANSWER:
        raise bad_answer(url)
    chunks: list[bytes] = []
    size = 0
    for _chunk in range(protocol.MAX_ANSWER):  # bounded: each round reads at least a byte or ends
        chunk = await resp.content.read(64 * 1024)
        if not chunk:
            break
        size += len(chunk)
        if size > protocol.MAX_ANSWER:
            raise bad_answer(url)
        chunks.append(chunk)
    return b"".join(chunks)


def _within(value: Any, low: int, high: int) -> bool:
    """An integer (not a bool) from low to high."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def unverified(url: str) -> SyncFailed:
    return SyncFailed(
        _(
            "The answer from {url} is not signed by the parent's certified key; nothing was "
            "changed here. Check the parent's address."
        ).format(url=url),
        code="unverified",
    )


def bad_answer(url: str) -> SyncFailed:
    return SyncFailed(
        _("The parent {url} sent an answer out of bounds; nothing was changed here.").format(url=url),
        code="bad_answer",
    )


def _refusal(status: int, data: Any) -> SyncFailed:
    code = data.get("code") if isinstance(data, dict) else ""
    if code == "revoked":
        return SyncFailed(
            _(
                "The parent refuses this node: its certificate is revoked. Ask the "
                "town or district to enroll it again."
            ),
            code="revoked",
        )
    if code in ("unknown_node", "bad_signature"):
        return SyncFailed(
            _("The parent does not recognise this node ({code}); enroll it again.").format(code=code),
            code=str(code),
        )
    if code == "protocol_version":
        theirs = data.get("protocol") if isinstance(data, dict) else None
        return SyncFailed(
            _(
                "The parent speaks sync protocol {theirs} and this node {ours}: more than one version "
                "apart. Upgrade the older of the two first."
            ).format(theirs=theirs if type(theirs) is int else "?", ours=protocol.PROTOCOL),
            code="protocol_version",
        )
    message = data.get("error") if isinstance(data, dict) else ""
    return SyncFailed(_("The parent answered {status}: {message}").format(status=status, message=message))


PUSH_BUDGET = "push_budget"
"""Node setting: the bytes of envelopes this node puts in one push to its
parent, learned from the link (unset: no bound but protocol.BATCH)."""
MIN_BUDGET = 8 * 1024
IN_FLIGHT = 2  # push batches sent before the oldest is answered


def _budget(node: Node) -> int | None:
    value = node.store.setting(PUSH_BUDGET)
    return int(value) if value and value.isdigit() else None


def _set_budget(node: Node, budget: int | None) -> None:
    with node.store.transaction():
        node.store.set_setting(PUSH_BUDGET, "" if budget is None else str(budget))


def _first_bytes(rows: list[OutboxRow], budget: int | None) -> list[OutboxRow]:
    """The first rows whose envelopes fit in ``budget`` bytes (at least one)."""
    if budget is None:
        return rows
    out: list[OutboxRow] = []
    total = 0
    for row in rows:
        total += len(row.raw)
        if out and total > budget:
            break
        out.append(row)
    return out


async def push(conn: Connection, report: Report) -> None:
    """Push the outbox in batches, two in flight: while the parent checks
    and stores one batch, the next is read, encoded and sent, and an answer
    is recorded only once the batch after it has gone out (the parent is
    never left idle while this node writes). A batch stays in the outbox
    until the parent's answer for it has been recorded. A
    push that gets no answer (the link dropped) halves the bytes of the
    next ones, down to MIN_BUDGET, so a slow link that drops still moves
    forward; each answered push doubles them again, back to no bound."""
    node = conn.node
    await announce(conn)
    # What the parent refused only because its build did not know it goes
    # again: upgraded since, it takes it (or has taken it from its
    # quarantine: a duplicate); else it is set aside again.
    with node.store.transaction():
        node.store.reoffer(routing.UP, upgrade.REEXAMINED, stamp(node.clock()))
    await give_back(conn)
    if node.store.setting(UNANSWERED) == "1":
        await let_go_of_what_the_parent_holds(conn, report)
    after = 0
    budget = _budget(node)
    # Oldest first: (the batch's rows, its answer to come).
    pending: collections.deque[tuple[list[OutboxRow], asyncio.Future[tuple[int, Any]]]] = collections.deque()

    def send_next() -> bool:
        nonlocal after
        batch = _first_bytes(node.store.outbox(routing.UP, after=after, limit=protocol.BATCH), budget)
        if not batch:
            return False
        value = {"certs": identity.chains_for(node, batch), "envelopes": [row.raw for row in batch]}
        pending.append((batch, asyncio.ensure_future(conn.post(protocol.PUSH, value))))
        after = batch[-1].n
        return True

    if node.store.outbox_count(routing.UP):
        with node.store.transaction():  # until every push is answered (a cut, a kill)
            node.store.set_setting(UNANSWERED, "1")
    try:
        for _round in range(1_000_000):  # bounded: each round sends a batch or settles one
            if len(pending) < IN_FLIGHT and send_next():
                continue
            if not pending:
                if node.store.setting(UNANSWERED) == "1":
                    with node.store.transaction():
                        node.store.set_setting(UNANSWERED, "")
                return
            rows, answer = pending[0]
            status, data = await answer
            pending.popleft()
            faults.point("push-answered")
            if budget is not None:
                budget = None if budget * 2 >= protocol.MAX_BODY else budget * 2
                _set_budget(node, budget)
            # The next batch goes out before this answer is recorded, so the
            # parent has it to work on meanwhile.
            if send_next():
                await asyncio.sleep(0)
            if not _settle(node, rows, status, data, report, conn.url):
                after = 0  # some were set aside: read the rest of that batch again
    except (TimeoutError, aiohttp.ClientError, OSError):
        if pending:
            size = sum(len(row.raw) for row in pending[0][0])
            _set_budget(node, max(MIN_BUDGET, min(budget or size, size) // 2))
        raise
    finally:
        for _rows, answer in pending:
            if not answer.done():
                answer.cancel()
            with contextlib.suppress(BaseException):  # its failure is the one raised, or moot
                await answer


async def let_go_of_what_the_parent_holds(conn: Connection, report: Report) -> None:
    """A push of this node's went unanswered (the link was cut, or the sync
    killed, after it went out): the parent may have stored it. Before sending
    anything again, ask what it holds of each origin of this node's area (a
    pull of nothing, with ``holds``; the answer is signed) and let go of what
    it has, filings into custody as an answered push would: on a slow link a
    lost answer must not cost the whole batch again."""
    node = conn.node
    request, _cursor, known = _pull_request(node, conn.parent, 0)
    request["holds"] = True
    status, data = await conn.post(protocol.PULL, request)
    if status != 200:
        raise _refusal(status, data)
    theirs = incarnation_of(data, conn.url)
    if known is not None and theirs is not None and theirs != known:
        return  # restored since: the pull that follows hands everything out again (custody.py)
    held = holds_of(data, conn.url)
    done = [
        row.id for row in node.store.outbox(routing.UP, limit=10**9) if row.seq <= held.get(row.origin, 0)
    ]
    with node.store.transaction():
        node.store.release(routing.UP, done)
        custody.keep(node, done)  # filings: until their office answers (custody.py)
        node.store.set_setting(UNANSWERED, "")
    report.duplicates += len(done)


async def announce(conn: Connection) -> None:
    """Hand the parent the chains of children newly enrolled here, in a push
    of their own (no envelopes): should one have been the parent's child, it
    learns that it moved (node/moving.py). Only the parent's verified
    acknowledgement ends the announcement."""
    node = conn.node
    announced = node.store.announced()[: protocol.MAX_BATCH]
    if not announced:
        return
    status, data = await conn.post(protocol.PUSH, {"certs": [c for _code, c in announced], "envelopes": []})
    if status != 200:
        raise _refusal(status, data)
    with node.store.transaction():
        node.store.clear_announced([code for code, _chain in announced])


async def give_back(conn: Connection) -> None:
    """After the parent was restored: hand it back its own envelopes held
    here above the number it holds (custody.py), in pushes of their own,
    before anything else goes up, so its receipts and decisions are back
    before the filings they answer."""
    node = conn.node
    above = custody.to_return(node, conn.parent)
    if above is None:
        return
    after = 0
    for _page in range(protocol.MAX_POSITION):  # bounded: each page moves past the last
        rows = custody.returning(node, conn.parent, above, after, protocol.BATCH)
        if not rows:
            break
        value = {"certs": [], "envelopes": [], "returned": [raw for _n, raw in rows]}
        status, data = await conn.post(protocol.PUSH, value)
        if status != 200:
            raise _refusal(status, data)
        after = rows[-1][0]
    with node.store.transaction():
        custody.returned(node, conn.parent)


def _settle(node: Node, rows: list[OutboxRow], status: int, data: Any, report: Report, url: str) -> bool:
    """Record the parent's (verified) answer to a push; False when envelopes
    were set aside. Only envelopes of this batch are let go or set aside."""
    ids = {row.id for row in rows}
    if status == 200:
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list) or len(results) > len(rows):
            raise bad_answer(url)
        verdicts = {r["id"]: r.get("status") for r in results if isinstance(r, dict) and r.get("id") in ids}
        # Held: the parent keeps it for an upgrade of its own; custody passed.
        done = [i for i, v in verdicts.items() if v in ("stored", "duplicate", "held")]
        # Not waiting for the disk: a crash that undoes this puts the batch
        # back in the outbox, and the next push sends it again (a duplicate
        # there, let go of then); nothing is lost, and a push waits for one
        # fsync less per batch.
        with node.store.transaction(durable=False):
            node.store.release(routing.UP, done)
            custody.keep(node, done)  # filings: until their office answers (custody.py)
        report.pushed += sum(1 for v in verdicts.values() if v in ("stored", "held"))
        report.duplicates += sum(1 for v in verdicts.values() if v == "duplicate")
        return True
    if status == 422 and isinstance(data, dict) and isinstance(data.get("refused"), list):
        if len(data["refused"]) > len(rows):
            raise bad_answer(url)
        now = stamp(node.clock())
        refused = [r for r in data["refused"] if isinstance(r, dict) and r.get("id") in ids]
        if not refused:
            raise _refusal(status, data)
        with node.store.transaction():
            for r in refused:
                node.store.set_aside(
                    r["id"], routing.UP, str(r.get("code", "")), str(r.get("reason", "")), now
                )
        report.quarantined.extend(refused)
        return False
    raise _refusal(status, data)


def _pull_request(node: Node, parent: str, limit: int) -> tuple[dict[str, Any], int, str | None]:
    """A pull's body: the cursor and the parent's incarnation it belongs to
    (node/custody.py); also the cursor and that incarnation."""
    peer = node.store.peer(parent)
    cursor = peer["cursor"] if peer else 0
    known = peer.get("incarnation") if peer else None
    request: dict[str, Any] = {"cursor": cursor, "limit": limit}
    if known:
        request["incarnation"] = known
    return request, cursor, known


def incarnation_of(data: Any, url: str) -> str | None:
    """The parent's incarnation in a (verified) answer, within bounds; None
    from a parent that does not say it (an older one)."""
    value = data.get("incarnation") if isinstance(data, dict) else None
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= protocol.MAX_INCARNATION:
        raise bad_answer(url)
    return value


def holds_of(data: Any, url: str) -> dict[str, int]:
    """What a restored parent holds of each origin (node/custody.py), within bounds."""
    held = data.get("holds", {}) if isinstance(data, dict) else None
    if (
        not isinstance(held, dict)
        or len(held) > protocol.MAX_BATCH + 1
        or not all(isinstance(k, str) and _within(v, 0, protocol.MAX_INTEGER) for k, v in held.items())
    ):
        raise bad_answer(url)
    return held


async def pull(conn: Connection, report: Report) -> None:
    """Pull pages until the parent has nothing more, each stored with its
    cursor in one transaction, then folded (statuses, receipts) while the
    next page is asked for: the parent prepares it meanwhile. A page that
    is not full ends it, unless it brought receipts while more filings
    still wait for theirs, or receipts this node relays to a child (the
    parent applies a large push a part at a time, service.PULL_APPLIES, and
    goes on by itself; _receipts_to_come)."""
    node = conn.node
    acked = True
    request, cursor, known = _pull_request(node, conn.parent, protocol.BATCH)
    answer = asyncio.ensure_future(conn.post(protocol.PULL, request))
    try:
        for _round in range(protocol.MAX_POSITION):  # bounded: the cursor goes up every round but the last
            status, data = await answer
            faults.point("pull-answered")
            if status != 200:
                raise _refusal(status, data)
            theirs = incarnation_of(data, conn.url)
            # The parent was restored since this cursor (a new incarnation): it
            # hands out its queue for this node from the start (custody.py).
            restarted = known is not None and theirs is not None and theirs != known
            asked = 0 if restarted else cursor
            raws, certs, new_cursor, more = bounded_page(data, "cursor", asked, protocol.BATCH, conn.url)
            held = holds_of(data, conn.url) if restarted else {}
            came = receipts.Tally(0, 0, 0)
            if raws or certs or restarted or (theirs is not None and theirs != known):
                # Certificates alone count too: one may show that a child of this
                # node has moved to the parent (node/moving.py).
                with node.store.transaction():
                    taken = journal.take_in(node, raws, certs, sender=conn.parent, direction="down")
                    if restarted:
                        custody.parent_restored(node, conn.parent, held)
                    # The cursor moves in the same transaction that stored the envelopes.
                    node.store.update_peer(conn.parent, cursor=new_cursor, incarnation=theirs or known)
                came = receipts.tally(raws, {v.id for v in taken.stored}, node.code)
                report.pulled += came.events
                acked = acked and not raws
            again = more or _receipts_to_come(node, conn.parent, came)
            if again:
                request, cursor, known = _pull_request(node, conn.parent, protocol.BATCH)
                answer = asyncio.ensure_future(conn.post(protocol.PULL, request))
                await asyncio.sleep(0)  # on its way before this page is folded
                faults.point("pull-asked-again")
            # What came down for this node is folded now, each batch in one
            # transaction: it was stored durably, with the cursor, above.
            journal.drain(node)
            if not again:
                break
    finally:
        if not answer.done():
            answer.cancel()
        with contextlib.suppress(BaseException):  # its failure is the one raised, or moot
            await answer
    if not acked:
        # Tell the parent we hold everything it sent, so it can let go of it.
        request, _cursor, _known = _pull_request(node, conn.parent, 0)
        await conn.post(protocol.PULL, request)


def _receipts_to_come(node: Node, parent: str, came: receipts.Tally) -> bool:
    """Whether to pull again after a page that was not full: it brought
    receipts (that verified and were stored now) for filings of this node's
    while more filings to the parent still wait for theirs, or receipts it
    relays to a child (the parent may be making more of those: one more pull
    tells). A parent cannot keep a child pulling with anything it did not
    sign, and a genuine one only while it has receipts to give."""
    return came.through > 0 or (came.here > 0 and node.store.awaiting_receipt(parent) > came.here)


def bounded_page(
    data: Any, key: str, asked: int, limit: int, url: str
) -> tuple[list[Any], list[Any], int, bool]:
    """A pull's or a recovery's page, within bounds: at most ``limit``
    envelopes, a position that moves past ``asked`` exactly when envelopes
    came (and never past MAX_POSITION), ``more`` only after a full page."""
    if not isinstance(data, dict):
        raise bad_answer(url)
    raws, certs, more = data.get("envelopes"), data.get("certs", []), data.get("more")
    position = data.get(key)
    if (
        not isinstance(raws, list)
        or len(raws) > limit
        or not isinstance(certs, list)
        or len(certs) > protocol.MAX_BATCH
        or not isinstance(more, bool)
        or (more and len(raws) < limit)
        or not isinstance(position, int)
        or not _within(position, asked + 1 if raws else asked, protocol.MAX_POSITION if raws else asked)
    ):
        raise bad_answer(url)
    return raws, certs, position, more


async def sync_once(node: Node, report: Report | None = None) -> Report:
    """Push what waits, pull what came. ``report`` is filled as the sync goes
    (a screen in another thread reads its counts growing) and returned."""
    report = Report() if report is None else report
    parent = node.parent()
    url = node.store.setting("parent_url")
    if node.role == "city":
        return report  # the root has no parent; its children come to it
    if parent is None or not url:
        raise SyncFailed(
            _("This node has not enrolled with a parent yet: run `daiban enroll URL CODE`."),
            code="not_enrolled",
        )
    gone = revocation.parent_revocation(node)
    if gone is not None:  # the parent is revoked: it is not asked anything any more
        raise revoked.parent_revoked(parent, gone[1])
    node.reseal_pending()
    with node.store.transaction():
        custody.reseal_kept(node)  # an office that lost its keys has a new one
    if not recovery.pending(node):
        statistics.flush(node)
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT, headers=protocol.PROTOCOL_HEADERS) as session:
            conn = Connection(node, session, url, parent)
            if recovery.pending(node):  # restored from a backup: catch up first
                caught = await recovery.rejoin(conn)
                report.recovered = caught.own + caught.other
                # A restored office publishes its statistics once it may
                # number its events again, not before.
                statistics.flush(node)
            # What a pull brings can make new envelopes to send (an office's
            # receipt for an application that came down): push again, a
            # bounded number of rounds.
            for _round in range(3):
                started = time.perf_counter()
                await push(conn, report)
                report.push_seconds += time.perf_counter() - started
                pulled = report.pulled
                started = time.perf_counter()
                await pull(conn, report)
                report.pull_seconds += time.perf_counter() - started
                if report.pulled == pulled or not node.store.outbox_count(routing.UP):
                    break
            started = time.perf_counter()
            await push(conn, report)
            report.push_seconds += time.perf_counter() - started
    except SyncFailed as exc:
        status.note_attempt(node, True, exc.code)  # the parent answered, and refused
        raise
    except (TimeoutError, aiohttp.ClientError, ProtocolError, OSError) as exc:
        report.left = node.store.outbox_count(routing.UP)
        status.note_attempt(node, False)
        raise SyncFailed(
            _(
                "The parent {url} cannot be reached ({error}); everything stays queued "
                "here and goes next time."
            ).format(url=url, error=type(exc).__name__),
            code="unreachable",
        ) from None
    with node.store.transaction():
        node.store.update_peer(parent, last_sync_at=stamp(node.clock()))
    status.note_attempt(node, True)
    report.left = node.store.outbox_count(routing.UP)
    return report


async def enroll(node: Node, url: str, enroll_code: str, root: str | None = None) -> dict[str, Any]:
    """Enroll with the parent at ``url`` using a one-time code."""
    from daiban.sync import service
    from daiban.trust import certs as certs_mod

    request: dict[str, Any] = {
        "v": 1,
        "code": node.code,
        "name": node.name,
        "sign": b64(node.keys.sign_public),
        "enc": b64(node.keys.enc_public),
        # Should this node have had a certificate before (a replaced PC), its
        # old key still vouches for envelopes up to here (retired.py).
        "resume_seq": node.store.next_seq(node.code) - 1,
    }
    request["mac"] = service.mac(enroll_code, request, node.code)
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT, headers=protocol.PROTOCOL_HEADERS) as session:
            async with session.post(
                url.rstrip("/") + protocol.ENROLL,
                data=protocol.encode(request),
                headers={"Content-Type": protocol.CONTENT_TYPE},
            ) as resp:
                status, raw = resp.status, await read_answer(resp, url)
                header = resp.headers.get(answers.H_ANSWER)
            data = protocol.decode(raw)
    except (TimeoutError, aiohttp.ClientError, ProtocolError, OSError) as exc:
        raise SyncFailed(
            _("The parent {url} cannot be reached ({error}).").format(url=url, error=type(exc).__name__),
            code="unreachable",
        ) from None
    if status != 200:
        reasons = {
            "code_used": _("This enrollment code has already been used; ask for a new one."),
            "code_expired": _("This enrollment code has expired; ask for a new one."),
            "wrong_code": _("The enrollment code is wrong; check it with the parent."),
            "code_locked": _("Too many wrong attempts; ask the parent for a new code."),
            "no_code": _("The parent has issued no enrollment code for {code}.").format(code=node.code),
        }
        code = data.get("code") if isinstance(data, dict) else ""
        raise SyncFailed(
            reasons.get(
                str(code),
                _("Enrollment refused: {message}").format(
                    message=data.get("error") if isinstance(data, dict) else status
                ),
            ),
            code=str(code or "enroll"),
        )
    if not isinstance(data, dict) or service.mac(enroll_code, data, node.code) != data.get("mac"):
        raise SyncFailed(
            _("The answer is not from the parent that issued this code; nothing was changed."),
            code="bad_answer",
        )
    fingerprint = str(data.get("root"))
    if root is not None and root.replace(" ", "").lower() != fingerprint.lower():
        raise SyncFailed(
            _("The parent's city root {got} is not the expected {want}; nothing was changed.").format(
                got=fingerprint, want=root
            ),
            code="untrusted_root",
        )
    try:
        if not isinstance(data.get("chain"), list) or not 2 <= len(data["chain"]) <= certs_mod.MAX_CHAIN:
            raise certs_mod.CertError("broken_chain", "the chain is not a list of 2 to 4 certificates")
        # A village below a town whose code changed keeps its code
        # (node/codechanges.py): the changes this node knows, or, on a new
        # PC, those of the city's manifest that comes with the answer.
        renamed = codechanges.renamed(node.division_changes()) or _renamed_by(data, fingerprint)
        leaf = certs_mod.verify_chain(data["chain"], fingerprint, (), renamed=renamed)
    except (certs_mod.CertError, KeyError, TypeError, AttributeError) as exc:
        raise SyncFailed(
            _("The certificate from the parent does not verify ({error}).").format(error=exc),
            code="bad_answer",
        ) from None
    if leaf.code != node.code or leaf.sign != node.keys.sign_public:
        raise SyncFailed(_("The parent certified another node; nothing was changed."), code="bad_answer")
    # The parent's own certificate, next to ours in the chain that just
    # verified, is the key every later answer is checked with: this one too.
    parent = data.get("parent")
    issuer = certs_mod.Cert.from_dict(data["chain"][-2])
    if not isinstance(parent, dict) or issuer.code != parent.get("code"):
        raise SyncFailed(_("The parent certified another node; nothing was changed."), code="bad_answer")
    try:
        answers.check(issuer.sign, header, status, raw, request["mac"], issuer.code)
    except answers.AnswerError:
        raise unverified(url) from None
    now = stamp(node.clock())
    with node.store.transaction():
        node.store.set_setting("root_fingerprint", fingerprint)
        node.store.set_setting("root_code", str(data.get("root_code") or data["chain"][0]["code"]))
        node.store.set_setting("parent_url", url.rstrip("/"))
        node.store.put_cert(node.code, leaf.serial, data["chain"], "self", now)
        for i in range(1, len(data["chain"])):
            ancestor = data["chain"][:i]
            node.store.put_cert(ancestor[-1]["code"], ancestor[-1]["serial"], ancestor, "ancestor", now)
        for old in node.store.peers("parent"):
            if old["code"] != str(parent["code"]):
                # Moved to another parent: the one left behind is kept as
                # 'former', so a bundle it made for this node is still taken in.
                node.store.set_relation(old["code"], "former")
        known = node.store.peer(str(parent["code"]))
        if known is None:
            node.store.put_peer(str(parent["code"]), "parent")
        elif known["relation"] != "parent":
            # Back with a parent it had left: a new link, the pull cursor
            # starts again (the request counter goes on).
            node.store.set_relation(str(parent["code"]), "parent", cursor=0)
        for chain in data.get("offices", []):
            try:
                identity.trust(node, chain, "directory", now)
            except certs_mod.CertError:
                continue
        if data.get("manifest"):
            journal.take_in(node, [data["manifest"]], [], sender=str(parent["code"]), direction="down")
    return {"parent": parent, "root": fingerprint, "serial": leaf.serial}


def _renamed_by(data: dict[str, Any], fingerprint: str) -> dict[str, str]:
    """The division code changes (old -> new) of the manifest an enrollment
    answer carries, if the city root of the answer's chain (the pinned
    fingerprint) signed it; else none."""
    from daiban.trust import certs as certs_mod
    from daiban.trust import envelope as env_mod
    from daiban.trust.crypto import CryptoError, verify

    try:
        root = certs_mod.Cert.from_dict(data["chain"][0])
        if root.fingerprint != fingerprint or root.issuer != root.code:
            return {}
        env = env_mod.parse(data["manifest"])
        if env.kind != "manifest" or env.origin != root.code:
            return {}
        verify(root.sign, env.sig, env_mod.signed_bytes(env))
    except (certs_mod.CertError, env_mod.EnvelopeError, CryptoError, KeyError, TypeError, ValueError):
        return {}
    return codechanges.renamed(codechanges.from_body(env.body.get("divisions")))
