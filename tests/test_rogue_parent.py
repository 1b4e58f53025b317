"""A rogue parent (issue 10): a real aiohttp server on 127.0.0.1 at the
address the village knows its parent by. The village enrolled THROUGH it —
it forwarded the enrollment to the real town, so the village pinned the real
root and the real town's certificate — and it then forges, in turn:

(a) a push acknowledgement saying "stored" for every envelope;
(b) a pull answer with cursor 10^15 (pushes pass through to the real town);
(c) a 409 `replayed` with counter 2^63 - 1;
(d) errors and garbage: a forged 403 `revoked`, bytes that are not zlib, a
    plain-text 500, an answer signed by another certified node's key (the
    district's), and a genuine answer of the town replayed to a later request;
(e) a recovery page (/v1/recover, after a restore) claiming position 10^15.

Before that, an enrollment answer relayed without its signature pins nothing.

Every such `daiban sync` fails with one line (exit 1, no traceback), and the
village lets go of nothing, moves no cursor and raises no counter on what it
could not verify. Pointed back at the real town, the village syncs: every
application is at its office exactly once and every status reaches the
village."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import threading
import zlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daiban.sync import answers, protocol
from tests.fault_net import one_line_failure, set_parent_url, write_ledger
from tests.sync_net import NODES, Network, network_at

V, T = "village", "town"
FORWARDED = (protocol.H_NODE, protocol.H_COUNTER, protocol.H_SIG, "Content-Type")
Forgery = Callable[[web.Request, bytes], Awaitable[web.Response]]


def zjson(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    body = zlib.compress(json.dumps(value).encode())
    return web.Response(body=body, status=status, content_type=protocol.CONTENT_TYPE, headers=headers or {})


class Rogue:
    """An HTTP server in its own thread: forwards to ``target`` until told
    to forge. Keeps every genuine answer it relayed (for replays)."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.forge: Forgery | None = None
        self.genuine: list[tuple[str, int, bytes, str]] = []  # path, status, body, answer signature
        self.forged = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="rogue-parent", daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    def __enter__(self) -> Rogue:
        self._thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(20)
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(20)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(20)

    async def _start(self) -> str:
        app = web.Application(client_max_size=protocol.MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        port = self._runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.forge is not None:
            forged = await self.forge(request, body)
            if forged is not None:
                self.forged += 1
                return forged
        return await self.forward(request, body)

    async def forward(self, request: web.Request, body: bytes) -> web.Response:
        assert self._session is not None
        headers = {k: request.headers[k] for k in FORWARDED if k in request.headers}
        async with self._session.request(
            request.method, self.target + request.path, data=body, headers=headers
        ) as resp:
            answer, status = await resp.read(), resp.status
            signature = resp.headers.get(answers.H_ANSWER, "")
        self.genuine.append((request.path, status, answer, signature))
        out = {answers.H_ANSWER: signature} if signature else {}
        return web.Response(body=answer, status=status, content_type=protocol.CONTENT_TYPE, headers=out)


# -- forgeries ------------------------------------------------------------------------------------


def envelope_ids(body: bytes) -> list[str]:
    data = json.loads(zlib.decompress(body))
    return [json.loads(raw)["id"] for raw in data["envelopes"]]


async def ack_everything(request: web.Request, body: bytes) -> web.Response:
    """(a) Every pushed envelope "stored"."""
    if request.path != protocol.PUSH:
        return zjson({"ok": True, "envelopes": [], "cursor": 0, "more": False, "certs": []})
    results = [
        {"id": i, "status": "stored", "received_at": "2026-12-01T10:00:00+08:00"} for i in envelope_ids(body)
    ]
    return zjson({"ok": True, "results": results, "high_water": {}})


async def far_cursor(request: web.Request, body: bytes) -> web.Response | None:
    """(b) Pushes go to the real town; a pull is answered with cursor 10^15."""
    if request.path != protocol.PULL:
        return None
    return zjson({"ok": True, "envelopes": [], "cursor": 10**15, "more": False, "certs": []})


async def far_holds(request: web.Request, body: bytes) -> web.Response | None:
    """(f) Asked what it holds after an unanswered push: "everything"."""
    if request.path != protocol.PULL:
        return None
    code = NODES[V].code
    return zjson(
        {"ok": True, "envelopes": [], "cursor": 0, "more": False, "certs": [], "holds": {code: 10**6}}
    )


async def huge_counter(request: web.Request, body: bytes) -> web.Response:
    """(c) Every request "replayed", the parent's counter at 2^63 - 1."""
    error = {"ok": False, "status": 409, "code": "replayed", "error": "used before", "counter": 2**63 - 1}
    return zjson(error, 409)


async def far_recovery(request: web.Request, body: bytes) -> web.Response | None:
    """(e) A recovery page that claims a position of 10^15."""
    if request.path != "/v1/recover":
        return None
    return zjson({"ok": True, "envelopes": [], "after": 10**15, "more": False, "certs": []})


def garbage(rogue: Rogue, district_key: Ed25519PrivateKey) -> dict[str, Forgery]:
    """(d) Errors and garbage, each a forgery of its own."""

    async def revoked(request: web.Request, body: bytes) -> web.Response:
        return zjson({"ok": False, "status": 403, "code": "revoked", "error": "revoked"}, 403)

    async def not_zlib(request: web.Request, body: bytes) -> web.Response:
        return web.Response(body=b"\x00\xffnot zlib at all" * 50, content_type=protocol.CONTENT_TYPE)

    async def plain_500(request: web.Request, body: bytes) -> web.Response:
        return web.Response(status=500, text="Internal Server Error")

    async def list_body(request: web.Request, body: bytes) -> web.Response:
        return zjson([1, 2, 3])

    async def signed_by_another_node(request: web.Request, body: bytes) -> web.Response:
        """A certified key, the district's, but not the parent's."""
        forged = await ack_everything(request, body)
        assert isinstance(forged.body, bytes)
        bound = request.headers.get(protocol.H_SIG, "")
        forged.headers[answers.H_ANSWER] = answers.sign(district_key, 200, forged.body, bound, NODES[T].code)
        return forged

    async def replayed_genuine(request: web.Request, body: bytes) -> web.Response:
        """A genuine, signed answer of the town to an earlier push."""
        pushes = [g for g in rogue.genuine if g[0] == protocol.PUSH and g[1] == 200]
        assert pushes, "the rogue relayed no genuine push answer to replay"
        _path, status, answer, signature = pushes[-1]
        return web.Response(
            body=answer,
            status=status,
            content_type=protocol.CONTENT_TYPE,
            headers={answers.H_ANSWER: signature},
        )

    return {
        "forged 403 revoked": revoked,
        "not zlib": not_zlib,
        "plain-text 500": plain_500,
        "a JSON list": list_body,
        "signed by the district's key": signed_by_another_node,
        "a genuine answer replayed": replayed_genuine,
    }


# -- looking into the village -----------------------------------------------------------------------


def state(net: Network) -> dict[str, Any]:
    """What the village holds for its parent: its queue, its cursor and counter."""
    queued = {r[0] for r in net.query(V, "SELECT envelope_id FROM outbox")}
    peer = net.query(V, "SELECT counter, cursor FROM peers WHERE code = ?", (NODES[T].code,))[0]
    return {"queued": queued, "counter": int(peer["counter"]), "cursor": int(peer["cursor"])}


def mark(net: Network, value: str) -> None:
    """As `daiban restore` leaves a home: catch up with the parent first."""
    with contextlib.closing(sqlite3.connect(net.home(V) / "daiban.db", timeout=30)) as conn, conn:
        conn.execute("INSERT OR REPLACE INTO node (key, value) VALUES ('rejoin_pending', ?)", [value])


def rejoin_mark(net: Network) -> str:
    return str(net.query(V, "SELECT value FROM node WHERE key = 'rejoin_pending'")[0][0])


def file(net: Network, tmp: Path, n: int, start: int) -> list[str]:
    ledger = write_ledger(tmp / f"ledger-{start}.csv", n, start=start)
    out = net.run(V, "apply", "--from", str(ledger), "--json").ok().json()
    return [a["tracking"] for a in out["applications"]]


def counts(net: Network, name: str, kind: str) -> dict[str, int]:
    rows = net.query(name, "SELECT tracking, COUNT(*) FROM events WHERE kind = ? GROUP BY tracking", (kind,))
    return {r[0]: int(r[1]) for r in rows}


def failed_sync(net: Network) -> str:
    """A `daiban sync` that must fail as promised; its one line."""
    result = net.run(V, "sync", "--json")
    problem = one_line_failure(
        subprocess.CompletedProcess(result.args, result.returncode, result.stdout, result.stderr)
    )
    assert problem is None, problem
    return result.stderr.strip()


def enroll_code(net: Network) -> str:
    args = ("enroll-code", "--code", NODES[V].code, "--name", NODES[V].name, "--json")
    return str(net.run(T, *args).ok().json()["code"])


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Network]:
    with network_at(tmp_path / "net") as network:
        network.build(("city", "district", "town"))
        network.init(V)
        yield network


