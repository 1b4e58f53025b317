"""Processes Daiban starts die with it: on Linux the kernel is asked to
signal a child when its parent dies (prctl PR_SET_PDEATHSIG), whatever
kills the parent — kill -9 included. Used for the ledger's worker pool
(trust/sealing.py) and for Litestream and the backup beside `serve` and the
app (node/backup.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import Any

_PR_SET_PDEATHSIG = 1


def signal_on_parent_death(sig: int = signal.SIGKILL) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies;
    False where that cannot be done (another system)."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _terminate_with_parent() -> None:
    # Runs in the child between fork and exec: SIGTERM lets Litestream and
    # `daiban backup` stop cleanly.
    signal_on_parent_death(signal.SIGTERM)


def popen_with_parent(args: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """subprocess.Popen for a child that must not outlive this process. (The
    kernel signals when the *thread* that started it ends: start it from the
    thread that also stops it.)"""
    if sys.platform.startswith("linux"):
        kwargs.setdefault("preexec_fn", _terminate_with_parent)
    return subprocess.Popen(args, **kwargs)
