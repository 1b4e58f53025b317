"""One projection: from an application's events to its summary row, the same
for events this node records and events it receives. Pure: plain values in,
plain values out.

The summary row is what `list`, `show`, the inbox and the statistics read;
it holds masked values only (the personal part stays sealed)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from daiban.node import lifecycle
from daiban.node.lifecycle import AppState, Kind, Status
from daiban.node.workdays import WorkCalendar


def filed_row(
    *,
    tracking: str,
    origin: str,
    body: Mapping[str, Any],
    filed_at: str,
    now: str,
    item_name: str | None = None,
    time_limit_days: int | None = None,
    office: str = "",
    id_hash: str = "",
    item_digest: str | None = None,
) -> tuple[AppState, dict[str, Any]]:
    """The state and summary row of an application from its filing's body.
    ``item_name``/``time_limit_days`` come from this node's catalog when it
    has the item (else from the body); ``office`` where the body names none;
    ``id_hash`` only where the ID number is known here (the filing node);
    ``item_digest``: the version of the item in force here (catalog.item_digest),
    which the application keeps when the catalog changes."""
    masked = body.get("applicant") or {}
    state = lifecycle.apply(None, Kind.FILED, body)
    row: dict[str, Any] = {
        "tracking": tracking,
        "item": str(body.get("item", "")),
        "item_name": item_name if item_name is not None else str(body.get("item_name", body.get("item", ""))),
        "level": body.get("level", ""),
        "office": body.get("office", office),
        "region": body.get("region", ""),
        "origin": origin,
        "status": state.status.value,
        "owed": list(state.owed),
        "missing": [],
        "materials": list(body.get("materials", [])),
        "evaluation": None,
        "filed_at": filed_at,
        "received_at": None,
        "time_limit_days": time_limit_days,
        "due_state": "pending",
        "name_masked": masked.get("name", ""),
        "id_masked": masked.get("id_number", ""),
        "phone_masked": masked.get("phone", ""),
        "id_hash": id_hash,
        "item_digest": item_digest,
        "updated_at": now,
    }
    return state, row


def due_fields(calendar: WorkCalendar, accepted_on: Any, days: Any) -> dict[str, Any]:
    """The summary row's due date counted here from acceptance: exact
    ("known") where calendars cover it, else the estimate ("provisional",
    with the first year counted without its calendar); "unknown" only when
    the acceptance names no date or time limit to count from."""
    try:
        due = calendar.due(dt.date.fromisoformat(str(accepted_on)), int(days))
    except (TypeError, ValueError):
        return {"due": None, "due_state": "unknown"}
    return {
        "due": due.date.isoformat(),
        "due_state": "provisional" if due.provisional else "known",
        "due_missing_year": due.missing_year,
    }


def state_of(row: Mapping[str, Any]) -> AppState:
    """The state a summary row holds."""
    return AppState(Status(row["status"]), tuple(row["owed"]), tuple(row["missing"]), row["evaluation"])


def project(
    row: dict[str, Any],
    state: AppState,
    kind: str,
    body: Mapping[str, Any],
    at: str,
    calendar: WorkCalendar | None = None,
) -> None:
    """Bring an application's summary row up to date after one event: the
    state, and what the event itself tells (dates, due date, delivery). An
    acceptance whose due date the office could not count exactly (no
    calendar for a year yet) gets this node's estimate (``calendar``),
    marked provisional."""
    row.update(
        status=state.status.value,
        owed=list(state.owed),
        missing=list(state.missing),
        evaluation=state.evaluation,
        updated_at=at,
    )
    if kind == Kind.RECEIVED:
        row["received_at"] = at
    elif kind == Kind.ACCEPTED:
        due = body.get("due")
        row.update(
            accepted_on=body.get("accepted_on"),
            decided_at=at,
            due=due,
            due_state="known" if due else "unknown",
            due_missing_year=body.get("due_missing_year"),
            time_limit_days=body.get("time_limit_days", row.get("time_limit_days")),
        )
        if not due and calendar is not None:
            row.update(due_fields(calendar, row.get("accepted_on"), row.get("time_limit_days")))
    elif kind == Kind.REJECTED:
        row["decided_at"] = at
    elif kind == Kind.COMPLETED:
        row.update(completed_at=at, delivery=body.get("delivery"))
