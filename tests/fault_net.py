"""Helpers for the sync fault-injection tests: a real node tree (city → district
→ town → village) in temp homes, ``daiban serve`` run as real subprocesses on
127.0.0.1, ledgers of many distinct residents, and read-only looks into a
node's SQLite database.

Every process started here is recorded and stopped by its PID (see
``Processes.stop_all``), whatever happens in the test."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stdnum.cn import ric

from tests.conftest import DAIBAN

CITY, DISTRICT, TOWN, VILLAGE = "3703", "370303", "370303101", "370303101201"
NAMES = {CITY: "淄博市", DISTRICT: "张店区", TOWN: "南定镇", VILLAGE: "大张村代办点"}
ROLES = {CITY: "city", DISTRICT: "district", TOWN: "town", VILLAGE: "village"}
SERVING = re.compile(r"Serving (http://127\.0\.0\.1:(\d+)) ")
CMD_TIMEOUT = 120.0
READY_TIMEOUT = 20.0

SURNAMES = "王张李刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = ["秀兰", "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛"]


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAIBAN_")}
    env.update({"DAIBAN_HOME": str(home), "DAIBAN_LANG": "en", "DAIBAN_AGENT": "测试代办员"})
    return env


def daiban(home: Path, *args: str, timeout: float = CMD_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run the real console script on ``home`` and wait (bounded) for it."""
    return subprocess.run([DAIBAN, *args], capture_output=True, text=True, env=env_for(home), timeout=timeout)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"{proc.args}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- processes ------------------------------------------------------------------------------


