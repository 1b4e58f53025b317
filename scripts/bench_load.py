"""Load on one district: many villages simulated in one process against one
real `daiban serve`.

Each simulated village has its own Ed25519 and X25519 keys and enrolls
through the real ``/v1/enroll`` with a one-time code from the real
``daiban enroll-code`` (the scrypt-stretched HMAC of *Enrollment*). It then
files applications as a village does: a ``filed`` envelope per application,
its personal part sealed to the district's office key, signed inside and
out (envelope.schema.json), pushed in one signed request, then a signed pull,
every answer's signature verified against the district's certified key. An
outside client, as in tests/wire_client.py: it imports from ``daiban`` only
the protocol's constants.

Phases:
1. enrolment (not timed in the figures: scrypt makes it about 0.5 s of the
   district's single writer per village; its own time is printed);
2. the envelopes are built and sealed (not timed: client work);
3. the timed phase: every village pushes its applications, then pulls, with
   at most --in-flight requests in flight (aiohttp, one process);
4. the receipts: pulls again (bounded rounds) once the district has applied
   what came in;
5. the checks: every application at the district exactly once (`daiban list
   --json` and the district's database: one ``filed`` event per tracking
   number), nothing quarantined, ``PRAGMA integrity_check``.

Prints applications/s sustained over the push phase, p50/p99 latency per
request, errors, the server's peak RSS (VmHWM) and its CPU per thread over
the timed phase, beside the issue's targets and beside a baseline run on
the same machine right after: the same envelopes' texts, the same requests
and as many in flight, to a bare aiohttp server (its own process) that
stores them in SQLite with the same durability, one transaction per
request, without signatures, sealing, checks or journal. Bounded: every
request has a timeout, every loop a bound, the whole run --deadline
seconds; every process it started is stopped by its PID. --state DIR keeps
the enrolled district and villages (3,000 enrolments take about 25 minutes
here) and reuses them on the next run with as many villages.

Usage: .venv/bin/python scripts/bench_load.py [--villages N] [--per-village K]
       [--in-flight M] [--state DIR] [--py-spy PATH] [--no-baseline]"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import itertools
import json
import os
import re
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from stdnum.cn import ric
from stdnum.damm import calc_check_digit

from daiban.sync import protocol

DAIBAN = str(Path(sys.executable).with_name("daiban"))
CITY, DISTRICT = ("3703", "淄博市"), ("370303", "张店区")
ITEM = "SB001"  # a district-level item: every application goes to the district's own office
FIELDS = {"contribution_grade": 500}
H_ANSWER = "X-Daiban-Answer-Signature"
SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
CST = dt.timezone(dt.timedelta(hours=8))
SERVING = re.compile(r"^Serving (http://\S+) ")
TARGET_RATE, TARGET_P99_MS, TARGET_RSS_MB = 4000, 500, 200
RECEIPT_ROUNDS = 40  # pull rounds at most while the district applies what came in
ENROLL_PARALLEL = 4  # enrollments in flight (the district's writer takes them one at a time)


class LoadError(Exception):
    """An answer that does not verify, or a step that failed."""


# -- the documents' primitives (as in tests/wire_client.py) ------------------------------------


def canonical(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def raw(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def private_raw(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def enroll_key(enroll_code: str, child: str) -> bytes:
    """*Enrollment*: scrypt(the 11 digits, "daiban-enroll|" + child, N 2^15, r 8, p 1)."""
    return hashlib.scrypt(
        enroll_code.encode("ascii"),
        salt=("daiban-enroll|" + child).encode(),
        n=32768,
        r=8,
        p=1,
        dklen=32,
        maxmem=64 * 1024 * 1024,
    )


def mac(key: bytes, value: dict[str, Any]) -> str:
    return hmac.new(key, canonical({k: v for k, v in value.items() if k != "mac"}), "sha256").hexdigest()


def request_message(path: str, body: bytes, counter: int, node: str, server: str) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join(["DAIBAN-REQUEST-1", "POST", path, digest, str(counter), node, server]).encode()


def check_answer(
    public: Ed25519PublicKey, header: str | None, status: int, body: bytes, binding: str, server: str
) -> None:
    if not header or len(header) != 86:
        raise LoadError(f"an answer ({status}) is not signed")
    digest = hashlib.sha256(body).hexdigest()
    message = "\n".join(["DAIBAN-ANSWER-1", str(status), digest, binding, server]).encode()
    try:
        public.verify(unb64(header), message)
    except Exception as exc:  # InvalidSignature, or a header that is not base64url
        raise LoadError("an answer's signature does not verify") from exc


def decode(body: bytes) -> Any:
    inflater = zlib.decompressobj()
    text = inflater.decompress(body, protocol.MAX_ANSWER)
    if not inflater.eof or inflater.unconsumed_tail or inflater.unused_data:
        raise LoadError("an answer is not one complete zlib stream")
    return json.loads(text)


def village_codes(count: int, district: str = DISTRICT[0]) -> list[str]:
    """Valid 12-digit village codes under the district: towns 101, 102, …
    with villages 201 to 700 each (every segment non-zero, as
    `daiban enroll-code` requires)."""
    if not 1 <= count <= 500 * 899:
        raise ValueError("between 1 and 449,500 villages")
    return [f"{district}{101 + i // 500:03d}{201 + i % 500:03d}" for i in range(count)]


def id_number(index: int) -> str:
    """A valid resident ID (GB 11643 check digit), a different one per index, aged 16 or more."""
    body = f"370303{dt.date(1940, 1, 1) + dt.timedelta(days=index // 900):%Y%m%d}{index % 900 + 100:03d}"
    return body + ric.calc_check_digit(body + "0")


# -- one simulated village -------------------------------------------------------------------


@dataclass
class Village:
    code: str
    name: str
    sign: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    enc: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate)
    counter: int = 0
    cursor: int = 0
    seq: int = 0
    filed: int = 0
    parent: str = ""
    parent_sign: Ed25519PublicKey | None = None
    chain: list[dict[str, Any]] = field(default_factory=list)
    office: dict[str, Any] = field(default_factory=dict)  # the district's certificate
    envelopes: list[str] = field(default_factory=list)
    trackings: list[str] = field(default_factory=list)
    pulled: Counter[str] = field(default_factory=Counter)  # kinds of the envelopes pulled back
    answered: set[str] = field(default_factory=set)  # tracking numbers with a receipt back

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "sign": b64(private_raw(self.sign)),
            "enc": b64(private_raw(self.enc)),
            "counter": self.counter,
            "parent": self.parent,
            "chain": self.chain,
            "office": self.office,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Village:
        village = cls(
            data["code"],
            data["name"],
            Ed25519PrivateKey.from_private_bytes(unb64(data["sign"])),
            X25519PrivateKey.from_private_bytes(unb64(data["enc"])),
            counter=data["counter"],
            parent=data["parent"],
            chain=data["chain"],
            office=data["office"],
        )
        village.parent_sign = Ed25519PublicKey.from_public_bytes(unb64(data["office"]["sign"]))
        return village

    def tracking(self) -> str:
        self.filed += 1
        body = self.code.ljust(12, "0") + f"{self.filed:07d}"
        return body + calc_check_digit(body)

    def file(self, item: dict[str, Any], index: int) -> None:
        """One ``filed`` envelope for a resident, to the district's office, sealed to it."""
        name, number, phone = "王秀兰", id_number(index), f"138{index:08d}"
        tracking = self.tracking()
        self.seq += 1
        # As envelope.schema.json describes a village's ids: the millisecond,
        # then 80 random bits.
        envelope_id = f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"
        personal = {"name": name, "id_number": number, "phone": phone, "fields": FIELDS}
        inner = {"id": envelope_id, "kind": "filed", "tracking": tracking, "personal": personal}
        plaintext = canonical({"personal": personal, "sig": b64(self.sign.sign(canonical(inner)))})
        office_enc = X25519PublicKey.from_public_bytes(unb64(self.office["enc"]))
        info = f"daiban/v1|{envelope_id}|filed".encode()
        sealed = b64(SUITE.encrypt(zlib.compress(plaintext), office_enc, info=info))
        envelope: dict[str, Any] = {
            "v": 1,
            "id": envelope_id,
            "origin": self.code,
            "seq": self.seq,
            "kind": "filed",
            "to": self.parent,
            "tracking": tracking,
            "actor": "load generator",
            "at": dt.datetime.now(CST).isoformat(timespec="seconds"),
            "body": {
                "item": item["code"],
                "item_name": item["name"],
                "level": item["level"],
                "region": self.code,
                "office": self.parent,
                "materials": [m["name"] for m in item["materials"]],
                "owed": [],
                "applicant": {
                    "name": name[0] + "*" * (len(name) - 2) + name[-1],
                    "id_number": number[:4] + "*" * 10 + number[-4:],
                    "phone": phone[:3] + "*" * (len(phone) - 7) + phone[-4:],
                },
            },
            "sealed": sealed,
            "sealed_to": self.parent,
        }
        envelope["sig"] = b64(self.sign.sign(canonical(envelope)))
        self.envelopes.append(canonical(envelope).decode())
        self.trackings.append(tracking)


