"""Benchmark of `Store.high_water` (every push's answer asks it, per origin
of the batch): milliseconds per call for one origin holding N envelopes,
without a gap and with one near the start or the end, beside the code before
5c1211a (every sequence number of the origin read into Python), run on the
same file in the same run.

Usage: .venv/bin/python scripts/bench_high_water.py [--quick]"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from daiban.node.home import init_home

CASES = ((1_000, None), (10_000, None), (100_000, None), (100_000, 1_000), (100_000, 99_000))


def read_every_number(conn: sqlite3.Connection, origin: str) -> int:
    """The baseline: Store.high_water as it was before 5c1211a."""
    seqs = [r[0] for r in conn.execute("SELECT seq FROM envelopes WHERE origin = ? ORDER BY seq", [origin])]
    top = 0
    for seq in seqs:
        if seq != top + 1:
            break
        top = seq
    return top


def per_call_ms(fn: Callable[[], int], calls: int) -> tuple[float, int]:
    times, value = [], 0
    for _ in range(calls):
        t0 = time.perf_counter()
        value = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="up to 10,000 envelopes only")
    args = parser.parse_args()
    cases = [c for c in CASES if not args.quick or c[0] <= 10_000]
    with tempfile.TemporaryDirectory(prefix="daiban-hw-") as tmp:
        node = init_home(Path(tmp) / "district", role="district", code="370303", name="bench")
        conn = node.store.conn
        head = ("envelopes", "gap at", "Store.high_water ms", "read every number ms", "same")
        print(f"{head[0]:>9} {head[1]:>7} {head[2]:>20} {head[3]:>21}  {head[4]}")
        for i, (count, gap) in enumerate(cases):
            origin = f"3703031012{i:02d}"
            numbers = [n for n in range(1, count + 2) if n != gap][:count]
            with node.store.transaction():
                conn.executemany(
                    "INSERT INTO envelopes (id, origin, seq, kind, dest, digest, raw, origin_at, "
                    "received_at, received_from) VALUES (?, ?, ?, 'filed', '370303', '', '', '', '', ?)",
                    [(f"{origin}-{n}", origin, n, origin) for n in numbers],
                )
            ours, top = per_call_ms(lambda o=origin: node.store.high_water([o])[o], 11)
            base, expected = per_call_ms(lambda o=origin: read_every_number(conn, o), 11)
            same = "yes" if top == expected else "NO"
            print(f"{count:>9,} {gap or '-':>7} {ours:>20.2f} {base:>21.2f}  {same}")
            if top != expected:
                return 1
        node.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
