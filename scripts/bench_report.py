"""Benchmark of the statistics stream and `daiban report`, each figure beside
a baseline measured in the same run on the same disk:

- an office publishing the records of 20,000 changed applications
  (`statistics.flush`: build, compare, sign, queue), records per second,
  beside reading the same rows and inserting them raw into a table;
- `daiban report --json --by item` at a city holding 100,000 records, beside
  a bare Python process running the same counts as one SQL GROUP BY, and
  their ratio (target: at most 3). Both are whole processes, start-up
  included, timed alternately (the median of ``--rounds``) after one
  untimed run each; their bytecode is cached as an installed package's is
  (a private PYTHONPYCACHEPREFIX, whatever PYTHONDONTWRITEBYTECODE says).

Usage: .venv/bin/python scripts/bench_report.py [--quick] [--rounds N]"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics as stats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from daiban import i18n
from daiban.node import statistics
from daiban.node.clock import CST
from daiban.node.home import init_home

DAIBAN = str(Path(sys.executable).with_name("daiban"))
ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("DAIBAN_") and k != "PYTHONDONTWRITEBYTECODE"},
    "DAIBAN_LANG": "en",
}
TARGET_RATIO = 3.0
ITEMS = ("SB001", "SB002", "LL001", "MZ002", "RS002", "CL001", "YB002", "TY001")


def application_rows(count: int, office: str) -> list[dict[str, object]]:
    rng = random.Random(7)
    rows = []
    for k in range(count):
        received = dt.datetime(2026, 1, 2, 9, tzinfo=CST) + dt.timedelta(hours=rng.randrange(24 * 300))
        done = rng.random() < 0.7
        accepted = received + dt.timedelta(days=1)
        completed = accepted + dt.timedelta(days=rng.randint(0, 20))
        rows.append(
            {
                "tracking": f"{office}{rng.randint(101, 130):03d}{rng.randint(201, 230):03d}{k:07d}0",
                "item": rng.choice(ITEMS),
                "item_name": "事项",
                "level": "district",
                "office": office,
                "region": f"{office}{rng.randint(101, 130):03d}{rng.randint(201, 230):03d}",
                "origin": f"{office}{rng.randint(101, 130):03d}{rng.randint(201, 230):03d}",
                "status": "completed" if done else "accepted",
                "owed": [],
                "missing": [],
                "materials": [],
                "evaluation": rng.randint(1, 5) if done and rng.random() < 0.8 else None,
                "filed_at": received.isoformat(timespec="seconds"),
                "received_at": received.isoformat(timespec="seconds"),
                "accepted_on": accepted.date().isoformat(),
                "time_limit_days": 5,
                "due": (accepted + dt.timedelta(days=7)).date().isoformat(),
                "due_state": "known",
                "decided_at": accepted.isoformat(timespec="seconds"),
                "completed_at": completed.isoformat(timespec="seconds") if done else None,
                "name_masked": "王*兰",
                "id_masked": "3703**********0012",
                "phone_masked": "138****1234",
                "id_hash": "",
                "updated_at": (completed if done else accepted).isoformat(timespec="seconds"),
            }
        )
    return rows


def bench_flush(root: Path, count: int) -> tuple[float, float]:
    node = init_home(root / "district", role="district", code="370303", name="张店区")
    try:
        rows = application_rows(count, node.code)
        with node.store.transaction():
            for row in rows:
                node.store.save_application(row)
        started = time.perf_counter()
        published = statistics.flush(node)
        ours = time.perf_counter() - started
        assert published == count, published
        db = node.store.db.conn
        db.execute(
            "CREATE TABLE bare (tracking TEXT PRIMARY KEY, office, item, region, status, completed_at)"
        )
        started = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        raw = db.execute(
            "SELECT tracking, office, item, region, status, completed_at FROM applications"
        ).fetchall()
        db.executemany("INSERT INTO bare VALUES (?, ?, ?, ?, ?, ?)", raw)
        db.execute("COMMIT")
        bare = time.perf_counter() - started
    finally:
        node.close()
    return count / ours, count / bare


BARE_QUERY = (
    "import sqlite3, json, sys; db = sqlite3.connect(sys.argv[1]); print(json.dumps(db.execute("
    "\"SELECT item, COUNT(*), SUM(status = 'completed'), SUM(on_time), AVG(working_days), "
    'SUM(proxy), AVG(evaluation) FROM stats GROUP BY item").fetchall()))'
)


def bench_report(root: Path, count: int, rounds: int) -> tuple[float, float]:
    """Median seconds of the real command and of the bare GROUP BY, each a
    whole process, alternating."""
    home = root / "city"
    node = init_home(home, role="city", code="3703", name="淄博市")
    try:
        with node.store.transaction():
            rows = application_rows(count, "370303")
            calendar = node.calendar()
            from daiban.node.stats import record_of

            node.store.put_stats([record_of(r, calendar) for r in rows], version=1, taken_at="x")
    finally:
        node.close()
    env = {**ENV, "PYTHONPYCACHEPREFIX": str(root / "pycache")}
    ours_cmd = [DAIBAN, "--home", str(home), "report", "--by", "item", "--json"]
    bare_cmd = [sys.executable, "-c", BARE_QUERY, str(home / "daiban.db")]
    ours: list[float] = []
    bare: list[float] = []
    for k in range(rounds + 1):  # the first of each is not counted: bytecode, the disk cache
        for cmd, times in ((ours_cmd, ours), (bare_cmd, bare)):
            started = time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=True)
            took = time.perf_counter() - started
            assert proc.returncode == 0, proc.stderr
            if k:
                times.append(took)
    return stats.median(ours), stats.median(bare)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes")
    parser.add_argument("--rounds", type=int, default=5, help="timed runs of the report and its baseline")
    args = parser.parse_args()
    i18n.set_language("en")
    scale = 10 if args.quick else 1
    flush_n, report_n = 20_000 // scale, 100_000 // scale
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        flush_rate, bare_rate = bench_flush(root, flush_n)
        report_s, bare_s = bench_report(root, report_n, max(1, args.rounds))
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cores")
    print(f"{'measure':<58}{'daiban':>10}{'baseline':>12}")
    print(
        f"{f'records published per second ({flush_n:,} changed)':<58}{flush_rate:>10,.0f}{bare_rate:>12,.0f}"
    )
    print(
        f"{f'`daiban report --by item --json`, {report_n:,} records (s)':<58}{report_s:>10.2f}{bare_s:>12.2f}"
    )
    ratio = report_s / bare_s
    verdict = "holds" if ratio <= TARGET_RATIO else "missed"
    print(f"{'report / bare GROUP BY (target <= 3.0)':<58}{ratio:>10.2f}{verdict:>12}")
    print()
    print("baselines: the same rows read and inserted raw into a table (no record, no signature);")
    print("a bare Python process running the counts as one SQL GROUP BY (no dates, no trend).")
    print(f"report times: the median of {max(1, args.rounds)} alternating runs, each a whole process.")


if __name__ == "__main__":
    main()
