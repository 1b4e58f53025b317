"""Benchmark of the node store, each figure beside a baseline measured in the
same run on the same disk:

- filing one application through the library (synchronous=FULL), median and
  p95, beside a bare SQLite insert with the same durability;
- `daiban apply --from` on a 10,000-row ledger, rows per second, beside
  parsing the same CSV and inserting it raw;
- `daiban list` (its default page) on a node holding 100,000 applications,
  and `daiban --help`, beside the bare Python interpreter start-up.

Usage: .venv/bin/python scripts/bench_store.py [--quick]"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stdnum.cn import ric

from daiban import i18n
from daiban.node.applications import Filing
from daiban.node.home import init_home
from daiban.node.ledger import filings
from daiban.node.ledger import read as read_ledger

DAIBAN = str(Path(sys.executable).with_name("daiban"))
TARGETS = {"file_p95_ms": 20.0, "ledger_rows_s": 2000.0, "list_s": 0.5, "help_s": 0.3}


def id_numbers(count: int, start: int = 0):
    """Distinct valid resident ID numbers of Zibo residents."""
    base = dt.date(1940, 1, 1)
    for i in range(start, start + count):
        born = base + dt.timedelta(days=i // 900)
        body = f"370303{born:%Y%m%d}{i % 900 + 100:03d}"
        yield body + ric.calc_check_digit(body + "0")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def timed_runs(argv: list[str], runs: int, env: dict[str, str]) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        out.append(time.perf_counter() - t0)
    return out


def write_ledger(path: Path, count: int, start: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["item", "name", "id_number", "phone", "contribution_grade"])
        for i, number in enumerate(id_numbers(count, start)):
            w.writerow(["SB001", "王秀兰", number, f"138{i % 100_000_000:08d}", "500"])


def bench_file(root: Path, n: int) -> tuple[list[float], list[float]]:
    node = init_home(root / "file", role="village", code="370303101201", name="bench")
    ours = []
    for number in id_numbers(n, 5_000_000):
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
        ours.append(time.perf_counter() - t0)
    node.close()
    conn = sqlite3.connect(str(root / "baseline.db"), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    base = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (body) VALUES (?)", ["x" * 600])
        conn.execute("COMMIT")
        base.append(time.perf_counter() - t0)
    conn.close()
    return ours, base


def bench_ledger(root: Path, rows: int, env: dict[str, str]) -> tuple[float, float]:
    home = root / "ledger"
    subprocess.run(
        [
            DAIBAN,
            "--home",
            str(home),
            "init",
            "--role",
            "village",
            "--code",
            "370303101201",
            "--name",
            "bench",
        ],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    path = root / "ledger.csv"
    write_ledger(path, rows, 0)
    t0 = time.perf_counter()
    subprocess.run(
        [DAIBAN, "--home", str(home), "apply", "--from", str(path)],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    ours = rows / (time.perf_counter() - t0)
    # Baseline: parse the same CSV and insert its rows raw, one transaction, full sync.
    t0 = time.perf_counter()
    conn = sqlite3.connect(str(root / "ledger-baseline.db"), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (item, name, id_number, phone, grade)")
    with path.open(encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader)
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", reader)
        conn.execute("COMMIT")
    conn.close()
    base = rows / (time.perf_counter() - t0)
    return ours, base


def seed(home: Path, total: int) -> None:
    """Fill a node with ``total`` applications through the library, in ledgers of 20,000."""
    node = init_home(home, role="village", code="370303101201", name="bench")
    done = 0
    while done < total:
        batch = min(20_000, total - done)
        path = home.parent / f"seed-{done}.csv"
        write_ledger(path, batch, 1_000_000 + done)
        book = read_ledger(path)
        node.file_ledger(filings(book, {}), digest=book.digest, filename=path.name)
        done += batch
        path.unlink()
    node.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    i18n.set_language("en")
    env = {**os.environ, "DAIBAN_LANG": "en"}
    env.pop("DAIBAN_HOME", None)
    n_file, n_ledger, n_list = (50, 1_000, 5_000) if args.quick else (300, 10_000, 100_000)
    with tempfile.TemporaryDirectory(prefix="daiban-bench-") as tmp:
        root = Path(tmp)
        ours, base = bench_file(root, n_file)
        ledger_rate, ledger_base = bench_ledger(root, n_ledger, env)
        t0 = time.perf_counter()
        seed(root / "big", n_list)
        seed_s = time.perf_counter() - t0
        list_runs = timed_runs([DAIBAN, "--home", str(root / "big"), "list"], 7, env)
        help_runs = timed_runs([DAIBAN, "--help"], 11, env)
        python_runs = timed_runs([sys.executable, "-c", "pass"], 11, env)

    ms = 1000
    file_p95 = percentile(ours, 95) * ms
    lines = [
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}",
        "",
        f"{'measure':<46}{'daiban':>12}{'baseline':>12}{'target':>10}  ok",
        f"{'file one application, median (ms)':<46}{statistics.median(ours) * ms:>12.2f}"
        f"{statistics.median(base) * ms:>12.2f}{'':>10}",
        f"{'file one application, p95 (ms)':<46}{file_p95:>12.2f}{percentile(base, 95) * ms:>12.2f}"
        f"{'<= 20':>10}  {'yes' if file_p95 <= TARGETS['file_p95_ms'] else 'NO'}",
        f"{f'apply --from, {n_ledger} rows (rows/s)':<46}{ledger_rate:>12.0f}{ledger_base:>12.0f}"
        f"{'>= 2000':>10}  {'yes' if ledger_rate >= TARGETS['ledger_rows_s'] else 'NO'}",
        f"{f'list, default page, {n_list} apps (s, median)':<46}{statistics.median(list_runs):>12.3f}"
        f"{statistics.median(python_runs):>12.3f}{'<= 0.5':>10}  "
        f"{'yes' if statistics.median(list_runs) <= TARGETS['list_s'] else 'NO'}",
        f"{'daiban --help (s, median)':<46}{statistics.median(help_runs):>12.3f}"
        f"{statistics.median(python_runs):>12.3f}{'<= 0.3':>10}  "
        f"{'yes' if statistics.median(help_runs) <= TARGETS['help_s'] else 'NO'}",
        "",
        "baselines: a bare SQLite insert (WAL, synchronous=FULL) per filing; the same CSV parsed",
        "and inserted raw in one transaction; `python -c pass` for start-up.",
        f"seeding {n_list} applications through the library took {seed_s:.1f} s "
        f"({n_list / seed_s:.0f} rows/s).",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
