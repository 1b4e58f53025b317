"""Benchmark of a village's day over a slow link that drops: the real
`daiban serve` town, the real `daiban sync` at the village, and between
them a proxy (tests/slowlink.py) pacing 64 kbit/s each way with a 300 ms
round trip, cutting every connection every 20 s.

The day's work: --apps applications filed at the village (a ledger, not
on the wire), then `daiban sync --json` run again and again (as an agent or
`daiban sync --watch` would) until it exits 0 with nothing left and every
receipt is back at the village. Printed per link: seconds from the first
sync's start to that, sync runs (failed ones included), cuts, bytes on the
wire each way, and what went up in push requests: envelopes sent whole
against the distinct envelopes (the minimum: each once), bytes of push
requests cut short, and bytes of pushes whose envelopes the town already
had (sent again whole). Links, each on a fresh copy of the same tree:

- loopback: no pacing, no cuts (the baseline: minimum bytes, no waiting);
- slow: 64 kbit/s, 300 ms, no cuts;
- slow, cut every 20 s: the schedule starting with the first sync;
- slow, cut every 20 s from 2 s: the same, shifted so a cut lands in the
  first push.

Every run checks: every application at the town exactly once, every
receipt at the village exactly once, nothing queued, nothing set aside,
`PRAGMA integrity_check` ok at both.

Usage: .venv/bin/python scripts/bench_link.py [--apps 40] [--rate 8000]
       [--rtt 0.3] [--cut-every 20] [--max-seconds 900]"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fault_net import (
    VILLAGE,
    Processes,
    Tree,
    build_tree,
    copy_tree,
    daiban,
    enroll,
    event_counts,
    file_ledger,
    integrity,
    listed,
    outbox_count,
    query,
    write_ledger,
)
from tests.slowlink import SlowLink

MAX_RUNS = 200


@dataclass
class Day:
    link: str
    seconds: float
    runs: int
    failed: int
    cuts: int
    up: int
    down: int
    envelopes_whole: int
    envelopes: int
    cut_short: int
    pushes_again: int


def one_day(
    template: Tree, root: Path, name: str, args: argparse.Namespace, link_kw: dict[str, float]
) -> Day:
    tree = copy_tree(template, root / name.replace(" ", "-").replace(",", ""))
    procs = Processes()
    try:
        town = procs.serve(tree.town, log_dir=root)
        first_cut = link_kw.pop("first_cut", 0.0)
        with SlowLink(town.port, **link_kw) as link:
            enroll(tree.village, VILLAGE, tree.town, link.url)
            trackings = file_ledger(tree.village, write_ledger(root / f"{name}.csv", args.apps))
            up0, down0, conns0 = link.bytes_up, link.bytes_down, link.connections
            started = time.monotonic()
            link.start_cuts(first=first_cut)
            runs = failed = 0
            for runs in range(1, MAX_RUNS + 1):  # bounded, and by MAX_SECONDS
                proc = daiban(tree.village, "sync", "--json", timeout=args.max_seconds)
                if proc.returncode != 0:
                    failed += 1
                elif outbox_count(tree.village) == 0 and len(event_counts(tree.village, "received")) == len(
                    trackings
                ):
                    break
                if time.monotonic() - started > args.max_seconds:
                    raise SystemExit(
                        f"{name}: not converged in {args.max_seconds:.0f} s ({runs} runs, {link.cuts} cuts, "
                        f"{link.bytes_up - up0:,} bytes up)"
                    )
            seconds = time.monotonic() - started
            cuts = link.cuts
            up, down = link.bytes_up - up0, link.bytes_down - down0
            requests = [r for r in link.requests() if r.conn >= conns0 and r.path == "/v1/push"]
        check(tree, trackings, name)
    finally:
        procs.stop_all()
    whole = [r for r in requests if r.complete and r.envelopes]
    seen: Counter[str] = Counter()
    again = 0
    for r in whole:
        if any(seen[e] for e in r.envelopes):
            again += r.bytes
        seen.update(r.envelopes)
    return Day(
        name,
        seconds,
        runs,
        failed,
        cuts,
        up,
        down,
        sum(seen.values()),
        len(seen),
        sum(r.bytes for r in requests if not r.complete),
        again,
    )


def check(tree: Tree, trackings: list[str], name: str) -> None:
    at_town = sorted(r["tracking"] for r in listed(tree.town))
    problems = []
    if at_town != sorted(trackings):
        problems.append("not every application at the town exactly once")
    if event_counts(tree.village, "received") != Counter(dict.fromkeys(trackings, 1)):
        problems.append("not every receipt at the village exactly once")
    if (
        outbox_count(tree.village)
        or query(tree.town, "SELECT COUNT(*) FROM outbox WHERE hop = ?", (VILLAGE,))[0][0]
    ):
        problems.append("something still queued")
    if query(tree.village, "SELECT COUNT(*) FROM set_aside")[0][0]:
        problems.append("something set aside")
    if integrity(tree.village) != "ok" or integrity(tree.town) != "ok":
        problems.append("integrity_check failed")
    if problems:
        raise SystemExit(f"{name}: {', '.join(problems)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=40, help="applications filed in the day")
    parser.add_argument("--rate", type=float, default=8000.0, help="bytes per second each way (64 kbit/s)")
    parser.add_argument("--rtt", type=float, default=0.3, help="round trip, seconds")
    parser.add_argument("--cut-every", type=float, default=20.0, help="seconds between cuts")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="give up on a link after this")
    args = parser.parse_args()
    slow = {"rate": args.rate, "delay": args.rtt / 2}
    links: list[tuple[str, dict[str, float]]] = [
        ("loopback", {"rate": 1e12, "delay": 0.0}),
        ("slow", dict(slow)),
        (f"slow, cut every {args.cut_every:g} s", {**slow, "cut_every": args.cut_every}),
        (
            f"slow, cut every {args.cut_every:g} s from 2 s",
            {**slow, "cut_every": args.cut_every, "first_cut": 2.0},
        ),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        procs = Processes()
        try:
            template = build_tree(root / "template", procs)
        finally:
            procs.stop_all()
        days = [one_day(template, root, name, args, kw) for name, kw in links]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"a day's work: {args.apps} applications filed, synced, receipts back; load average {load}")
    print(f"link: {args.rate * 8 / 1000:g} kbit/s each way, {args.rtt * 1000:g} ms round trip")
    print()
    print(f"{'link':<34}{'seconds':>8}{'runs':>6}{'failed':>7}{'cuts':>5}{'bytes up':>10}{'bytes down':>11}")
    for d in days:
        print(f"{d.link:<34}{d.seconds:>8.1f}{d.runs:>6}{d.failed:>7}{d.cuts:>5}{d.up:>10,}{d.down:>11,}")
    print()
    print(f"{'pushes (up)':<34}{'envelopes whole':>16}{'distinct':>9}{'cut short (B)':>14}{'again (B)':>10}")
    for d in days:
        print(f"{d.link:<34}{d.envelopes_whole:>16}{d.envelopes:>9}{d.cut_short:>14,}{d.pushes_again:>10,}")
    print()
    print("envelopes whole: envelopes in push requests that went up whole, each time; distinct: the minimum.")
    print("cut short: bytes of push requests a cut ended; again: bytes of whole pushes the town already had.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
