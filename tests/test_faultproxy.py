"""The fault-injecting proxy (tests/faultproxy.py) against a real aiohttp server
and real clients on 127.0.0.1: every fault must do exactly what the sync
exactly-once tests will rely on — in particular, whether the server did or did
not act on a request the client saw fail."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import aiohttp
import pytest
from aiohttp import web

from tests.faultproxy import TASK_PREFIX, FaultPlan, FaultProxy

# Padding makes the body longer than the head, so cuts land in both.
PAYLOAD = {"op": "sync", "pad": "x" * 600}
TIMEOUT = aiohttp.ClientTimeout(total=5)


@pytest.fixture(autouse=True)
def _no_loop_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Dropped connections must end quietly: no asyncio or proxy errors in the log."""
    yield
    watched = ("asyncio", "tests")
    noisy = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith(watched)]
    assert not noisy, [r.getMessage() for r in noisy]


class CountingServer:
    """POST /count counts complete JSON requests; POST /stream answers chunked."""

    def __init__(self) -> None:
        self.n = 0
        self.bad = 0  # requests whose body never fully arrived
        self.port = 0

    async def count(self, request: web.Request) -> web.Response:
        # Read the whole body before counting: a truncated request must not count.
        try:
            json.loads(await request.read())
        except Exception as exc:
            self.bad += 1
            raise web.HTTPBadRequest() from exc
        self.n += 1
        n = self.n
        await asyncio.sleep(float(request.query.get("sleep", "0")))
        return web.json_response({"n": n})

    async def stream(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.n += 1
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(3):
            await resp.write(f"part{i};".encode())
        await resp.write_eof()
        return resp


@contextlib.asynccontextmanager
async def serve() -> AsyncIterator[CountingServer]:
    server = CountingServer()
    app = web.Application()
    app.router.add_post("/count", server.count)
    app.router.add_post("/stream", server.stream)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server.port = runner.addresses[0][1]
        yield server
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def proxied(
    plan: FaultPlan | None = None, seed: int = 0
) -> AsyncIterator[tuple[CountingServer, FaultProxy, aiohttp.ClientSession]]:
    async with serve() as server, FaultProxy(server.port, plan=plan, seed=seed) as proxy:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            yield server, proxy, session


async def post(session: aiohttp.ClientSession, proxy: FaultProxy, sleep: float = 0.0) -> int:
    params = {"sleep": str(sleep)} if sleep else None
    async with session.post(f"{proxy.url}/count", json=PAYLOAD, params=params) as resp:
        resp.raise_for_status()
        body = await resp.json()
        return int(body["n"])


async def fails(session: aiohttp.ClientSession, proxy: FaultProxy) -> None:
    with pytest.raises(aiohttp.ClientError):
        await post(session, proxy)


def run(main: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), 15))


def test_plan_validation() -> None:
    with pytest.raises(ValueError):
        FaultPlan(cut_request=0.6, cut_response=0.6)
    with pytest.raises(ValueError):
        FaultPlan(delay=1.5)
    with pytest.raises(ValueError):
        FaultProxy(80, target_host="10.0.0.1")


def test_clean_passthrough_keepalive_close_and_concurrent() -> None:
    async def main() -> None:
        async with proxied() as (server, proxy, session):
            # keep-alive: one client connection carries them all
            assert [await post(session, proxy) for _ in range(20)] == list(range(1, 21))
            assert proxy.stats["connections"] == 1
            # no keep-alive: a connection per request
            conn = aiohttp.TCPConnector(force_close=True)
            async with aiohttp.ClientSession(timeout=TIMEOUT, connector=conn) as closing:
                assert [await post(closing, proxy) for _ in range(10)] == list(range(21, 31))
            assert proxy.stats["connections"] == 11
            # concurrent requests over several pooled connections
            got = await asyncio.gather(*(post(session, proxy) for _ in range(10)))
            assert sorted(got) == list(range(31, 41))
            assert server.n == 40
            assert proxy.stats["passed"] == proxy.stats["requests"] == 40
            assert proxy.stats["faults"] == proxy.stats["errors"] == 0

    run(main)