@dataclass
class Server:
    home: Path
    proc: subprocess.Popen[bytes]
    url: str
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class Processes:
    """Every process a test started, so that all are stopped by PID at the end."""

    procs: list[subprocess.Popen[Any]] = field(default_factory=list)

    def track(self, proc: subprocess.Popen[Any]) -> subprocess.Popen[Any]:
        self.procs.append(proc)
        return proc

    def serve(
        self, home: Path, port: int = 0, log_dir: Path | None = None, env: dict[str, str] | None = None
    ) -> Server:
        """``daiban serve`` in a subprocess; returns once its first line names the URL.
        ``env``: more environment (a crash point, daiban/sync/faults.py)."""
        logs = log_dir or home
        n = sum(1 for _ in logs.glob("serve-*.out"))
        out, err = logs / f"serve-{n}.out", logs / f"serve-{n}.err"
        with out.open("wb") as fo, err.open("wb") as fe:
            proc = self.track(
                subprocess.Popen(
                    [DAIBAN, "serve", "--port", str(port)],
                    stdout=fo,
                    stderr=fe,
                    stdin=subprocess.DEVNULL,
                    env={**env_for(home), **(env or {})},
                )
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            first = out.read_text(encoding="utf-8", errors="replace").split("\n", 1)
            if len(first) > 1:
                m = SERVING.search(first[0])
                assert m, f"unexpected first line from serve: {first[0]!r}"
                return Server(home, proc, m.group(1), int(m.group(2)), err)
            if proc.poll() is not None:
                raise AssertionError(f"serve exited {proc.returncode}: {err.read_text(errors='replace')}")
            time.sleep(0.05)
        self.stop(proc)
        raise AssertionError(f"serve did not announce its URL in {READY_TIMEOUT}s")

    def stop(self, proc: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> None:
        """Stop one process by its PID (and reap it); SIGKILL if it does not go in time."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if proc in self.procs:
            self.procs.remove(proc)

    def kill9(self, proc: subprocess.Popen[Any]) -> None:
        self.stop(proc, signal.SIGKILL)

    def stop_all(self) -> None:
        for proc in list(reversed(self.procs)):
            self.stop(proc)


# -- the node tree ----------------------------------------------------------------------------


def init(home: Path, code: str) -> None:
    ok(daiban(home, "init", "--role", ROLES[code], "--code", code, "--name", NAMES[code]))


def enroll_code(parent: Path, child: str) -> str:
    out = ok(daiban(parent, "enroll-code", "--code", child, "--name", NAMES[child], "--json"))
    return str(json.loads(out)["code"])


def enroll(child_home: Path, child: str, parent_home: Path, url: str) -> None:
    ok(daiban(child_home, "enroll", url, enroll_code(parent_home, child)))


@dataclass
class Tree:
    root: Path
    homes: dict[str, Path]

    @property
    def town(self) -> Path:
        return self.homes[TOWN]

    @property
    def village(self) -> Path:
        return self.homes[VILLAGE]


def build_tree(root: Path, procs: Processes) -> Tree:
    """City, district, town and village homes; district and town enrolled
    (city and district serve only for that, then stop). The village is not
    enrolled yet: the test decides with which URL."""
    homes = {code: root / ROLES[code] for code in (CITY, DISTRICT, TOWN, VILLAGE)}
    for code, home in homes.items():
        init(home, code)
    city = procs.serve(homes[CITY])
    try:
        enroll(homes[DISTRICT], DISTRICT, homes[CITY], city.url)
    finally:
        procs.stop(city.proc)
    district = procs.serve(homes[DISTRICT])
    try:
        enroll(homes[TOWN], TOWN, homes[DISTRICT], district.url)
    finally:
        procs.stop(district.proc)
    return Tree(root, homes)


def set_parent_url(home: Path, url: str) -> None:
    with contextlib.closing(sqlite3.connect(home / "daiban.db", timeout=30)) as conn, conn:
        cur = conn.execute("UPDATE node SET value = ? WHERE key = 'parent_url'", [url])
        assert cur.rowcount == 1, "the village has no parent_url setting"


# -- residents and ledgers -----------------------------------------------------------------------


def resident_id(i: int) -> str:
    """A distinct valid resident ID from region 370303: birth date and sequence vary with i."""
    birth = dt.date(1950, 1, 1) + dt.timedelta(days=(i * 7) % 20000)
    body17 = f"370303{birth:%Y%m%d}{100 + i % 900:03d}"
    return body17 + ric.calc_check_digit(body17 + "0")


def write_ledger(path: Path, n: int, start: int = 0) -> Path:
    """A CSV ledger of ``n`` MZ001 applications (town level) for distinct residents."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["item", "name", "id_number", "phone", "family_size", "monthly_income"])
        for i in range(start, start + n):
            name = SURNAMES[i % len(SURNAMES)] + GIVEN[(i // len(SURNAMES)) % len(GIVEN)]
            w.writerow(["MZ001", name, resident_id(i), f"138{i:08d}", 3, 420])
    return path


def file_ledger(home: Path, path: Path) -> list[str]:
    """File a ledger at the village; the tracking numbers it printed."""
    out = json.loads(ok(daiban(home, "apply", "--from", str(path), "--json")))
    assert out["ok"] is True
    return [a["tracking"] for a in out["applications"]]


# -- looking into a node ---------------------------------------------------------------------------


def query(home: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(home / "daiban.db", timeout=30)) as conn:
        return list(conn.execute(sql, args))


def event_counts(home: Path, kind: str) -> Counter[str]:
    """How many events of ``kind`` the node holds per tracking number."""
    rows = query(home, "SELECT tracking, COUNT(*) FROM events WHERE kind = ? GROUP BY tracking", (kind,))
    return Counter({t: n for t, n in rows})


def outbox_count(home: Path) -> int:
    return int(query(home, "SELECT COUNT(*) FROM outbox")[0][0])


def integrity(home: Path) -> str:
    with contextlib.closing(sqlite3.connect(home / "daiban.db", timeout=30)) as conn:
        return "\n".join(str(r[0]) for r in conn.execute("PRAGMA integrity_check"))


def listed(home: Path) -> list[dict[str, Any]]:
    rows = json.loads(ok(daiban(home, "list", "--json")))
    assert isinstance(rows, list)
    return rows


def one_line_failure(proc: subprocess.CompletedProcess[str]) -> str | None:
    """None if a failed ``daiban sync`` failed as promised (exit 1, one line on
    stderr, no traceback, not an internal error); else what was wrong."""
    err = proc.stderr.strip()
    problems = []
    if proc.returncode != 1:
        problems.append(f"exit {proc.returncode}")
    if "Traceback" in proc.stderr + proc.stdout:
        problems.append("traceback")
    if len(err.splitlines()) != 1:
        problems.append(f"{len(err.splitlines())} lines on stderr")
    if "internal error" in err:
        problems.append("internal error")
    return f"{', '.join(problems)}: {err!r}" if problems else None


def copy_tree(template: Tree, root: Path) -> Tree:
    """A fresh copy of a template tree (no process may have it open)."""
    shutil.copytree(template.root, root)
    return Tree(root, {code: root / home.relative_to(template.root) for code, home in template.homes.items()})


@dataclass
class Converged:
    runs: int  # sync runs, the converging one included
    failures: list[str]  # stderr of every failed run
    problems: list[str]  # failed runs that did not fail as promised
    reports: list[dict[str, Any]]  # --json reports of runs that exited 0
    converged: bool = False

    def add(self, other: Converged) -> None:
        """Fold in the next round."""
        self.runs += other.runs
        self.failures += other.failures
        self.problems += other.problems
        self.reports += other.reports
        self.converged = other.converged


def sync_until_converged(home: Path, max_runs: int, timeout: float = 90.0) -> Converged:
    """Run ``daiban sync --json`` until it exits 0 with nothing left (at most ``max_runs`` times)."""
    result = Converged(0, [], [], [])
    for run in range(1, max_runs + 1):
        result.runs = run
        proc = daiban(home, "sync", "--json", timeout=timeout)
        if proc.returncode == 0:
            report = json.loads(proc.stdout)
            result.reports.append(report)
            if report.get("left") == 0 and report.get("ok") is True:
                result.converged = True
                return result
            result.problems.append(f"run {run}: exit 0 but not converged: {report}")
            continue
        result.failures.append(proc.stderr.strip())
        problem = one_line_failure(proc)
        if problem:
            result.problems.append(f"run {run}: {problem}")
    return result


def server_errors(root: Path) -> list[str]:
    """The last line (the exception) of every traceback in the server logs
    (serve-*.err) under ``root``: in a JSON log line's exc_info, or printed
    as plain text."""
    errors = []
    for path in sorted(root.rglob("serve-*.err")):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        inside = False
        for line in lines:
            if line.startswith("{"):
                try:
                    record = json.loads(line)
                except ValueError:
                    record = {}
                if isinstance(record, dict) and record.get("exc_info"):
                    errors.append(str(record["exc_info"]).rstrip().splitlines()[-1])
                continue
            if line.startswith("Traceback"):
                inside = True
            elif inside and line and not line.startswith(" "):
                errors.append(line)
                inside = False
    return errors
