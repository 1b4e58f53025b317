"""A large push's receipts come back a part at a time (sync/service.py
PULL_APPLIES): a pull applies only the first part of what its child pushed
before it answers, the server goes on applying the rest by itself
(Writer.apply_for), and the child pulls again while receipts keep coming,
folding each page while the next is prepared (sync/client.py pull). One
`daiban sync` still brings every receipt back, exactly once; every answer
keeps the contract (``more`` only after a full page).

The district serves in this process (a real aiohttp server on its real port,
its own thread), so the test sets the part small and turns the idle applier
off: the first pull can then only have the first part's receipts to give.
The village is the real ``daiban sync`` command, or its own client
functions where the test looks at one pull's answer."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from daiban.node.home import open_node
from daiban.sync import client, protocol, server, service
from daiban.sync.serve_config import ServeConfig
from daiban.sync.server import create_app
from tests.attacker import V2, C, D, T, V
from tests.fault_net import resident_id
from tests.sync_net import NODES, Network, network_at

PART = 25  # what one pull applies of its child's pushes, here
FILED = 120


@contextlib.contextmanager
def served_here(home: Path, port: int) -> Iterator[None]:
    """``home``'s server in this process, on 127.0.0.1:``port`` (its
    children know it by that URL), on a thread of its own; stopped on leaving."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(create_app(home, ServeConfig(log=False)))
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="district-here", daemon=True)
    thread.start()
    try:
        assert ready.wait(20), "the server did not start"
        yield
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "PULL_APPLIES", PART)
    monkeypatch.setattr(server, "APPLY_FOR_CHUNK", 10)
    # The idle applier off: only a pull and what follows it apply.
    monkeypatch.setattr(server, "IDLE_BEFORE_APPLY", 3600.0)
    monkeypatch.setattr(server, "APPLY_AT_LEAST_EVERY", 3600.0)


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Network]:
    with network_at(tmp_path / "net") as network:
        yield _filed(network, tmp_path)


def _filed(network: Network, tmp_path: Path, names: tuple[str, ...] = (C, D, V2), filer: str = V2) -> Network:
    network.build(names)
    path = tmp_path / "区级.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["item", "name", "id_number", "phone", "contribution_grade"])
        out.writerows(["SB001", "李建国", resident_id(i), f"139{i:08d}", 500] for i in range(FILED))
    filed = network.run(filer, "apply", "--from", str(path), "--json").ok().json()
    assert len(filed["applications"]) == FILED
    return network


def district_port(net: Network) -> int:
    port = int(net.url(D).rsplit(":", 1)[1])
    net.stop(D)
    return port


def queued_from(net: Network, code: str) -> int:
    with contextlib.closing(sqlite3.connect(net.home(D) / "daiban.db")) as db:
        row = db.execute(
            "SELECT COUNT(*) FROM envelopes WHERE effect = 'queued' AND received_from = ?", [code]
        ).fetchone()
    return int(row[0])


def test_one_sync_brings_every_receipt_back_though_each_pull_applies_a_part(
    net: Network, small_parts: None
) -> None:
    village2, district = NODES[V2].code, NODES[D].code
    with served_here(net.home(D), district_port(net)):
        report = net.run(V2, "sync", "--json").ok().json()
    assert report["pushed"] == FILED and report["pulled"] == FILED and report["left"] == 0
    # Applied a part at a time: more than one `receipts` envelope, none
    # carrying more than a part (the first pull's page had only the first).
    bulk = net.query(D, "SELECT raw FROM envelopes WHERE origin = ? AND kind = 'receipts'", (district,))
    assert len(bulk) >= FILED // PART
    held = net.query(V2, "SELECT tracking, COUNT(*) FROM events WHERE kind = 'received' GROUP BY tracking")
    assert len(held) == FILED and all(row[1] == 1 for row in held)  # every one, exactly once
    statuses = net.query(V2, "SELECT status, COUNT(*) FROM applications GROUP BY status")
    assert [tuple(r) for r in statuses] == [("received", FILED)]
    assert queued_from(net, village2) == 0
    assert net.count(V2, "quarantine") == 0 and net.count(D, "quarantine") == 0


