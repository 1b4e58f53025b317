"""An earlier release of Daiban to run beside this one: a git worktree of a
commit of this repository, named by its hash (tags may not travel with a
clone), installed in a virtual environment of its own (``pip install -e``,
from the package index pip is configured with, as the CI machine has it).

Both are cached under one folder per hash (``DAIBAN_TEST_RELEASES``, else
``daiban-test-releases`` in the system's temp folder), so the suite installs
a release once, not on every run; a file lock keeps two test processes from
making the same one at once. A cache that does not answer ``daiban
--version`` is made again."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from filelock import FileLock

REPO = Path(__file__).resolve().parents[1]
INSTALL_TIMEOUT = 600.0  # a bound, not an expectation: it takes well under a minute


def cache_root() -> Path:
    found = os.environ.get("DAIBAN_TEST_RELEASES")
    return Path(found) if found else Path(tempfile.gettempdir()) / "daiban-test-releases"


def release(commit: str) -> Path:
    """The ``daiban`` console script of the release at ``commit`` (a hash),
    made on first use and cached."""
    folder = cache_root() / commit
    exe = folder / "venv" / "bin" / "daiban"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock", timeout=INSTALL_TIMEOUT):
        if _answers(exe):
            return exe
        _make(commit, folder)
        if not _answers(exe):
            raise RuntimeError(f"the release at {commit} was installed but `daiban --version` fails")
    return exe


def _answers(exe: Path) -> bool:
    if not exe.exists():
        return False
    try:
        done = subprocess.run([str(exe), "--version"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _git(*args: str) -> None:
    subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True, timeout=120)


def _have(commit: str) -> None:
    """Make sure the clone holds ``commit``: a shallow clone may not; then it
    is fetched from where the clone came from (by hash, once)."""
    found = subprocess.run(
        ["git", "-C", str(REPO), "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True, timeout=60
    )
    if found.returncode != 0:
        _git("fetch", "--quiet", "origin", commit)


def _make(commit: str, folder: Path) -> None:
    src, venv = folder / "src", folder / "venv"
    if src.exists():  # a half-made cache: make it again
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(src)],
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(venv, ignore_errors=True)
    _git("worktree", "prune")
    _have(commit)
    _git("worktree", "add", "--detach", str(src), commit)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=INSTALL_TIMEOUT)
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-e",
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=INSTALL_TIMEOUT,
    )
