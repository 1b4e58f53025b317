"""A rolling upgrade on a real network of ``daiban serve`` processes
(tests/sync_net.py), on an injected clock: the district runs the previous
release (tests/release.py: a git worktree of an earlier commit in a venv of
its own) under a current city and a current town, and is upgraded in place
mid-test — its old ``daiban serve`` stopped, the current build started on
the same home and port.

The previous release is commit 422c8e5 (the merge of 'orgchange'): the last
commit before cc87c74 added heartbeat records (``children``) to the
statistics stream, and the first with a real version, the protocol header
and ``daiban status`` (a467961), so the current town and city sync with it
(protocol 1 beside the current 2: one apart). It refuses the town's
heartbeats as an invalid stats body, for good — exactly what an upgrade must
recover: after it, the district takes them in from its quarantine, keeps
them and passes them on to the city, and both list the village silent for
60 days under the town. Every filing is counted once, every application is
at its office exactly once, every status at its village, nothing waits in a
queue or in quarantine, every database passes ``PRAGMA integrity_check``.

The hold itself (a current node holding what a newer one sends) is tested in
process in tests/test_upgrade_holds.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daiban.sync import protocol
from tests import release
from tests.attacker import Attacker, assert_quarantined
from tests.sync_net import DAIBAN, NODES, Network, Result
from tests.test_moving import FIELDS, id_number

C, D, T, V, V2 = "city", "district", "town", "village", "village2"
ALL = (C, D, T, V, V2)
PREVIOUS = "422c8e5"  # see the module's docstring for why this commit
DAY0 = "2026-06-01T09:00:00"
DAY60 = "2026-07-31T09:00:00"
OFFICE = {"MZ001": T, "SB001": D, "GJ001": C}


class MixedNetwork(Network):
    """Some nodes on another build (``exe``: node -> its ``daiban``); every
    command and server on one frozen clock (DAIBAN_CLOCK)."""

    clock: str = DAY0

    def __init__(self, root: Path, exe: dict[str, str]) -> None:
        super().__init__(root)
        self.exe = exe

    def env(self, home: Path) -> dict[str, str]:
        return {**super().env(home), "DAIBAN_CLOCK": self.clock}

    def run(self, home: str | Path, *args: str, timeout: float = 60.0) -> Result:
        import subprocess

        path = self.home(home) if isinstance(home, str) else home
        exe = self.exe.get(home, DAIBAN) if isinstance(home, str) else DAIBAN
        proc = subprocess.run(
            [exe, *args], capture_output=True, text=True, env=self.env(path), timeout=timeout
        )
        return Result(tuple(args), proc.returncode, proc.stdout, proc.stderr)

    def _launch(self, name: str, port: int = 0) -> Any:
        import subprocess

        from tests import sync_net

        log = self.root / f"{name}.serve.log"
        out = self.root / f"{name}.serve.out"
        with out.open("wb") as stdout, log.open("ab") as stderr:
            proc = subprocess.Popen(
                [self.exe.get(name, DAIBAN), "serve", "--host", "127.0.0.1", "--port", str(port)],
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                env=self.env(self.home(name)),
            )
        self._started.append(proc)
        sync_net._LIVE.add(proc)
        return name, proc, out, log


@pytest.fixture(scope="module")
def previous() -> str:
    return str(release.release(PREVIOUS))


@pytest.fixture
def net(tmp_path: Path, previous: str) -> Iterator[MixedNetwork]:
    root = tmp_path / "net"
    root.mkdir()
    net = MixedNetwork(root, {D: previous})
    try:  # every server it started is stopped, by PID, whatever happens
        yield net
    finally:
        net.close()


def apply(net: Network, node: str, item: str, n: int) -> str:
    args = [
        "apply",
        "--item",
        item,
        "--name",
        "升级" + "一二三四五六七八九"[n - 1],
        "--id-number",
        id_number(n),
    ]
    args += ["--phone", f"139063{n:05d}", "--json"]
    for key, value in FIELDS[item].items():
        args += ["--field", f"{key}={value}"]
    filed = net.run(node, *args).ok().json()
    assert filed["office"] == NODES[OFFICE[item]].code
    return str(filed["tracking"])


def status(net: Network, node: str, tracking: str) -> str:
    return str(net.run(node, "show", tracking, "--json").ok().json()["status"])


def report(net: Network, node: str) -> dict[str, Any]:
    got: dict[str, Any] = net.run(node, "report", "--json").ok().json()
    return got


def stats_quarantined(net: Network, node: str) -> list[tuple[str, str, str]]:
    rows = net.query(node, "SELECT kind, origin, code FROM quarantine ORDER BY id")
    return [tuple(r) for r in rows]  # type: ignore[misc]


def parent_protocol(net: Network, node: str) -> int:
    checked = net.run(node, "status", "--check", "--json").ok().json()["parent"]["checked"]
    assert checked["reachable"] is True, checked
    return int(checked["protocol"])


def test_a_district_on_the_previous_release_upgraded_in_place_loses_nothing(net: MixedNetwork) -> None:
    town, village2 = net.code(T), net.code(V2)
    assert net.run(D, "--version").ok().stdout.strip().endswith("(protocol 1)")  # the previous release
    net.init(C, T, V, V2)
    spec = NODES[D]
    net.run(D, "init", "--role", spec.role, "--code", spec.code, "--name", spec.name).ok()
    net.start(C, D, T)
    for name in (D, T, V):
        net.enroll(name)
    net.enroll(V2, T)  # both villages under the town

    # -- day 0, the district on the previous release -------------------------------------------
    apps = {
        "a1": (V, apply(net, V, "MZ001", 1)),
        "a2": (V, apply(net, V, "SB001", 2)),
        "a3": (V, apply(net, V, "GJ001", 3)),
        "b1": (V2, apply(net, V2, "MZ001", 4)),
    }
    net.sync_all(V, V2, T, D)
    net.run(T, "review", apps["a1"][1], "accept").ok()
    net.run(D, "review", apps["a2"][1], "accept").ok()  # the previous release's own CLI
    net.run(C, "review", apps["a3"][1], "accept").ok()
    net.sync_all(T, D, T, V, V2)
    # The town's heartbeats are news to it: refused as an invalid stats body,
    # for good; and the city's receipts in bulk (a3's), a kind it does not know.
    refused = stats_quarantined(net, D)
    assert ("stats", town, "invalid_body") in refused, refused
    assert set(refused) <= {("stats", town, "invalid_body"), ("receipts", net.code(C), "unknown_kind")}
    assert status(net, V, apps["a3"][1]) == "submitted"  # its receipt waits at the district

    # -- day 60: village2 stays silent ---------------------------------------------------------
    net.clock = DAY60
    for name in (C, D, T):
        net.restart(name)
    apps["a4"] = (V, apply(net, V, "SB001", 5))
    net.sync_all(V, T, D)
    assert [r for r in stats_quarantined(net, D) if r[0] == "stats"] == [("stats", town, "invalid_body")] * 2
    assert parent_protocol(net, T) == 1
    assert report(net, C)["stale_nodes"] == []  # the city has heard nothing of the villages

    # -- the district upgraded in place: same home, same port ----------------------------------
    url = net.url(D)
    net.stop(D)
    del net.exe[D]
    net.serve_again(D, url)
    assert parent_protocol(net, T) == protocol.PROTOCOL
    # Opened by a new build, it examined what the old one refused and took it in.
    assert net.count(D, "quarantine") == 0, net.query(D, "SELECT * FROM quarantine")
    held = net.query(D, "SELECT parent, code FROM child_heartbeats ORDER BY parent, code")
    assert [tuple(r) for r in held] == [(town, net.code(V)), (town, village2)]
    net.run(D, "review", apps["a2"][1], "complete").ok()
    net.run(D, "review", apps["a4"][1], "accept").ok()
    for _round in range(2):
        net.sync_all(V, T, D)
    net.sync(V2)  # last, so it stays stale on the records that went up before

    # -- the district and the city list the silent village under its town ----------------------
    for node, below in ((D, 3), (C, 4)):
        got = report(net, node)
        assert [(s["code"], s["parent"], s["last_sync_at"]) for s in got["stale_nodes"]] == [
            (village2, town, "2026-06-01T09:00:00+08:00")
        ], node
        assert got["nodes_below"] == below, node
    # -- every filing counted once ---------------------------------------------------------------
    assert report(net, C)["total"]["filed"] == 5
    assert report(net, D)["total"]["filed"] == 4  # the city's own GJ001 is not the district's

    # -- every application at its office exactly once, every status at its village -----------------
    items = {"a1": "MZ001", "a2": "SB001", "a3": "GJ001", "a4": "SB001", "b1": "MZ001"}
    expected = {"a1": "accepted", "a2": "completed", "a3": "accepted", "a4": "accepted", "b1": "received"}
    for key, (village, tracking) in apps.items():
        office = OFFICE[items[key]]
        filed = net.query(
            office, "SELECT COUNT(*) FROM events WHERE tracking = ? AND kind = 'filed'", (tracking,)
        )
        assert filed[0][0] == 1, (key, office)
        holders = [
            name for name in (C, D, T)
            if net.query(name, "SELECT 1 FROM applications WHERE tracking = ? AND office = ?",
                         (tracking, NODES[name].code))
        ]  # fmt: skip
        assert holders == [office], key
        assert status(net, village, tracking) == status(net, office, tracking) == expected[key], key
        events = net.query(village, "SELECT kind, COUNT(*) FROM events WHERE tracking = ? GROUP BY kind",
                           (tracking,))  # fmt: skip
        assert all(n == 1 for _kind, n in events), (key, [tuple(e) for e in events])
    # -- nothing stuck, nothing quarantined, every database whole ------------------------------------
    for name in ALL:
        for table in ("outbox", "quarantine", "set_aside", "conflicts"):
            assert net.count(name, table) == 0, (name, table, net.query(name, f"SELECT * FROM {table}"))
        assert net.query(name, "PRAGMA integrity_check")[0][0] == "ok", name
    assert net.run(D, "status", "--json").ok().json()["protocol"] == protocol.PROTOCOL

    # -- and now the district holds what a newer town would send it ---------------------------------
    newer_town = Attacker(net, T)
    newer = newer_town.envelope("amended", to=net.code(C), tracking=None, body={"note": "新"})
    pushed = newer_town.push([newer.raw])
    assert pushed.status == 200 and pushed.verdict(newer.id)["status"] == "held", pushed.answer
    row = assert_quarantined(net, D, newer.id, code="unknown_kind", origin=town, sender=town)
    assert row["held"] is True
    info = net.run(D, "status", "--json").ok().json()
    assert (info["quarantined"], info["held_for_upgrade"]) == (0, 1)
    assert "held for an upgrade" in net.run(D, "quarantine").ok().stdout
    assert net.count(D, "outbox") == 0  # held, not passed on
