"""Observability against real servers: ``/metrics`` of a real ``daiban serve``
parsed with prometheus-client's own parser, its counters moving after a real
sync; ``daiban children`` at the parent; the servers' JSON log lines free of
the test applicants' ID numbers, phones and names, hostile requests included;
and two servers in one process keeping their metrics apart."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from daiban.node.applications import Node
from daiban.sync import protocol
from daiban.sync.serve_config import ServeConfig
from daiban.sync.server import create_app
from tests.fault_net import resident_id
from tests.sync_net import DAIBAN, Network, network_at

VILLAGE = "370303101201"
APPLICANTS = [
    ("王秀兰", resident_id(11), "13805331234"),
    ("李建国", resident_id(12), "13905337788"),
]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url + "/metrics", timeout=20) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Network]:
    """A network whose processes are all stopped after the test."""
    with network_at(tmp_path / "net") as network:
        yield network


def run_env(network: Network, name: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``daiban ARGS`` on a node with extra environment (a moved clock)."""
    full = {**network.env(network.home(name)), **env}
    return subprocess.run([DAIBAN, *args], capture_output=True, text=True, env=full, timeout=60)


def post(url: str, path: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url + path, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=20) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return int(exc.code)


def test_metrics_move_after_a_sync_and_logs_hold_nothing_personal(net: Network) -> None:
    network = net
    network.build(("city", "district", "town", "village"))
    town = network.url("town")
    before = scrape(town)
    assert value(before, "daiban_node_info", code="370303101", role="town", version="0.1.0") == 1

    for name, id_number, phone in APPLICANTS:
        network.run(
            "village",
            "apply", "--item", "MZ001", "--name", name, "--id-number", id_number, "--phone", phone,
            "--field", "family_size=3", "--field", "monthly_income=420",
        ).ok()  # fmt: skip
    # Queued at the village, not at the town yet.
    assert value(scrape(town), "daiban_envelopes_in_total", kind="filed", peer="child") == 0
    report = network.sync("village")
    assert report["pushed"] == 2 and report["pulled"] == 2 and report["left"] == 0

    after = scrape(town)
    moved = value(after, "daiban_envelopes_in_total", kind="filed", peer="child")
    assert moved - value(before, "daiban_envelopes_in_total", kind="filed", peer="child") == 2
    # The town's two receipts went down in the village's pull.
    # The two receipts went back in one envelope (receipts in bulk).
    assert value(after, "daiban_envelopes_out_total", kind="receipts", peer="child") == 1
    assert value(after, "daiban_envelopes_out_total", kind="received", peer="child") == 0
    pushes = value(after, "daiban_requests_total", path="/v1/push", status="200")
    assert pushes >= 1
    pulls = value(after, "daiban_request_seconds_count", path="/v1/pull")
    assert pulls >= 1 + value(before, "daiban_request_seconds_count", path="/v1/pull")
    assert value(after, "daiban_request_seconds_sum", path="/v1/pull") > 0
    assert value(after, "daiban_queue_depth", peer=VILLAGE) == 0
    last = value(after, "daiban_child_last_sync_timestamp_seconds", child=VILLAGE)
    assert abs(last - dt.datetime.now().timestamp()) < 120
    assert value(after, "daiban_child_stale", child=VILLAGE) == 0
    assert value(after, "daiban_children_stale") == 0

    # Refusals by reason: an unsigned push, and one signed by a stranger
    # claiming an applicant's ID number as its node code.
    name, id_number, phone = APPLICANTS[0]
    body = zlib.compress(json.dumps({"envelopes": [], "certs": []}).encode())
    content = {"Content-Type": protocol.CONTENT_TYPE}
    assert post(town, protocol.PUSH, body, content) == 401
    hostile = {**content, protocol.H_NODE: id_number, protocol.H_COUNTER: "1", protocol.H_SIG: "AAAA"}
    assert post(town, protocol.PUSH, body, hostile) == 401
    # Enrollment attempts naming the applicant, and a path with a phone in it.
    attempt = {"code": id_number, "name": name, "phone": phone, "sign": "", "enc": "", "mac": ""}
    enroll = zlib.compress(json.dumps(attempt).encode())
    assert post(town, protocol.ENROLL, enroll, content) == 404
    assert post(town, f"/v1/{phone}", body, content) == 404
    refused = scrape(town)
    assert value(refused, "daiban_refusals_total", reason="unauthenticated") == 1
    assert value(refused, "daiban_refusals_total", reason="unknown_node") == 1
    assert value(refused, "daiban_refusals_total", reason="no_code") == 1
    assert value(refused, "daiban_requests_total", path="unmatched", status="404") == 1

    # `daiban children` at the town: the village synced just now; three days
    # on (the CLI's clock moved with DAIBAN_CLOCK) it is stale.
    children = network.run("town", "children", "--json").ok().json()
    assert [c["code"] for c in children] == [VILLAGE]
    assert children[0]["stale"] is False and children[0]["queued"] == 0
    assert children[0]["name"] == "大张村"
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).isoformat()
    env_later = {"DAIBAN_CLOCK": later}
    proc = run_env(network, "town", env_later, "children", "--stale", "--json")
    assert [c["code"] for c in json.loads(proc.stdout)] == [VILLAGE], proc.stderr
    proc = run_env(network, "town", env_later, "children", "--stale-after", "4d", "--stale", "--json")
    assert json.loads(proc.stdout) == []
    table = run_env(network, "town", env_later, "children").stdout
    assert VILLAGE in table and "stale" in table and "1 of 1 children" in table
    bad = network.run("town", "children", "--stale-after", "soon")
    assert bad.returncode == 2 and "48h" in bad.stderr and "Traceback" not in bad.stderr

    # Every server log line (stderr and the rotating file) is one JSON object,
    # and none carries an applicant's ID number, phone or name.
    for server in ("city", "district", "town"):
        network.stop(server)
    lines: list[str] = []
    for path in [*network.root.glob("*.serve.log"), *network.root.glob("*/logs/*.log")]:
        lines += [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(lines) > 20
    records = [json.loads(line) for line in lines]
    requests = [r for r in records if r.get("message") == "request"]
    assert any(r["path"] == protocol.PUSH and r["node"] == VILLAGE and r["status"] == 200 for r in requests)
    assert any(r["node"] == "invalid" for r in requests)
    text = "\n".join(lines)
    for name, id_number, phone in APPLICANTS:
        for secret in (id_number, id_number[:12], phone, name):
            assert secret not in text, secret


def test_two_servers_in_one_process_keep_their_metrics_apart(make_node: Callable[..., Node]) -> None:
    homes = []
    for code, name in (("370303101", "南定镇"), ("370303102", "北定镇")):
        node = make_node(role="town", code=code, name=name)
        homes.append(node.home)
        node.close()

    async def main() -> tuple[str, str]:
        runners = []
        urls = []
        for home in homes:
            runner = web.AppRunner(create_app(home, ServeConfig(log=False)))
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            runners.append(runner)
            urls.append(f"http://127.0.0.1:{runner.addresses[0][1]}")
        try:
            async with aiohttp.ClientSession() as session:
                body = zlib.compress(b"{}")
                async with session.post(
                    urls[0] + protocol.PUSH, data=body, headers={"Content-Type": protocol.CONTENT_TYPE}
                ) as resp:
                    assert resp.status == 401  # not signed: refused before it is inflated
                pages = []
                for url in urls:
                    async with session.get(url + "/metrics") as resp:
                        pages.append(await resp.text())
        finally:
            for runner in runners:
                await runner.cleanup()
        return pages[0], pages[1]

    first, second = asyncio.run(main())

    def refusals(page: str) -> float:
        for family in text_string_to_metric_families(page):
            for s in family.samples:
                if s.name == "daiban_refusals_total" and s.labels == {"reason": "unauthenticated"}:
                    return s.value
        return 0.0

    assert refusals(first) == 1
    assert refusals(second) == 0
    assert 'code="370303101"' in first and 'code="370303102"' in second
