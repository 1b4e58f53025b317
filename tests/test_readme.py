"""The README's session, replayed with the real `daiban` on a temp home: every
command's output (stdout and stderr together) must match what the README shows."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

from tests.conftest import DAIBAN

ROOT = Path(__file__).resolve().parent.parent


def _session() -> list[tuple[str, list[str]]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```console\n(.*?)```", text, re.S)
    assert block, "README has no console session"
    steps: list[tuple[str, list[str]]] = []
    lines = block.group(1).splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        assert line.startswith("$ "), f"unexpected line outside a command: {line!r}"
        command = line[2:]
        while command.endswith("\\"):
            i += 1
            command = command[:-1] + lines[i].strip()
        i += 1
        output = []
        while i < len(lines) and not lines[i].startswith("$ "):
            output.append(lines[i])
            i += 1
        steps.append((command, output))
    return steps


def test_readme_session_is_true(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAIBAN_")}
    home = str(tmp_path / "dazhang")
    steps = _session()
    assert len(steps) >= 5
    for command, expected in steps:
        argv = shlex.split(command)
        if argv[0] == "export":
            for assignment in argv[1:]:
                key, value = assignment.split("=", 1)
                env[key] = home if key == "DAIBAN_HOME" else value
            continue
        assert argv[0] == "daiban"
        proc = subprocess.run([DAIBAN, *argv[1:]], env=env, capture_output=True, text=True)
        got = (proc.stdout + proc.stderr).replace(home, "/tmp/dazhang").splitlines()
        assert [g.rstrip() for g in got] == expected, command
