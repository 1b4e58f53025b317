"""Benchmark of sync: 10,000 applications pushed village → district over
loopback, with the real `daiban serve` and `daiban sync` processes.

Prints applications per second end to end: from the village's outbox to
durable storage at the district, acknowledged back to the village (the push
phase of `daiban sync`, which reports its own timing). Beside it, the whole
`daiban sync` command: process start-up, the push, the district applying
every application (its receipt event, signed) and the receipts pulled back
and applied at the village. Also bytes on the wire per application (counted
by a relay on loopback) and the peak resident memory of client and server.
Each round files --count applications and syncs them; medians are printed,
since a shared machine's figures vary from run to run. Beside each round,
in the same run, a baseline: the same number of bare JSON documents of a
similar size POSTed in batches of 500 to a minimal aiohttp server that stores
them in SQLite with the same durability, without signatures or sealing.

Usage: .venv/bin/python scripts/bench_sync.py [--count N] [--rounds R]"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import json
import os
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from stdnum.cn import ric

DAIBAN = str(Path(sys.executable).with_name("daiban"))
ENV = {**{k: v for k, v in os.environ.items() if not k.startswith("DAIBAN_")}, "DAIBAN_LANG": "en"}


def run(*args: str, home: Path) -> str:
    proc = subprocess.run([DAIBAN, "--home", str(home), *args], env=ENV, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"daiban {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def serve(home: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [DAIBAN, "--home", str(home), "serve", "--port", "0"],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, int(match.group(1))


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class CountingRelay:
    """A loopback TCP relay that counts the bytes each way."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.up = 0
        self.down = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.5)
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                client, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:  # closed by close()
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(client, upstream, "up"), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, "down"), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, way: str) -> None:
        try:
            while data := src.recv(65536):
                if way == "up":
                    self.up += len(data)
                else:
                    self.down += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def ledger(path: Path, count: int, start: int = 0) -> None:
    base = dt.date(1940, 1, 1)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["item", "name", "id_number", "phone", "contribution_grade"])
        for i in range(start, start + count):
            body = f"370303{base + dt.timedelta(days=i // 900):%Y%m%d}{i % 900 + 100:03d}"
            w.writerow(["SB001", "王秀兰", body + ric.calc_check_digit(body + "0"), f"138{i:08d}", "500"])


