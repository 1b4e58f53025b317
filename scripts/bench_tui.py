"""Benchmark of the terminal app, each figure beside a baseline measured in
the same run: a bare Textual app showing one DataTable.

- launch to first screen: `daiban tui` started in a pseudo-terminal (80x24)
  until the login screen's text has been drawn; baseline: the bare app the
  same way. Median of 5.
- resident memory (VmRSS) after opening each screen, in one headless app
  driven by Pilot (a fresh process); baseline: the bare app with its table.
- opening the office inbox with 10,000 open applications (2,000 of them
  accepted, with due dates), the first time and again (median of 5);
  baseline: the bare DataTable filled with the same number of rows of plain
  text. Beside it, the empty find screen opened the same way: what pressing
  a key and waiting for the screen costs in this harness.

Usage: .venv/bin/python scripts/bench_tui.py [--rows 10000]"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DAIBAN = str(Path(sys.executable).with_name("daiban"))
RUNS = 5

BARE_APP = """
from textual.app import App
from textual.widgets import DataTable, Footer, Header
class Bare(App):
    def compose(self):
        yield Header()
        yield DataTable()
        yield Footer()
    def on_mount(self):
        t = self.query_one(DataTable)
        t.add_columns("BASELINE", "item", "applicant", "status", "due")
        t.add_row("1", "item", "name", "status", "due")
if __name__ == "__main__":
    Bare().run()
"""


def launch_time(argv: list[str], marker: bytes, env: dict[str, str], timeout: float = 20.0) -> float:
    """Seconds from spawning ``argv`` in an 80x24 pty until ``marker`` is drawn."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the program
        os.execvpe(argv[0], argv, env)
    started = time.perf_counter()
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    seen = b""
    elapsed = -1.0
    try:
        while time.perf_counter() - started < timeout:
            ready, _w, _x = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                seen += chunk
                if marker in seen:
                    elapsed = time.perf_counter() - started
                    break
    finally:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            done, _status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            try:
                os.read(fd, 65536)
            except OSError:
                pass
            time.sleep(0.02)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    if elapsed < 0:
        raise SystemExit(f"{argv[0]}: the first screen did not appear within {timeout} s")
    return elapsed


MEASURE = r"""
import asyncio, json, os, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
out = {}
mode = sys.argv[2]
if mode == "bare":
    sys.path.insert(0, sys.argv[3])
    from bare_app import Bare
    from textual.widgets import DataTable
    async def main():
        app = Bare()
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            out["first screen"] = rss()
            table = app.query_one(DataTable)
            rows = int(sys.argv[4])
            started = time.perf_counter()
            table.add_rows(
                [(str(n), "城乡居民基本养老保险", "王*兰", "已受理", "剩 5 个工作日") for n in range(rows)]
            )
            await pilot.pause()
            out["fill seconds"] = time.perf_counter() - started
            out["after fill"] = rss()
    asyncio.run(main())
else:
    from daiban import i18n
    from daiban.tui.app import DaibanApp
    i18n.set_language("zh")
    village, town, rows_home = Path(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5])
    async def login(pilot, name):
        await pilot.pause()
        await pilot.press(*name, "enter", *"135790", "enter")
        await pilot.pause()
    async def village_walk():
        app = DaibanApp(village)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(); out["login"] = rss()
            await login(pilot, "张代办"); out["home (village)"] = rss()
            await pilot.press("n"); await pilot.pause(); out["new application: item"] = rss()
            await pilot.press("enter", "enter"); await pilot.pause(); out["new application: form"] = rss()
            await pilot.press("escape", "escape", "f"); await pilot.pause()
            await pilot.press(*"王秀兰", "enter"); await pilot.pause(); out["find"] = rss()
            await pilot.press("enter"); await pilot.pause(); out["detail"] = rss()
            await pilot.press("r"); await pilot.pause(); out["receipt"] = rss()
            await pilot.press("escape", "escape", "escape", "s")
            await app.workers.wait_for_complete(); await pilot.pause(); out["sync"] = rss()
    async def town_walk():
        app = DaibanApp(town)
        async with app.run_test(size=(80, 24)) as pilot:
            await login(pilot, "刘窗口")
            await pilot.press("i"); await pilot.pause(); out["inbox (town)"] = rss()
            await pilot.press("escape", "d"); await pilot.pause(); out["dashboard (town)"] = rss()
    async def big_inbox():
        app = DaibanApp(rows_home)
        async with app.run_test(size=(80, 24)) as pilot:
            await login(pilot, "刘窗口")
            started = time.perf_counter()
            await pilot.press("i"); await pilot.pause()
            out["inbox seconds"] = time.perf_counter() - started
            out["inbox rows"] = app.screen.query_one("#inbox").row_count
            out["inbox, all applications"] = rss()
            again = []
            for _n in range(5):
                await pilot.press("escape"); await pilot.pause()
                started = time.perf_counter()
                await pilot.press("i"); await pilot.pause()
                again.append(time.perf_counter() - started)
            out["inbox again seconds"] = sorted(again)[2]
            floor = []
            for _n in range(5):
                await pilot.press("escape"); await pilot.pause()
                started = time.perf_counter()
                await pilot.press("f"); await pilot.pause()
                floor.append(time.perf_counter() - started)
            out["find seconds"] = sorted(floor)[2]
    asyncio.run({"village": village_walk, "town": town_walk, "big": big_inbox}[sys.argv[6]]())
print(json.dumps(out))
"""