def test_a_rogue_parent_forges_and_the_village_acts_on_none_of_it(net: Network, tmp_path: Path) -> None:
    district_key = Ed25519PrivateKey.from_private_bytes(
        (net.home("district") / "keys" / "sign.key").read_bytes()
    )
    with Rogue(net.url(T)) as rogue:
        # The town's enrollment answer, relayed without its signature: the
        # village pins nothing (the code is used up at the town all the same).
        async def unsigned_enrollment(request: web.Request, body: bytes) -> web.Response:
            genuine = await rogue.forward(request, body)
            del genuine.headers[answers.H_ANSWER]
            return genuine

        rogue.forge = unsigned_enrollment
        refused = net.run(V, "enroll", rogue.url, enroll_code(net), "--json")
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert "not signed by the parent's certified key" in refused.stderr
        assert net.query(V, "SELECT COUNT(*) FROM certs")[0][0] == 0
        assert net.query(V, "SELECT COUNT(*) FROM peers")[0][0] == 0
        # Enrolled through the rogue, which passes the enrollment on.
        rogue.forge = None
        net.run(V, "enroll", rogue.url, enroll_code(net), "--json").ok()
        trackings = file(net, tmp_path, 3, 0)
        # One genuine round through the rogue, so it has real answers to replay.
        net.run(V, "sync", "--json").ok()
        trackings += file(net, tmp_path, 3, 100)
        before = state(net)
        assert len(before["queued"]) >= 3

        rogue.forge = ack_everything  # (a)
        line = failed_sync(net)
        assert "not signed by the parent's certified key" in line
        after = state(net)
        assert after["queued"] == before["queued"] and after["cursor"] == before["cursor"]

        rogue.forge = huge_counter  # (c)
        failed_sync(net)
        after = state(net)
        assert after["queued"] == before["queued"] and after["cursor"] == before["cursor"]
        assert after["counter"] < before["counter"] + 10, "the counter moved on a forged 409"

        for name, forgery in garbage(rogue, district_key).items():  # (d)
            rogue.forge = forgery
            line = failed_sync(net)
            after = state(net)
            assert after["queued"] == before["queued"], name
            assert after["cursor"] == before["cursor"], name
            assert "Traceback" not in line, name

        # (f) A push went unanswered (every sync above failed): the village
        # asks what the parent holds before pushing again; a forged "all of
        # it" lets go of nothing.
        assert net.query(V, "SELECT value FROM node WHERE key = 'push_unanswered'")[0][0] == "1"
        rogue.forge = far_holds
        failed_sync(net)
        assert state(net)["queued"] == before["queued"], "let go of what a forged answer said was held"

        rogue.forge = far_cursor  # (b): pushes reach the real town, the pull is forged
        failed_sync(net)
        after = state(net)
        assert after["cursor"] == before["cursor"], "the cursor moved on a forged pull answer"
        assert rogue.forged >= 9

        # (e) A node restored from its backup first asks for its history
        # (/v1/recover): a forged page moves nothing and the mark stays.
        mark(net, "1")
        rogue.forge = far_recovery
        failed_sync(net)
        assert state(net)["cursor"] == before["cursor"]
        assert rejoin_mark(net) == "1", "the rejoin was marked done on a forged answer"
    # Back at the real parent.
    set_parent_url(net.home(V), net.url(T))
    for _round in range(3):
        report = net.sync(V)
        assert report["ok"] is True and report["left"] == 0
    assert rejoin_mark(net) == "0"
    filed_at_town = counts(net, T, "filed")
    assert {t: filed_at_town.get(t) for t in trackings} == {t: 1 for t in trackings}
    received_at_village = counts(net, V, "received")
    assert {t: received_at_village.get(t) for t in trackings} == {t: 1 for t in trackings}
    # A decision made now comes down too.
    net.run(T, "review", trackings[0], "accept").ok()
    net.sync(V)
    assert counts(net, V, "accepted") == {trackings[0]: 1}


