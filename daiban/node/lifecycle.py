"""The application state machine. An application's state is derived from its
events by a pure function; an event the state does not allow is refused with a
reason. Plain values in, plain values out: no I/O here.

    submitted ─received→ received ─accepted→ accepted ─completed→ completed ─evaluated→
        │                  │  │ └supplement_requested→ needs_supplement ─supplemented→ received
        └withdrawn         │  └rejected                 (also withdrawn, rejected)
                           └withdrawn
    corrected: in submitted, received or needs_supplement, the state unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from daiban.errors import TransitionRefused
from daiban.i18n import _


class Status(StrEnum):
    SUBMITTED = "submitted"
    RECEIVED = "received"
    ACCEPTED = "accepted"
    NEEDS_SUPPLEMENT = "needs_supplement"
    REJECTED = "rejected"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"


class Kind(StrEnum):
    FILED = "filed"
    RECEIVED = "received"
    ACCEPTED = "accepted"
    SUPPLEMENT_REQUESTED = "supplement_requested"
    SUPPLEMENTED = "supplemented"
    REJECTED = "rejected"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"
    EVALUATED = "evaluated"
    CORRECTED = "corrected"


DELIVERY_METHODS = ("pickup", "post")
SCORES = (1, 2, 3, 4, 5)

# Which states each kind of event may follow. None stands for "no application yet".
ALLOWED: dict[Kind, frozenset[Status | None]] = {
    Kind.FILED: frozenset({None}),
    Kind.RECEIVED: frozenset({Status.SUBMITTED}),
    Kind.ACCEPTED: frozenset({Status.RECEIVED}),
    Kind.SUPPLEMENT_REQUESTED: frozenset({Status.RECEIVED}),
    Kind.SUPPLEMENTED: frozenset(
        {Status.SUBMITTED, Status.RECEIVED, Status.NEEDS_SUPPLEMENT, Status.ACCEPTED}
    ),
    Kind.REJECTED: frozenset({Status.RECEIVED, Status.NEEDS_SUPPLEMENT}),
    Kind.COMPLETED: frozenset({Status.ACCEPTED}),
    Kind.WITHDRAWN: frozenset({Status.SUBMITTED, Status.RECEIVED, Status.NEEDS_SUPPLEMENT}),
    Kind.EVALUATED: frozenset({Status.COMPLETED}),
    # What was typed is corrected only before the office accepts.
    Kind.CORRECTED: frozenset({Status.SUBMITTED, Status.RECEIVED, Status.NEEDS_SUPPLEMENT}),
}


@dataclass(frozen=True)
class AppState:
    """What the events of one application add up to."""

    status: Status
    owed: tuple[str, ...] = ()
    """Materials still owed: declared at filing, or accepted under 容缺受理."""
    missing: tuple[str, ...] = ()
    """What the office asked to be supplied (补正), all at once."""
    evaluation: int | None = None


def status_label(status: str) -> str:
    return {
        Status.SUBMITTED: _("submitted"),
        Status.RECEIVED: _("received"),
        Status.ACCEPTED: _("accepted"),
        Status.NEEDS_SUPPLEMENT: _("needs supplement"),
        Status.REJECTED: _("rejected"),
        Status.COMPLETED: _("completed"),
        Status.WITHDRAWN: _("withdrawn"),
    }.get(status, status)  # type: ignore[call-overload]


def kind_label(kind: str) -> str:
    return {
        Kind.FILED: _("filed"),
        Kind.RECEIVED: _("received by the office"),
        Kind.ACCEPTED: _("accepted"),
        Kind.SUPPLEMENT_REQUESTED: _("supplement requested"),
        Kind.SUPPLEMENTED: _("materials supplied"),
        Kind.REJECTED: _("rejected"),
        Kind.COMPLETED: _("completed"),
        Kind.WITHDRAWN: _("withdrawn"),
        Kind.EVALUATED: _("evaluated"),
        Kind.CORRECTED: _("corrected"),
    }.get(kind, kind)  # type: ignore[call-overload]


def _names(values: Any) -> tuple[str, ...]:
    if not values:
        return ()
    return tuple(dict.fromkeys(str(v).strip() for v in values if str(v).strip()))


def _refuse(kind: Kind, state: AppState | None) -> TransitionRefused:
    if state is None:
        return TransitionRefused(
            _("Cannot record '{kind}': the application has not been filed.").format(kind=kind_label(kind))
        )
    if kind is Kind.FILED:
        return TransitionRefused(_("This application has already been filed."))
    return TransitionRefused(
        _("Cannot record '{kind}' for an application that is '{status}'.").format(
            kind=kind_label(kind), status=status_label(state.status)
        )
    )


def apply(state: AppState | None, kind: str, body: Mapping[str, Any]) -> AppState:
    """The state after one event, or TransitionRefused with the reason."""
    try:
        k = Kind(kind)
    except ValueError:
        raise TransitionRefused(_("Unknown event kind {kind!r}.").format(kind=kind)) from None
    status = state.status if state is not None else None
    if status not in ALLOWED[k]:
        raise _refuse(k, state)

    if k is Kind.FILED:
        return AppState(Status.SUBMITTED, owed=_names(body.get("owed")))
    assert state is not None

    if k is Kind.RECEIVED:
        return replace(state, status=Status.RECEIVED)

    if k is Kind.ACCEPTED:
        owed = _names(body["owed"]) if "owed" in body else state.owed
        return replace(state, status=Status.ACCEPTED, owed=owed, missing=())

    if k is Kind.SUPPLEMENT_REQUESTED:
        missing = _names(body.get("missing"))
        if not missing:
            raise TransitionRefused(
                _("A supplement request must list everything that is missing, all at once.")
            )
        return replace(state, status=Status.NEEDS_SUPPLEMENT, missing=missing)

    if k is Kind.SUPPLEMENTED:
        return _supplemented(state, _names(body.get("materials")))

    if k is Kind.REJECTED:
        if not str(body.get("reason") or "").strip():
            raise TransitionRefused(_("A rejection (不予受理) must give its reason."))
        return replace(state, status=Status.REJECTED)

    if k is Kind.COMPLETED:
        if state.owed:
            raise TransitionRefused(
                _("Cannot complete: materials still owed ({owed}); record them first.").format(
                    owed=_("、").join(state.owed)
                )
            )
        delivery = body.get("delivery") or {}
        method = delivery.get("method")
        if method not in DELIVERY_METHODS:
            raise TransitionRefused(_("Completion needs a delivery: pickup or post."))
        if method == "post" and not str(delivery.get("post_tracking") or "").strip():
            raise TransitionRefused(_("Postal delivery needs the postal tracking number."))
        return replace(state, status=Status.COMPLETED)

    if k is Kind.WITHDRAWN:
        return replace(state, status=Status.WITHDRAWN)

    if k is Kind.CORRECTED:
        if not body.get("changed") or not str(body.get("reason") or "").strip():
            raise TransitionRefused(_("A correction names what changed and why."))
        return state

    # Kind.EVALUATED
    score = body.get("score")
    if state.evaluation is not None:
        raise TransitionRefused(_("The resident has already evaluated this application."))
    if not isinstance(score, int) or isinstance(score, bool) or score not in SCORES:
        raise TransitionRefused(_("An evaluation is a score from 1 to 5."))
    return replace(state, evaluation=score)


def _supplemented(state: AppState, materials: tuple[str, ...]) -> AppState:
    if not materials:
        raise TransitionRefused(_("Name the materials that were supplied."))
    outstanding = state.missing if state.status is Status.NEEDS_SUPPLEMENT else state.owed
    unknown = [m for m in materials if m not in outstanding]
    if unknown:
        if outstanding:
            raise TransitionRefused(
                _("{materials} is not outstanding; outstanding: {outstanding}.").format(
                    materials=_("、").join(unknown), outstanding=_("、").join(outstanding)
                )
            )
        raise TransitionRefused(_("Nothing is outstanding for this application."))
    left = tuple(m for m in outstanding if m not in materials)
    if state.status is Status.NEEDS_SUPPLEMENT:
        if left:
            return replace(state, missing=left)
        return replace(state, status=Status.RECEIVED, missing=())
    return replace(state, owed=left)


def derive(events: Iterable[tuple[str, Mapping[str, Any]]]) -> AppState:
    """Fold an application's events, oldest first, into its state."""
    state: AppState | None = None
    for kind, body in events:
        state = apply(state, kind, body)
    if state is None:
        raise TransitionRefused(_("An application needs at least its filing event."))
    return state


def outstanding(state: AppState) -> Sequence[str]:
    return state.missing if state.status is Status.NEEDS_SUPPLEMENT else state.owed
