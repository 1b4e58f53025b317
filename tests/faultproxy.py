"""A fault-injecting TCP proxy for Daiban's sync tests.

The proxy sits between a child node's sync client and its parent's HTTP server,
both on 127.0.0.1, and damages traffic the way a village network does: requests
cut off half-way, responses lost after the server acted, requests delivered
twice, slow links, and links that drop altogether. Tests use it to prove that
sync is exactly-once no matter where a connection dies.

Faults are chosen per HTTP request by a seeded ``random.Random``, so a failing
run can be replayed with the same seed. To fault a single request on a
keep-alive connection (and to cut or discard one response) the proxy parses
HTTP/1.1 minimally: a head up to ``\\r\\n\\r\\n``, then a body framed by
``Content-Length`` (requests and responses) or by chunked encoding (responses
only; chunked *requests* and ``Expect`` are refused with a clear error status).

Two ways to run it::

    # sync tests: the event loop runs in a daemon thread
    with FaultProxy(server_port, plan=FaultPlan(cut_response=0.3), seed=1) as proxy:
        post(f"http://127.0.0.1:{proxy.port}/sync")

    # async tests: runs on the caller's loop
    proxy = FaultProxy(server_port, plan=FaultPlan(duplicate_request=1.0))
    await proxy.start()
    ...
    await proxy.stop()

Every network await carries a timeout, and ``stop()`` closes every socket and
ends every task the proxy started.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import itertools
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

LISTEN_HOST = "127.0.0.1"
# Far above any Daiban sync payload; only there so a framing bug can't make
# the proxy buffer without end.
MAX_BODY = 64 * 1024 * 1024
# Names of the mutually exclusive faults, in the order their probabilities are
# stacked on one uniform draw (see FaultProxy._decide).
FAULTS = ("cut_request", "cut_response", "duplicate_request")
TASK_PREFIX = "faultproxy-conn-"


@dataclass(frozen=True)
class FaultPlan:
    """Per-request fault probabilities.

    ``cut_request``, ``cut_response`` and ``duplicate_request`` exclude each
    other (one request suffers at most one of them), so their sum must be at
    most 1. ``delay`` is drawn independently and can come on top of any of
    them. Each injected fault, delays included, counts towards ``max_faults``;
    once that many were injected under this plan, traffic passes cleanly.
    """

    cut_request: float = 0.0
    cut_response: float = 0.0
    duplicate_request: float = 0.0
    delay: float = 0.0
    delay_max: float = 0.2
    max_faults: int | None = None

    def __post_init__(self) -> None:
        for name in (*FAULTS, "delay"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"FaultPlan.{name}={p!r} is not a probability in [0, 1]")
        total = sum(getattr(self, name) for name in FAULTS)
        if total > 1.0 + 1e-9:
            raise ValueError(f"cut_request + cut_response + duplicate_request = {total} > 1")
        if self.delay_max < 0:
            raise ValueError(f"FaultPlan.delay_max={self.delay_max!r} is negative")
        if self.max_faults is not None and self.max_faults < 0:
            raise ValueError(f"FaultPlan.max_faults={self.max_faults!r} is negative")


# --------------------------------------------------------------------------
# Minimal HTTP/1.1 framing
# --------------------------------------------------------------------------


class ProtocolError(Exception):
    """The bytes on the wire are not HTTP/1.1 as this proxy understands it."""


class Unsupported(Exception):
    """A request the proxy refuses to frame (answered with ``status``)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass
class Message:
    """One HTTP request or response, kept as the exact bytes seen."""

    head: bytes  # start line + headers + the blank line
    body: bytes
    start_line: str
    headers: dict[str, str]  # lower-cased names; repeated headers joined by ", "

    @property
    def raw(self) -> bytes:
        return self.head + self.body

    def tokens(self, name: str) -> set[str]:
        """Comma-separated tokens of a header, lower-cased (e.g. Connection)."""
        return {t.strip().lower() for t in self.headers.get(name, "").split(",") if t.strip()}

    def wants_close(self) -> bool:
        """Whether the connection ends after this message (HTTP/1.0 defaults to close)."""
        conn = self.tokens("connection")
        if "close" in conn:
            return True
        http10 = "HTTP/1.0" in self.start_line
        return http10 and "keep-alive" not in conn


def parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes any byte
        raise ProtocolError(str(exc)) from exc
    lines = text.split("\r\n")
    start_line = lines[0]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError(f"malformed header line {line!r}")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return start_line, headers


async def read_head(reader: asyncio.StreamReader, timeout: float) -> bytes | None:
    """Read up to and including the blank line; None on a clean EOF before any byte."""
    try:
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None  # peer closed between messages: the normal end of keep-alive
        raise ProtocolError(f"EOF inside a message head after {len(exc.partial)} bytes") from exc
    except asyncio.LimitOverrunError as exc:
        raise ProtocolError("message head larger than the stream limit") from exc


def content_length(headers: dict[str, str]) -> int:
    value = headers.get("content-length")
    if value is None:
        return 0
    try:
        n = int(value)
    except ValueError as exc:
        raise ProtocolError(f"bad Content-Length {value!r}") from exc
    if not 0 <= n <= MAX_BODY:
        raise ProtocolError(f"Content-Length {n} out of range")
    return n


async def read_request(reader: asyncio.StreamReader, idle_timeout: float, timeout: float) -> Message | None:
    """One request from the client, or None when the client closed between requests."""
    # The first wait may be a keep-alive connection sitting idle, hence the longer timeout.
    head = await read_head(reader, idle_timeout)
    if head is None:
        return None
    start_line, headers = parse_head(head)
    if "transfer-encoding" in headers:
        # Daiban's client sends JSON with Content-Length; chunked uploads would need
        # a second framing path that no test needs, so refuse loudly instead.
        raise Unsupported(501, "Not Implemented", "faultproxy: chunked request bodies are not supported")
    if "expect" in headers:
        # 100-continue would deadlock (client waits for 100, proxy waits for body).
        raise Unsupported(417, "Expectation Failed", "faultproxy: Expect headers are not supported")
    body = await asyncio.wait_for(reader.readexactly(content_length(headers)), timeout)
    return Message(head, body, start_line, headers)


async def read_chunked(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """The raw bytes of a chunked body, through the last chunk and trailers."""
    parts: list[bytes] = []
    total = 0
    while True:  # each turn consumes bytes under a timeout, and MAX_BODY bounds the total
        size_line = await asyncio.wait_for(reader.readuntil(b"\r\n"), timeout)
        parts.append(size_line)
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)  # ";ext" chunk extensions ignored
        except ValueError as exc:
            raise ProtocolError(f"bad chunk size line {size_line!r}") from exc
        if size == 0:
            break
        total += size
        if size < 0 or total > MAX_BODY:
            raise ProtocolError("chunked body too large")
        parts.append(await asyncio.wait_for(reader.readexactly(size + 2), timeout))  # data + CRLF
    # Optional trailer fields, then the final empty line.
    while True:
        line = await asyncio.wait_for(reader.readuntil(b"\r\n"), timeout)
        parts.append(line)
        if line == b"\r\n":
            return b"".join(parts)
        total += len(line)
        if total > MAX_BODY:
            raise ProtocolError("chunked trailers too large")