def test_an_answer_signature_binds_status_body_request_and_server() -> None:
    key = Ed25519PrivateKey.generate()
    from daiban.trust.crypto import raw_public

    public = raw_public(key.public_key())
    request_sig = "A" * 86
    header = answers.sign(key, 200, b"body", request_sig, "370303101")
    answers.check(public, header, 200, b"body", request_sig, "370303101")
    for status, body, bound, server in (
        (409, b"body", request_sig, "370303101"),
        (200, b"body!", request_sig, "370303101"),
        (200, b"body", "B" * 86, "370303101"),
        (200, b"body", request_sig, "370303102"),
    ):
        with pytest.raises(answers.AnswerError):
            answers.check(public, header, status, body, bound, server)
    for bad in (None, "", header + "A", header[:-1]):
        with pytest.raises(answers.AnswerError):
            answers.check(public, bad, 200, b"body", request_sig, "370303101")
    with pytest.raises(answers.AnswerError):
        answers.check(None, header, 200, b"body", request_sig, "370303101")
    # A binding that is not a signature nor a mac is bound as "".
    assert answers.message(200, b"", "x\ny", "3703") == answers.message(200, b"", "", "3703")


@pytest.mark.parametrize("bad", [10**15, -1, True, "7", None, 2**63 - 1])
def test_a_page_out_of_bounds_is_refused(bad: Any) -> None:
    from daiban.sync.client import SyncFailed, bounded_page

    with pytest.raises(SyncFailed):
        bounded_page({"envelopes": [], "certs": [], "cursor": bad, "more": False}, "cursor", 5, 1000, "u")
    with pytest.raises(SyncFailed):  # more without a full page
        bounded_page({"envelopes": ["x"], "certs": [], "cursor": 6, "more": True}, "cursor", 5, 1000, "u")
    with pytest.raises(SyncFailed):  # envelopes, but the cursor did not move
        bounded_page({"envelopes": ["x"], "certs": [], "cursor": 5, "more": False}, "cursor", 5, 1000, "u")
    assert (
        bounded_page({"envelopes": ["x"], "certs": [], "cursor": 9, "more": False}, "cursor", 5, 1000, "u")[2]
        == 9
    )
