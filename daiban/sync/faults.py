"""Crash points for the fault tests. A process started with
``DAIBAN_FAULT_PAUSE`` naming one of the points below stops there the first
time it gets there: it writes its PID to the file ``DAIBAN_FAULT_MARK``
names and waits (at most a minute) for the test to kill it, so a kill -9
strikes a running sync where the test chose, however busy the machine is.
Only tests set these variables; without them a point costs one dict lookup.

Points: ``push-answered`` and ``pull-answered`` (the client has the
parent's answer and has not recorded it yet), ``push-stored`` (the server
has committed a push and not answered it), ``pull-served`` (the server has
let go of what the child acknowledged and not answered)."""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE = "DAIBAN_FAULT_PAUSE"
MARK = "DAIBAN_FAULT_MARK"
POINTS = ("push-answered", "pull-answered", "push-stored", "pull-served")
WAIT = 60.0


def point(name: str) -> None:
    if os.environ.get(PAUSE) != name:
        return
    del os.environ[PAUSE]  # once: should the test not kill it, the process carries on
    mark = os.environ.get(MARK)
    if mark:
        Path(mark).write_text(str(os.getpid()), encoding="utf-8")
    time.sleep(WAIT)
