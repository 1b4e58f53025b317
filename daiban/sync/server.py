"""The node's HTTP server for its children (aiohttp): /v1/enroll, /v1/push,
/v1/pull, /v1/recover (a child restored from its backup), /v1/healthz,
/metrics. The node's database has one writer, a single thread that owns the
connection; handlers hand it work and wait.

A body is read only through aiohttp's size-checked reader. A signed request
(push, pull, recover) is authenticated over the bytes as sent before anything
is inflated or parsed; an unsigned one (enroll) may inflate to 64 KiB only.
Inflating and parsing run on a small pool of threads, never on the event
loop, so /v1/healthz stays answered under a flood. Every refusal answers in
one JSON shape, including what aiohttp's HTTP parser refuses itself (an
oversized header). The server checks at each request that its database file
is still the one it opened: deleted or replaced, it acknowledges nothing
more (503 ``database_gone``). Every request is timed and logged (route,
status, the sending node's code — never a body); a district also syncs with
its parent on a schedule (sync/schedule.py)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import queue
import random
import signal
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import ClientConnectionResetError, web
from aiohttp.http_exceptions import LineTooLong

from daiban import __version__
from daiban.collector import collect_less
from daiban.node import admission, journal
from daiban.node.store import DB_NAME
from daiban.sync import answers, faults, metrics, protocol, recovery, service
from daiban.sync.protocol import ProtocolError
from daiban.sync.serve_config import ServeConfig

log = logging.getLogger("daiban.server")


IDLE_BEFORE_APPLY = 0.25  # seconds without a request before queued effects are applied
APPLY_CHUNK = 100
APPLY_FOR_CHUNK = 500  # of one child's pushes, after its pull (Writer.apply_for)
APPLY_AT_LEAST_EVERY = 0.5  # seconds: a chunk applied this often even while requests never pause
MAX_GROUP = 64  # calls run in one transaction and one COMMIT at most
DECODE_THREADS = 2  # bodies inflated and parsed at once, off the event loop
# aiohttp's own limits on the request line and headers, named so the refusal
# can say them; past them the answer is 431 in the JSON shape (_Handler).
MAX_LINE = 8190
MAX_HEADERS = 128
KEEPALIVE = 15.0
DATABASE_FILES = ("", "-wal")  # the database and its write-ahead log, as opened


def _identity(path: Path) -> tuple[int, int] | None:
    """The file at ``path`` (device, inode), or None when there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


class _Job:
    """One call handed to the writer: ``fn(node, *args)``, answered through
    ``future`` on the event loop ``loop`` once what it did is committed."""

    __slots__ = ("args", "failed", "fn", "future", "loop", "outcome")

    def __init__(
        self, fn: Callable[..., Any], args: tuple[Any, ...], loop: asyncio.AbstractEventLoop | None
    ) -> None:
        self.fn = fn
        self.args = args
        self.loop = loop
        self.future: asyncio.Future[Any] | concurrent.futures.Future[Any]
        if loop is None:
            self.future = concurrent.futures.Future()
        else:
            self.future = loop.create_future()
        self.outcome: Any = None
        self.failed = False

    def answer(self) -> None:
        """Hand the caller its outcome (on its event loop, if it has one)."""

        def settle() -> None:
            if self.future.done():  # the caller gave up waiting (cancelled)
                return
            if self.failed:
                self.future.set_exception(self.outcome)
            else:
                self.future.set_result(self.outcome)

        if self.loop is None:
            settle()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
                self.loop.call_soon_threadsafe(settle)


_STOP = object()  # put on the writer's queue to end its thread


