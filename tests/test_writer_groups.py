"""Group commit in the server's writer (sync/server.py Writer): calls queued
together run in one transaction, each in a savepoint of its own, and are
answered only after the one COMMIT.

Through a real `daiban serve` district: five simulated villages (their own
keys, enrolled through the real /v1/enroll with codes from the real
`daiban enroll-code`, scripts/bench_load.py) push at once; the server holds
its writer's calls until all five pushes are queued (DAIBAN_FAULT_GROUP,
sync/faults.py: the test chooses the group, no timer) and runs them as one
group. One push carries an envelope whose signature was tampered with: it
alone is refused (422, its envelope quarantined), the four others are each
answered once and stored exactly once.

In process, on a real node home: a call that fails with a bug rolls back
its own savepoint only; a refusal keeps what its own transactions kept."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from daiban.sync import faults
from daiban.sync.protocol import ProtocolError
from daiban.sync.server import Writer
from scripts import bench_load

VILLAGES, PER_VILLAGE = 5, 4


def _serve(home: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """`daiban serve` for ``home`` with ``env`` added; its URL (bounded wait)."""
    out, err = home / "serve.out", home / "serve.err"
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(
            [bench_load.DAIBAN, "serve", "--host", "127.0.0.1", "--port", "0", "--forward-window", "off"],
            stdout=o,
            stderr=e,
            stdin=subprocess.DEVNULL,
            env={**bench_load.env_for(home), **env},
        )
    for _ in range(600):
        first = out.read_text(encoding="utf-8", errors="replace").split("\n", 1)
        if len(first) == 2:
            match = bench_load.SERVING.match(first[0])
            assert match, first[0]
            return proc, match.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    bench_load.stop(proc)
    raise AssertionError(f"serve did not start: {err.read_text(errors='replace')[-500:]}")


def _tampered(village: bench_load.Village) -> None:
    """The village's last envelope with its signature broken (the request
    that carries it is signed properly)."""
    envelope = json.loads(village.envelopes[-1])
    sig = bytearray(bench_load.unb64(envelope["sig"]))
    sig[0] ^= 1
    envelope["sig"] = bench_load.b64(bytes(sig))
    village.envelopes[-1] = bench_load.canonical(envelope).decode()


async def _push_all(url: str, villages: list[bench_load.Village]) -> list[Any]:
    """Each village pulls once (the server learns its key), then all push at once."""
    stats = bench_load.Stats()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        for village in villages:
            await bench_load.pull(session, url, village, stats)
        answers = await asyncio.gather(
            *(
                bench_load.signed(
                    session,
                    url,
                    village,
                    bench_load.protocol.PUSH,
                    {"envelopes": village.envelopes, "certs": [village.chain]},
                    stats,
                )
                for village in villages
            ),
            return_exceptions=True,
        )
    assert stats.errors == []
    return answers


def test_one_group_of_pushes_each_answered_once_and_a_refused_one_alone(tmp_path: Path) -> None:
    district = bench_load.setup_district(tmp_path)
    item = json.loads(bench_load.run(district, "catalog", "show", bench_load.ITEM, "--json"))
    villages = [
        bench_load.Village(code, f"组村{i}") for i, code in enumerate(bench_load.village_codes(VILLAGES))
    ]
    mark = tmp_path / "group.mark"
    env = {faults.GROUP: str(VILLAGES), faults.MARK: str(mark)}
    proc, url = _serve(district, env)
    try:
        asyncio.run(bench_load.enroll_all(district, url, villages))
        for n, village in enumerate(villages):
            for k in range(PER_VILLAGE):
                village.file(item, n * PER_VILLAGE + k)
        bad = villages[2]
        _tampered(bad)
        answers = asyncio.run(_push_all(url, villages))
    finally:
        bench_load.stop(proc)
    assert proc.returncode == 0

    # The five pushes ran as one group (the server wrote its size), and each
    # got its own answer: four stored, the tampered one refused alone.
    calls, pushes = map(int, mark.read_text().split())
    assert pushes == VILLAGES and calls >= VILLAGES
    for village, answer in zip(villages, answers, strict=True):
        if village is bad:
            assert isinstance(answer, bench_load.LoadError) and "422" in str(answer), answer
            assert "refused" in str(answer)
            continue
        assert isinstance(answer, dict) and answer["ok"] is True, answer
        results = {r["id"]: r["status"] for r in answer["results"]}
        ids = [json.loads(text)["id"] for text in village.envelopes]
        assert sorted(results) == sorted(ids) and set(results.values()) == {"stored"}

    # Exactly once at the district: the good villages' applications, none of
    # the refused batch (nothing of a refused batch is stored), its bad
    # envelope in quarantine, kept by the refusal in the same group.
    good = [t for v in villages if v is not bad for t in v.trackings]
    checked = bench_load.check_district(district, good)
    assert checked.exactly_once and checked.listed == len(good) == checked.filed_events
    assert checked.quarantined == 1 and checked.integrity == "ok"
    db = sqlite3.connect(f"file:{district / 'daiban.db'}?mode=ro", uri=True)
    try:
        held = db.execute("SELECT envelope_id FROM quarantine").fetchall()
        counters = dict(db.execute("SELECT code, counter FROM peers").fetchall())
    finally:
        db.close()
    assert [row[0] for row in held] == [json.loads(bad.envelopes[-1])["id"]]
    for village in villages:  # each good push recorded its counter; the refused one did not
        expected = village.counter if village is not bad else village.counter - 1
        assert counters[village.code] == expected


def _setting(home: Path, key: str) -> str | None:
    db = sqlite3.connect(f"file:{home / 'daiban.db'}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT value FROM node WHERE key = ?", [key]).fetchone()
    finally:
        db.close()
    return row[0] if row else None


def test_a_failing_call_rolls_back_its_own_savepoint_only(tmp_path: Path) -> None:
    home = tmp_path / "district"
    bench_load.run(home, "init", "--role", "district", "--code", bench_load.DISTRICT[0], "--name", "区")
    started, release = threading.Event(), threading.Event()

    def hold(node: Any) -> str:  # the writer is busy with this one while the rest queue up
        started.set()
        assert release.wait(60)
        return "held"

    def write(node: Any, key: str) -> str:
        with node.store.transaction():
            node.store.set_setting(key, "yes")
        return key

    def bug(node: Any, key: str) -> None:
        with node.store.transaction():
            node.store.set_setting(key, "yes")
        raise RuntimeError("a bug after its transaction")

    def refusal(node: Any, key: str) -> None:
        with node.store.transaction():
            node.store.set_setting(key, "yes")  # kept, as a 422 keeps its quarantine
        raise ProtocolError(422, "refused", "refused after recording")

    async def main() -> list[Any]:
        writer = Writer(home)
        try:
            first = writer.submit(hold)
            assert await asyncio.to_thread(started.wait, 60)
            rest = [
                writer.submit(write, "test.a"),
                writer.submit(bug, "test.b"),
                writer.submit(refusal, "test.c"),
                writer.submit(write, "test.d"),
            ]
            # Nothing is answered before the group's COMMIT; all are queued now.
            assert not any(f.done() for f in rest)
            release.set()
            return await asyncio.gather(first, *rest, return_exceptions=True)
        finally:
            with contextlib.suppress(Exception):
                release.set()
            writer.close()

    held, a, b, c, d = asyncio.run(main())
    assert (held, a, d) == ("held", "test.a", "test.d")
    assert isinstance(b, RuntimeError) and isinstance(c, ProtocolError) and c.status == 422
    assert _setting(home, "test.a") == "yes" and _setting(home, "test.d") == "yes"
    assert _setting(home, "test.b") is None  # the bug's work undone, nothing else
    assert _setting(home, "test.c") == "yes"


@pytest.fixture(autouse=True)
def _no_fault_env() -> Any:
    """The fault variables are for the server processes only."""
    saved = {k: os.environ.pop(k) for k in (faults.GROUP, faults.PAUSE, faults.MARK) if k in os.environ}
    yield
    os.environ.update(saved)


def test_enrolment_stretched_off_the_writer_takes_only_the_code_on_record(tmp_path: Path) -> None:
    """The server stretches the issued code on a decoder thread and hands the
    key to service.enroll; a key of any other code (one replaced meanwhile)
    is not used: the code on record is stretched again. Wrong codes still
    count, and lock the code after MAX_ENROLL_FAILURES."""
    from daiban.node.home import open_node
    from daiban.sync import service

    district = bench_load.setup_district(tmp_path)
    child = bench_load.village_codes(1)[0]
    issued = json.loads(bench_load.run(district, "enroll-code", "--code", child, "--name", "村", "--json"))
    village = bench_load.Village(child, "村")
    request: dict[str, Any] = {
        "v": 1,
        "code": child,
        "name": "村",
        "sign": bench_load.b64(bench_load.raw(village.sign.public_key())),
        "enc": bench_load.b64(bench_load.raw(village.enc.public_key())),
        "resume_seq": 0,
    }
    node = open_node(district, actor="test")
    try:
        assert service.issued_code(node, request) == issued["code"]
        wrong = {**request, "mac": service.mac("0" * 11, request, child)}
        for _ in range(service.MAX_ENROLL_FAILURES):
            with pytest.raises(ProtocolError) as refused:
                service.enroll(node, wrong, ("0" * 11, service.enroll_key("0" * 11, child)))
            assert refused.value.code == "wrong_code"
        assert service.issued_code(node, request) is None  # locked: nothing more is stretched
        with pytest.raises(ProtocolError) as locked:
            service.enroll(node, {**request, "mac": service.mac(issued["code"], request, child)})
        assert locked.value.code == "code_locked"

        again = json.loads(bench_load.run(district, "enroll-code", "--code", child, "--name", "村", "--json"))
        signed = {**request, "mac": service.mac(again["code"], request, child)}
        stale = (issued["code"], service.enroll_key(issued["code"], child))  # the code replaced meanwhile
        answer = service.enroll(node, signed, stale)
        assert answer["ok"] is True
        assert answer["mac"] == service.mac(again["code"], answer, child)  # keyed by the code on record
    finally:
        node.close()