async def read_response(reader: asyncio.StreamReader, method: str, timeout: float) -> tuple[Message, bool]:
    """One response from upstream, and whether the connection must close after it."""
    head = await read_head(reader, timeout)
    if head is None:
        raise ProtocolError("upstream closed without a response")
    start_line, headers = parse_head(head)
    parts = start_line.split(" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError) as exc:
        raise ProtocolError(f"bad status line {start_line!r}") from exc
    if 100 <= status < 200:
        # Only sent for Expect (refused above) or Upgrade (Daiban doesn't use it).
        raise ProtocolError(f"informational response {status} not supported")
    close = False
    if method == "HEAD" or status in (204, 304):
        body = b""  # no body by definition, whatever the headers say
    elif "chunked" in Message(head, b"", start_line, headers).tokens("transfer-encoding"):
        body = await read_chunked(reader, timeout)
    elif "content-length" in headers:
        body = await asyncio.wait_for(reader.readexactly(content_length(headers)), timeout)
    else:
        # No framing: the body runs until upstream closes (HTTP/1.0 style).
        body = await asyncio.wait_for(reader.read(MAX_BODY), timeout)
        close = True
    msg = Message(head, body, start_line, headers)
    return msg, close or msg.wants_close()


# --------------------------------------------------------------------------
# The proxy
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What happens to one request; all dice are thrown when the request arrives."""

    fault: str | None  # one of FAULTS, or None
    delay: float  # seconds to wait before forwarding (0: none)
    fraction: float  # in [0, 1): where a cut falls within the bytes

    @property
    def label(self) -> str:
        names = (["delay"] if self.delay > 0 else []) + ([self.fault] if self.fault else [])
        return "+".join(names) or "pass"


@dataclass(eq=False)
class Conn:
    """Sockets of one client connection, so cut_link()/stop() can drop them."""

    client: asyncio.StreamWriter
    upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    others: list[asyncio.StreamWriter] = field(default_factory=list)  # duplicate connections

    def writers(self) -> list[asyncio.StreamWriter]:
        return [self.client, *([self.upstream[1]] if self.upstream else []), *self.others]

    def close(self) -> None:
        # close() flushes what was written (a cut prefix must reach the peer) before the FIN.
        for w in self.writers():
            w.close()

    def abort(self) -> None:
        # abort() drops buffers and closes at once: a link that is gone sends nothing more.
        for w in self.writers():
            w.transport.abort()


def new_stats() -> dict[str, int]:
    return {
        "connections": 0,  # client connections accepted
        "requests": 0,  # complete requests read from clients
        "passed": 0,  # requests forwarded with no fault at all
        "faults": 0,  # all injected faults (what max_faults counts)
        "cut_request": 0,
        "cut_response": 0,
        "duplicate_request": 0,
        "delay": 0,
        "refused": 0,  # connections closed at once because the link was cut
        "dropped": 0,  # open connections dropped by cut_link()/stop()
        "unsupported": 0,  # requests refused (chunked body, Expect)
        "errors": 0,  # connections that ended on a timeout, protocol or socket error
    }


class FaultProxy:
    """Proxy 127.0.0.1:<port> to ``target_host:target_port``, injecting faults.

    Args:
        target_port: the upstream (e.g. the parent node's sync server) port.
        plan: fault probabilities; default: no faults.
        seed: seed of the random.Random choosing faults, for reproducible runs.
        target_host: upstream host; must be a loopback address.
        listen_port: port to listen on; 0 picks a free one (see ``port``).
        io_timeout: bound on every read/write/connect once a request started.
        idle_timeout: how long an idle keep-alive client connection is kept.
    """

    def __init__(
        self,
        target_port: int,
        plan: FaultPlan | None = None,
        seed: int | None = 0,
        *,
        target_host: str = "127.0.0.1",
        listen_port: int = 0,
        io_timeout: float = 10.0,
        idle_timeout: float = 60.0,
    ) -> None:
        if target_host != "localhost" and not ipaddress.ip_address(target_host).is_loopback:
            raise ValueError(f"faultproxy only forwards to loopback, not {target_host!r}")
        self.target_host = target_host
        self.target_port = target_port
        self.listen_port = listen_port
        self.io_timeout = io_timeout
        self.idle_timeout = idle_timeout
        self.enabled = True  # False: pass everything through (dice are still thrown, see _decide)
        self.stats: dict[str, int] = new_stats()
        self.decisions: list[str] = []  # per request, in arrival order: "pass", "cut_response", ...
        self.total_delay = 0.0  # seconds of injected delay
        self._plan = plan or FaultPlan()
        self._plan_faults = 0  # faults injected under the current plan (for max_faults)
        self._rng = random.Random(seed)
        self._link_up = True
        self._server: asyncio.Server | None = None
        self._conns: set[Conn] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)
        self._port: int | None = None
        # Set only by the thread-backed runner (__enter__).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # ---- public API ------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FaultProxy is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{LISTEN_HOST}:{self.port}"

    @property
    def plan(self) -> FaultPlan:
        return self._plan

    def set_plan(self, plan: FaultPlan) -> None:
        """Replace the plan; the max_faults budget starts again for the new plan."""

        def apply() -> None:
            self._plan = plan
            self._plan_faults = 0

        self._call(apply)

    def cut_link(self) -> None:
        """Lose the link: drop every open connection and refuse new ones until restore_link()."""

        def apply() -> None:
            self._link_up = False
            self._drop_all()

        self._call(apply)

    def restore_link(self) -> None:
        def apply() -> None:
            self._link_up = True

        self._call(apply)

    @property
    def link_up(self) -> bool:
        return self._link_up

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("FaultProxy already started")
        self._server = await asyncio.wait_for(
            asyncio.start_server(self._handle, LISTEN_HOST, self.listen_port), self.io_timeout
        )
        self._port = self._server.sockets[0].getsockname()[1]
        log.debug("faultproxy %s -> %s:%s", self._port, self.target_host, self.target_port)

    async def stop(self) -> None:
        """Stop listening, drop all connections and wait (bounded) for their tasks."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        self._drop_all()
        tasks = list(self._tasks)
        if tasks:
            # Cancelled above; wait for their finally blocks. Bounded so a stuck task
            # can't hang the test suite (it would show up as a leftover task instead).
            await asyncio.wait(tasks, timeout=self.io_timeout)
        await asyncio.wait_for(server.wait_closed(), self.io_timeout)
        await asyncio.sleep(0)  # let aborted transports run connection_lost and close sockets

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # ---- thread-backed runner for sync tests -----------------------------

    def __enter__(self) -> FaultProxy:
        if self._thread is not None:
            raise RuntimeError("FaultProxy already running in a thread")
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=run, name=f"faultproxy->{self.target_port}", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            asyncio.run_coroutine_threadsafe(self.start(), loop).result(self.io_timeout)
        except BaseException:
            self._stop_thread()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop_thread()

    def _stop_thread(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            if self._server is not None:
                # stop() has its own bounds; the extra second covers the hop between threads.
                asyncio.run_coroutine_threadsafe(self.stop(), loop).result(2 * self.io_timeout + 1)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(self.io_timeout)
            self._loop, self._thread = None, None
        if thread.is_alive():  # pragma: no cover - would mean a blocking call inside the loop
            raise RuntimeError("faultproxy thread did not stop")

    def _call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the proxy's loop: directly if we are on it, else hop threads and wait."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or threading.current_thread() is thread:
            return fn()

        async def run() -> T:
            result = fn()
            await asyncio.sleep(0)  # aborted transports close their sockets on this turn
            return result

        try:
            return asyncio.run_coroutine_threadsafe(run(), loop).result(self.io_timeout)
        except concurrent.futures.TimeoutError as exc:  # pragma: no cover
            raise RuntimeError("faultproxy loop did not answer") from exc

    # ---- internals -------------------------------------------------------

    def _drop_all(self) -> None:
        for conn in list(self._conns):
            self.stats["dropped"] += 1
            conn.abort()
        for task in list(self._tasks):
            task.cancel()

    def _count(self, name: str) -> None:
        self.stats[name] += 1
        self.stats["faults"] += 1
        self._plan_faults += 1

    def _budget_left(self) -> bool:
        limit = self._plan.max_faults
        return limit is None or self._plan_faults < limit

    def _decide(self) -> Decision:
        plan = self._plan
        # Always the same four draws per request, whatever the plan or switches say,
        # so the k-th request of a run sees the same dice for a given seed.
        u_delay = self._rng.random()
        delay_s = self._rng.uniform(0.0, plan.delay_max)
        u_fault = self._rng.random()
        fraction = self._rng.random()
        if not self.enabled:
            return Decision(None, 0.0, fraction)
        delay = 0.0
        if u_delay < plan.delay and self._budget_left():
            delay = delay_s
            self._count("delay")
        fault = None
        if self._budget_left():
            # Stack the exclusive faults' probabilities on one draw.
            edge = 0.0
            for name in FAULTS:
                edge += getattr(plan, name)
                if u_fault < edge:
                    fault = name
                    self._count(name)
                    break
        return Decision(fault, delay, fraction)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One client connection (asyncio.start_server runs this as a task)."""
        task = asyncio.current_task()
        assert task is not None
        task.set_name(f"{TASK_PREFIX}{next(self._ids)}")
        self._tasks.add(task)
        conn = Conn(writer)
        self._conns.add(conn)
        self.stats["connections"] += 1
        try:
            if not self._link_up:
                self.stats["refused"] += 1
                conn.abort()  # refuse: the client's connect succeeds, then the link is dead
                return
            await self._serve(conn, reader)
        except asyncio.CancelledError:
            # Only _drop_all() (cut_link/stop) cancels these tasks. End normally: on 3.11
            # asyncio's done-callback calls task.exception(), which re-raises a
            # cancellation and logs "Exception in callback" for every dropped connection.
            log.debug("faultproxy connection dropped")
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ProtocolError) as exc:
            # Peers vanishing and timeouts are expected under fault injection; count, don't crash.
            self.stats["errors"] += 1
            log.debug("faultproxy connection ended: %r", exc)
        except Exception:  # a bug here must not leave an unretrieved task exception
            self.stats["errors"] += 1
            log.exception("faultproxy handler failed")
        finally:
            conn.close()
            self._conns.discard(conn)
            self._tasks.discard(task)

    async def _serve(self, conn: Conn, reader: asyncio.StreamReader) -> None:
        # Ends when the client closes, a timeout or error strikes, a fault closes the
        # connection, or either side asks for Connection: close.
        while True:
            try:
                req = await read_request(reader, self.idle_timeout, self.io_timeout)
            except Unsupported as exc:
                self.stats["unsupported"] += 1
                log.warning("%s", exc)
                await self._reply_error(conn.client, exc)
                return
            if req is None:
                return
            self.stats["requests"] += 1
            d = self._decide()
            self.decisions.append(d.label)
            if d.label != "pass":
                log.debug("faultproxy %s: %s", req.start_line, d.label)
            if d.delay:
                self.total_delay += d.delay
                await asyncio.sleep(d.delay)

            if d.fault == "cut_request":
                # A prefix of 1..len-1 bytes: upstream sees a truncated head or body,
                # then EOF; the client sees its connection close with no answer.
                cut = 1 + int(d.fraction * (len(req.raw) - 1))
                _, up_writer = await self._upstream(conn)
                up_writer.write(req.raw[:cut])
                await asyncio.wait_for(up_writer.drain(), self.io_timeout)
                return  # _handle's finally closes both sides, flushing the prefix first

            resp, close = await self._exchange(conn, req)

            if d.fault == "cut_response":
                # The server has answered (so it acted); the client gets 0..len-1 bytes.
                cut = int(d.fraction * len(resp.raw))
                conn.client.write(resp.raw[:cut])
                await asyncio.wait_for(conn.client.drain(), self.io_timeout)
                return
            if d.fault == "duplicate_request":
                # Sent after the original's response arrived and before the client gets it,
                # so when the client sees its answer the server has handled both.
                await self._duplicate(conn, req)
            elif d.delay == 0:
                self.stats["passed"] += 1

            conn.client.write(resp.raw)
            await asyncio.wait_for(conn.client.drain(), self.io_timeout)
            if close:
                return

    async def _upstream(self, conn: Conn) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The connection's upstream, (re)opened if absent or closed by the server while idle."""
        if conn.upstream is not None and not conn.upstream[0].at_eof():
            return conn.upstream
        if conn.upstream is not None:
            conn.upstream[1].close()
        conn.upstream = await self._connect()
        return conn.upstream

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.wait_for(
            asyncio.open_connection(self.target_host, self.target_port), self.io_timeout
        )

    async def _exchange(self, conn: Conn, req: Message) -> tuple[Message, bool]:
        """Send the whole request upstream and read its whole response."""
        up_reader, up_writer = await self._upstream(conn)
        up_writer.write(req.raw)
        await asyncio.wait_for(up_writer.drain(), self.io_timeout)
        method = req.start_line.split(" ", 1)[0]
        resp, close = await read_response(up_reader, method, self.io_timeout)
        return resp, close or req.wants_close()

    async def _duplicate(self, conn: Conn, req: Message) -> None:
        """Deliver ``req`` again on a fresh connection; its response is read and dropped."""
        writer: asyncio.StreamWriter | None = None
        try:
            reader, writer = await self._connect()
            conn.others.append(writer)
            writer.write(req.raw)
            await asyncio.wait_for(writer.drain(), self.io_timeout)
            method = req.start_line.split(" ", 1)[0]
            await read_response(reader, method, self.io_timeout)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ProtocolError) as exc:
            # The original still stands; a failed copy is just a weaker fault.
            self.stats["errors"] += 1
            log.debug("faultproxy duplicate failed: %r", exc)
        finally:
            if writer is not None:
                writer.close()
                conn.others.remove(writer)

    async def _reply_error(self, writer: asyncio.StreamWriter, exc: Unsupported) -> None:
        body = f"{exc}\n".encode()
        head = (
            f"HTTP/1.1 {exc.status} {exc.reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode("latin-1") + body)
        await asyncio.wait_for(writer.drain(), self.io_timeout)