# -- the load ----------------------------------------------------------------------------------


@dataclass
class Stats:
    push_ms: list[float] = field(default_factory=list)
    pull_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stored: int = 0
    push_start: float = 0.0
    push_end: float = 0.0

    def error(self, text: str) -> None:
        self.errors.append(text)


async def signed(
    session: aiohttp.ClientSession, url: str, village: Village, path: str, value: Any, stats: Stats
) -> Any:
    """One signed request, its answer verified; a verified 409 (a counter
    behind the district's) moves the counter, within bounds, and it is sent again."""
    assert village.parent_sign is not None
    body = zlib.compress(canonical(value))
    for _attempt in range(3):
        village.counter += 1
        signature = b64(
            village.sign.sign(request_message(path, body, village.counter, village.code, village.parent))
        )
        headers = {
            "Content-Type": protocol.CONTENT_TYPE,
            protocol.H_PROTOCOL: str(protocol.PROTOCOL),
            protocol.H_NODE: village.code,
            protocol.H_COUNTER: str(village.counter),
            protocol.H_SIG: signature,
        }
        started = time.perf_counter()
        async with session.post(url + path, data=body, headers=headers) as resp:
            answer = await resp.read()
            status, header = resp.status, resp.headers.get(H_ANSWER)
        (stats.push_ms if path == protocol.PUSH else stats.pull_ms).append(
            (time.perf_counter() - started) * 1000
        )
        check_answer(village.parent_sign, header, status, answer, signature, village.parent)
        data = decode(answer)
        if status == 409 and isinstance(data, dict) and data.get("code") == "replayed":
            theirs = data.get("counter")
            if not isinstance(theirs, int) or not village.counter <= theirs <= protocol.MAX_POSITION:
                raise LoadError("a 409's counter out of bounds")
            village.counter = theirs
            continue
        if status != 200:
            raise LoadError(f"{path} answered {status}: {data}")
        return data
    raise LoadError("the district keeps refusing the counter")


