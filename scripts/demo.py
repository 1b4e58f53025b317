"""The demo behind scripts/demo: a village agency point and its town's
convenience center on this machine, each a real node home, and a short walk
through filing, reviewing and listing applications with the real `daiban`
command. Every command is printed before its output, so the session can be
pasted and replayed by hand.

Usage: scripts/demo [--lang zh|en] [--keep]"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DAIBAN = str(Path(sys.executable).with_name("daiban"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lang", choices=["zh", "en"], default=os.environ.get("DAIBAN_LANG", "zh"))
    parser.add_argument("--keep", action="store_true", help="keep the demo homes (in ./demo-home)")
    args = parser.parse_args()

    root = Path("demo-home").resolve() if args.keep else Path(tempfile.mkdtemp(prefix="daiban-demo-"))
    if args.keep and root.exists():
        shutil.rmtree(root)
    village, town = root / "village", root / "town"
    env = {**os.environ, "DAIBAN_LANG": args.lang}
    env.pop("DAIBAN_HOME", None)
    env.pop("DAIBAN_CLOCK", None)

    def run(home: Path, agent: str, *argv: str, capture: bool = False) -> str:
        shown = " ".join(shlex.quote(a) for a in argv)
        print(f"\n$ daiban --home {home.name} --agent {agent} {shown}", flush=True)
        proc = subprocess.run(
            [DAIBAN, "--home", str(home), "--agent", agent, *argv], env=env, capture_output=True, text=True
        )
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
        if proc.returncode != 0:
            raise SystemExit(f"demo step failed with exit code {proc.returncode}")
        return proc.stdout

    try:
        print("== 村代办点 / village agency point ==")
        run(
            village,
            "张代办",
            "init",
            "--role",
            "village",
            "--code",
            "370303101201",
            "--name",
            "南定镇大张村代办点",
        )
        run(village, "张代办", "catalog", "list", "yl")
        first = run(
            village,
            "张代办",
            "apply",
            "--item",
            "SB001",
            "--name",
            "王秀兰",
            "--id-number",
            "370303195603120020",
            "--phone",
            "13805331234",
            "--field",
            "contribution_grade=500",
        )
        run(
            village,
            "张代办",
            "apply",
            "--item",
            "MZ001",
            "--name",
            "李建国",
            "--id-number",
            "370303196208150048",
            "--phone",
            "0533-2281234",
            "--field",
            "family_size=3",
            "--field",
            "monthly_income=420",
            "--missing",
            "承诺书",
        )
        run(village, "张代办", "list")
        run(village, "张代办", "show", first.splitlines()[0])

        print("\n== 镇便民服务中心 / town convenience center ==")
        run(town, "刘窗口", "init", "--role", "town", "--code", "370303101", "--name", "南定镇便民服务中心")
        walk_in = run(
            town,
            "刘窗口",
            "apply",
            "--item",
            "MZ003",
            "--name",
            "赵德胜",
            "--id-number",
            "370303197511200030",
            "--phone",
            "15905331234",
            "--region",
            "370303101203",
            "--field",
            "assistance_kind=急难型",
            "--field",
            "hardship_reason=家中失火，急需生活救助",
            "--missing",
            "困难情况证明材料",
        ).splitlines()[0]
        run(town, "刘窗口", "review", walk_in, "accept", "--missing", "困难情况证明材料")
        run(town, "刘窗口", "supplement", walk_in, "--material", "困难情况证明材料")
        run(
            town,
            "刘窗口",
            "review",
            walk_in,
            "complete",
            "--delivery",
            "post",
            "--post-tracking",
            "1190123456789",
            "--note",
            "核准救助金2000元",
        )
        run(town, "刘窗口", "evaluate", walk_in, "5")
        run(town, "刘窗口", "show", walk_in)
        print(
            "\n(Sync between the village and the town arrives with the sync issue; "
            "until then each node keeps its own queue.)"
        )
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"\nDemo homes kept in {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