def test_chunked_responses_pass_and_keep_framing() -> None:
    async def main() -> None:
        async with proxied() as (server, proxy, session):
            for _ in range(3):  # several on one keep-alive connection: framing must stay aligned
                async with session.post(f"{proxy.url}/stream", json=PAYLOAD) as resp:
                    assert resp.headers["Transfer-Encoding"] == "chunked"
                    assert await resp.text() == "part0;part1;part2;"
            assert await post(session, proxy) == 4
            assert proxy.stats["connections"] == 1

            proxy.set_plan(FaultPlan(cut_response=1.0))
            with pytest.raises(aiohttp.ClientError):
                async with session.post(f"{proxy.url}/stream", json=PAYLOAD) as resp:
                    await resp.read()
            assert server.n == 5

    run(main)


def test_cut_response_server_acted_client_failed() -> None:
    async def main() -> None:
        async with proxied(FaultPlan(cut_response=1.0), seed=3) as (server, proxy, session):
            for i in range(1, 6):
                await fails(session, proxy)
                assert server.n == i  # the response was read from the server before the cut
            assert proxy.stats["cut_response"] == 5
            proxy.set_plan(FaultPlan())
            assert await post(session, proxy) == 6

    run(main)


def test_cut_request_server_never_counts() -> None:
    async def main() -> None:
        async with proxied(FaultPlan(cut_request=1.0), seed=5) as (server, proxy, session):
            for _ in range(5):
                await fails(session, proxy)
            await asyncio.sleep(0.05)  # let the server notice the truncated bodies
            assert server.n == 0
            assert proxy.stats["cut_request"] == 5
            proxy.enabled = False
            assert await post(session, proxy) == 1

    run(main)


def test_duplicate_request_one_response_two_deliveries() -> None:
    async def main() -> None:
        async with proxied(FaultPlan(duplicate_request=1.0)) as (server, proxy, session):
            # The client gets the original's answer; the copy was handled before it arrived.
            assert [await post(session, proxy) for _ in range(3)] == [1, 3, 5]
            assert server.n == 6
            assert proxy.stats["duplicate_request"] == 3
            assert proxy.stats["connections"] == 1  # the client's keep-alive survived

    run(main)


def test_delay() -> None:
    async def main() -> None:
        async with proxied(FaultPlan(delay=1.0, delay_max=0.1), seed=2) as (server, proxy, session):
            started = time.monotonic()
            assert [await post(session, proxy) for _ in range(5)] == [1, 2, 3, 4, 5]
            elapsed = time.monotonic() - started
            assert proxy.stats["delay"] == 5
            assert server.n == 5
            assert 0 < proxy.total_delay <= 0.5
            assert elapsed >= proxy.total_delay - 0.01

    run(main)


def test_max_faults_then_clean() -> None:
    async def main() -> None:
        async with proxied(FaultPlan(cut_response=1.0, max_faults=3)) as (server, proxy, session):
            for _ in range(3):
                await fails(session, proxy)
            assert [await post(session, proxy) for _ in range(3)] == [4, 5, 6]
            assert proxy.stats["faults"] == 3
            assert server.n == 6  # the cut responses' requests were handled too
            assert proxy.decisions == ["cut_response"] * 3 + ["pass"] * 3

    run(main)


def test_seeded_mix_is_reproducible_and_accounted() -> None:
    plan = FaultPlan(cut_request=0.25, cut_response=0.25, duplicate_request=0.25, delay=0.2, delay_max=0.01)

    async def once(seed: int) -> list[str]:
        async with proxied(plan, seed=seed) as (server, proxy, session):
            for _ in range(16):
                with contextlib.suppress(aiohttp.ClientError):
                    await post(session, proxy)
            await asyncio.sleep(0.05)
            faults = [d.split("+")[-1] for d in proxy.decisions]
            # Exactly the requests that reached the server whole were counted, copies twice.
            reached = sum(
                {"pass": 1, "delay": 1, "cut_response": 1, "duplicate_request": 2}.get(f, 0) for f in faults
            )
            assert server.n == reached
            assert len(proxy.decisions) == 16
            return proxy.decisions

    async def main() -> None:
        first = await once(11)
        assert first == await once(11)
        assert len(set(first)) >= 3  # the mix really mixed

    run(main)


