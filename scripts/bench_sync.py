"""Benchmark of sync: N applications synced village → district over
loopback, with the real `daiban serve` and `daiban sync` processes, beside
PouchDB replicating N documents in the same run.

The headline is what the agent waits for: the wall clock of the whole
`daiban sync` command, process start to exit — start-up, the push, the
district applying every application (its receipt, signed in bulk) and every
receipt pulled back and applied at the village — as N / seconds, for
N = 5,000 and 10,000 (--counts), the median of --rounds rounds. Beside it,
in the same run and alternating with it, the peer people would otherwise
pick: PouchDB replicating N similar documents to a PouchDB server on
loopback (../shared/peers/pouchdb.sh N, its docs/s), and the ratio (target:
at least 2x). Also the push phase alone (as `daiban sync` reports it), the
bytes on the wire per application each way (counted by a relay on
loopback; target up: at most 450), the peak resident memory of client and
server, and a bare aiohttp+SQLite floor (bare JSON documents POSTed in
batches of 500, stored with the same durability, no signatures or sealing).

Usage: .venv/bin/python scripts/bench_sync.py [--counts 5000,10000] [--rounds 3]"""

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
        # No nightly forward to the parent (a district's default, 01:00-05:00
        # China time): what is measured is the sync alone, whatever the hour.
        [DAIBAN, "--home", str(home), "serve", "--port", "0", "--forward-window", "off"],
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


PEERS = Path(__file__).resolve().parent.parent.parent / "shared" / "peers" / "pouchdb.sh"


