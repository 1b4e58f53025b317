"""Exponential back-off with jitter, as a pure rule: how long to wait after
``failures`` failed attempts in a row. Equal jitter (half the step fixed,
half random) keeps many villages from retrying in step after a district
server restarts, and never waits longer than ``cap`` — so a link that comes
back is used within ``cap`` seconds."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    base: float = 1.0
    """Seconds after the first failure (before jitter)."""
    cap: float = 60.0
    """The longest wait, whatever the number of failures."""

    def step(self, failures: int) -> float:
        """The wait before jitter: base, 2×base, 4×base … up to cap."""
        if failures <= 0:
            return 0.0
        return min(self.cap, self.base * 2.0 ** min(failures - 1, 62))

    def delay(self, failures: int, rng: random.Random) -> float:
        """A wait between half the step and the step."""
        step = self.step(failures)
        return step / 2 + rng.uniform(0.0, step / 2)