def seed(root: Path, rows: int) -> dict[str, Path]:
    """A village and a town with a little history, and a town with ``rows`` open applications."""
    sys.path.insert(0, str(ROOT))
    from daiban import i18n
    from daiban.node import agents
    from daiban.node.applications import Filing
    from daiban.node.home import init_home

    i18n.set_language("en")
    homes = {"village": root / "village", "town": root / "town", "big": root / "big"}
    village = init_home(homes["village"], role="village", code="370303101201", name="大张村代办点")
    village.actor = "张代办"
    agents.add(village, "张代办", "135790")
    village.file(
        Filing("SB001", "王秀兰", "370303195603120020", "13805331234", fields={"contribution_grade": "500"})
    )
    village.close()
    for key in ("town", "big"):
        town = init_home(homes[key], role="town", code="370303101", name="南定镇便民服务中心")
        town.actor = "刘窗口"
        agents.add(town, "刘窗口", "135790")
        count = 40 if key == "town" else rows
        from stdnum.cn import ric

        def person(n: int) -> str:
            base = f"3703031960{(n // 28) % 12 + 1:02d}{n % 28 + 1:02d}{n // 336 % 1000:03d}"
            return base + ric.calc_check_digit(base + "0")

        filed = town.file_ledger(
            (
                (
                    n + 2,
                    Filing(
                        "MZ001",
                        "李建国",
                        person(n),
                        "13805331234",
                        region="370303101201",
                        fields={"family_size": "3", "monthly_income": "420"},
                    ),
                )
                for n in range(count)
            ),
            digest=f"bench-{key}",
            filename="bench.csv",
        )
        for f in filed[: count // 5]:
            town.review(f.tracking, "accept")
        town.close()
    return homes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="daiban-bench-tui-"))
    try:
        started = time.perf_counter()
        homes = seed(tmp, args.rows)
        print(f"seeded {args.rows} open applications at a town in {time.perf_counter() - started:.1f} s")
        (tmp / "bare_app.py").write_text(BARE_APP)
        env = {
            **os.environ,
            "TERM": "xterm-256color",
            "DAIBAN_LANG": "zh",
            "DAIBAN_HOME": str(homes["village"]),
        }
        env.pop("DAIBAN_CLOCK", None)
        ours = [launch_time([DAIBAN, "tui"], "本点代办员".encode(), env) for _ in range(RUNS)]
        bare = [
            launch_time([sys.executable, str(tmp / "bare_app.py")], b"BASELINE", env) for _ in range(RUNS)
        ]
        measured: dict[str, float] = {}
        for walk in ("village", "town", "big"):  # each session in a fresh process, as in real use
            argv = [sys.executable, "-c", MEASURE, str(ROOT), "daiban"]
            argv += [str(homes["village"]), str(homes["town"]), str(homes["big"]), walk]
            done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)
            if done.returncode != 0:
                raise SystemExit(f"the {walk} walk failed:\n{done.stderr}")
            measured.update(json.loads(done.stdout))
        baseline = json.loads(
            subprocess.run(
                [sys.executable, "-c", MEASURE, str(ROOT), "bare", str(tmp), str(args.rows)],
                capture_output=True,
                text=True,
                check=True,
                timeout=600,
            ).stdout
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def row(name: str, ours: float, base: float | str, target: str, ok: bool | None) -> None:
        mark = "" if ok is None else ("yes" if ok else "NO")
        base_text = base if isinstance(base, str) else f"{base:.3f}" if base < 10 else f"{base:.1f}"
        ours_text = f"{ours:.3f}" if ours < 10 else f"{ours:.1f}"
        print(f"{name:<44}{ours_text:>10}{base_text:>11}{target:>10}  {mark}")

    print(f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}\n")
    print(f"{'measure':<44}{'daiban':>10}{'baseline':>11}{'target':>10}  ok")
    launch = statistics.median(ours)
    row("launch to first screen (s, median of 5)", launch, statistics.median(bare), "<= 1.5", launch <= 1.5)
    for name, value in measured.items():
        if name.endswith("seconds") or name == "inbox rows":
            continue
        base = baseline["first screen"] if name != "inbox, all applications" else baseline["after fill"]
        row(f"RSS after {name} (MB)", value, base, "<= 80", value <= 80)
    row(
        f"open the inbox of {args.rows} applications (s)",
        measured["inbox seconds"],
        baseline["fill seconds"],
        "<= 0.5",
        measured["inbox seconds"] <= 0.5,
    )
    row(
        "  the same, opened again (s, median of 5)",
        measured["inbox again seconds"],
        baseline["fill seconds"],
        "<= 0.5",
        measured["inbox again seconds"] <= 0.5,
    )
    row("  the empty find screen, same harness (s)", measured["find seconds"], "-", "", None)
    print(
        "\nbaselines: a bare Textual app (Header, one DataTable, Footer), launched and measured the same"
        f" way; its table filled with {args.rows} plain rows for the inbox figure."
    )
    print(f"the inbox table holds the {int(measured['inbox rows'])} most urgent; search finds the rest.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