def test_cut_link_and_restore() -> None:
    async def main() -> None:
        async with proxied() as (server, proxy, session):
            assert await post(session, proxy) == 1
            # A request in flight when the link goes: dropped.
            pending = asyncio.create_task(post(session, proxy, sleep=0.5))
            await asyncio.sleep(0.2)
            proxy.cut_link()
            with pytest.raises(aiohttp.ClientError):
                await pending
            assert proxy.stats["dropped"] >= 1
            # New connections are refused while the link is down.
            await fails(session, proxy)
            await fails(session, proxy)
            assert proxy.stats["refused"] >= 2
            proxy.restore_link()
            assert await post(session, proxy) == 3  # the in-flight one did reach the server
            assert server.n == 3

    run(main)


def test_chunked_request_refused_clearly() -> None:
    async def main() -> None:
        async with serve() as server, FaultProxy(server.port) as proxy:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(
                b"POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
            )
            answer = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            await writer.wait_closed()
            assert answer.startswith(b"HTTP/1.1 501 ")
            assert b"chunked request bodies are not supported" in answer
            assert proxy.stats["unsupported"] == 1
            assert server.n == 0

    run(main)


def test_stop_ends_tasks_and_closes_sockets() -> None:
    async def main() -> None:
        async with serve() as server:
            proxy = FaultProxy(server.port)
            await proxy.start()
            # One idle client connection and one mid-request (head sent, body missing).
            idle_r, idle_w = await asyncio.open_connection("127.0.0.1", proxy.port)
            half_r, half_w = await asyncio.open_connection("127.0.0.1", proxy.port)
            half_w.write(b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{}")
            await asyncio.sleep(0.1)
            assert any(t.get_name().startswith(TASK_PREFIX) for t in asyncio.all_tasks())
            await proxy.stop()
            assert not [t for t in asyncio.all_tasks() if t.get_name().startswith(TASK_PREFIX)]
            # The proxy closed its side of both connections.
            for reader, writer in ((idle_r, idle_w), (half_r, half_w)):
                assert await asyncio.wait_for(reader.read(), 2) == b""
                writer.close()
            with pytest.raises(OSError):
                await asyncio.open_connection("127.0.0.1", proxy.port)

    run(main)


def urllib_post(url: str) -> int:
    req = urllib.request.Request(
        f"{url}/count", data=json.dumps(PAYLOAD).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return int(json.load(resp)["n"])


def test_thread_runner_from_sync_code() -> None:
    """The sync API: a with-block, a blocking client, and no thread left afterwards."""
    threads_before = threading.active_count()
    link_errors = (urllib.error.URLError, http.client.HTTPException, OSError)

    async def main() -> None:
        async with serve() as server:
            with FaultProxy(server.port, plan=FaultPlan(cut_response=1.0, max_faults=2)) as proxy:
                assert threading.active_count() > threads_before
                for _ in range(2):
                    # http.client takes a response cut inside its head as complete (EOF ends
                    # the headers), so a cut can also surface as an empty, undecodable body.
                    with pytest.raises((*link_errors, ValueError)):
                        await asyncio.to_thread(urllib_post, proxy.url)
                assert await asyncio.to_thread(urllib_post, proxy.url) == 3
                # Called from this thread while the proxy's loop runs in its own.
                proxy.cut_link()
                with pytest.raises(link_errors):
                    await asyncio.to_thread(urllib_post, proxy.url)
                proxy.restore_link()
                assert await asyncio.to_thread(urllib_post, proxy.url) == 4
                assert proxy.stats["cut_response"] == 2
                assert proxy.stats["refused"] == 1
                thread = proxy._thread
            assert thread is not None and not thread.is_alive()

    run(main)
    # asyncio.run has shut down its to_thread executor too.
    assert threading.active_count() == threads_before
