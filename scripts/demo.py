"""The demo behind scripts/demo: a small network on this machine — the city,
a district, a town and a village agency point, each a real node home, the
city, district and town serving on loopback — and a walk through filing at
the village, syncing up, deciding at the offices and seeing the statuses come
back, with the real `daiban` command. Every command is printed before its
output, so the session can be replayed by hand. In a terminal it then opens
the terminal app (`daiban tui`) at the village as its agent, with the
servers still running, so Sync now works; without a terminal (CI, tests) it
stops after the printed walk-through. Every server it starts is stopped when
it ends — normally, on an error, on Ctrl+C or on SIGTERM.

Usage: scripts/demo [--lang zh|en] [--keep] [--no-tui]"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

DAIBAN = str(Path(sys.executable).with_name("daiban"))
AGENT, PIN = "张代办", "246810"


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # runs the finally that stops the servers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lang", choices=["zh", "en"], default=os.environ.get("DAIBAN_LANG", "zh"))
    parser.add_argument("--keep", action="store_true", help="keep the demo homes (in ./demo-home)")
    parser.add_argument("--no-tui", action="store_true", help="only the printed walk-through")
    args = parser.parse_args()
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not args.no_tui
    signal.signal(signal.SIGTERM, _stop_on_sigterm)

    root = Path("demo-home").resolve() if args.keep else Path(tempfile.mkdtemp(prefix="daiban-demo-"))
    if args.keep and root.exists():
        shutil.rmtree(root)
    homes = {name: root / name for name in ("city", "district", "town", "village")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAIBAN_")}
    env["DAIBAN_LANG"] = args.lang
    servers: list[subprocess.Popen[str]] = []

    def run(node: str, agent: str, *argv: str, show: bool = True) -> str:
        shown = " ".join(shlex.quote(a) for a in argv)
        if show:
            print(f"\n$ daiban --home {node} --agent {agent} {shown}", flush=True)
        proc = subprocess.run([DAIBAN, "--home", str(homes[node]), "--agent", agent, *argv],
                              env=env, capture_output=True, text=True)
        if show:
            sys.stdout.write(proc.stdout)
            sys.stderr.write(proc.stderr)
        if proc.returncode != 0:
            if not show:
                sys.stderr.write(proc.stderr)
            raise SystemExit(f"demo step failed with exit code {proc.returncode}")
        return proc.stdout

    def serve(node: str) -> str:
        proc = subprocess.Popen([DAIBAN, "--home", str(homes[node]), "serve", "--port", "0"],
                                env={**env, "DAIBAN_LANG": "en"}, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        servers.append(proc)
        assert proc.stdout is not None
        match = re.search(r"http://\S+?(?=\s|$)", proc.stdout.readline())
        if not match:
            raise SystemExit(f"the {node} server did not start")
        return match.group(0)

    def enroll(parent: str, child: str, code: str, name: str, url: str) -> None:
        issued = json.loads(run(parent, "管理员", "enroll-code", "--code", code, "--name", name, "--json",
                                show=False))
        run(child, "管理员", "enroll", url, issued["code"])

    try:
        print("== 搭建网络 / setting up: 市 3703, 区 370303, 镇 370303101, 村 370303101201 ==")
        run("city", "管理员", "init", "--role", "city", "--code", "3703", "--name", "淄博市")
        run("district", "管理员", "init", "--role", "district", "--code", "370303", "--name", "张店区",
            show=False)
        run("town", "管理员", "init", "--role", "town", "--code", "370303101", "--name", "南定镇便民服务中心",
            show=False)
        run("village", "张代办", "init", "--role", "village", "--code", "370303101201",
            "--name", "南定镇大张村代办点", show=False)
        city_url, district_url, town_url = serve("city"), serve("district"), serve("town")
        enroll("city", "district", "370303", "张店区", city_url)
        enroll("district", "town", "370303101", "南定镇便民服务中心", district_url)
        enroll("town", "village", "370303101201", "南定镇大张村代办点", town_url)

        print("\n== 村代办点 / village agency point ==")
        run("village", "张代办", "catalog", "list", "yl")
        pension = run("village", "张代办", "apply", "--item", "SB001", "--name", "王秀兰",
                      "--id-number", "370303195603120020", "--phone", "13805331234",
                      "--field", "contribution_grade=500").splitlines()[0]
        allowance = run("village", "张代办", "apply", "--item", "MZ001", "--name", "李建国",
                        "--id-number", "370303196208150048", "--phone", "0533-2281234",
                        "--field", "family_size=3", "--field", "monthly_income=420",
                        "--missing", "承诺书").splitlines()[0]
        run("village", "张代办", "sync")
        insurance = run("village", "张代办", "apply", "--item", "YB001", "--name", "赵德胜",
                        "--id-number", "370303197511200030", "--phone", "13905339876",
                        "--field", "pay_year=2027", "--field", "person_category=一般居民",
                        show=False).splitlines()[0]
        run("village", "张代办", "sync")
        run("town", "刘窗口", "sync")

        print("\n== 办理机构 / the offices decide ==")
        run("town", "刘窗口", "list")
        run("town", "刘窗口", "review", allowance, "accept", "--missing", "承诺书")
        run("town", "刘窗口", "review", insurance, "accept", show=False)
        run("town", "刘窗口", "review", insurance, "complete", show=False)
        run("district", "陈窗口", "review", pension, "supplement",
            "--missing", "户口簿首页及本人页复印件", "--missing", "本人近期免冠照片")
        run("town", "刘窗口", "sync", show=False)

        print("\n== 回到村代办点 / back at the village ==")
        run("village", "张代办", "sync")
        run("village", "张代办", "list")
        run("village", "张代办", "show", pension)
        if interactive:
            open_app(run, env, homes["village"], args.lang)
    finally:
        for proc in servers:
            proc.terminate()
        for proc in servers:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"\nDemo homes kept in {root}")
    return 0


def open_app(run: object, env: dict[str, str], village: Path, lang: str) -> None:
    """The terminal app at the village, as its agent (the servers keep running)."""
    proc = subprocess.run([DAIBAN, "--home", str(village), "agent", "add", AGENT, "--pin-stdin"],
                          input=PIN + "\n", env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    print(f"\n== 终端界面 / the terminal app: log in as {AGENT}, PIN {PIN}; Ctrl+Q quits ==", flush=True)
    input("按回车打开 / press Enter to open it ")
    subprocess.run([DAIBAN, "--home", str(village), "--lang", lang, "--agent", AGENT, "tui"], env=env)


if __name__ == "__main__":
    raise SystemExit(main())
