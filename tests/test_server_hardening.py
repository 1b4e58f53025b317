"""The HTTP server under a hostile network and bad luck (issue 10), on real
``daiban serve`` processes (tests/sync_net.py):

- a flood of unauthenticated pushes, each 31 KB that would inflate to
  31 MiB, while a probe times ``/v1/healthz``: the server authenticates over
  the bytes as sent and inflates nothing, so the probe's worst answer stays
  under a second, and the server then serves a real sync;
- every bad request a client can send (an oversized header, integers of
  2^63 and more, wrong types, a body nested 900 deep, bytes after the zlib
  stream, a bomb) is answered 4xx in the one JSON error shape, changes
  nothing in the database and leaves no traceback in the server's log;
- the database files deleted (or replaced) under a running server: it
  acknowledges nothing more (503 ``database_gone``), the village keeps its
  envelope, healthz says so.

The network is city → district → village2 (a village enrolled directly at
the district, whose SB001 applications the district handles)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from daiban.sync import protocol
from daiban.trust.crypto import NodeKeys
from tests.attacker import Resident
from tests.sync_net import NODES, Network, network_at
from tests.test_wire_docs import component

C, D, V2 = "city", "district", "village2"
TREE = (C, D, V2)
SB_FIELDS = {"contribution_grade": "500"}
RECOVER = "/v1/recover"
BOMB = zlib.compress(bytes(31 * 1024 * 1024), 9)  # 31 KB that inflates to 31 MiB
FLOOD_CLIENTS = 100
FLOOD_ROUNDS = 3  # pushes per client, one after the other: 300 in all
HEALTHZ_BOUND = 1.0  # seconds: the issue's own bound on the probe's worst answer
FLOOD_TIMEOUT = 120.0
PROBE_TIMEOUT = 10.0
_RESIDENTS = iter(
    Resident(name, birth, seq, phone)
    for name, birth, seq, phone in (
        ("吴海燕", "19811111", "079", "13905331006"),
        ("冯玉梅", "19720214", "092", "13905331008"),
        ("周文华", "19660909", "068", "13905331005"),
        ("钱建国", "19700823", "033", "13905331002"),
    )
)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with network_at(tmp_path_factory.mktemp("hardening") / "net") as network:
        network.build(TREE)
        yield network


# -- talking to the server ------------------------------------------------------------


@dataclass
class Answer:
    status: int
    content_type: str
    raw: bytes

    def error(self) -> dict[str, Any]:
        """The body as the one JSON error shape (zlib-compressed JSON), checked."""
        assert self.content_type == protocol.CONTENT_TYPE, (self.status, self.content_type, self.raw[:200])
        inflater = zlib.decompressobj()
        value = json.loads(inflater.decompress(self.raw))
        assert inflater.eof and not inflater.unused_data, self.raw[:200]
        assert isinstance(value, dict), value
        assert value.get("ok") is False and value.get("status") == self.status, value
        assert isinstance(value.get("code"), str) and value["code"], value
        assert isinstance(value.get("error"), str) and value["error"], value
        component("Error").validate(value)  # as docs/openapi.json describes it
        return value


def post(url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return Answer(resp.status, resp.headers.get_content_type(), resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return Answer(exc.code, exc.headers.get_content_type(), exc.read())


def get(url: str) -> Answer:
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT) as resp:
            return Answer(resp.status, resp.headers.get_content_type(), resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return Answer(exc.code, exc.headers.get_content_type(), exc.read())


def raw_http(url: str, request: bytes) -> Answer:
    """Send bytes as they are on one connection and read the answer until the
    server closes it (it closes after refusing what its parser could not take)."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    data = b""
    with socket.create_connection((parts.hostname, parts.port), timeout=PROBE_TIMEOUT) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before it had read everything: the answer is already on its way
        for _chunk in range(10_000):  # bounded: the answer is small
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    head, _sep, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _s, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", len(body)))
    return Answer(status, headers.get("content-type", "").split(";")[0], body[:length])


def health(url: str) -> tuple[int, dict[str, Any]]:
    answer = get(url + protocol.HEALTH)
    assert answer.content_type == "application/json", answer
    return answer.status, json.loads(answer.raw)