def _receipts_in(answer: dict[str, Any]) -> int:
    return sum(
        len(json.loads(raw)["body"]["receipts"]) for raw in answer["envelopes"] if '"kind":"receipts"' in raw
    )


def test_the_server_goes_on_applying_after_a_pull_and_pages_keep_the_contract(
    net: Network, small_parts: None
) -> None:
    village2 = NODES[V2].code
    with served_here(net.home(D), district_port(net)):
        node = open_node(net.home(V2))
        try:

            async def push_then_pull() -> tuple[dict[str, Any], dict[str, Any]]:
                async with aiohttp.ClientSession(headers=protocol.PROTOCOL_HEADERS) as session:
                    url = node.store.setting("parent_url") or ""
                    conn = client.Connection(node, session, url, node.parent() or "")
                    await client.push(conn, client.Report())
                    first = await conn.post(protocol.PULL, {"cursor": 0, "limit": protocol.BATCH})
                    # No request comes now; the server applies the rest by itself.
                    deadline = time.monotonic() + 60
                    while queued_from(net, village2) and time.monotonic() < deadline:
                        await asyncio.sleep(0.05)
                    cursor = first[1]["cursor"]
                    second = await conn.post(protocol.PULL, {"cursor": cursor, "limit": protocol.BATCH})
                    return first[1], second[1]

            first, second = asyncio.run(push_then_pull())
        finally:
            node.close()
    assert queued_from(net, village2) == 0
    assert _receipts_in(first) == PART and first["more"] is False  # a page not full: no `more`
    assert _receipts_in(second) == FILED - PART and second["more"] is False


def test_a_relay_pulls_on_while_the_receipts_it_carries_keep_coming(
    tmp_path: Path, small_parts: None
) -> None:
    """The village files under the town; the district is the office. The
    town's one `daiban sync` pushes the filings to the district and pulls
    until every receipt for the village has come through it, though each of
    its pulls makes the district apply only a part."""
    village = NODES[V].code
    with network_at(tmp_path / "net") as net:
        _filed(net, tmp_path, (C, D, T, V), V)
        net.run(V, "sync", "--json").ok()  # up to the town
        with served_here(net.home(D), district_port(net)):
            net.run(T, "sync", "--json").ok()
        carried = [
            json.loads(row[0])
            for row in net.query(
                T, "SELECT raw FROM envelopes WHERE kind = 'receipts' AND dest = ?", (village,)
            )
        ]
        assert sum(len(e["body"]["receipts"]) for e in carried) == FILED
        assert len(carried) >= FILED // PART  # applied a part at a time
        report = net.run(V, "sync", "--json").ok().json()
        assert report["pulled"] == FILED and report["left"] == 0
        held = net.query(V, "SELECT tracking, COUNT(*) FROM events WHERE kind = 'received' GROUP BY tracking")
        assert len(held) == FILED and all(row[1] == 1 for row in held)


def test_a_sync_killed_between_parts_loses_and_duplicates_nothing(net: Network, small_parts: None) -> None:
    """The village's sync is killed (kill -9, by its PID) where it has
    stored the first page of receipts and asked for the next, before it
    folded that page; the server answers the next pull to nobody and goes
    on. The next `daiban sync` brings every receipt back exactly once."""
    village2 = NODES[V2].code
    with served_here(net.home(D), district_port(net)):
        net.kill_at(V2, "pull-asked-again", "sync")
        stored = net.query(V2, "SELECT COUNT(*) FROM envelopes WHERE kind = 'receipts'")[0][0]
        folded = net.query(V2, "SELECT COUNT(*) FROM events WHERE kind = 'received'")[0][0]
        assert stored >= 1 and folded < FILED  # killed between parts
        report = net.run(V2, "sync", "--json").ok().json()
    assert report["left"] == 0
    held = net.query(V2, "SELECT tracking, COUNT(*) FROM events WHERE kind = 'received' GROUP BY tracking")
    assert len(held) == FILED and all(row[1] == 1 for row in held)
    statuses = net.query(V2, "SELECT status, COUNT(*) FROM applications GROUP BY status")
    assert [tuple(r) for r in statuses] == [("received", FILED)]
    assert queued_from(net, village2) == 0
    assert net.count(V2, "quarantine") == 0 and net.count(D, "quarantine") == 0
