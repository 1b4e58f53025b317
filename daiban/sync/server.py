"""The node's HTTP server for its children (aiohttp): /v1/enroll, /v1/push,
/v1/pull, /v1/recover (a child restored from its backup), /v1/healthz,
/metrics. The node's database has one writer, a single thread that owns the
connection; handlers hand it work and wait. Bodies are read only through
aiohttp's size-checked reader, decompressed with a limit, and every error
answers in one JSON shape. Every request is timed and logged (route, status,
the sending node's code — never a body); a district also syncs with its
parent on a schedule (sync/schedule.py)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import random
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import ClientConnectionResetError, web

from daiban import __version__
from daiban.node import journal
from daiban.sync import metrics, protocol, recovery, service
from daiban.sync.protocol import ProtocolError
from daiban.sync.serve_config import ServeConfig

log = logging.getLogger("daiban.server")


IDLE_BEFORE_APPLY = 0.25  # seconds without a request before queued effects are applied
APPLY_CHUNK = 100


class Writer:
    """One thread that owns the node (and so the SQLite connection)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._local = threading.local()
        self._last_request = 0.0
        self._applier: asyncio.Task[None] | None = None
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="daiban-writer")
        self.info: dict[str, Any] = self.executor.submit(self._open).result()

    def _open(self) -> dict[str, Any]:
        from daiban.node.home import open_node

        node = open_node(self.home, actor="server")
        self._local.node = node
        return {
            "code": node.code,
            "role": node.role,
            "name": node.name,
            "root": node.store.setting("root_fingerprint"),
        }

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: fn(self._local.node, *args))

    def busy(self) -> None:
        self._last_request = time.monotonic()

    def apply_later(self) -> None:
        """After a push: apply the effects it queued once requests pause, so a
        child pushing batch after batch is never kept waiting for them."""
        if self._applier is None or self._applier.done():
            self._applier = asyncio.get_running_loop().create_task(self._apply_when_idle())

    async def _apply_when_idle(self) -> None:
        for _round in range(1_000_000):  # bounded: each round applies a chunk or waits for a pause
            idle = time.monotonic() - self._last_request
            if idle < IDLE_BEFORE_APPLY:
                await asyncio.sleep(IDLE_BEFORE_APPLY - idle)
                continue
            if not await self.call(journal.apply_queued, APPLY_CHUNK):
                return

    async def stop_applying(self) -> None:
        if self._applier is not None:
            self._applier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._applier

    def close(self) -> None:
        def shut() -> None:
            node = getattr(self._local, "node", None)
            if node is not None:
                node.close()

        self.executor.submit(shut).result()
        self.executor.shutdown(wait=True)


WRITER = web.AppKey("writer", Writer)
METRICS = web.AppKey("metrics", metrics.ServerMetrics)
CONFIG = web.AppKey("config", ServeConfig)
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


async def _body(request: web.Request) -> tuple[bytes, Any]:
    if request.content_type != protocol.CONTENT_TYPE:
        raise ProtocolError(415, "unsupported", f"send {protocol.CONTENT_TYPE}")
    raw = await request.read()  # bounded by client_max_size
    return raw, protocol.decode(raw)


def _health(node: Any) -> dict[str, Any]:
    return {
        "code": node.code,
        "role": node.role,
        "name": node.name,
        "root": node.store.setting("root_fingerprint"),
    }


async def healthz(request: web.Request) -> web.Response:
    info = await request.app[WRITER].call(_health)
    body = {"ok": True, "version": __version__, "protocol": protocol.PROTOCOL, **info}
    return web.json_response(body)


def _push_counted(node: Any, headers: dict[str, str], path: str, raw: bytes, data: Any) -> tuple[Any, Any]:
    result = service.push(node, headers, path, raw, data)
    return result, metrics.push_kinds(node, result)


def _pull_counted(node: Any, headers: dict[str, str], path: str, raw: bytes, data: Any) -> tuple[Any, Any]:
    result = service.pull(node, headers, path, raw, data)
    # service.pull has checked the cursor and the sender by now.
    return result, metrics.pull_kinds(node, headers.get(protocol.H_NODE, ""), data["cursor"], result)


async def push(request: web.Request) -> web.Response:
    writer = request.app[WRITER]
    writer.busy()
    raw, data = await _body(request)
    try:
        result, kinds = await writer.call(_push_counted, dict(request.headers), request.path, raw, data)
    finally:
        writer.busy()
    writer.apply_later()
    request.app[METRICS].pushed(result, kinds)
    return _json(result)


async def pull(request: web.Request) -> web.Response:
    writer = request.app[WRITER]
    writer.busy()
    raw, data = await _body(request)
    result, kinds = await writer.call(_pull_counted, dict(request.headers), request.path, raw, data)
    request.app[METRICS].count_kinds(request.app[METRICS].envelopes_out, kinds, "child")
    return _json(result)


async def recover(request: web.Request) -> web.Response:
    raw, data = await _body(request)
    headers = dict(request.headers)
    result = await request.app[WRITER].call(recovery.serve_recover, headers, request.path, raw, data)
    return _json(result)


async def metrics_page(request: web.Request) -> web.Response:
    """Prometheus text format (OpenMetrics if the scraper asks for it)."""
    registry = request.app[METRICS]
    snap = await request.app[WRITER].call(metrics.snapshot, registry.stale_after)
    body, content_type = registry.render(snap, request.headers.get("Accept", ""))
    return web.Response(body=body, headers={"Content-Type": content_type})


async def enroll(request: web.Request) -> web.Response:
    _raw, data = await _body(request)
    result = await request.app[WRITER].call(service.enroll, data)
    return _json(result)


def create_app(home: Path, config: ServeConfig | None = None) -> web.Application:
    config = config or ServeConfig()
    app = web.Application(client_max_size=protocol.MAX_BODY, middlewares=[observe, errors])
    app[CONFIG] = config
    app[METRICS] = metrics.ServerMetrics(config.stale_after)

    async def writer_ctx(app: web.Application) -> AsyncIterator[None]:
        writer = Writer(home)
        app[WRITER] = writer
        yield
        await writer.stop_applying()
        writer.close()

    app.cleanup_ctx.append(writer_ctx)
    if config.forward_window is not None:
        app.cleanup_ctx.append(_forward_ctx(home, config))
    app.router.add_get(protocol.HEALTH, healthz)
    app.router.add_post(protocol.PUSH, push)
    app.router.add_post(protocol.PULL, pull)
    app.router.add_post(protocol.ENROLL, enroll)
    app.router.add_post(recovery.RECOVER, recover)
    app.router.add_get(METRICS_PATH, metrics_page)
    return app


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
        runner = web.AppRunner(app, keepalive_timeout=15, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port, shutdown_timeout=5)
        await site.start()
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
