"""Time limits that warn: an application the office has had for four working
days without an answer, and one past its due date. Pure: plain values in,
plain values out.

行政许可法 Art. 32: an office that does not tell the applicant within five
working days of receiving the materials everything to supplement
(一次性告知) has accepted the application from the day it received them. The
office is warned from the fourth working day, while there is a day left.
Past the due date counts in working days on the same calendar (an estimate
where a year's official calendar is not published yet)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from daiban.node.stats import day as cst_day
from daiban.node.workdays import WorkCalendar

ANSWER_LIMIT = 5  # working days to accept, ask for a supplement or reject (Art. 32)
WARN_FROM = ANSWER_LIMIT - 1  # the office is warned with a day left
UNANSWERED = "unanswered"
OVERDUE = "overdue"


@dataclass(frozen=True)
class Late:
    """Why an application needs the office's attention now: ``kind``
    (UNANSWERED or OVERDUE) and the working days it has waited since
    receipt, or has run past its due date."""

    kind: str
    working_days: int

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "working_days": self.working_days}


def lateness(
    status: str, received: str | None, due: str | None, today: dt.date, calendar: WorkCalendar
) -> Late | None:
    """``received``: when the office received it (ISO date or date-time);
    ``due``: its due date (ISO date). None when nothing is late."""
    if status == "received" and received:
        try:
            since = dt.date.fromisoformat(cst_day(received) or "")
        except ValueError:
            return None
        waited = calendar.working_days_between(since, today, estimate=True)
        if waited is not None and waited >= WARN_FROM:
            return Late(UNANSWERED, waited)
        return None
    if status == "accepted" and due:
        try:
            day = dt.date.fromisoformat(due)
        except ValueError:
            return None
        if day < today:
            return Late(OVERDUE, calendar.working_days_between(day, today, estimate=True) or 0)
    return None


def of_row(row: Any, today: dt.date, calendar: WorkCalendar) -> Late | None:
    """``lateness`` of an application's summary row."""
    return lateness(str(row["status"]), row.get("received_at"), row.get("due"), today, calendar)


def count(rows: Any, today: dt.date, calendar: WorkCalendar) -> dict[str, int]:
    """How many of ``rows`` (summary rows or statistics records) are late, by kind."""
    out = {UNANSWERED: 0, OVERDUE: 0}
    for row in rows:
        received = row.get("received_at", row.get("received_on"))
        late = lateness(str(row.get("status")), received, row.get("due"), today, calendar)
        if late is not None:
            out[late.kind] += 1
    return out
