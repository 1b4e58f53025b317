"""The demo behind scripts/demo: a small network on this machine — the city,
a district, a town and a village agency point, each a real node home in
./demo-home (made again at each run), the city, district and town serving on
loopback — and a walk through filing at the village, syncing up, deciding at
the offices and seeing the statuses come back, with the real `daiban`
command. Every command is printed, with its real paths, before its output,
so the session can be replayed by hand (the line that puts `daiban` on PATH
is printed first).

It leaves the network behind with two logins: the village's agent (张代办)
and the town's staff (刘窗口), and prints the command that opens the
terminal app as each. In a terminal it then opens the app at the village as
its agent (with --staff: at the town, as its staff, whose inbox holds the
demo's applications), with the servers still running, so Sync now works;
without a terminal (CI, tests) it stops after the printed walk-through.
Every server it starts is stopped when it ends — normally, on an error, on
Ctrl+C or on SIGTERM.

Usage: scripts/demo [--lang zh|en] [--staff] [--dir DIR] [--no-tui]"""

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
from pathlib import Path

DAIBAN = str(Path(sys.executable).with_name("daiban"))
AGENT, PIN = "张代办", "246810"
STAFF, STAFF_PIN = "刘窗口", "135790"
NODES = ("city", "district", "town", "village")


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # runs the finally that stops the servers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lang", choices=["zh", "en"], default=os.environ.get("DAIBAN_LANG", "zh"))
    parser.add_argument("--staff", action="store_true", help="open the app at the town, as its staff")
    parser.add_argument("--dir", default="demo-home", help="where the demo homes go (made again each run)")
    parser.add_argument("--keep", action="store_true", help=argparse.SUPPRESS)  # kept anyway now
    parser.add_argument("--no-tui", action="store_true", help="only the printed walk-through")
    args = parser.parse_args()
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not args.no_tui
    signal.signal(signal.SIGTERM, _stop_on_sigterm)

    root = Path(args.dir).resolve()
    homes = {name: root / name for name in NODES}
    if root.exists():
        # Only an earlier demo's homes are removed, never anything else.
        if {p.name for p in root.iterdir()} - set(NODES):
            raise SystemExit(f"{root} holds more than an earlier demo; give another --dir")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAIBAN_")}
    env["DAIBAN_LANG"] = args.lang
    servers: list[subprocess.Popen[str]] = []
    print(f"== daiban 命令在此 / `daiban` is here; to type the commands below yourself:\n{path_line()}")

    def run(node: str, agent: str, *argv: str, show: bool = True) -> str:
        shown = " ".join(shlex.quote(a) for a in argv)
        if show:
            print(f"\n$ daiban --home {shown_path(homes[node])} --agent {agent} {shown}", flush=True)
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
        add_logins(homes, env)
        print_logins(homes)
        if interactive:
            if args.staff:
                open_app(homes["town"], args.lang, STAFF, STAFF_PIN, env)
            else:
                open_app(homes["village"], args.lang, AGENT, PIN, env)
            print(f"\n演示网络保留在 / the demo network stays in {shown_path(root)}; the two commands above "
                  "open it again (without the servers, which stop now).")
    finally:
        for proc in servers:
            proc.terminate()
        for proc in servers:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return 0


def path_line() -> str:
    """The shell line that puts this install's `daiban` on PATH."""
    return f'export PATH="{Path(DAIBAN).parent}:$PATH"'


def shown_path(path: Path) -> str:
    """A home as a real path to type: relative to here when below it."""
    try:
        return shlex.quote(str(path.relative_to(Path.cwd())))
    except ValueError:
        return shlex.quote(str(path))


def add_logins(homes: dict[str, Path], env: dict[str, str]) -> None:
    """The village's agent and the town's staff, each with a PIN."""
    for home, name, pin in ((homes["village"], AGENT, PIN), (homes["town"], STAFF, STAFF_PIN)):
        proc = subprocess.run([DAIBAN, "--home", str(home), "agent", "add", name, "--pin-stdin"],
                              input=pin + "\n", env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)


def print_logins(homes: dict[str, Path]) -> None:
    print("\n== 两个登录 / two logins (the demo network stays in "
          f"{shown_path(homes['village'].parent)}) ==")
    print(f"村代办点代办员 / village agent: {AGENT}, PIN {PIN}")
    print(f"  daiban --home {shown_path(homes['village'])} tui")
    print(f"镇工作人员 / town staff: {STAFF}, PIN {STAFF_PIN} (I 打开待办 / I opens the inbox)")
    print(f"  daiban --home {shown_path(homes['town'])} tui")
    print("scripts/demo --staff 运行演示后以镇工作人员打开 / runs the demo and opens the town app; "
          "Ctrl+Q quits")
    print(path_line())


def open_app(home: Path, lang: str, name: str, pin: str, env: dict[str, str]) -> None:
    """The terminal app at ``home``, as ``name`` (the servers keep running)."""
    print(f"\n== 终端界面 / the terminal app: log in as {name}, PIN {pin}; Ctrl+Q quits ==", flush=True)
    input("按回车打开 / press Enter to open it ")
    subprocess.run([DAIBAN, "--home", str(home), "--lang", lang, "--agent", name, "tui"], env=env)


if __name__ == "__main__":
    raise SystemExit(main())
