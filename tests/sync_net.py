"""A real Daiban network for the end-to-end sync tests: node homes in a temp
folder, ``daiban serve --port 0`` as real subprocesses on 127.0.0.1 for the
nodes that have children (city, district, town), enrollment through the CLI,
and every other command through the real ``daiban`` console script.

The tree::

    3703 淄博市 (city, root)
    └── 370303 张店区 (district)
        ├── 370303101 南定镇 (town)
        │   └── 370303101201 大张村 (village, enrolled at the town)
        └── 370303101202 小张村 (village2, enrolled directly at the district)

Every server process started here is stopped by its PID (terminate, then kill
after a bounded wait); the ``network`` fixture guarantees that, whatever the
test does. Every wait is bounded."""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from stdnum.cn import ric

from daiban.node import masking
from daiban.node.backup import stop_process

DAIBAN = str(Path(sys.executable).with_name("daiban"))
AGENT = "同步测试员"
CMD_TIMEOUT = 60.0
READY_TIMEOUT = 20.0
# Every server process any Network started and has not stopped yet: stopped
# at interpreter exit too, should a fixture's teardown never run.
_LIVE: set[subprocess.Popen[bytes]] = set()
SERVING = re.compile(r"^Serving (http://[^\s]+) \(Ctrl-C stops\)\.\s*$")


@dataclass(frozen=True)
class Spec:
    role: str
    code: str
    name: str
    parent: str | None  # the key of the node it enrolls with


NODES: dict[str, Spec] = {
    "city": Spec("city", "3703", "淄博市", None),
    "district": Spec("district", "370303", "张店区", "city"),
    "town": Spec("town", "370303101", "南定镇", "district"),
    "village": Spec("village", "370303101201", "大张村", "town"),
    "village2": Spec("village", "370303101202", "小张村", "district"),
}
# Enrollment order: a parent before its children; the town before village2 so
# that the district hands village2 the town's certificate (its office key).
ORDER = ("city", "district", "town", "village", "village2")
SERVERS = ("city", "district", "town")  # only nodes with children serve


@dataclass
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def ok(self) -> Result:
        """Assert exit 0 (with the whole output in the message) and return self."""
        assert self.returncode == 0, (
            f"daiban {' '.join(self.args)} exited {self.returncode}\n"
            f"stdout: {self.stdout}\nstderr: {self.stderr}"
        )
        return self


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log: Path


