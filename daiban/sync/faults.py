"""Crash points for the fault tests. A process started with
``DAIBAN_FAULT_PAUSE`` naming one of the points below stops there the first
time it gets there: it writes its PID to the file ``DAIBAN_FAULT_MARK``
names and waits (at most a minute) for the test to kill it, so a kill -9
strikes a running sync where the test chose, however busy the machine is.
Only tests set these variables; without them a point costs one dict lookup.

Points: ``push-answered`` and ``pull-answered`` (the client has the
parent's answer and has not recorded it yet), ``pull-asked-again`` (the
client has stored a page, asked for the next and not folded this one yet),
``push-stored`` (the server
has committed a push and not answered it), ``pull-served`` (the server has
let go of what the child acknowledged and not answered)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

PAUSE = "DAIBAN_FAULT_PAUSE"
MARK = "DAIBAN_FAULT_MARK"
POINTS = ("push-answered", "pull-answered", "pull-asked-again", "push-stored", "pull-served")
WAIT = 60.0


def point(name: str) -> None:
    if os.environ.get(PAUSE) != name:
        return
    del os.environ[PAUSE]  # once: should the test not kill it, the process carries on
    mark = os.environ.get(MARK)
    if mark:
        Path(mark).write_text(str(os.getpid()), encoding="utf-8")
    time.sleep(WAIT)


# -- the server's writer: group commit (sync/server.py) ---------------------
#
# Inside a group the calls' transactions are savepoints of the writer's one
# transaction: a point "past a commit" (push-stored, pull-served) reached
# there is held until the group's COMMIT, so a kill at it still strikes
# after what it names is on disk. ``DAIBAN_FAULT_GROUP`` = K makes the
# writer hold its calls until K of them are pushes (at most WAIT seconds)
# and run them as one group, writing "<calls> <pushes>" to the MARK file:
# a test chooses the grouping, not a timer.

GROUP = "DAIBAN_FAULT_GROUP"


class _Group(threading.local):
    def __init__(self) -> None:
        self.open = False
        self.pending: list[str] = []


_GROUP = _Group()


def after_commit(name: str) -> None:
    """A crash point that must strike only once what it follows is committed."""
    if _GROUP.open:
        if os.environ.get(PAUSE) == name:
            _GROUP.pending = [*_GROUP.pending, name]
        return
    point(name)


def group_open() -> None:
    _GROUP.open, _GROUP.pending = True, []


def group_committed() -> None:
    pending, _GROUP.open, _GROUP.pending = _GROUP.pending, False, []
    for name in pending:
        point(name)


def group_discarded() -> None:
    _GROUP.open, _GROUP.pending = False, []


def group_wanted() -> int:
    """K from DAIBAN_FAULT_GROUP (0 when unset): used once, then forgotten."""
    text = os.environ.get(GROUP, "")
    return int(text) if text.isdigit() else 0


def grouped(calls: int, pushes: int) -> None:
    """The held group is formed: say its size, and hold no other."""
    os.environ.pop(GROUP, None)
    mark = os.environ.get(MARK)
    if mark:
        Path(mark).write_text(f"{calls} {pushes}", encoding="utf-8")
