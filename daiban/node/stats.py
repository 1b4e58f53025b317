"""The statistics record of one application: what its office publishes up to
the city for reports. Non-personal by construction: it is built from a fixed
list of the summary row's codes, dates, counts and the evaluation score —
never from the personal part, the masked applicant or any free text.

Dates are calendar days in China Standard Time. Working days and the on-time
flag are counted on the handling office's calendar, from acceptance (受理) to
completion (办结), as the statutory time limit is."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from daiban.node.clock import CST
from daiban.node.workdays import WorkCalendar

FIELDS = (
    "tracking",
    "office",
    "level",
    "item",
    "region",
    "filer",
    "proxy",
    "status",
    "filed_on",
    "received_on",
    "accepted_on",
    "decided_on",
    "completed_on",
    "due",
    "time_limit_days",
    "working_days",
    "on_time",
    "evaluation",
    "evaluated_on",
)
BOOLEAN_FIELDS = ("proxy", "on_time")
VILLAGE_DIGITS = 12


def day(stamp: str | None) -> str | None:
    """The CST calendar day of an ISO date-time, as YYYY-MM-DD."""
    if not stamp:
        return None
    moment = dt.datetime.fromisoformat(stamp)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=CST)
    return moment.astimezone(CST).date().isoformat()


def record_of(row: Mapping[str, Any], calendar: WorkCalendar) -> dict[str, Any]:
    """The record of an application's summary row, at its office."""
    completed_on = day(row.get("completed_at"))
    accepted_on = row.get("accepted_on")
    # Official figures count on exact due dates only: an estimate (a year
    # whose calendar is not published yet) is left out until it is exact.
    due = row.get("due") if row.get("due_state") == "known" else None
    working_days = None
    if completed_on and accepted_on:
        working_days = calendar.working_days_between(
            dt.date.fromisoformat(accepted_on), dt.date.fromisoformat(completed_on)
        )
    evaluation = row.get("evaluation")
    return {
        "tracking": row["tracking"],
        "office": row["office"],
        "level": row["level"],
        "item": row["item"],
        "region": row["region"],
        "filer": row["origin"],
        # 代办: filed for the resident at a village agency point.
        "proxy": len(row["origin"]) == VILLAGE_DIGITS,
        "status": row["status"],
        "filed_on": day(row["filed_at"]),
        "received_on": day(row.get("received_at")),
        "accepted_on": accepted_on,
        "decided_on": day(row.get("decided_at")),
        "completed_on": completed_on,
        "due": due,
        "time_limit_days": row.get("time_limit_days"),
        "working_days": working_days,
        # ISO dates compare as text; done on the due day is on time.
        "on_time": (completed_on <= due) if completed_on and due else None,
        "evaluation": evaluation,
        # An evaluation is the last event an application can have, so the
        # row's last change is when it was recorded.
        "evaluated_on": day(row["updated_at"]) if evaluation is not None else None,
    }
