"""The garbage collector's policy for long batches (daiban/collector.py), in
a process of its own: a test must not change the collector of the test
run itself."""

from __future__ import annotations

import json
import subprocess
import sys

from daiban.collector import YOUNG_EVERY

PROBE = (
    "import gc, json; from daiban.collector import collect_less; before = gc.get_threshold(); "
    "collect_less(); print(json.dumps([before, gc.get_threshold(), gc.get_freeze_count()]))"
)


def test_what_exists_is_set_aside_and_young_passes_come_less_often() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    before, after, frozen = json.loads(out)
    assert after == [YOUNG_EVERY, before[1], before[2]]
    assert YOUNG_EVERY > before[0]
    assert frozen > 1000  # the objects of the modules imported so far