@dataclass
class Network:
    root: Path
    agent: str = AGENT
    servers: dict[str, Server] = field(default_factory=dict)
    _started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    # -- names and homes --------------------------------------------------

    def home(self, name: str) -> Path:
        return self.root / name

    @staticmethod
    def code(name: str) -> str:
        return NODES[name].code

    def env(self, home: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAIBAN_")}
        env.update({"DAIBAN_HOME": str(home), "DAIBAN_LANG": "en", "DAIBAN_AGENT": self.agent})
        return env

    # -- commands ---------------------------------------------------------

    def run(self, home: str | Path, *args: str, timeout: float = CMD_TIMEOUT) -> Result:
        """Run ``daiban ARGS`` on a node (by key, or a home path); bounded."""
        path = self.home(home) if isinstance(home, str) else home
        proc = subprocess.run(
            [DAIBAN, *args], capture_output=True, text=True, env=self.env(path), timeout=timeout
        )
        return Result(tuple(args), proc.returncode, proc.stdout, proc.stderr)

    def kill_at(self, name: str, point: str, *args: str, timeout: float = CMD_TIMEOUT) -> None:
        """Run ``daiban ARGS`` on a node until it stops at the crash point
        ``point`` (sync/faults.py), then kill it (kill -9, by its PID); bounded."""
        from daiban.sync import faults

        mark = self.root / f"{name}.fault"
        mark.unlink(missing_ok=True)
        env = {**self.env(self.home(name)), faults.PAUSE: point, faults.MARK: str(mark)}
        proc = subprocess.Popen(
            [DAIBAN, *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + timeout
            while not (mark.exists() and mark.read_text().strip() == str(proc.pid)):
                assert proc.poll() is None, f"daiban {' '.join(args)} ended before {point}"
                assert time.monotonic() < deadline, f"daiban {' '.join(args)} did not reach {point}"
                time.sleep(0.01)
        finally:
            proc.kill()
            proc.wait(timeout=timeout)

    def run_many(self, *calls: tuple[str, ...]) -> list[Result]:
        """Run independent commands side by side, each ``(node, *args)``; the
        results in the same order. Only for commands that do not depend on
        each other (read-only views, or different nodes)."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            futures = [pool.submit(self.run, node, *args) for node, *args in calls]
            return [f.result(timeout=CMD_TIMEOUT + 5) for f in futures]

    def init(self, *names: str) -> None:
        """Init node homes, side by side (each home is its own database)."""
        procs = []
        for name in names or ORDER:
            spec = NODES[name]
            args = ("init", "--role", spec.role, "--code", spec.code, "--name", spec.name)
            procs.append(
                (
                    args,
                    subprocess.Popen(
                        [DAIBAN, *args],
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        stdin=subprocess.DEVNULL,
                        env=self.env(self.home(name)),
                    ),
                )
            )
        results = []
        try:
            for args, proc in procs:
                out, err = proc.communicate(timeout=CMD_TIMEOUT)
                results.append(Result(args, proc.returncode, out.decode(), err.decode()))
        finally:
            for _args, proc in procs:  # only those a timeout left running
                _stop(proc)
        for result in results:
            result.ok()

    def sync(self, name: str) -> dict[str, Any]:
        """``daiban sync --json`` at a node, which must succeed; its report."""
        report: dict[str, Any] = self.run(name, "sync", "--json").ok().json()
        return report

    def sync_all(self, *names: str) -> None:
        for name in names:
            self.sync(name)

    # -- servers ----------------------------------------------------------

    def start(self, *names: str, timeout: float = READY_TIMEOUT) -> list[str]:
        """Start ``daiban serve --port 0`` for nodes, side by side; returns
        their URLs once each has printed its own (a server binds, then prints)."""
        launched = [self._launch(name) for name in names]
        return [self._wait_ready(name, proc, out, log, timeout) for name, proc, out, log in launched]

    def restart(self, name: str, timeout: float = READY_TIMEOUT) -> str:
        """Stop a node's server and start it again on the same port (its
        children know it by that URL); returns the URL once it serves again."""
        port = int(self.url(name).rsplit(":", 1)[1])
        self.stop(name)
        launched = self._launch(name, port)
        return self._wait_ready(*launched, timeout)

    def serve_again(self, name: str, url: str, timeout: float = READY_TIMEOUT) -> str:
        """Start a stopped node's server again at the URL it had (its children
        know it by that URL): a node restored onto a new PC, say."""
        launched = self._launch(name, int(url.rsplit(":", 1)[1]))
        return self._wait_ready(*launched, timeout)

    def _launch(self, name: str, port: int = 0) -> tuple[str, subprocess.Popen[bytes], Path, Path]:
        log = self.root / f"{name}.serve.log"
        out = self.root / f"{name}.serve.out"
        with out.open("wb") as stdout, log.open("ab") as stderr:
            proc = subprocess.Popen(
                [DAIBAN, "serve", "--host", "127.0.0.1", "--port", str(port)],
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                env=self.env(self.home(name)),
            )
        self._started.append(proc)
        _LIVE.add(proc)
        return name, proc, out, log

    def _wait_ready(
        self, name: str, proc: subprocess.Popen[bytes], out: Path, log: Path, timeout: float
    ) -> str:
        deadline = time.monotonic() + timeout
        while True:
            first = out.read_text(encoding="utf-8", errors="replace").split("\n", 1)
            if len(first) == 2:  # a whole first line
                match = SERVING.match(first[0])
                assert match, f"{name}: unexpected first line from serve: {first[0]!r}"
                url = match.group(1)
                break
            if proc.poll() is not None:
                problem = log.read_text(errors="replace")
                raise AssertionError(f"{name}: serve exited {proc.returncode} before serving: {problem}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}: serve did not print its URL within {timeout} s")
            time.sleep(0.02)
        self.servers[name] = Server(name, proc, url, log)
        return url

    def url(self, name: str) -> str:
        return self.servers[name].url

    def stop(self, name: str) -> None:
        server = self.servers.pop(name, None)
        if server is not None:
            _stop(server.proc)

    def close(self) -> None:
        """Stop every process this network started, by PID."""
        for proc in self._started:
            _stop(proc)
        self.servers.clear()

    # -- enrollment -------------------------------------------------------

    def enroll(self, child: str, parent: str | None = None) -> dict[str, Any]:
        parent = parent or NODES[child].parent
        assert parent is not None
        spec = NODES[child]
        issued = (
            self.run(parent, "enroll-code", "--code", spec.code, "--name", spec.name, "--json").ok().json()
        )
        result: dict[str, Any] = (
            self.run(child, "enroll", self.url(parent), issued["code"], "--json").ok().json()
        )
        return result

    def build(self, names: tuple[str, ...] = ORDER) -> Network:
        """Init the given nodes, start the servers among them, enroll each child."""
        self.init(*names)
        self.start(*(name for name in SERVERS if name in names))
        for name in names:
            if NODES[name].parent is not None:
                self.enroll(name)
        return self

    # -- looking inside (read-only) -----------------------------------------

    def db(self, name: str) -> sqlite3.Connection:
        """A read-only connection to a node's database."""
        path = self.home(name) / "daiban.db"
        assert path.exists(), path
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        conn.row_factory = sqlite3.Row
        return conn

    def query(self, name: str, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with contextlib.closing(self.db(name)) as conn:
            return list(conn.execute(sql, params))

    def count(self, name: str, table: str) -> int:
        return int(self.query(name, f"SELECT COUNT(*) FROM {table}")[0][0])

    def home_bytes(self, name: str) -> dict[Path, bytes]:
        """Every file in a node's home, raw."""
        return {p: p.read_bytes() for p in sorted(self.home(name).rglob("*")) if p.is_file()}


def _stop(proc: subprocess.Popen[bytes]) -> None:
    _LIVE.discard(proc)
    stop_process(proc)


@atexit.register
def _stop_leftovers() -> None:
    for proc in list(_LIVE):
        _stop(proc)


@contextlib.contextmanager
def network_at(root: Path) -> Iterator[Network]:
    """A Network whose processes are stopped on leaving, whatever happened."""
    root.mkdir(parents=True, exist_ok=True)
    net = Network(root)
    try:
        yield net
    finally:
        net.close()


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    """An empty network in the test's temp folder (call ``build()``); every
    process it starts is stopped after the test."""
    with network_at(tmp_path / "net") as net:
        yield net


@dataclass(frozen=True)
class Resident:
    """A test resident of 张店区 with a valid ID number: what is typed, what
    must never appear in a relay's files (secrets), what travels (masked)."""

    name: str
    birth: str  # YYYYMMDD, a real date
    seq: str  # 3 digits
    phone: str

    @property
    def id_number(self) -> str:
        body = "370303" + self.birth + self.seq
        return body + ric.calc_check_digit(body + "0")

    def secrets(self) -> dict[str, bytes]:
        return {
            "id_number": self.id_number.encode(),
            "name": self.name.encode(),
            "phone": self.phone.encode(),
        }

    def masked(self) -> dict[str, str]:
        return {
            "name": masking.mask_name(self.name),
            "id_number": masking.mask_id_number(self.id_number),
            "phone": masking.mask_phone(self.phone),
        }

    def personal(self, fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {
            "name": self.name,
            "id_number": self.id_number,
            "phone": self.phone,
            "fields": dict(fields or {}),
        }