class Writer:
    """One thread that owns the node (and so the SQLite connection).

    Group commit: the thread takes every call queued at the moment (at most
    MAX_GROUP), runs them in one transaction, each in a savepoint of its own,
    commits once and only then answers each: nothing is acknowledged before
    it is on disk, and with many requests in flight one fsync serves tens of
    them. A call keeps what its own transactions (savepoints now) kept, as
    it would alone: a refusal (ProtocolError, e.g. a 422 that quarantined
    what it refused) releases its savepoint; any other exception rolls back
    the call's savepoint, nothing else of the group. Should the group's
    COMMIT fail, or SQLite abandon the transaction, every call of the group
    gets that error and nothing of it is stored."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._node: Any = None
        self._last_request = 0.0
        self._applier: asyncio.Task[None] | None = None
        self._following: dict[str, asyncio.Task[None]] = {}
        self._files: dict[Path, tuple[int, int]] = {}
        self._gone: str | None = None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="daiban-writer", daemon=True)
        self._thread.start()
        self.info: dict[str, Any] = self._blocking(self._open)

    def _blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn`` on the writer thread from outside any event loop, and wait."""
        job = _Job(fn, args, None)
        self._queue.put(job)
        future = job.future
        assert isinstance(future, concurrent.futures.Future)
        return future.result()

    def _open(self, _node: Any) -> dict[str, Any]:
        from daiban.node.home import open_node

        node = open_node(self.home, actor="server")
        self._node = node
        # Which files the connection holds open: should one be deleted or
        # replaced, whatever is written goes where nobody will read it.
        db = self.home / DB_NAME
        self._files = {
            path: found
            for path in (db.with_name(db.name + suffix) for suffix in DATABASE_FILES)
            if (found := _identity(path)) is not None
        }
        return {
            "code": node.code,
            "role": node.role,
            "name": node.name,
            "root": node.store.setting("root_fingerprint"),
        }

    # -- the writer thread ---------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:  # until close() sends _STOP, after the last call
            first = self._queue.get()
            if first is _STOP:
                break
            jobs = [first]
            wanted = faults.group_wanted()
            deadline = time.monotonic() + faults.WAIT
            while len(jobs) < MAX_GROUP:
                try:
                    if wanted and 0 < _pushes(jobs) < wanted and time.monotonic() < deadline:
                        job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                    else:
                        job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    stopping = True
                    break
                jobs.append(job)
            if wanted and _pushes(jobs):  # the group a test asked for is formed
                faults.grouped(len(jobs), _pushes(jobs))
            if self._node is None:  # opening: nothing to group
                for job in jobs:
                    self._alone(job)
            else:
                self._group(jobs)
        if self._node is not None:
            self._node.close()
            self._node = None

    def _alone(self, job: _Job) -> None:
        try:
            job.outcome = job.fn(self._node, *job.args)
        except BaseException as exc:  # handed to its caller, whatever it is
            job.outcome, job.failed = exc, True
        job.answer()

    def _group(self, jobs: list[_Job]) -> None:
        conn = self._node.store.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            for job in jobs:
                job.outcome, job.failed = exc, True
                job.answer()
            return
        faults.group_open()
        abandoned: BaseException | None = None
        for job in jobs:
            if abandoned is not None:
                job.outcome, job.failed = abandoned, True
                continue
            conn.execute("SAVEPOINT daiban_call")
            try:
                job.outcome = job.fn(self._node, *job.args)
            except ProtocolError as exc:
                # A refusal: what the call's own transactions kept stays, as
                # it would had the call run alone (a 422 quarantines).
                job.outcome, job.failed = exc, True
                keep = True
            except BaseException as exc:  # a bug: this call's work is undone, nothing else
                job.outcome, job.failed = exc, True
                keep = False
            else:
                keep = True
            if not conn.in_transaction:
                # SQLite gave the transaction up (a full disk, an I/O error):
                # the calls run before this one lost their work too.
                abandoned = job.outcome if job.failed else sqlite3.OperationalError("transaction abandoned")
                continue
            if not keep:
                conn.execute("ROLLBACK TO SAVEPOINT daiban_call")
            conn.execute("RELEASE SAVEPOINT daiban_call")
        if abandoned is None:
            try:
                conn.execute("COMMIT")
            except BaseException as exc:
                abandoned = exc
        if abandoned is not None:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            faults.group_discarded()
            log.error("group not committed: its calls stored nothing", exc_info=abandoned)
            for job in jobs:
                job.outcome, job.failed = abandoned, True
        else:
            faults.group_committed()  # the crash points past a commit (sync/faults.py)
        for job in jobs:
            job.answer()

    # -- from the event loop -------------------------------------------------

    def gone(self) -> str | None:
        """Why the database this server opened is no longer the one at its
        path ("deleted" or "replaced"), or None while it is. Two stat calls;
        once gone, it stays gone (logged the first time): only a restart
        opens the file now there."""
        if self._gone is None:
            for path, opened in self._files.items():
                try:
                    now = _identity(path)
                except OSError:  # the home made unreadable: as good as gone
                    now = None
                if now != opened:
                    self._gone = "deleted" if now is None else "replaced"
                    log.error(
                        "database gone: nothing is acknowledged until serve is restarted",
                        extra={"file": path.name, "reason": self._gone},
                    )
                    break
        return self._gone

    def check_database(self) -> None:
        """Refuse (503 ``database_gone``) once the database is gone."""
        reason = self.gone()
        if reason is not None:
            raise ProtocolError(
                503,
                "database_gone",
                f"this node's database file was {reason} while the server ran; nothing is "
                "acknowledged until `daiban serve` is restarted",
                reason=reason,
            )

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self.submit(fn, *args)

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Hand ``fn`` to the writer now (its queue is first in, first out);
        its answer comes once the group it ran in is committed."""
        job = _Job(fn, args, asyncio.get_running_loop())
        self._queue.put(job)
        future = job.future
        assert isinstance(future, asyncio.Future)
        return future

    def busy(self) -> None:
        self._last_request = time.monotonic()

    def apply_later(self) -> None:
        """After a push: apply the effects it queued once requests pause, so a
        child pushing batch after batch is never kept waiting for them."""
        if self._applier is None or self._applier.done():
            self._applier = asyncio.get_running_loop().create_task(self._apply_when_idle())

    async def _apply_when_idle(self) -> None:
        applied_at = time.monotonic()
        for _round in range(1_000_000):  # bounded: each round applies a chunk or waits for a pause
            if self.gone() is not None:
                return
            now = time.monotonic()
            idle = now - self._last_request
            # A child's pull applies its own pushes (service.pull); what
            # nobody pulls for is applied in a pause, or a chunk at a time
            # while requests never pause.
            wait = min(IDLE_BEFORE_APPLY - idle, APPLY_AT_LEAST_EVERY - (now - applied_at))
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            applied_at = time.monotonic()
            if not await self.call(journal.apply_queued, APPLY_CHUNK):
                return

    def apply_for(self, sender: str) -> None:
        """After a pull that left part of its child's pushes unapplied
        (service.PULL_APPLIES): go on applying them now, a chunk at a time
        (other requests take their turn between chunks), so the child's next
        pull finds their receipts made while it folded the last ones."""
        task = self._following.get(sender)
        if task is None or task.done():
            self._following = {k: t for k, t in self._following.items() if not t.done()}
            self._following[sender] = asyncio.get_running_loop().create_task(self._apply_from(sender))

    def following(self, sender: str) -> bool:
        """Whether the rest of ``sender``'s pushes is being applied (apply_for)."""
        task = self._following.get(sender)
        return task is not None and not task.done()

    async def _apply_from(self, sender: str) -> None:
        for _round in range(1_000_000):  # bounded: each round applies a chunk, or ends
            if self.gone() is not None:
                return
            try:
                if not await self.call(journal.apply_queued, APPLY_FOR_CHUNK, sender):
                    return
            except Exception as exc:  # what is left waits for the idle applier or the next pull
                log.error("applying a child's pushes failed", exc_info=exc, extra={"node": sender})
                return

    async def stop_applying(self) -> None:
        tasks = [t for t in (self._applier, *self._following.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def close(self) -> None:
        """Answer every call queued so far, then close the node (on its own
        thread: the connection is that thread's) and end the thread."""
        self._queue.put(_STOP)
        self._thread.join()


def _pushes(jobs: list[_Job]) -> int:
    return sum(1 for job in jobs if job.fn is _pushing)


WRITER = web.AppKey("writer", Writer)
ANSWERS = web.AppKey("answers", tuple)  # (this node's code, its Ed25519 signing key)
BOUND_TO = "daiban.bound_to"  # set on an enroll request once its mac is read
SIGNED_PATHS = frozenset({protocol.PUSH, protocol.PULL, protocol.ENROLL, recovery.RECOVER})
METRICS = web.AppKey("metrics", metrics.ServerMetrics)
CONFIG = web.AppKey("config", ServeConfig)
DECODER = web.AppKey("decoder", concurrent.futures.ThreadPoolExecutor)
METRICS_PATH = "/metrics"


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=protocol.encode(value), status=status, content_type=protocol.CONTENT_TYPE)


def _error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return _json(protocol.error_body(status, code, message, **extra), status)


def _route(request: web.Request) -> str:
    """The route's pattern, never the raw path: bounded label values, and
    nothing a client typed ends up in a metric or a log line."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _sender(request: web.Request) -> str:
    """The division code a request claims to come from, if it is shaped like
    one; anything else a client put there stays out of the log."""
    code = request.headers.get(protocol.H_NODE, "")
    if not code or (code.isascii() and code.isdigit() and len(code) in (4, 6, 9, 12)):
        return code
    return "invalid"


@web.middleware
async def observe(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    """Time and count every request, and log one line for it."""
    started = time.perf_counter()
    status = 500
    try:
        response: web.StreamResponse = await handler(request)
        status = response.status
        return response
    finally:
        seconds = time.perf_counter() - started
        path = _route(request)
        request.app[METRICS].answered(path, status, seconds)
        if path != METRICS_PATH:  # a scrape every few seconds would drown the log
            log.info(
                "request",
                extra={
                    "method": request.method,
                    "path": path,
                    "status": status,
                    "seconds": round(seconds, 4),
                    "node": _sender(request),
                },
            )


@web.middleware
async def sign_answers(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    """Every answer to push, pull, recover and enroll, errors included, signed
    with this node's key and bound to the request it answers (answers.py)."""
    response: web.StreamResponse = await handler(request)
    if request.path in SIGNED_PATHS and isinstance(response, web.Response):
        body = response.body if isinstance(response.body, bytes) else b""
        if request.path == protocol.ENROLL:
            bound_to = request.get(BOUND_TO, "")
        else:
            bound_to = request.headers.get(protocol.H_SIG, "")
        code, key = request.app[ANSWERS]
        response.headers[answers.H_ANSWER] = answers.sign(key, response.status, body, bound_to, code)
    return response


@web.middleware
async def errors(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    try:
        async with asyncio.timeout(protocol.REQUEST_TIMEOUT):
            response: web.StreamResponse = await handler(request)
            return response
    except ProtocolError as exc:
        request.app[METRICS].refused(exc.code, exc.extra)
        return _error(exc.status, exc.code, str(exc), **exc.extra)
    except web.HTTPRequestEntityTooLarge:
        return _error(413, "too_large", "request body is too large")
    except web.HTTPException as exc:
        return _error(exc.status, "http", exc.reason)
    except TimeoutError:
        return _error(503, "timeout", "the request took too long; try again")
    except (ConnectionResetError, ClientConnectionResetError):
        # The child's link dropped mid-request: normal on village lines.
        # Nothing was stored; the child sends it again.
        log.debug("connection lost during %s", request.path)
        return _error(400, "connection_lost", "the connection was lost during the request")
    except Exception:
        log.exception("internal error")
        return _error(500, "internal", "internal error; nothing half-done was stored")


async def _raw(request: web.Request) -> bytes:
    """A request's body exactly as sent, read through aiohttp's size-checked
    reader (at most MAX_BODY); nothing is inflated here. A client more than
    one protocol version away is refused first."""
    protocol.check_protocol(request.headers.get(protocol.H_PROTOCOL))
    if request.content_type != protocol.CONTENT_TYPE:
        raise ProtocolError(415, "unsupported", f"send {protocol.CONTENT_TYPE}")
    if request.headers.get("Content-Encoding", "identity").strip().lower() != "identity":
        # The zlib stream is the body itself, signed as sent; the server
        # inflates no HTTP content coding (auto_decompress is off).
        raise ProtocolError(415, "unsupported", "send no Content-Encoding: the body is its own zlib stream")
    request.app[WRITER].check_database()
    return await request.read()  # bounded by client_max_size


def _parse(path: str, raw: bytes, limit: int) -> Any:
    """Inflate a body (to ``limit`` bytes at most), parse it, and check it is
    a value the node can hold and shaped as ``path`` takes it. Runs on a
    decoder thread."""
    data = protocol.decode(raw, limit)
    try:
        admission.check_value(data, max_depth=protocol.MAX_REQUEST_DEPTH)
    except admission.Refused:
        raise ProtocolError(
            400,
            "malformed",
            f"body nests deeper than {protocol.MAX_REQUEST_DEPTH} levels, or holds an integer "
            "outside 64 bits or a number that is not finite",
        ) from None
    protocol.check_request(path, data)
    return data


async def _decoded(request: web.Request, raw: bytes, limit: int) -> Any:
    """_parse on the decoder threads: the event loop never inflates or parses."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app[DECODER], _parse, request.path, raw, limit)


class Senders:
    """The certified signing keys (and last counters) of children that
    authenticated here lately, so that a request's signature is checked
    before anything is inflated on a decoder thread, without a turn of the
    writer (which is storing the batch before meanwhile).

    Only ever a first look: the transaction that acts on a request
    authenticates it again against the store. A request this cannot vouch
    for (a child not seen yet, a signature that does not verify with the key
    held here — a new key —, a counter not above the last one seen) goes to
    the writer for the answer, as before; an entry is dropped when the
    transaction refuses its child (revoked, moved, unknown), so a stale one
    costs one inflated body at most."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, tuple[bytes, int]] = {}

    def vouch(self, headers: dict[str, str], path: str, raw: bytes, server: str) -> bytes | None:
        """The key the request's signature verified with, or None."""
        try:
            code, counter, sig = service.request_parts(headers)
        except ProtocolError:
            return None
        with self._lock:
            entry = self._known.get(code)
        if entry is None or counter <= entry[1]:
            return None
        if not service.signature_ok(entry[0], sig, "POST", path, raw, counter, code, server):
            return None
        self.learn(code, entry[0], counter)
        return entry[0]

    def learn(self, code: str, key: bytes, counter: int) -> None:
        with self._lock:
            known = self._known.get(code)
            if known is None or known[0] != key or counter > known[1]:
                self._known[code] = (key, counter)

    def forget(self, code: str) -> None:
        with self._lock:
            self._known.pop(code, None)


SENDERS = web.AppKey("senders", Senders)
TURN_WAIT = 30.0  # seconds a request waits for an earlier one of its child at most


class Turns:
    """A child keeps two requests in flight, and a request's counter must be
    above the last one the writer recorded: so each child's requests reach
    the writer in the order of their counters, whichever finished inflating
    first. A request registers its (claimed, not yet checked) counter as soon
    as its body is read and leaves once its work is handed to the writer (or
    it fails); it waits while one of its child with a lower counter is still
    on its way. A false claim holds a child's request up at most until that
    request fails, and never longer than TURN_WAIT."""

    def __init__(self) -> None:
        self._waiting: dict[str, list[int]] = {}
        self._changed = asyncio.Condition()

    def arrive(self, code: str, counter: int) -> None:
        self._waiting.setdefault(code, []).append(counter)

    async def wait(self, code: str, counter: int) -> None:
        def first() -> bool:
            return min(self._waiting.get(code) or [counter]) >= counter

        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(first), TURN_WAIT)

    async def leave(self, code: str, counter: int) -> None:
        waiting = self._waiting.get(code, [])
        if counter in waiting:
            waiting.remove(counter)
        if not waiting:
            self._waiting.pop(code, None)
        async with self._changed:
            self._changed.notify_all()


TURNS = web.AppKey("turns", Turns)
TURN = web.RequestKey("turn", tuple)  # (code, counter) of a signed request, while it holds a place
# The key a signed request's signature verified with (Senders, or the writer
# when Senders could not tell): the transaction acting on it checks that this
# is still the child's certified key rather than verifying it again.
VERIFIED = web.RequestKey("verified", bytes)


def _authentic(node: Any, headers: dict[str, str], path: str, raw: bytes) -> tuple[str, int, bytes]:
    return service.authenticate(node, headers, "POST", path, raw)


def _vouched_parse(
    senders: Senders, server: str, headers: dict[str, str], path: str, raw: bytes, prepare: bool
) -> tuple[bytes, tuple[Any, list[journal.Prepared] | None]] | None:
    """On a decoder thread: the key the signature verified with, and the
    body parsed (and a push's envelopes prepared), once Senders vouches for
    its signature; None when it cannot."""
    key = senders.vouch(headers, path, raw, server)
    if key is None:
        return None
    signer = (headers.get(protocol.H_NODE, ""), key)
    return key, _parse_prepared(path, raw, protocol.MAX_DECOMPRESSED, prepare, signer)


def _parse_prepared(
    path: str, raw: bytes, limit: int, prepare: bool, signer: tuple[str, bytes] | None = None
) -> tuple[Any, list[journal.Prepared] | None]:
    """The body parsed and, for a push, its envelopes prepared: the sender's
    own envelopes' signatures start being checked against ``signer``'s key on
    the verifying threads (journal.prepare), off the writer, which uses those
    results only where it finds that same key for the origin."""
    data = _parse(path, raw, limit)
    return data, journal.prepare(data["envelopes"], signer) if prepare else None


async def _signed(
    request: web.Request, prepare: bool = False
) -> tuple[dict[str, str], bytes, Any, list[journal.Prepared] | None]:
    """A signed request's headers, its body as sent, the value it holds and,
    for a push (``prepare``), its envelopes parsed and checked for shape
    (journal.prepare). The signature and the counter are checked over the
    body as sent before anything is inflated; only checked: the counter is
    recorded by the transaction that acts on the request, which checks them
    again."""
    raw = await _raw(request)
    headers = dict(request.headers)
    claimed = service.request_parts(headers)[:2]
    turns = request.app[TURNS]
    turns.arrive(*claimed)
    request[TURN] = claimed
    try:
        loop = asyncio.get_running_loop()
        decoder, senders = request.app[DECODER], request.app[SENDERS]
        server = request.app[WRITER].info["code"]
        vouched = await loop.run_in_executor(
            decoder, _vouched_parse, senders, server, headers, request.path, raw, prepare
        )
        if vouched is None:
            code, counter, key = await request.app[WRITER].call(_authentic, headers, request.path, raw)
            senders.learn(code, key, counter)
            done = await loop.run_in_executor(
                decoder, _parse_prepared, request.path, raw, protocol.MAX_DECOMPRESSED, prepare, (code, key)
            )
        else:
            key, done = vouched
        request[VERIFIED] = key
    except BaseException:
        del request[TURN]
        await turns.leave(*claimed)
        raise
    data, prepared = done
    return headers, raw, data, prepared


async def _acting(request: web.Request, headers: dict[str, str], fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn`` on the writer, in its child's turn (Turns); should it refuse
    the sender itself (revoked, moved away, unknown, a bad signature),
    Senders forgets that sender."""
    turns = request.app[TURNS]
    claimed = request[TURN]
    try:
        await turns.wait(*claimed)
        # Handed to the writer (one thread, first in first out) before the
        # turn passes on: the next request of this child runs after it.
        work = request.app[WRITER].submit(fn, *args)
    finally:
        await turns.leave(*claimed)
    try:
        return await work
    except ProtocolError as exc:
        if exc.status in (401, 403):
            request.app[SENDERS].forget(headers.get(protocol.H_NODE, ""))
        raise


def _health(node: Any) -> dict[str, Any]:
    return {
        "code": node.code,
        "role": node.role,
        "name": node.name,
        "root": node.store.setting("root_fingerprint"),
    }


async def healthz(request: web.Request) -> web.Response:
    """From memory (the root read again only until the node has enrolled):
    answered whatever the writer thread is doing. Not ok (503) once the
    database is gone."""
    writer = request.app[WRITER]
    reason = writer.gone()
    if reason is not None:
        body = protocol.error_body(
            503,
            "database_gone",
            f"this node's database file was {reason} while the server ran; restart `daiban serve`",
            reason=reason,
            version=__version__,
            node=writer.info["code"],
        )
        return web.json_response(body, status=503)
    if writer.info["root"] is None:  # enrolled since the server started?
        writer.info = await writer.call(_health)
    return web.json_response(
        {"ok": True, "version": __version__, "protocol": protocol.PROTOCOL, **writer.info}
    )


def _pushing(
    node: Any,
    headers: dict[str, str],
    path: str,
    raw: bytes,
    data: Any,
    prepared: list[journal.Prepared] | None,
    verified: bytes,
) -> Any:
    return service.push(node, headers, path, raw, data, prepared, verified=verified)


def _pull_counted(
    node: Any, headers: dict[str, str], path: str, raw: bytes, data: Any, verified: bytes, following: bool
) -> tuple[Any, Any, bool]:
    """The pull's answer, the kinds it hands out (metrics), and whether some
    of what the child pushed is still to be applied."""
    result = service.pull(node, headers, path, raw, data, verified=verified, following=following)
    # service.pull has checked the cursor and the sender by now; a cursor of
    # an earlier incarnation was served from the start (holds in the answer).
    after = 0 if "holds" in result else data["cursor"]
    code = headers.get(protocol.H_NODE, "")
    return result, metrics.pull_kinds(node, code, after, result), node.store.has_queued_effects(code)


async def push(request: web.Request) -> web.Response:
    writer = request.app[WRITER]
    writer.busy()
    headers, raw, data, prepared = await _signed(request, prepare=True)
    try:
        result = await _acting(
            request, headers, _pushing, headers, request.path, raw, data, prepared, request[VERIFIED]
        )
    finally:
        writer.busy()
    writer.check_database()  # stored into a file deleted meanwhile: acknowledge nothing
    writer.apply_later()
    request.app[METRICS].pushed(result, metrics.kinds_stored(prepared or [], result))
    return _json(result)


async def pull(request: web.Request) -> web.Response:
    writer = request.app[WRITER]
    writer.busy()
    headers, raw, data, _prepared = await _signed(request)
    child = headers.get(protocol.H_NODE, "")
    following = writer.following(child)
    result, kinds, left = await _acting(
        request, headers, _pull_counted, headers, request.path, raw, data, request[VERIFIED], following
    )
    writer.check_database()
    if left:
        writer.apply_for(child)
    request.app[METRICS].count_kinds(request.app[METRICS].envelopes_out, kinds, "child")
    return _json(result)


async def recover(request: web.Request) -> web.Response:
    writer = request.app[WRITER]
    headers, raw, data, _prepared = await _signed(request)
    result = await _acting(request, headers, recovery.serve_recover, headers, request.path, raw, data)
    writer.check_database()
    return _json(result)


async def metrics_page(request: web.Request) -> web.Response:
    """Prometheus text format (OpenMetrics if the scraper asks for it)."""
    registry = request.app[METRICS]
    snap = await request.app[WRITER].call(metrics.snapshot, registry.stale_after)
    body, content_type = registry.render(snap, request.headers.get("Accept", ""))
    return web.Response(body=body, headers={"Content-Type": content_type})


async def enroll(request: web.Request) -> web.Response:
    """Unsigned (the one-time code's HMAC authenticates it): its body may
    inflate to MAX_UNSIGNED_DECOMPRESSED only."""
    writer = request.app[WRITER]
    raw = await _raw(request)
    data = await _decoded(request, raw, protocol.MAX_UNSIGNED_DECOMPRESSED)
    request[BOUND_TO] = data.get("mac", "") if isinstance(data, dict) else ""
    # The code's scrypt stretch on a decoder thread, not the writer's: an
    # enrollment holds up no push or pull queued behind it.
    issued = await writer.call(service.issued_code, data)
    derived = None
    if issued is not None:
        loop = asyncio.get_running_loop()
        key = await loop.run_in_executor(request.app[DECODER], service.enroll_key, issued, str(data["code"]))
        derived = (issued, key)
    result = await writer.call(service.enroll, data, derived)
    writer.check_database()
    return _json(result)


def create_app(home: Path, config: ServeConfig | None = None) -> web.Application:
    config = config or ServeConfig()
    app = web.Application(client_max_size=protocol.MAX_BODY, middlewares=[observe, sign_answers, errors])
    app[CONFIG] = config
    app[METRICS] = metrics.ServerMetrics(config.stale_after)
    app[SENDERS] = Senders()
    app[TURNS] = Turns()

    async def writer_ctx(app: web.Application) -> AsyncIterator[None]:
        writer = Writer(home)
        app[WRITER] = writer
        # Every child's key, known before the first request: after a restart
        # (an outage, its children all coming back at once) their requests
        # are checked on the decoder threads, not one by one on the writer.
        for code, key, counter in await writer.call(service.children_keys):
            app[SENDERS].learn(code, key, counter)
        yield
        await writer.stop_applying()
        writer.close()

    async def decoder_ctx(app: web.Application) -> AsyncIterator[None]:
        decoder = concurrent.futures.ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="daiban-decode")
        app[DECODER] = decoder
        yield
        decoder.shutdown(wait=True, cancel_futures=True)

    app.cleanup_ctx.append(writer_ctx)
    app.cleanup_ctx.append(decoder_ctx)
    app.cleanup_ctx.append(_answers_ctx(home))
    if config.forward_window is not None:
        app.cleanup_ctx.append(_forward_ctx(home, config))
    app.router.add_get(protocol.HEALTH, healthz)
    app.router.add_post(protocol.PUSH, push)
    app.router.add_post(protocol.PULL, pull)
    app.router.add_post(protocol.ENROLL, enroll)
    app.router.add_post(recovery.RECOVER, recover)
    app.router.add_get(METRICS_PATH, metrics_page)
    return app


def _answers_ctx(home: Path) -> Callable[[web.Application], AsyncIterator[None]]:
    """This node's code and signing key, for signing answers."""
    from daiban.trust.crypto import NodeKeys

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        app[ANSWERS] = (app[WRITER].info["code"], NodeKeys.load(home).sign)
        yield

    return ctx


def _forward_ctx(home: Path, config: ServeConfig) -> Callable[[web.Application], AsyncIterator[None]]:
    """The scheduled sync with the parent, as a background task of the app."""
    from daiban.sync.schedule import ForwardScheduler, forward_once

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        assert config.forward_window is not None
        registry = app[METRICS]

        def on_result(ok: bool, outcome: Any, at: Any) -> None:
            if ok:
                registry.forwarded(True, outcome.pushed, outcome.pulled, at.timestamp())
            else:
                registry.forwarded(False)

        scheduler = ForwardScheduler(
            lambda: asyncio.to_thread(forward_once, home),
            config.forward_window,
            rng=random.Random(),
            on_result=on_result,
        )
        task = asyncio.create_task(scheduler.run(), name="daiban-forward")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return ctx


class _Handler(web.RequestHandler):
    """aiohttp's connection handler, answering what its HTTP parser refuses
    before any middleware sees a request (a request line or header past
    MAX_LINE bytes, more than MAX_HEADERS headers, bytes that are not HTTP)
    in the one JSON error shape rather than its own plain text, with one log
    line rather than a traceback."""

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp's own: an answer has begun
            raise ConnectionError("the response has begun; no error answer can follow it")
        if isinstance(exc, LineTooLong) or "Too many headers" in str(exc):
            body = protocol.error_body(
                431,
                "header_too_large",
                f"the request line or a header is longer than {MAX_LINE} bytes, "
                f"or there are more than {MAX_HEADERS} headers",
            )
        elif status >= 500:
            log.error("internal error", exc_info=exc)
            body = protocol.error_body(500, "internal", "internal error; nothing half-done was stored")
        else:
            body = protocol.error_body(400, "bad_request", "the request is not well-formed HTTP/1.1")
        log.warning(
            "refused before routing",
            extra={"status": body["status"], "code": body["code"], "error": type(exc).__name__},
        )
        response = _json(body, body["status"])
        response.force_close()
        return response


class _Site(web.BaseSite):
    """A TCP site whose connections are handled by _Handler."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, **handler_args: Any) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._handler_args = handler_args

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        manager = self._runner.server
        assert manager is not None  # runner.setup() made it
        args = self._handler_args
        self._server = await loop.create_server(
            lambda: _Handler(manager, loop=loop, **args), self._host, self._port
        )


def serve(
    home: Path,
    host: str,
    port: int,
    ready: Callable[[str], None] | None = None,
    config: ServeConfig | None = None,
) -> None:
    """Run until interrupted (Ctrl-C or SIGTERM)."""
    config = config or ServeConfig()
    if config.log:
        from daiban import logs

        logs.setup(home, "serve")

    async def main() -> None:
        app = create_app(home, config)
        runner = web.AppRunner(app, shutdown_timeout=5)
        await runner.setup()
        site = _Site(
            runner,
            host,
            port,
            keepalive_timeout=KEEPALIVE,
            access_log=None,
            max_line_size=MAX_LINE,
            max_field_size=MAX_LINE,
            max_headers=MAX_HEADERS,
            # The zlib stream is the body, signed as sent: an HTTP content
            # coding is refused (415), never inflated by aiohttp.
            auto_decompress=False,
        )
        await site.start()
        collect_less()
        log.info(
            "serving",
            extra={"version": __version__, "forward_window": str(config.forward_window or "off")},
        )
        if ready is not None:
            addresses = runner.addresses  # [(host, port), ...] of the bound sockets
            bound = addresses[0][1] if addresses else port
            ready(f"http://{host}:{bound}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):  # Windows: Ctrl-C still raises
                pass
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


def dumps(value: Any) -> str:  # pragma: no cover - debugging aid
    return json.dumps(value, ensure_ascii=False)