async def push(session: aiohttp.ClientSession, url: str, village: Village, stats: Stats) -> None:
    data = await signed(
        session,
        url,
        village,
        protocol.PUSH,
        {"envelopes": village.envelopes, "certs": [village.chain]},
        stats,
    )
    results = data.get("results", [])
    ids = [json.loads(text)["id"] for text in village.envelopes]
    verdicts = {r.get("id"): r.get("status") for r in results if isinstance(r, dict)}
    for envelope_id in ids:
        if verdicts.get(envelope_id) != "stored":
            stats.error(f"{village.code}: envelope {envelope_id} {verdicts.get(envelope_id)!r}, not stored")
    stats.stored += sum(1 for i in ids if verdicts.get(i) == "stored")


def answered_by(envelope: dict[str, Any]) -> list[str]:
    """The tracking numbers an envelope from the office acknowledges: a lone
    ``received``, or receipts in bulk (``receipts``, body.receipts[].tracking)."""
    if envelope.get("kind") == "received":
        return [str(envelope.get("tracking"))]
    if envelope.get("kind") == "receipts":
        body = envelope.get("body")
        entries = body.get("receipts") if isinstance(body, dict) else None
        return (
            [str(e.get("tracking")) for e in entries if isinstance(e, dict)]
            if isinstance(entries, list)
            else []
        )
    return []


async def pull(session: aiohttp.ClientSession, url: str, village: Village, stats: Stats) -> int:
    """Pull what the district holds for the village (pages of up to 1,000, bounded); the count."""
    got = 0
    for _page in range(100):
        asked = village.cursor
        data = await signed(session, url, village, protocol.PULL, {"cursor": asked, "limit": 1000}, stats)
        envelopes, position = data.get("envelopes", []), data.get("cursor")
        if not isinstance(position, int) or (envelopes and not asked < position <= protocol.MAX_POSITION):
            raise LoadError("a pull's cursor out of bounds")
        origin = Ed25519PublicKey.from_public_bytes(unb64(village.office["sign"]))
        for text in envelopes:
            envelope = json.loads(text)
            unsigned = {k: v for k, v in envelope.items() if k != "sig"}
            if envelope.get("origin") == village.parent:
                try:
                    origin.verify(unb64(envelope["sig"]), canonical(unsigned))
                except InvalidSignature:
                    raise LoadError(f"an envelope pulled by {village.code} does not verify") from None
            village.pulled[str(envelope.get("kind"))] += 1
            village.answered.update(t for t in answered_by(envelope) if t in village.trackings)
        village.cursor = position
        got += len(envelopes)
        if not data.get("more"):
            break
    return got


async def bounded(limit: asyncio.Semaphore, stats: Stats, label: str, coro: Any) -> Any:
    async with limit:
        try:
            return await coro
        except (TimeoutError, LoadError, aiohttp.ClientError, ValueError, KeyError) as exc:
            stats.error(f"{label}: {type(exc).__name__}: {exc}")
            return None


async def sync_all(url: str, villages: list[Village], in_flight: int, stats: Stats) -> float:
    """The timed phase: every village pushes its applications, then pulls.
    Returns the seconds of the push phase (first push sent to last push answered)."""
    limit = asyncio.Semaphore(in_flight)
    connector = aiohttp.TCPConnector(limit=in_flight, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120, connect=10, sock_read=60)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(village: Village) -> None:
            if stats.push_start == 0.0:
                stats.push_start = time.perf_counter()
            await bounded(limit, stats, f"push {village.code}", push(session, url, village, stats))
            stats.push_end = max(stats.push_end, time.perf_counter())
            await bounded(limit, stats, f"pull {village.code}", pull(session, url, village, stats))

        await asyncio.gather(*(one(v) for v in villages))
    return stats.push_end - stats.push_start


async def receipts(url: str, villages: list[Village], in_flight: int, stats: Stats, rounds: int) -> int:
    """Pull again, in bounded rounds, until every application's receipt is back
    (the district applies what came in once requests pause). The rounds used."""
    limit = asyncio.Semaphore(in_flight)
    timeout = aiohttp.ClientTimeout(total=120, connect=10, sock_read=60)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=in_flight), timeout=timeout
    ) as session:
        for number in range(rounds):
            waiting = [v for v in villages if len(v.answered) < len(v.trackings)]
            if not waiting:
                return number
            await asyncio.sleep(1.0)  # a pause: the district applies what is queued
            scratch = Stats()
            await asyncio.gather(
                *(bounded(limit, scratch, f"pull {v.code}", pull(session, url, v, scratch)) for v in waiting)
            )
            stats.errors += scratch.errors
    return rounds