class Signer:
    """Signs requests as ``child`` does for its parent (its own keys, read
    from its home), over any body bytes at all."""

    def __init__(self, net: Network, child: str = V2) -> None:
        self.net = net
        self.child = child
        self.code = NODES[child].code
        parent = NODES[child].parent
        assert parent is not None
        self.parent = parent
        self.keys = NodeKeys.load(net.home(child))

    def counter(self) -> int:
        """One past what both ends last used (read-only; the parent's database
        may be gone)."""
        sql = "SELECT counter FROM peers WHERE code = ?"
        mine = self.net.query(self.child, sql, (NODES[self.parent].code,))
        there = (self.net.home(self.parent) / "daiban.db").exists()
        theirs = self.net.query(self.parent, sql, (self.code,)) if there else []
        return max([0, *(int(r[0]) for r in mine), *(int(r[0]) for r in theirs)]) + 1

    def headers(self, path: str, body: bytes, counter: int | None = None) -> dict[str, str]:
        counter = self.counter() if counter is None else counter
        message = protocol.request_message("POST", path, body, counter, self.code, NODES[self.parent].code)
        return {
            protocol.H_NODE: self.code,
            protocol.H_COUNTER: str(counter),
            protocol.H_SIG: b64(self.keys.signature(message)),
            "Content-Type": protocol.CONTENT_TYPE,
        }

    def post(self, path: str, body: bytes, **extra: str) -> Answer:
        headers = {**self.headers(path, body), **extra}
        return post(self.net.url(self.parent) + path, body, headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def z(text: str | bytes) -> bytes:
    return zlib.compress(text.encode() if isinstance(text, str) else text)


def zj(value: Any) -> bytes:
    return z(json.dumps(value, separators=(",", ":"), sort_keys=True))


def dump(net: Network, name: str) -> list[str]:
    """The node's whole database as SQL text (read-only)."""
    conn = net.db(name)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def server_log(net: Network, name: str) -> str:
    return net.servers[name].log.read_text(encoding="utf-8", errors="replace")


def file_sb(net: Network, resident: Resident) -> str:
    """Village2 files an SB001 application (handled at the district); its tracking number."""
    args = ["apply", "--item", "SB001", "--name", resident.name, "--id-number", resident.id_number]
    args += ["--phone", resident.phone, "--json"]
    for key, value in SB_FIELDS.items():
        args += ["--field", f"{key}={value}"]
    filed = net.run(V2, *args).ok().json()
    assert filed["office"] == NODES[D].code, filed
    number: str = filed["tracking"]
    return number


def listed(net: Network, name: str) -> set[str]:
    return {row["tracking"] for row in net.run(name, "list", "--json").ok().json()}


# -- the flood -------------------------------------------------------------------------

FLOOD = r"""
import asyncio, base64, json, os, sys, time
import aiohttp

url, node, bomb_path = sys.argv[1], sys.argv[2], sys.argv[3]
clients, rounds, limit = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
with open(bomb_path, "rb") as f:
    BODY = f.read()


async def one(session, i):
    statuses = []
    for r in range(rounds):
        headers = {"Content-Type": "application/vnd.daiban+json+zlib"}
        if i % 2:  # half claim to be the enrolled village, with a signature of random bytes
            sig = base64.urlsafe_b64encode(os.urandom(64)).rstrip(b"=").decode()
            headers["X-Daiban-Node"] = node
            headers["X-Daiban-Counter"] = str(10**12 + i)
            headers["X-Daiban-Signature"] = sig
        async with session.post(url + "/v1/push", data=BODY, headers=headers) as resp:
            await resp.read()
            statuses.append(resp.status)
    return statuses


async def main():
    timeout = aiohttp.ClientTimeout(total=limit)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        print("go", flush=True)
        started = time.monotonic()
        results = await asyncio.gather(*(one(session, i) for i in range(clients)))
        seconds = time.monotonic() - started
    print(json.dumps({"statuses": [s for r in results for s in r], "seconds": seconds}), flush=True)


asyncio.run(main())
"""


def probe(url: str) -> float:
    """Seconds for the server to answer /v1/healthz, from connecting to the last byte."""
    started = time.perf_counter()
    answer = get(url + protocol.HEALTH)
    seconds = time.perf_counter() - started
    assert answer.status == 200, answer
    return seconds


def test_a_flood_of_unauthenticated_bombs_leaves_healthz_answered(net: Network, tmp_path: Path) -> None:
    url = net.url(D)
    assert 30_000 < len(BOMB) < 33_000, len(BOMB)
    bomb = tmp_path / "bomb.z"
    bomb.write_bytes(BOMB)
    probe(url)  # warm: the first answer reads the root once
    flood = subprocess.Popen(
        [
            sys.executable,
            "-c",
            FLOOD,
            url,
            NODES[V2].code,
            str(bomb),
            str(FLOOD_CLIENTS),
            str(FLOOD_ROUNDS),
            str(FLOOD_TIMEOUT),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert flood.stdout is not None
        assert flood.stdout.readline().strip() == "go", flood.stderr.read() if flood.stderr else ""
        latencies: list[float] = []
        deadline = time.monotonic() + FLOOD_TIMEOUT
        while flood.poll() is None and time.monotonic() < deadline:
            latencies.append(probe(url))
        out, err = flood.communicate(timeout=FLOOD_TIMEOUT)
    finally:
        if flood.poll() is None:
            flood.kill()
            flood.wait(timeout=10)
    assert flood.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    # Every bomb refused for want of a valid signature, none inflated.
    assert result["statuses"] == [401] * (FLOOD_CLIENTS * FLOOD_ROUNDS), result
    assert latencies, "the flood ended before a single probe"
    assert max(latencies) < HEALTHZ_BOUND, (
        f"healthz took {max(latencies):.3f} s at worst during the flood "
        f"({len(latencies)} probes, flood {result['seconds']:.2f} s)"
    )
    # ... and the server serves a real sync afterwards.
    number = file_sb(net, next(_RESIDENTS))
    assert net.sync(V2)["left"] == 0
    assert number in listed(net, D)
    assert "Traceback" not in server_log(net, D)


# -- bad requests -----------------------------------------------------------------------


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def signed_cases(signer: Signer) -> dict[str, tuple[str, bytes, int]]:
    """Bad signed requests: (path, body as sent, the status it must get)."""
    tracking = "37030310120220261127"  # shaped like a tracking number
    return {
        "pull cursor 2^63": (protocol.PULL, z('{"cursor":9223372036854775808,"limit":10}'), 400),
        "pull cursor 2^64": (protocol.PULL, z('{"cursor":18446744073709551616,"limit":10}'), 400),
        "pull cursor 10^30": (protocol.PULL, z('{"cursor":1000000000000000000000000000000}'), 400),
        "pull cursor -2^63-1": (protocol.PULL, z('{"cursor":-9223372036854775809}'), 400),
        "pull limit 2^63": (protocol.PULL, z('{"cursor":0,"limit":9223372036854775808}'), 400),
        "pull cursor as text": (protocol.PULL, zj({"cursor": "0"}), 400),
        "pull cursor a tracking number in a list": (protocol.PULL, zj({"cursor": [tracking]}), 400),
        "pull limit true": (protocol.PULL, zj({"cursor": 0, "limit": True}), 400),
        "pull body a list": (protocol.PULL, zj([0]), 400),
        "recover after 2^63": (RECOVER, z('{"after":9223372036854775808,"limit":10}'), 400),
        "recover after a tracking number in a list": (RECOVER, zj({"after": [tracking], "limit": 10}), 400),
        "recover after a tracking number": (RECOVER, zj({"after": tracking, "limit": 10}), 400),
        "recover limit 2^63": (RECOVER, z('{"after":0,"limit":9223372036854775808}'), 400),
        "push envelopes a text": (protocol.PUSH, zj({"envelopes": "x", "certs": []}), 400),
        "push envelope a list": (protocol.PUSH, zj({"envelopes": [[tracking]], "certs": []}), 400),
        "push envelope a number 2^63": (protocol.PUSH, z('{"envelopes":[9223372036854775808]}'), 400),
        "push certs a text": (protocol.PUSH, zj({"envelopes": [], "certs": "x"}), 400),
        "push chain of texts": (protocol.PUSH, zj({"envelopes": [], "certs": [["x"]]}), 400),
        "push chain of numbers": (protocol.PUSH, zj({"envelopes": [], "certs": [[1]]}), 400),
        "push cert with 2^63": (
            protocol.PUSH,
            z('{"certs":[[{"v":1,"code":"3703","serial":9223372036854775808}]],"envelopes":[]}'),
            400,
        ),
        "push nested 900 deep": (protocol.PUSH, z('{"certs":' + _deep(900) + ',"envelopes":[]}'), 400),
        "push nested 5000 deep": (protocol.PUSH, z('{"certs":' + _deep(5000) + ',"envelopes":[]}'), 400),
        "pull nested 900 deep": (protocol.PULL, z('{"cursor":0,"x":' + _deep(900) + "}"), 400),
        "pull with bytes after the zlib stream": (protocol.PULL, zj({"cursor": 0}) + b"trailing", 400),
        "pull with a second zlib stream": (protocol.PULL, zj({"cursor": 0}) + zj({"cursor": 5}), 400),
        "pull cut short": (protocol.PULL, zj({"cursor": 0})[:-3], 400),
        "pull not zlib": (protocol.PULL, b'{"cursor":0}', 400),
        "pull not JSON": (protocol.PULL, z(b"\xff\xfe not json"), 400),
        "pull a NaN": (protocol.PULL, z('{"cursor":NaN}'), 400),
        "push a bomb past 32 MiB": (protocol.PUSH, zlib.compress(bytes(33 * 1024 * 1024), 9), 413),
    }


def test_bad_requests_get_4xx_in_the_json_shape_and_change_nothing(net: Network) -> None:
    signer = Signer(net)
    url = net.url(D)
    net.sync(V2)  # whatever the fixture left in flight has arrived: nothing moves below
    before = dump(net, D)
    seen: dict[str, tuple[int, str]] = {}

    for name, (path, body, status) in signed_cases(signer).items():
        answer = signer.post(path, body)
        error = answer.error()
        assert answer.status == status, (name, error)
        seen[name] = (answer.status, error["code"])

    # Integers past 64 bits and odd spellings in the signed counter header.
    for counter in (str(2**63), str(2**64), "+5", "5_0", "0x5", "-1", ""):
        body = zj({"cursor": 0})
        headers = signer.headers(protocol.PULL, body)
        answer = post(url + protocol.PULL, body, {**headers, protocol.H_COUNTER: counter})
        assert answer.status == 401 and answer.error()["code"] == "unauthenticated", (counter, answer)

    # Authentication comes before inflation: bombs and garbage get 401 or 409.
    stale = signer.headers(protocol.PULL, BOMB, counter=0)
    unsigned = {"Content-Type": protocol.CONTENT_TYPE}
    forged = {**stale, protocol.H_COUNTER: str(signer.counter())}
    for headers, status, code in ((unsigned, 401, "unauthenticated"), (forged, 401, "bad_signature")):
        for path in (protocol.PUSH, protocol.PULL, RECOVER):
            answer = post(url + path, BOMB, headers)
            assert (answer.status, answer.error()["code"]) == (status, code), (path, answer)
    answer = post(url + protocol.PULL, b"not even zlib", signer.headers(protocol.PULL, b"not even zlib", 0))
    assert (answer.status, answer.error()["code"]) == (409, "replayed"), answer

    # An HTTP content coding is refused, never inflated.
    body = zj({"cursor": 0})
    answer = signer.post(protocol.PULL, body, **{"Content-Encoding": "deflate"})
    assert (answer.status, answer.error()["code"]) == (415, "unsupported"), answer

    # Enrollment is not signed: its body may inflate to 64 KiB only; wrong types are refused.
    enroll = url + protocol.ENROLL
    answer = post(enroll, BOMB, unsigned)
    assert (answer.status, answer.error()["code"]) == (413, "too_large"), answer
    base = {"v": 1, "code": "370303101203", "name": "新张村", "sign": "x", "enc": "x", "mac": "0" * 64}
    for wrong in (
        {"code": ["370303101203"]},
        {"sign": 1},
        {"mac": None},
        {"name": ["新张村"]},
        {"resume_seq": 2**63},
        {"resume_seq": "1"},
    ):
        answer = post(enroll, zj({**base, **wrong}), unsigned)
        assert (answer.status, answer.error()["code"]) == (400, "malformed"), (wrong, answer)
    answer = post(enroll, zj(base) + b"\x00", unsigned)
    assert (answer.status, answer.error()["code"]) == (400, "malformed"), answer

    # Headers past aiohttp's limits: refused by its parser, in the JSON shape.
    filler = "a" * 100_000
    for request in (
        f"GET /v1/healthz HTTP/1.1\r\nHost: x\r\nX-Filler: {filler}\r\n\r\n",
        f"POST /v1/push HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nX-Filler: {filler}\r\n\r\n",
        f"GET /v1/healthz?{filler} HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /v1/healthz HTTP/1.1\r\nHost: x\r\n" + "".join(f"X-H{i}: 1\r\n" for i in range(300)) + "\r\n",
    ):
        answer = raw_http(url, request.encode())
        assert (answer.status, answer.error()["code"]) == (431, "header_too_large"), request[:80]
    answer = raw_http(url, b"\x16\x03\x01 not HTTP at all\r\n\r\n")
    assert answer.status == 400 and answer.error()["code"] == "bad_request", answer

    assert dump(net, D) == before, "a refused request changed the database"
    status, body_ = health(url)
    assert status == 200 and body_["ok"] is True, body_
    component("Health").validate(body_)
    log = server_log(net, D)
    assert "Traceback" not in log and '"status": 500' not in log, log[-3000:]
    # The genuine client still syncs.
    assert net.sync(V2)["left"] == 0


# -- the database gone -------------------------------------------------------------------


def test_database_deleted_under_serve_acknowledges_nothing(tmp_path: Path) -> None:
    with network_at(tmp_path / "net") as net:
        net.build(TREE)
        first = file_sb(net, next(_RESIDENTS))
        assert net.sync(V2)["left"] == 0
        assert first in listed(net, D)
        url = net.url(D)

        for suffix in ("", "-wal", "-shm"):
            (net.home(D) / f"daiban.db{suffix}").unlink(missing_ok=True)

        second = file_sb(net, next(_RESIDENTS))
        outbox_before = net.count(V2, "outbox")
        assert outbox_before >= 1
        result = net.run(V2, "sync")
        assert result.returncode == 1, result
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result
        assert "503" in result.stderr and "database" in result.stderr, result.stderr
        # Nothing was acknowledged: the village keeps its envelope.
        assert net.count(V2, "outbox") == outbox_before
        held = net.query(
            V2,
            "SELECT COUNT(*) FROM outbox JOIN envelopes ON envelopes.id = outbox.envelope_id "
            "WHERE envelopes.tracking = ?",
            (second,),
        )
        assert held[0][0] >= 1

        # A push signed as the village does: 503 with its reason.
        answer = Signer(net).post(protocol.PUSH, zj({"certs": [], "envelopes": []}))
        error = answer.error()
        assert (answer.status, error["code"], error.get("reason")) == (503, "database_gone", "deleted"), error

        status, body = health(url)
        assert status == 503, body
        assert body["ok"] is False and body["code"] == "database_gone" and body["reason"] == "deleted", body
        assert body["node"] == NODES[D].code and body["status"] == 503, body
        component("HealthGone").validate(body)

        log = server_log(net, D)
        assert "database gone" in log and "Traceback" not in log, log[-3000:]


def test_database_replaced_under_serve_is_noticed(tmp_path: Path) -> None:
    with network_at(tmp_path / "net") as net:
        net.init(C)
        (url,) = net.start(C)
        assert health(url)[0] == 200
        db = net.home(C) / "daiban.db"
        copy = tmp_path / "copy.db"
        shutil.copyfile(db, copy)
        os.replace(copy, db)  # the same bytes under a new file: not the one the server holds
        status, body = health(url)
        assert (status, body["code"], body["reason"]) == (503, "database_gone", "replaced"), body
        component("HealthGone").validate(body)
        answer = post(url + protocol.ENROLL, zj({"code": "370303"}), {"Content-Type": protocol.CONTENT_TYPE})
        error = answer.error()
        assert (answer.status, error["code"], error["reason"]) == (503, "database_gone", "replaced"), error
        assert "Traceback" not in server_log(net, C)