def pouchdb(count: int) -> float | None:
    """PouchDB's docs/s replicating ``count`` documents (None when the
    baseline cannot run here: no node or npm, or no shared/peers folder)."""
    if not PEERS.exists():
        return None
    proc = subprocess.run(["bash", str(PEERS), str(count)], capture_output=True, text=True, timeout=1800)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return float(json.loads(line)["docs_per_s"])
    print(f"pouchdb baseline failed: {proc.stderr.strip()[-300:]}", file=sys.stderr)
    return None


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def measure(n: int, rounds: int, root: Path, peer: bool = True) -> dict[str, object]:
    """``rounds`` rounds of n applications filed and synced on one network
    (the district keeps what earlier rounds brought), a PouchDB run after
    each; per-round figures and the peaks."""
    per_round: list[dict[str, float]] = []
    client_peak = 0.0
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
        for number in range(rounds):
            path = root / f"ledger{number}.csv"
            ledger(path, n, start=number * n)
            t0 = time.perf_counter()
            run("apply", "--from", str(path), home=village)
            filing = time.perf_counter() - t0
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
            with sqlite3.connect(str(village / "daiban.db")) as db:
                waiting = db.execute(
                    "SELECT COUNT(*) FROM applications WHERE status = 'submitted'"
                ).fetchone()[0]
            if timing["left"] or waiting:
                raise SystemExit(f"the sync did not bring every receipt back ({waiting} waiting): {timing}")
            per_round.append(
                {
                    "filing_s": filing,
                    "whole_s": elapsed,
                    "whole_rate": n / elapsed,
                    "push_rate": n / float(timing["push_seconds"]),
                    "push_s": timing["push_seconds"],
                    "pull_s": timing["pull_seconds"],
                    "up": relay.up / n,
                    "down": relay.down / n,
                    "pouch": (pouchdb(n) if peer else None) or float("nan"),
                    "floor": baseline(n, 600, root, number),
                }
            )
        server_peak = peak_rss_mb(district_proc.pid)
        with sqlite3.connect(str(district / "daiban.db")) as db:
            stored = db.execute("SELECT COUNT(*) FROM applications").fetchone()[0]
    finally:
        if relay is not None:
            relay.close()
        for proc in (district_proc, city_proc):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)
    return {"rounds": per_round, "client_peak": client_peak, "server_peak": server_peak, "stored": stored}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="5000,10000", help="comma-separated N (default 5000,10000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per N; medians printed")
    parser.add_argument("--no-peer", action="store_true", help="leave out the PouchDB baseline")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",") if c.strip()]
    # Byte-compiled first, as an installed package is (PYTHONDONTWRITEBYTECODE
    # may be set here): the timed commands do not compile our modules.
    import daiban

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(daiban.__file__).parent)], check=False)
    python = sys.version.split()[0]
    print(f"machine: {os.cpu_count()} cores, Python {python}; load average at start {load_average()}")
    results: dict[int, dict[str, object]] = {}
    for n in counts:
        with tempfile.TemporaryDirectory(prefix="daiban-bench-sync-") as tmp:
            results[n] = measure(n, args.rounds, Path(tmp), peer=not args.no_peer)
    lines = ["", f"load average at end {load_average()}", ""]
    lines.append(
        f"{'N':>6} {'round':>5} {'filing s':>9} {'whole s':>8} {'push s':>7} {'pull s':>7}"
        f" {'whole/s':>8} {'push/s':>7} {'PouchDB/s':>10}"
    )
    for n, result in results.items():
        done: list[dict[str, float]] = result["rounds"]  # type: ignore[assignment]
        for i, r in enumerate(done):
            lines.append(
                f"{n:>6} {i + 1:>5} {r['filing_s']:>9.1f} {r['whole_s']:>8.2f} {r['push_s']:>7.2f}"
                f" {r['pull_s']:>7.2f} {r['whole_rate']:>8.0f} {r['push_rate']:>7.0f} {r['pouch']:>10.0f}"
            )
    lines += [
        "",
        f"{'measure (median of the rounds)':<46}{'daiban':>9}{'PouchDB':>9}{'ratio':>7}{'target':>9}  ok",
    ]
    for n, result in results.items():
        rows: list[dict[str, float]] = result["rounds"]  # type: ignore[assignment]
        whole = statistics.median(r["whole_rate"] for r in rows)
        pouch_rates = [r["pouch"] for r in rows if r["pouch"] == r["pouch"]]
        pouch = statistics.median(pouch_rates) if pouch_rates else float("nan")
        ratio = whole / pouch if pouch_rates else float("nan")
        ok = "yes" if ratio >= 2 else ("NO" if pouch_rates else "-")
        label = f"whole `daiban sync`, {n} applications/s"
        lines.append(f"{label:<46}{whole:>9.0f}{pouch:>9.0f}{ratio:>7.2f}{'>= 2x':>9}  {ok}")
    lines.append("")
    for n, result in results.items():
        rows = result["rounds"]  # type: ignore[assignment]
        push = statistics.median(r["push_rate"] for r in rows)
        floor = statistics.median(r["floor"] for r in rows)
        up = statistics.median(r["up"] for r in rows)
        down = statistics.median(r["down"] for r in rows)
        cpeak, speak = float(result["client_peak"]), float(result["server_peak"])  # type: ignore[arg-type]

        def check(value: float, limit: float) -> str:
            return f"target <= {limit:g}  {'yes' if value <= limit else 'NO'}"

        lines += [
            f"N = {n} (applications at the district after the last round: {result['stored']})",
            f"  {'push phase alone, applications/s':<44}{push:>9.0f}   floor {floor:.0f}/s",
            f"  {'bytes on the wire per application, up':<44}{up:>9.0f}   {check(up, 450)}",
            f"  {'bytes on the wire per application, down':<44}{down:>9.0f}",
            f"  {'peak RSS, client `daiban sync` (MB)':<44}{cpeak:>9.1f}   {check(cpeak, 150)}",
            f"  {'peak RSS, server `daiban serve` (MB)':<44}{speak:>9.1f}   {check(speak, 150)}",
        ]
    lines += [
        "",
        "whole: `daiban sync` wall clock, process start to exit, every receipt back (checked).",
        "PouchDB: ../shared/peers/pouchdb.sh N, replication of N documents to a PouchDB server on loopback,",
        "run after each round. floor: bare JSON documents of ~600 bytes POSTed in batches of 500 to a",
        "minimal aiohttp server inserting them into SQLite (WAL, synchronous=FULL).",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
