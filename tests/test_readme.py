"""The first five minutes, as a newcomer has them: `scripts/demo`, then the
README's pasted session line by line, as printed, in a shell (bash) whose
PATH does not hold `daiban` until the session's first line puts it there;
every command's output (stdout and stderr together) must match what the
README shows. Then the two logins the demo printed open the app on the
demo's network: the village's agent, and the town's staff, whose inbox
holds the demo's applications."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daiban import i18n
from tests.conftest import DAIBAN
from tests.tui_helpers import login, screen_text

ROOT = Path(__file__).resolve().parent.parent
BIN = str(Path(DAIBAN).parent)


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


def _newcomer_env() -> dict[str, str]:
    """A shell as a newcomer has it: no DAIBAN_ settings, `daiban` not on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAIBAN_")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p and p != BIN)
    return env


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """scripts/demo, as the newcomer runs it (without a terminal: no app)."""
    root = tmp_path_factory.mktemp("demo") / "demo-home"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--no-tui", "--dir", str(root)],
        cwd=ROOT,
        env=_newcomer_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    yield root, proc.stdout


def test_the_demo_prints_real_paths_and_two_logins(demo: tuple[Path, str]) -> None:
    root, out = demo
    # The line that puts `daiban` on PATH, with this install's full path.
    assert f'export PATH="{BIN}:$PATH"' in out.splitlines()
    # Every printed command names a real home, never `--home village`.
    homes = re.findall(r"--home (\S+)", out)
    assert homes and all(Path(h).is_absolute() and (Path(h) / "daiban.db").exists() for h in homes), homes
    assert f"daiban --home {root / 'village'} tui" in out
    assert f"daiban --home {root / 'town'} tui" in out
    assert "张代办, PIN 246810" in out and "刘窗口, PIN 135790" in out


def test_readme_session_is_true_after_the_demo(demo: tuple[Path, str], tmp_path: Path) -> None:
    """The README's session, each line in bash from the project's folder,
    after the demo: the first line puts `daiban` on PATH as the README says."""
    assert BIN == str(ROOT / ".venv" / "bin"), "run the tests from the project's .venv (scripts/test)"
    home = str(tmp_path / "dazhang")
    steps = _session()
    assert len(steps) >= 5
    assert steps[0][0] == 'export PATH="$PWD/.venv/bin:$PATH"'
    exports: list[str] = []
    for command, expected in steps:
        command = command.replace("/tmp/dazhang", home)
        if command.startswith("export "):
            exports.append(command)
            continue
        assert command.startswith("daiban "), command
        script = "\n".join([*exports, command])
        proc = subprocess.run(
            ["bash", "-c", script], cwd=ROOT, env=_newcomer_env(), capture_output=True, text=True
        )
        got = (proc.stdout + proc.stderr).replace(home, "/tmp/dazhang").splitlines()
        assert [g.rstrip() for g in got] == expected, command


async def _log_in(home: Path, name: str, pin: str, *keys: str) -> str:
    from daiban.tui.app import DaibanApp

    app = DaibanApp(home)
    async with app.run_test(size=(80, 24)) as pilot:
        await login(pilot, name, pin)
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        return screen_text(app)


def test_the_two_logins_open_the_demo_network(demo: tuple[Path, str]) -> None:
    root, _out = demo
    i18n.set_language("zh")
    village = asyncio.run(_log_in(root / "village", "张代办", "246810"))
    assert "代办员：张代办" in village
    inbox = asyncio.run(_log_in(root / "town", "刘窗口", "135790", "i"))
    rows: Any = [line for line in inbox.splitlines() if re.search(r"\d{20}", line)]
    # The town's inbox holds what the demo left open there: the 低保 accepted
    # with 承诺书 still owed; by masked name, never a full ID number.
    assert len(rows) == 1 and "最低生活保障" in rows[0] and "李*国" in rows[0], inbox
    assert "370303196208150048" not in inbox
    assert "南定镇便民服务中心 待办：1 件" in inbox
