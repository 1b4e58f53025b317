"""A slow village link for sync benchmarks and tests: a TCP proxy on
127.0.0.1 that paces bytes to a fixed rate each way, delays them by half a
round trip, and cuts every connection on a schedule (``cut_every`` seconds)
or where a test chooses (``strike``: mid-request after some of a request's
body went up, or once the server has answered a request, before the answer
comes down).

Unlike tests/faultproxy.py, which decides per whole HTTP request, this one
works on the byte stream, so a cut can fall anywhere in a request; it
watches the bytes it forwards upward only to know where a request is, and
keeps them, so ``requests()`` can say afterwards what went up: every
request, complete or cut short, and for a complete push the envelopes in it.

Runs its own event loop in a daemon thread (``with SlowLink(port) as link``);
every wait is bounded and ``close()`` ends every connection and task it
started."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import orjson

HOST = "127.0.0.1"
CHUNK = 512  # bytes read and paced at a time
QUEUED = 64  # chunks in flight per direction of a connection
IO_TIMEOUT = 60.0


@dataclass(frozen=True)
class Strike:
    """Where the one chosen cut strikes: in the first request to ``path``
    whose body (Content-Length) is at least ``min_body`` bytes, either once
    ``fraction`` of its body went up (``when="body"``: the server never has
    the whole request) or when the server's answer to it starts to come back
    (``when="answer"``: the server has acted; the client never hears it)."""

    path: str
    when: str = "body"
    fraction: float = 0.5
    min_body: int = 1
    every: bool = False
    """Strike every such request, not only the first: a link that carries at
    most ``min_body`` bytes of a request between two cuts."""


@dataclass
class Request:
    """One request as forwarded upward: its path, its bytes (head and body
    as far as they went), whether all of it went, and for a complete push
    the envelopes it carried (as their texts)."""

    conn: int
    path: str
    bytes: int
    complete: bool
    envelopes: list[str] = field(default_factory=list)


@dataclass
class _Way:
    busy_until: float = 0.0
    bytes: int = 0


@dataclass(eq=False)
class _Conn:
    id: int
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    up: bytearray = field(default_factory=bytearray)  # every byte forwarded upward
    armed: int | None = None  # cut when the upward stream reaches this many bytes
    answer_armed: bool = False  # cut when the server's next answer starts

    def abort(self) -> None:
        for w in (self.client, self.upstream):
            if w is not None:
                w.transport.abort()


class SlowLink:
    """Proxy 127.0.0.1:<port> to 127.0.0.1:``target_port``: ``rate`` bytes
    per second each way (shared by all connections, as one line is),
    ``delay`` seconds one way (half the round trip), every connection cut
    each ``cut_every`` seconds once ``start_cuts()`` was called, or once
    where ``strike`` says."""

    def __init__(
        self,
        target_port: int,
        *,
        rate: float = 8000.0,
        delay: float = 0.15,
        cut_every: float | None = None,
        strike: Strike | None = None,
    ) -> None:
        self.target_port = target_port
        self.rate = rate
        self.delay = delay
        self.cut_every = cut_every
        self.strike = strike
        self.cuts = 0
        self.connections = 0
        self.struck = False
        self.strikes = 0
        self.up_at_cut: int | None = None  # upward bytes when the chosen strike cut
        self._up, self._down = _Way(), _Way()
        self._conns: list[_Conn] = []
        self._open: set[_Conn] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    # -- figures ---------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._port is not None, "not started"
        return self._port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def bytes_up(self) -> int:
        return self._up.bytes

    @property
    def bytes_down(self) -> int:
        return self._down.bytes

    def requests(self) -> list[Request]:
        """Every request forwarded upward, in order per connection."""
        return self._call(lambda: [r for c in self._conns for r in _requests(c.id, bytes(c.up))])

    # -- control ---------------------------------------------------------------

    def start_cuts(self, first: float = 0.0) -> None:
        """From now, cut every connection each ``cut_every`` seconds (the
        first cut after ``first`` seconds, if given)."""

        def arm() -> None:
            if self.cut_every:
                self._spawn(self._cut_on_schedule(first or self.cut_every, self.cut_every))

        self._call(arm)

    def cut(self) -> None:
        self._call(self._cut)

    def __enter__(self) -> SlowLink:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="slowlink", daemon=True)
        self._thread.start()
        ready.wait(IO_TIMEOUT)
        self._loop = loop
        asyncio.run_coroutine_threadsafe(self._start(), loop).result(IO_TIMEOUT)
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), loop).result(IO_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(IO_TIMEOUT)
            self._loop = self._thread = None

    # -- inside the loop -------------------------------------------------------

    def _call(self, fn: Any) -> Any:
        loop = self._loop
        if loop is None or threading.current_thread() is self._thread:
            return fn()

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(IO_TIMEOUT)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, HOST, 0)
        self._port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._open):
            conn.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=IO_TIMEOUT)
        if self._server is not None:
            await asyncio.wait_for(self._server.wait_closed(), IO_TIMEOUT)

    def _cut(self) -> None:
        self.cuts += 1
        for conn in list(self._open):
            conn.abort()
        self._open.clear()

    async def _cut_on_schedule(self, first: float, every: float) -> None:
        await asyncio.sleep(first)
        for _ in range(1_000_000):  # bounded; close() cancels it
            self._cut()
            await asyncio.sleep(every)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = _Conn(len(self._conns), writer)
        self._conns.append(conn)
        self._open.add(conn)
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, self.target_port), IO_TIMEOUT
            )
            conn.upstream = up_writer
            pumps = [
                self._spawn(self._pump(conn, reader, up_writer, self._up, upward=True)),
                self._spawn(self._pump(conn, up_reader, writer, self._down, upward=False)),
            ]
            await asyncio.wait(pumps, return_when=asyncio.ALL_COMPLETED)
        except (OSError, TimeoutError):
            pass
        finally:
            conn.abort()
            self._open.discard(conn)

    async def _pump(
        self, conn: _Conn, src: asyncio.StreamReader, dst: asyncio.StreamWriter, way: _Way, *, upward: bool
    ) -> None:
        """Read, pace, deliver: each chunk leaves when the line is free
        (``rate``) and arrives ``delay`` later; the reader runs ahead by at
        most QUEUED chunks."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUED)

        async def deliver_all() -> None:
            for _ in range(1_000_000_000):  # bounded by the bytes that come
                at, data = await queue.get()
                if not data:
                    dst.close()
                    return
                await asyncio.sleep(max(0.0, at - loop.time()))
                if not upward and conn.answer_armed:
                    self._strike_now()
                    return
                if upward and conn.armed is not None and len(conn.up) + len(data) >= conn.armed:
                    data = data[: conn.armed - len(conn.up)]
                    self._forward(conn, dst, way, data, upward)
                    await asyncio.wait_for(dst.drain(), IO_TIMEOUT)
                    self.up_at_cut = self._up.bytes
                    self._strike_now()
                    return
                self._forward(conn, dst, way, data, upward)
                await asyncio.wait_for(dst.drain(), IO_TIMEOUT)

        async def deliver() -> None:
            with contextlib.suppress(OSError, TimeoutError):  # the other side gone, or a cut
                await deliver_all()

        sender = self._spawn(deliver())
        try:
            for _ in range(1_000_000_000):
                data = await asyncio.wait_for(src.read(CHUNK), IO_TIMEOUT * 10)
                if sender.done():  # cut: nothing more goes this way
                    break
                now = loop.time()
                start = max(now, way.busy_until)
                way.busy_until = start + len(data) / self.rate
                await queue.put((way.busy_until + self.delay, data))
                if not data:
                    break
            await asyncio.wait_for(sender, IO_TIMEOUT * 10)
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            sender.cancel()

    def _forward(self, conn: _Conn, dst: asyncio.StreamWriter, way: _Way, data: bytes, upward: bool) -> None:
        dst.write(data)
        way.bytes += len(data)
        if upward:
            conn.up += data
            self._watch(conn)

    def _watch(self, conn: _Conn) -> None:
        """Arm the chosen strike once the request it is for is in sight."""
        strike = self.strike
        if (
            strike is None
            or (self.struck and not strike.every)
            or conn.armed is not None
            or conn.answer_armed
        ):
            return
        for _start, head_end, length, path in _heads(bytes(conn.up)):
            if path != strike.path or length < strike.min_body:
                continue
            if strike.when == "body":
                conn.armed = head_end + max(1, int(length * strike.fraction))
                if len(conn.up) >= conn.armed:  # already past it: cut at once
                    conn.armed = len(conn.up)
            elif len(conn.up) >= head_end + length:
                conn.answer_armed = True
            return

    def _strike_now(self) -> None:
        self.struck = True
        self.strikes += 1
        for conn in self._conns:
            conn.armed, conn.answer_armed = None, False
        self._cut()


def _heads(stream: bytes) -> Iterator[tuple[int, int, int, str]]:
    """(start, end of head, Content-Length, path) of each request head in an
    upward stream (bodies skipped by their length)."""
    at = 0
    for _ in range(1_000_000):
        end = stream.find(b"\r\n\r\n", at)
        if end < 0:
            return
        head = stream[at:end].decode("latin-1")
        lines = head.split("\r\n")
        path = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else ""
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        yield at, end + 4, length, path
        at = end + 4 + length


def _requests(conn: int, stream: bytes) -> list[Request]:
    out = []
    for start, head_end, length, path in _heads(stream):
        body = stream[head_end : head_end + length]
        complete = len(body) == length
        envelopes: list[str] = []
        if complete and path == "/v1/push" and body:
            with contextlib.suppress(zlib.error, orjson.JSONDecodeError):
                value = orjson.loads(zlib.decompress(body))
                if isinstance(value, dict):
                    envelopes = [e for e in value.get("envelopes", []) if isinstance(e, str)]
        out.append(Request(conn, path, head_end - start + len(body), complete, envelopes))
    return out