def baseline(count: int, doc_size: int, root: Path, number: int = 0) -> float:
    """Bare JSON documents POSTed in batches to a minimal aiohttp+SQLite server."""
    from aiohttp import ClientSession, web

    db = sqlite3.connect(str(root / f"baseline{number}.db"), isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE docs (id TEXT PRIMARY KEY, doc TEXT)")

    async def handler(request: web.Request) -> web.Response:
        docs = await request.json()
        db.execute("BEGIN")
        db.executemany("INSERT OR IGNORE INTO docs VALUES (?, ?)", [(d["id"], json.dumps(d)) for d in docs])
        db.execute("COMMIT")
        return web.json_response({"ok": len(docs)})

    async def main() -> float:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/docs", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        docs = [{"id": f"{i:032x}", "pad": "x" * doc_size} for i in range(count)]
        t0 = time.perf_counter()
        async with ClientSession() as session:
            for i in range(0, count, 500):
                async with session.post(f"http://127.0.0.1:{port}/docs", json=docs[i : i + 500]) as r:
                    await r.read()
        elapsed = time.perf_counter() - t0
        await runner.cleanup()
        return count / elapsed

    return asyncio.run(main())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of --count applications; medians printed"
    )
    args = parser.parse_args()
    n = args.count
    rounds: list[dict[str, float]] = []
    filing_s: list[float] = []
    client_peak = 0.0
    with tempfile.TemporaryDirectory(prefix="daiban-bench-sync-") as tmp:
        root = Path(tmp)
        city, district, village = root / "city", root / "district", root / "village"
        run("init", "--role", "city", "--code", "3703", "--name", "淄博市", home=city)
        run("init", "--role", "district", "--code", "370303", "--name", "张店区", home=district)
        run("init", "--role", "village", "--code", "370303101201", "--name", "大张村", home=village)
        city_proc, city_port = serve(city)
        district_proc = None
        relay = None
        try:
            code = json.loads(run("enroll-code", "--code", "370303", "--name", "张店区", "--json", home=city))
            run("enroll", f"http://127.0.0.1:{city_port}", code["code"], home=district)
            district_proc, district_port = serve(district)
            relay = CountingRelay(district_port)
            code = json.loads(
                run("enroll-code", "--code", "370303101201", "--name", "大张村", "--json", home=district)
            )
            run("enroll", f"http://127.0.0.1:{relay.port}", code["code"], home=village)
            for number in range(args.rounds):
                path = root / f"ledger{number}.csv"
                ledger(path, n, start=number * n)
                t0 = time.perf_counter()
                run("apply", "--from", str(path), home=village)
                filing_s.append(time.perf_counter() - t0)
                relay.up = relay.down = 0
                t0 = time.perf_counter()
                sync = subprocess.Popen(
                    [DAIBAN, "--home", str(village), "sync", "--json"],
                    env=ENV,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                while sync.poll() is None:
                    try:
                        client_peak = max(client_peak, peak_rss_mb(sync.pid))
                    except (FileNotFoundError, ProcessLookupError):
                        break
                    time.sleep(0.05)
                elapsed = time.perf_counter() - t0
                out, err = sync.communicate()
                if sync.returncode != 0:
                    raise SystemExit(f"sync failed: {out} {err}")
                timing = json.loads(out)
                rounds.append(
                    {
                        "push_rate": n / float(timing["push_seconds"]),
                        "whole_rate": n / elapsed,
                        "push_s": timing["push_seconds"],
                        "pull_s": timing["pull_seconds"],
                        "up": relay.up / n,
                        "down": relay.down / n,
                        "baseline": baseline(n, 600, root, number),
                    }
                )
            server_peak = peak_rss_mb(district_proc.pid)
            stored = (
                sqlite3.connect(str(district / "daiban.db"))
                .execute("SELECT COUNT(*) FROM applications")
                .fetchone()[0]
            )
        finally:
            if relay is not None:
                relay.close()
            for proc in (district_proc, city_proc):
                if proc is not None:
                    proc.terminate()
                    proc.wait(timeout=10)
    rate = statistics.median(r["push_rate"] for r in rounds)
    round_trip = statistics.median(r["whole_rate"] for r in rounds)
    base_rate = statistics.median(r["baseline"] for r in rounds)
    up = statistics.median(r["up"] for r in rounds)
    down = statistics.median(r["down"] for r in rounds)
    lines = [
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}",
        f"{args.rounds} rounds of {n} applications filed at the village (apply --from, sealed and signed),",
        "then one `daiban sync`; the district keeps what earlier rounds brought.",
        "",
        f"{'round':<7}{'filing s':>10}{'push s':>9}{'pull s':>9}{'push/s':>9}{'whole/s':>9}"
        f"{'baseline/s':>12}",
        *(
            f"{i + 1:<7}{filing_s[i]:>10.1f}{r['push_s']:>9.3f}{r['pull_s']:>9.3f}"
            f"{r['push_rate']:>9.0f}{r['whole_rate']:>9.0f}{r['baseline']:>12.0f}"
            for i, r in enumerate(rounds)
        ),
        f"applications at the district after the last round: {stored}",
        "",
        f"{'measure (median of the rounds)':<44}{'daiban':>12}{'baseline':>12}{'target':>10}  ok",
        f"{'applications/s end to end (push, acked)':<44}{rate:>12.0f}{base_rate:>12.0f}{'>= 5000':>10}  "
        f"{'yes' if rate >= 5000 else 'NO'}",
        f"{'applications/s, whole sync with receipts':<44}{round_trip:>12.0f}",
        f"{'bytes on the wire per application (up)':<44}{up:>12.0f}{'':>12}{'<= 700':>10}  "
        f"{'yes' if up <= 700 else 'NO'}",
        f"{'bytes on the wire per application (down)':<44}{down:>12.0f}",
        f"{'peak RSS, client `daiban sync` (MB)':<44}{client_peak:>12.1f}{'':>12}{'<= 150':>10}  "
        f"{'yes' if client_peak <= 150 else 'NO'}",
        f"{'peak RSS, server `daiban serve` (MB)':<44}{server_peak:>12.1f}{'':>12}{'<= 150':>10}  "
        f"{'yes' if server_peak <= 150 else 'NO'}",
        "",
        f"baseline: {n} bare JSON documents of ~600 bytes POSTed in batches of 500 to a minimal",
        "aiohttp server inserting them into SQLite (WAL, synchronous=FULL): no signatures, no sealing.",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
