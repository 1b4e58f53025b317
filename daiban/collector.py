"""The garbage collector's policy for Daiban's long batches: a server, and a
sync that moves thousands of envelopes.

Such a batch makes and drops objects by the hundred thousand. With the
collector's defaults a young pass runs every 700 allocations, and now and
then a full pass walks every object alive, the modules and the catalog
included: in a 10,000-application sync on a slow 2-core machine, 0.5 s of a
district server's interpreter lock (four full passes of about 60 ms) and
0.25 s of the village's (docs/BENCHMARKS.md). Reference counting frees
almost all of it anyway; the collector is only for cycles."""

from __future__ import annotations

import gc

YOUNG_EVERY = 10_000
"""Allocations between young passes (Python's default: 700)."""


def collect_less() -> None:
    """Called once the process has started (its modules imported, its node
    open): what exists now is set aside from every later pass (gc.freeze),
    and young passes come less often. Cycles are still collected."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_EVERY, middle, old)