# -- processes -----------------------------------------------------------------------------


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAIBAN_")}
    env.update({"DAIBAN_HOME": str(home), "DAIBAN_LANG": "en", "DAIBAN_AGENT": "负载测试员"})
    return env


def run(home: Path, *args: str, timeout: float = 120) -> str:
    proc = subprocess.run([DAIBAN, *args], env=env_for(home), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise LoadError(f"daiban {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str


def start(home: Path) -> Server:
    """`daiban serve` on 127.0.0.1, an ephemeral port; its URL once it prints it (bounded)."""
    with (home / "serve.out").open("wb") as out, (home / "serve.err").open("wb") as err:
        proc = subprocess.Popen(
            [DAIBAN, "serve", "--host", "127.0.0.1", "--port", "0", "--forward-window", "off"],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env_for(home),
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        first = (home / "serve.out").read_text(encoding="utf-8", errors="replace").split("\n", 1)
        if len(first) == 2:
            match = SERVING.match(first[0])
            if match:
                return Server(proc, match.group(1))
            break
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    stop(proc)
    raise LoadError(f"serve did not start: {(home / 'serve.err').read_text(errors='replace')[-500:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process this script started, by its PID: SIGTERM, then SIGKILL after a bounded wait."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread of a process, by thread id (/proc/PID/task/*/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            stat = (task / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            out[task.name] = (int(fields[11]) + int(fields[12])) / tick
    return out


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- enrolment -------------------------------------------------------------------------------


async def enroll_one(
    session: aiohttp.ClientSession, home: Path, url: str, village: Village, limit: asyncio.Semaphore
) -> None:
    """A code from the real `daiban enroll-code --json`, then the real /v1/enroll."""
    async with limit:
        proc = await asyncio.create_subprocess_exec(
            DAIBAN,
            "enroll-code",
            "--code",
            village.code,
            "--name",
            village.name,
            "--json",
            env=env_for(home),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise LoadError(f"enroll-code {village.code} timed out") from None
        if proc.returncode != 0:
            raise LoadError(f"enroll-code {village.code}: {err.decode(errors='replace').strip()}")
        enroll_code = json.loads(out)["code"]
        key = await asyncio.to_thread(enroll_key, enroll_code, village.code)
        request: dict[str, Any] = {
            "v": 1,
            "code": village.code,
            "name": village.name,
            "sign": b64(raw(village.sign.public_key())),
            "enc": b64(raw(village.enc.public_key())),
            "resume_seq": 0,
        }
        request["mac"] = mac(key, request)
        async with session.post(
            url + protocol.ENROLL,
            data=zlib.compress(canonical(request)),
            headers={"Content-Type": protocol.CONTENT_TYPE, protocol.H_PROTOCOL: str(protocol.PROTOCOL)},
        ) as resp:
            body, status, header = await resp.read(), resp.status, resp.headers.get(H_ANSWER)
    data = decode(body)
    if status != 200:
        raise LoadError(f"enroll {village.code}: {status} {data}")
    if not hmac.compare_digest(mac(key, data), str(data.get("mac"))):
        raise LoadError(f"enroll {village.code}: the answer's mac does not match the code")
    chain = data["chain"]
    leaf, parent = chain[-1], chain[-2]
    if leaf["code"] != village.code or unb64(leaf["sign"]) != raw(village.sign.public_key()):
        raise LoadError(f"enroll {village.code}: the district certified another node")
    for issuer, cert in itertools.pairwise(chain):  # each certificate signed by the one before
        unsigned = {k: v for k, v in cert.items() if k != "sig"}
        try:
            Ed25519PublicKey.from_public_bytes(unb64(issuer["sign"])).verify(
                unb64(cert["sig"]), canonical(unsigned)
            )
        except InvalidSignature:
            raise LoadError(f"enroll {village.code}: a certificate of the chain does not verify") from None
    village.parent_sign = Ed25519PublicKey.from_public_bytes(unb64(parent["sign"]))
    check_answer(village.parent_sign, header, status, body, request["mac"], parent["code"])
    village.parent, village.chain, village.office = parent["code"], chain, parent


async def enroll_all(home: Path, url: str, villages: list[Village]) -> None:
    limit = asyncio.Semaphore(ENROLL_PARALLEL)
    timeout = aiohttp.ClientTimeout(total=600, connect=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(enroll_one(session, home, url, v, limit) for v in villages))


# -- the district's checks ---------------------------------------------------------------------


@dataclass
class Checked:
    listed: int
    missing: int
    duplicates: int
    strangers: int
    filed_events: int
    quarantined: int
    integrity: str

    @property
    def exactly_once(self) -> bool:
        return self.missing == 0 and self.duplicates == 0 and self.strangers == 0


def check_district(home: Path, expected: list[str]) -> Checked:
    """Every application at the district exactly once: by `daiban list --json`
    (tracking numbers and count) and by its database (one ``filed`` event per
    tracking number), nothing quarantined, the database intact."""
    listed = [a["tracking"] for a in json.loads(run(home, "list", "--json", timeout=600))]
    want = set(expected)
    counts = Counter(listed)
    db = sqlite3.connect(f"file:{home / 'daiban.db'}?mode=ro", uri=True, timeout=60)
    try:
        events = dict(
            db.execute(
                "SELECT tracking, COUNT(*) FROM events WHERE kind = 'filed' GROUP BY tracking"
            ).fetchall()
        )
        quarantined = db.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0]
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()
    return Checked(
        listed=len(listed),
        missing=len(want - set(listed)) + len(want - set(events)),
        duplicates=sum(n - 1 for n in counts.values() if n > 1)
        + sum(n - 1 for n in events.values() if n > 1),
        strangers=len(set(listed) - want) + len(set(events) - want),
        filed_events=sum(events.values()),
        quarantined=quarantined,
        integrity=integrity,
    )


# -- the baseline ----------------------------------------------------------------------------


async def baseline_serve(db_path: Path) -> None:
    """The baseline server (its own process): bare JSON over aiohttp into
    SQLite (WAL, synchronous=FULL), one transaction per request as the
    district's — a push inserts the batch's documents, a pull reads what is
    there for the node and stores its cursor — with no signatures, sealing,
    checks or journal. Prints its URL; stops on SIGTERM."""
    from aiohttp import web

    db = sqlite3.connect(str(db_path), isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS docs (id TEXT PRIMARY KEY, node TEXT, doc TEXT)")
    db.execute("CREATE INDEX IF NOT EXISTS docs_node ON docs (node)")  # as the district's outbox by child
    db.execute("CREATE TABLE IF NOT EXISTS peers (node TEXT PRIMARY KEY, cursor INTEGER)")

    async def push_docs(request: web.Request) -> web.Response:
        data = await request.json()
        rows = [(json.loads(d)["id"], data["node"], d) for d in data["docs"]]
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT OR IGNORE INTO docs VALUES (?, ?, ?)", rows)
        db.execute("COMMIT")
        return web.json_response({"results": [{"id": r[0], "status": "stored"} for r in rows]})

    async def pull_docs(request: web.Request) -> web.Response:
        data = await request.json()
        db.execute("BEGIN IMMEDIATE")
        docs = db.execute(
            "SELECT doc FROM docs WHERE node = ? AND rowid > ? LIMIT 1000",
            ["to " + data["node"], data["cursor"]],
        ).fetchall()
        db.execute("INSERT OR REPLACE INTO peers VALUES (?, ?)", [data["node"], data["cursor"]])
        db.execute("COMMIT")
        return web.json_response({"envelopes": [d[0] for d in docs], "cursor": data["cursor"]})

    app = web.Application(client_max_size=protocol.MAX_BODY)
    app.router.add_post("/push", push_docs)
    app.router.add_post("/pull", pull_docs)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"Serving http://127.0.0.1:{port} (baseline)", flush=True)
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    await stopped.wait()
    await runner.cleanup()
    db.close()


def start_baseline(root: Path) -> Server:
    root.mkdir(parents=True, exist_ok=True)
    with (root / "serve.out").open("wb") as out, (root / "serve.err").open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--baseline-server", str(root / "baseline.db")],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        match = SERVING.match((root / "serve.out").read_text(errors="replace"))
        if match:
            return Server(proc, match.group(1))
        time.sleep(0.05)
    stop(proc)
    raise LoadError(f"the baseline server did not start: {(root / 'serve.err').read_text(errors='replace')}")


async def baseline_load(url: str, villages: list[Village], in_flight: int, stats: Stats) -> float:
    """The same shape of load on the baseline: each village posts its
    envelopes' texts in one request, then pulls. The push phase's seconds."""
    limit = asyncio.Semaphore(in_flight)
    timeout = aiohttp.ClientTimeout(total=120, connect=10, sock_read=60)

    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=in_flight), timeout=timeout
    ) as session:

        async def post(path: str, value: Any, into: list[float]) -> Any:
            started = time.perf_counter()
            async with session.post(url + path, json=value) as resp:
                data = await resp.json()
                status = resp.status
            into.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise LoadError(f"baseline {path} answered {status}")
            return data

        async def push_one(village: Village) -> None:
            data = await post("/push", {"node": village.code, "docs": village.envelopes}, stats.push_ms)
            stats.stored += sum(1 for r in data["results"] if r["status"] == "stored")

        async def one(village: Village) -> None:
            if stats.push_start == 0.0:
                stats.push_start = time.perf_counter()
            await bounded(limit, stats, f"baseline push {village.code}", push_one(village))
            stats.push_end = max(stats.push_end, time.perf_counter())
            pulled = post("/pull", {"node": village.code, "cursor": 0}, stats.pull_ms)
            await bounded(limit, stats, f"baseline pull {village.code}", pulled)

        await asyncio.gather(*(one(v) for v in villages))
    return stats.push_end - stats.push_start


def run_baseline(
    root: Path, villages: list[Village], in_flight: int, started: list[Any], pids: list[int]
) -> tuple[Stats, float]:
    """The baseline's figures and the seconds of its load (push and pull, as the timed phase)."""
    stats = Stats()
    server = start_baseline(root)
    started.append(server.proc)
    pids.append(server.proc.pid)
    seconds = 0.0
    try:
        t0 = time.perf_counter()
        asyncio.run(baseline_load(server.url, villages, in_flight, stats))
        seconds = time.perf_counter() - t0
    finally:
        stop(server.proc)
        started.remove(server.proc)
    db = sqlite3.connect(str(root / "baseline.db"))
    try:
        stored = db.execute("SELECT COUNT(*) FROM docs").fetchone()[0]
    finally:
        db.close()
    if stored != sum(len(v.envelopes) for v in villages):
        stats.error(f"baseline: {stored} documents stored")
    return stats, seconds


# -- one run ---------------------------------------------------------------------------------


@dataclass
class Result:
    villages: int
    per_village: int
    in_flight: int
    enroll_s: float
    build_s: float
    push_s: float
    sync_s: float
    receipts_s: float
    receipt_rounds: int
    stats: Stats
    checked: Checked
    answered: int
    pulled: Counter[str]
    server_rss_mb: float
    server_cpu: dict[str, float]
    client_cpu_s: float
    load_before: str
    load_after: str
    reused_state: bool
    baseline: Stats | None  # the same load on a bare aiohttp + SQLite server (None: not run)
    baseline_s: float
    trackings: list[str]  # every application's tracking number, as filed
    pids: list[int]  # every process the run started

    @property
    def applications(self) -> int:
        return self.villages * self.per_village

    @property
    def whole_rate(self) -> float:
        """Applications over the whole timed phase: pushed, stored, their receipts pulled."""
        return self.stats.stored / self.sync_s if self.sync_s > 0 else 0.0

    @property
    def rate(self) -> float:
        return self.stats.stored / self.push_s if self.push_s > 0 else 0.0


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile (1 to 99) of the values."""
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def setup_district(root: Path) -> Path:
    """City and district homes made with the real CLI; the district enrolled at the city. Its home."""
    city, district = root / "city", root / "district"
    run(city, "init", "--role", "city", "--code", CITY[0], "--name", CITY[1])
    run(district, "init", "--role", "district", "--code", DISTRICT[0], "--name", DISTRICT[1])
    server = start(city)
    try:
        issued = json.loads(run(city, "enroll-code", "--code", DISTRICT[0], "--name", DISTRICT[1], "--json"))
        run(district, "enroll", server.url, issued["code"])
    finally:
        stop(server.proc)
    return district


@contextlib.contextmanager
def serving(home: Path, started: list[subprocess.Popen[bytes]], pids: list[int]) -> Iterator[Server]:
    server = start(home)
    started.append(server.proc)
    pids.append(server.proc.pid)
    try:
        yield server
    finally:
        stop(server.proc)
        started.remove(server.proc)


def run_load(
    root: Path,
    villages: int,
    per_village: int,
    in_flight: int = 200,
    state: Path | None = None,
    py_spy: str | None = None,
    log: Any = None,
    with_baseline: bool = True,
) -> Result:
    """One run in the folder ``root``; ``state``: a folder where an enrolled
    district and its villages are kept, and reused when they match. Every
    process it started is stopped by its PID, whatever happens."""
    started: list[subprocess.Popen[bytes]] = []
    pids: list[int] = []
    try:
        return _run(
            root,
            villages,
            per_village,
            in_flight,
            state,
            py_spy,
            log or (lambda _text: None),
            started,
            pids,
            with_baseline,
        )
    finally:
        for proc in list(started):
            stop(proc)


def _run(
    root: Path,
    villages: int,
    per_village: int,
    in_flight: int,
    state: Path | None,
    py_spy: str | None,
    say: Any,
    started: list[subprocess.Popen[bytes]],
    pids: list[int],
    with_baseline: bool,
) -> Result:
    saved = state / f"v{villages}" if state is not None else None
    reused = saved is not None and (saved / "villages.json").exists()
    t0 = time.perf_counter()
    if reused:
        assert saved is not None
        district = root / "district"
        shutil.copytree(saved / "district", district)
        sims = [Village.from_json(v) for v in json.loads((saved / "villages.json").read_text())]
        say(f"reused {len(sims)} enrolled villages from {saved}")
    else:
        district = setup_district(root)
        sims = [Village(code, f"负载村{i + 1}") for i, code in enumerate(village_codes(villages))]
        with serving(district, started, pids) as server:
            say(f"enrolling {villages} villages (codes from `daiban enroll-code`, /v1/enroll) …")
            asyncio.run(enroll_all(district, server.url, sims))
        if saved is not None:  # the server is stopped: its home copies whole
            shutil.copytree(district, saved / "district")
            (saved / "villages.json").write_text(json.dumps([v.to_json() for v in sims]))
    enroll_s = time.perf_counter() - t0
    item = json.loads(run(district, "catalog", "show", ITEM, "--json"))

    t0 = time.perf_counter()
    index = 0
    for village in sims:
        for _ in range(per_village):
            village.file(item, index)
            index += 1
    build_s = time.perf_counter() - t0
    expected = [t for v in sims for t in v.trackings]

    stats = Stats()
    spy: subprocess.Popen[bytes] | None = None
    with serving(district, started, pids) as server:
        pid = server.proc.pid
        cpu_before = thread_cpu(pid)
        client_before = resource.getrusage(resource.RUSAGE_SELF)
        if py_spy:
            spy = subprocess.Popen(
                [
                    py_spy,
                    "record",
                    "-p",
                    str(pid),
                    "-f",
                    "raw",
                    "-o",
                    str(root / "py-spy.txt"),
                    "-t",
                    "--idle",
                    "-r",
                    "50",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            started.append(spy)
            pids.append(spy.pid)
            time.sleep(1.0)  # py-spy attaches
        load_before = load_average()
        say(f"timed phase: {villages} villages × {per_village} applications, {in_flight} in flight …")
        t0 = time.perf_counter()
        push_s = asyncio.run(sync_all(server.url, sims, in_flight, stats))
        sync_s = time.perf_counter() - t0
        cpu_after = thread_cpu(pid)
        client_after = resource.getrusage(resource.RUSAGE_SELF)
        if spy is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(spy.pid, signal.SIGINT)  # py-spy writes its file on SIGINT
            try:
                spy.wait(timeout=60)
            except subprocess.TimeoutExpired:
                stop(spy)
            started.remove(spy)
        say("receipts …")
        t0 = time.perf_counter()
        rounds = asyncio.run(receipts(server.url, sims, in_flight, stats, RECEIPT_ROUNDS))
        receipts_s = time.perf_counter() - t0
        rss = peak_rss_mb(pid)
        load_after = load_average()
    say("checking the district …")
    checked = check_district(district, expected)
    baseline, baseline_s = None, 0.0
    if with_baseline:
        say("baseline: the same load on a bare aiohttp + SQLite server …")
        baseline, baseline_s = run_baseline(root / "baseline", sims, in_flight, started, pids)
    pulled: Counter[str] = Counter()
    for village in sims:
        pulled.update(village.pulled)
    server_cpu = {k: cpu_after.get(k, 0.0) - cpu_before.get(k, 0.0) for k in cpu_after}
    return Result(
        villages=villages,
        per_village=per_village,
        in_flight=in_flight,
        enroll_s=enroll_s,
        build_s=build_s,
        push_s=push_s,
        sync_s=sync_s,
        receipts_s=receipts_s,
        receipt_rounds=rounds,
        stats=stats,
        checked=checked,
        answered=sum(len(v.answered) for v in sims),
        pulled=pulled,
        server_rss_mb=rss,
        server_cpu={k: v for k, v in server_cpu.items() if v >= 0.05},
        client_cpu_s=(client_after.ru_utime + client_after.ru_stime)
        - (client_before.ru_utime + client_before.ru_stime),
        load_before=load_before,
        load_after=load_after,
        reused_state=reused,
        baseline=baseline,
        baseline_s=baseline_s,
        trackings=expected,
        pids=pids,
    )


def report(r: Result) -> str:
    s = r.stats
    p50_push, p99_push = percentile(s.push_ms, 50), percentile(s.push_ms, 99)
    p50_pull, p99_pull = percentile(s.pull_ms, 50), percentile(s.pull_ms, 99)
    every = s.push_ms + s.pull_ms
    p50_all, p99_all = percentile(every, 50), percentile(every, 99)
    c = r.checked
    cpu_total = sum(r.server_cpu.values())

    def ok(flag: bool) -> str:
        return "yes" if flag else "NO"

    def base(what: str) -> str:
        """The baseline's figure for a row, 12 wide."""
        b = r.baseline
        if b is None:
            return f"{'-':>12}"
        if what == "rate":
            seconds = b.push_end - b.push_start
            return f"{b.stored / seconds if seconds > 0 else 0:>12.0f}"
        if what == "whole":
            return f"{b.stored / r.baseline_s if r.baseline_s > 0 else 0:>12.0f}"
        values = {"all": b.push_ms + b.pull_ms, "push": b.push_ms, "pull": b.pull_ms}[what]
        return f"{f'{percentile(values, 50):.0f} / {percentile(values, 99):.0f}':>12}"

    lines = [
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"load average {r.load_before} before the timed phase, {r.load_after} after",
        f"{r.villages} villages × {r.per_village} applications = {r.applications}, "
        f"at most {r.in_flight} requests in flight, one `daiban serve` district",
        f"enrolment: {r.enroll_s:.1f} s"
        + (
            " (reused from --state)"
            if r.reused_state
            else f" ({r.enroll_s / r.villages * 1000:.0f} ms a village)"
        )
        + f", not timed; envelopes built and sealed: {r.build_s:.1f} s, not timed",
        f"timed phase (push, then pull, each village): {r.sync_s:.2f} s; push phase {r.push_s:.2f} s",
        f"receipts: {r.answered} of {r.applications} back, {r.receipts_s:.1f} s more "
        f"({r.receipt_rounds} rounds after the timed phase); "
        f"pulled by kind: {dict(sorted(r.pulled.items()))}",
        f"server CPU over the timed phase: {cpu_total:.1f} s in {r.sync_s:.1f} s "
        f"= {cpu_total / r.sync_s if r.sync_s else 0:.2f} cores; by thread: "
        + ", ".join(f"{v:.1f}" for v in sorted(r.server_cpu.values(), reverse=True)),
        f"client CPU over the timed phase: {r.client_cpu_s:.1f} s",
        "",
        f"{'measure':<44}{'daiban':>12}{'baseline':>12}{'target':>12}  ok",
        f"{'applications/s sustained (push phase)':<44}{r.rate:>12.0f}{base('rate')}"
        f"{'>= ' + str(TARGET_RATE):>12}  {ok(r.rate >= TARGET_RATE)}",
        f"{'  over the whole timed phase (push and pull)':<44}{r.whole_rate:>12.0f}{base('whole')}",
        f"{'request latency p50 / p99, all (ms)':<44}{f'{p50_all:.0f} / {p99_all:.0f}':>12}{base('all')}"
        f"{'p99 <= ' + str(TARGET_P99_MS):>12}  {ok(p99_all <= TARGET_P99_MS)}",
        f"{'  push p50 / p99 (ms)':<44}{f'{p50_push:.0f} / {p99_push:.0f}':>12}{base('push')}",
        f"{'  pull p50 / p99 (ms)':<44}{f'{p50_pull:.0f} / {p99_pull:.0f}':>12}{base('pull')}",
        f"{'errors':<44}{len(s.errors):>12}"
        f"{len(r.baseline.errors) if r.baseline else '-':>12}{'0':>12}  {ok(not s.errors)}",
        f"{'applications at the district (list --json)':<44}{c.listed:>12}{'':>12}{r.applications:>12}  "
        f"{ok(c.listed == r.applications)}",
        f"{'  exactly once (missing/dup/unknown)':<44}{f'{c.missing}/{c.duplicates}/{c.strangers}':>12}"
        f"{'':>12}{'0/0/0':>12}  {ok(c.exactly_once)}",
        f"{'  filed events / quarantined / integrity':<44}"
        f"{f'{c.filed_events}/{c.quarantined}/{c.integrity}':>12}",
        f"{'server peak RSS, VmHWM (MB)':<44}{r.server_rss_mb:>12.1f}{'':>12}"
        f"{'<= ' + str(TARGET_RSS_MB):>12}  {ok(r.server_rss_mb <= TARGET_RSS_MB)}",
        "",
        "baseline: the same envelopes' texts and requests (one push, one pull per village, as many in",
        "flight) to a bare aiohttp server in its own process storing them in SQLite (WAL,",
        "synchronous=FULL), one transaction per request: no signatures, sealing, checks or journal.",
    ]
    if s.errors:
        lines += ["", "first errors:", *(f"  {e}" for e in s.errors[:10])]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--villages", type=int, default=3000)
    parser.add_argument("--per-village", type=int, default=5, help="applications each village pushes")
    parser.add_argument("--in-flight", type=int, default=200, help="requests in flight at most")
    parser.add_argument(
        "--state", type=Path, help="keep the enrolled district and villages here, and reuse them next time"
    )
    parser.add_argument(
        "--py-spy", metavar="PATH", help="profile the server over the timed phase with py-spy"
    )
    parser.add_argument("--deadline", type=float, default=7200, help="seconds the whole run may take")
    parser.add_argument("--baseline-server", metavar="DB", help=argparse.SUPPRESS)
    parser.add_argument("--no-baseline", action="store_true", help="skip the baseline run")
    args = parser.parse_args()
    if args.baseline_server:
        asyncio.run(baseline_serve(Path(args.baseline_server)))
        return 0
    if not 1 <= args.villages <= 100_000 or not 1 <= args.per_village <= protocol.MAX_BATCH:
        parser.error("1 to 100,000 villages, 1 to 1,000 applications each")
    if not 1 <= args.in_flight <= 10_000:
        parser.error("1 to 10,000 requests in flight")

    def alarm(_signum: int, _frame: Any) -> None:
        raise SystemExit(f"bench_load: over the deadline of {args.deadline:.0f} s")

    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(int(args.deadline))
    with tempfile.TemporaryDirectory(prefix="daiban-bench-load-") as tmp:
        result = run_load(
            Path(tmp),
            args.villages,
            args.per_village,
            args.in_flight,
            state=args.state,
            py_spy=args.py_spy,
            log=lambda text: print(text, file=sys.stderr, flush=True),
            with_baseline=not args.no_baseline,
        )
        print(report(result))
        if args.py_spy and (Path(tmp) / "py-spy.txt").exists():
            kept = Path(tempfile.gettempdir()) / f"bench_load-py-spy-{args.villages}x{args.per_village}.txt"
            shutil.copy(Path(tmp) / "py-spy.txt", kept)
            print(f"py-spy samples (collapsed stacks): {kept}")
    ok = not result.stats.errors and result.checked.exactly_once
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
