"""The node's clock, in China Standard Time (UTC+8, no daylight saving).

``DAIBAN_CLOCK`` (an ISO date-time) freezes it, for training sessions and for
tests that pin deadlines across holidays. Deadlines are always counted on the
handling office's clock, never on the filing village's."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable

CST = dt.timezone(dt.timedelta(hours=8), "CST")
Clock = Callable[[], dt.datetime]


def system_clock() -> dt.datetime:
    frozen = os.environ.get("DAIBAN_CLOCK")
    if frozen:
        moment = dt.datetime.fromisoformat(frozen)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=CST)
        return moment.astimezone(CST)
    return dt.datetime.now(CST)


def stamp(moment: dt.datetime) -> str:
    return moment.astimezone(CST).isoformat(timespec="seconds")
