"""The application state machine (daiban/node/lifecycle.py), pinned against the
lifecycle of DESIGN.md: every (state, event) pair, 容缺受理, 补正 (一次性告知),
不予受理 with reason, delivery on completion, 好差评 and withdrawal."""

from __future__ import annotations

from typing import Any

import pytest

from daiban.errors import TransitionRefused
from daiban.node import lifecycle
from daiban.node.lifecycle import AppState, Status, apply, derive

# ---------------------------------------------------------------------------
# The full transition table, written out by hand from DESIGN.md's lifecycle:
#   submitted → received → accepted / needs_supplement / rejected → completed;
#   needs_supplement → (supplemented) → received, or rejected;
#   withdrawn before acceptance only; evaluation after completion only;
#   supplements (of owed materials) may travel at any open state before
#   completion.
# "-" means the event is refused. Rows are the current state (None: nothing
# filed yet), columns the event kind.

REFUSED = "-"
KINDS = (
    "filed",
    "received",
    "accepted",
    "supplement_requested",
    "supplemented",
    "rejected",
    "completed",
    "withdrawn",
    "evaluated",
    "corrected",
)
EXPECTED: dict[str | None, dict[str, str]] = {
    None: {
        "filed": "submitted",
        "received": REFUSED,
        "accepted": REFUSED,
        "supplement_requested": REFUSED,
        "supplemented": REFUSED,
        "rejected": REFUSED,
        "completed": REFUSED,
        "withdrawn": REFUSED,
        "evaluated": REFUSED,
        "corrected": REFUSED,
    },
    "submitted": {
        "filed": REFUSED,
        "received": "received",
        "accepted": REFUSED,
        "supplement_requested": REFUSED,
        "supplemented": "submitted",
        "rejected": REFUSED,
        "completed": REFUSED,
        "withdrawn": "withdrawn",
        "evaluated": REFUSED,
        "corrected": "submitted",
    },
    "received": {
        "filed": REFUSED,
        "received": REFUSED,
        "accepted": "accepted",
        "supplement_requested": "needs_supplement",
        "supplemented": "received",
        "rejected": "rejected",
        "completed": REFUSED,
        "withdrawn": "withdrawn",
        "evaluated": REFUSED,
        "corrected": "received",
    },
    "needs_supplement": {
        "filed": REFUSED,
        "received": REFUSED,
        "accepted": REFUSED,
        "supplement_requested": REFUSED,
        "supplemented": "received",
        "rejected": "rejected",
        "completed": REFUSED,
        "withdrawn": "withdrawn",
        "evaluated": REFUSED,
        "corrected": "needs_supplement",
    },
    "accepted": {
        "filed": REFUSED,
        "received": REFUSED,
        "accepted": REFUSED,
        "supplement_requested": REFUSED,
        "supplemented": "accepted",
        "rejected": REFUSED,
        "completed": "completed",
        "withdrawn": REFUSED,
        "evaluated": REFUSED,
        "corrected": REFUSED,
    },
    "rejected": {
        "filed": REFUSED,
        "received": REFUSED,
        "accepted": REFUSED,
        "supplement_requested": REFUSED,
        "supplemented": REFUSED,
        "rejected": REFUSED,
        "completed": REFUSED,
        "withdrawn": REFUSED,
        "evaluated": REFUSED,
        "corrected": REFUSED,
    },
    "completed": {
        "filed": REFUSED,
        "received": REFUSED,
        "accepted": REFUSED,
        "supplement_requested": REFUSED,
        "supplemented": REFUSED,
        "rejected": REFUSED,
        "completed": REFUSED,
        "withdrawn": REFUSED,
        "evaluated": "completed",
        "corrected": REFUSED,
    },
    "withdrawn": {
        "filed": REFUSED,
        "received": REFUSED,
        "accepted": REFUSED,
        "supplement_requested": REFUSED,
        "supplemented": REFUSED,
        "rejected": REFUSED,
        "completed": REFUSED,
        "withdrawn": REFUSED,
        "evaluated": REFUSED,
        "corrected": REFUSED,
    },
}

# English status labels, as the refusal message names them.
STATUS_WORDS = {
    "submitted": "submitted",
    "received": "received",
    "accepted": "accepted",
    "needs_supplement": "needs supplement",
    "rejected": "rejected",
    "completed": "completed",
    "withdrawn": "withdrawn",
}

MATERIAL = "户口簿复印件"

# A body for each kind that satisfies the kind's own content rules, so that in
# the table only the state decides.
GOOD_BODY: dict[str, dict[str, Any]] = {
    "filed": {},
    "received": {},
    "accepted": {},
    "supplement_requested": {"missing": [MATERIAL]},
    "supplemented": {"materials": [MATERIAL]},
    "rejected": {"reason": "不符合参保条件"},
    "completed": {"delivery": {"method": "pickup"}},
    "withdrawn": {},
    "evaluated": {"score": 5},
    "corrected": {"changed": ["phone"], "reason": "电话号码录错"},
}


def state_for(status: str | None, kind: str) -> AppState | None:
    """A state of ``status`` whose contents let ``kind`` through if the status does."""
    if status is None:
        return None
    if kind == "supplemented":
        # Something outstanding, both as owed (容缺) and as requested (补正).
        return AppState(Status(status), owed=(MATERIAL,), missing=(MATERIAL,))
    return AppState(Status(status))


def test_table_covers_every_status_and_kind() -> None:
    assert set(EXPECTED) == {None, *(s.value for s in Status)}
    assert set(KINDS) == {k.value for k in lifecycle.Kind}
    for row in EXPECTED.values():
        assert set(row) == set(KINDS)


TABLE = [(status, kind, EXPECTED[status][kind]) for status in EXPECTED for kind in KINDS]


@pytest.mark.parametrize(("status", "kind", "expected"), TABLE, ids=[f"{s}-{k}" for s, k, _ in TABLE])
def test_transition_table(status: str | None, kind: str, expected: str) -> None:
    state = state_for(status, kind)
    if expected == REFUSED:
        with pytest.raises(TransitionRefused) as info:
            apply(state, kind, GOOD_BODY[kind])
        message = info.value.message
        if status is None:
            assert "not been filed" in message
        elif kind == "filed":
            assert "already been filed" in message
        else:
            assert f"'{STATUS_WORDS[status]}'" in message
    else:
        after = apply(state, kind, GOOD_BODY[kind])
        assert after.status == expected
        assert isinstance(after.status, Status)


def test_apply_does_not_mutate_the_state() -> None:
    before = AppState(Status.RECEIVED, owed=(MATERIAL,))
    apply(before, "accepted", {"owed": ["照片"]})
    assert before == AppState(Status.RECEIVED, owed=(MATERIAL,))


# ---------------------------------------------------------------------------
# 容缺受理: accept with materials owed


def test_accept_with_owed_records_what_is_owed() -> None:
    state = apply(AppState(Status.RECEIVED), "accepted", {"owed": [MATERIAL, "2寸白底照片"]})
    assert state.status == "accepted"
    assert state.owed == (MATERIAL, "2寸白底照片")


def test_owed_declared_at_filing_is_kept_through_acceptance() -> None:
    state = apply(None, "filed", {"owed": [MATERIAL]})
    assert state.status == "submitted"
    assert state.owed == (MATERIAL,)
    state = apply(state, "received", {})
    state = apply(state, "accepted", {})
    assert state.owed == (MATERIAL,)


def test_completing_while_owed_is_refused_naming_the_material() -> None:
    state = apply(AppState(Status.RECEIVED), "accepted", {"owed": [MATERIAL]})
    with pytest.raises(TransitionRefused) as info:
        apply(state, "completed", {"delivery": {"method": "pickup"}})
    assert MATERIAL in info.value.message
    assert "owed" in info.value.message


def test_supplemented_reduces_owed_then_complete_works() -> None:
    state = apply(AppState(Status.RECEIVED), "accepted", {"owed": [MATERIAL, "照片"]})
    state = apply(state, "supplemented", {"materials": ["照片"]})
    assert state.status == "accepted"
    assert state.owed == (MATERIAL,)
    # Still owed: still refused, and only the remaining material is named.
    with pytest.raises(TransitionRefused) as info:
        apply(state, "completed", {"delivery": {"method": "pickup"}})
    assert MATERIAL in info.value.message
    assert "照片" not in info.value.message
    state = apply(state, "supplemented", {"materials": [MATERIAL]})
    assert state.owed == ()
    done = apply(state, "completed", {"delivery": {"method": "pickup"}})
    assert done.status == "completed"


def test_owed_supplied_before_acceptance_while_submitted() -> None:
    state = apply(None, "filed", {"owed": [MATERIAL, "照片"]})
    state = apply(state, "supplemented", {"materials": [MATERIAL]})
    assert state.status == "submitted"
    assert state.owed == ("照片",)


# ---------------------------------------------------------------------------
# 补正: supplement requests, everything missing listed at once


@pytest.mark.parametrize("body", [{}, {"missing": []}, {"missing": ["  ", ""]}, {"missing": None}])
def test_supplement_request_must_list_at_least_one_missing(body: dict[str, Any]) -> None:
    with pytest.raises(TransitionRefused) as info:
        apply(AppState(Status.RECEIVED), "supplement_requested", body)
    assert "missing" in info.value.message


def test_supplement_request_records_everything_missing() -> None:
    state = apply(
        AppState(Status.RECEIVED), "supplement_requested", {"missing": ["户口簿", "收入财产声明", "承诺书"]}
    )
    assert state.status == "needs_supplement"
    assert state.missing == ("户口簿", "收入财产声明", "承诺书")
    assert tuple(lifecycle.outstanding(state)) == ("户口簿", "收入财产声明", "承诺书")


def test_partial_supplement_keeps_needs_supplement_with_the_rest() -> None:
    state = AppState(Status.NEEDS_SUPPLEMENT, missing=("户口簿", "收入财产声明", "承诺书"))
    state = apply(state, "supplemented", {"materials": ["收入财产声明"]})
    assert state.status == "needs_supplement"
    assert state.missing == ("户口簿", "承诺书")
    state = apply(state, "supplemented", {"materials": ["承诺书", "户口簿"]})
    assert state.status == "received"
    assert state.missing == ()


def test_full_supplement_at_once_returns_to_received() -> None:
    state = AppState(Status.NEEDS_SUPPLEMENT, missing=("户口簿", "承诺书"))
    state = apply(state, "supplemented", {"materials": ["户口簿", "承诺书"]})
    assert state.status == "received"
    assert state.missing == ()
    # …and the office can then accept it.
    assert apply(state, "accepted", {}).status == "accepted"


def test_supplying_a_material_not_asked_for_is_refused() -> None:
    state = AppState(Status.NEEDS_SUPPLEMENT, missing=("户口簿",))
    with pytest.raises(TransitionRefused) as info:
        apply(state, "supplemented", {"materials": ["结婚证"]})
    assert "结婚证" in info.value.message
    assert "户口簿" in info.value.message  # tells what is outstanding


def test_supplying_a_material_partly_unknown_is_refused_whole() -> None:
    state = AppState(Status.NEEDS_SUPPLEMENT, missing=("户口簿", "承诺书"))
    with pytest.raises(TransitionRefused):
        apply(state, "supplemented", {"materials": ["户口簿", "结婚证"]})


@pytest.mark.parametrize("status", [Status.SUBMITTED, Status.RECEIVED, Status.ACCEPTED])
def test_supplying_when_nothing_is_outstanding_is_refused(status: Status) -> None:
    with pytest.raises(TransitionRefused) as info:
        apply(AppState(status), "supplemented", {"materials": [MATERIAL]})
    assert "outstanding" in info.value.message.lower()


def test_supplying_an_owed_material_not_owed_is_refused() -> None:
    state = AppState(Status.ACCEPTED, owed=("照片",))
    with pytest.raises(TransitionRefused) as info:
        apply(state, "supplemented", {"materials": [MATERIAL]})
    assert MATERIAL in info.value.message


@pytest.mark.parametrize("body", [{}, {"materials": []}, {"materials": [" "]}])
def test_supplement_must_name_materials(body: dict[str, Any]) -> None:
    with pytest.raises(TransitionRefused):
        apply(AppState(Status.NEEDS_SUPPLEMENT, missing=("户口簿",)), "supplemented", body)


# ---------------------------------------------------------------------------
# 不予受理, completion and delivery


@pytest.mark.parametrize("status", [Status.RECEIVED, Status.NEEDS_SUPPLEMENT])
@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": None}])
def test_reject_needs_a_reason(status: Status, body: dict[str, Any]) -> None:
    with pytest.raises(TransitionRefused) as info:
        apply(AppState(status), "rejected", body)
    assert "reason" in info.value.message


def test_reject_with_reason() -> None:
    state = apply(AppState(Status.RECEIVED), "rejected", {"reason": "申请人不在本辖区"})
    assert state.status == "rejected"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"delivery": None},
        {"delivery": {}},
        {"delivery": {"method": "courier"}},
        {"delivery": {"method": "PICKUP"}},
    ],
)
def test_completion_needs_pickup_or_post(body: dict[str, Any]) -> None:
    with pytest.raises(TransitionRefused) as info:
        apply(AppState(Status.ACCEPTED), "completed", body)
    assert "pickup or post" in info.value.message


@pytest.mark.parametrize(
    "delivery",
    [
        {"method": "post"},
        {"method": "post", "post_tracking": ""},
        {"method": "post", "post_tracking": "   "},
    ],
)
def test_postal_delivery_needs_a_tracking_number(delivery: dict[str, Any]) -> None:
    with pytest.raises(TransitionRefused) as info:
        apply(AppState(Status.ACCEPTED), "completed", {"delivery": delivery})
    assert "tracking" in info.value.message


@pytest.mark.parametrize(
    "delivery",
    [
        {"method": "pickup"},
        {"method": "post", "post_tracking": "1180123456789"},
    ],
)
def test_completion_with_delivery(delivery: dict[str, Any]) -> None:
    state = apply(AppState(Status.ACCEPTED), "completed", {"delivery": delivery})
    assert state.status == "completed"
    assert state.evaluation is None


# ---------------------------------------------------------------------------
# 好差评


@pytest.mark.parametrize("score", [1, 2, 3, 4, 5])
def test_evaluation_scores_one_to_five(score: int) -> None:
    state = apply(AppState(Status.COMPLETED), "evaluated", {"score": score})
    assert state.evaluation == score
    assert state.status == "completed"


@pytest.mark.parametrize("score", [0, 6, -1, True, False, "5", 5.0, None])
def test_evaluation_score_out_of_range_or_wrong_type_is_refused(score: object) -> None:
    with pytest.raises(TransitionRefused) as info:
        apply(AppState(Status.COMPLETED), "evaluated", {"score": score})
    assert "1 to 5" in info.value.message


def test_evaluation_only_once() -> None:
    state = apply(AppState(Status.COMPLETED), "evaluated", {"score": 4})
    with pytest.raises(TransitionRefused) as info:
        apply(state, "evaluated", {"score": 5})
    assert "already" in info.value.message
    assert state.evaluation == 4


@pytest.mark.parametrize("status", [s for s in Status if s is not Status.COMPLETED])
def test_evaluation_only_after_completion(status: Status) -> None:
    with pytest.raises(TransitionRefused):
        apply(AppState(status), "evaluated", {"score": 5})


# ---------------------------------------------------------------------------
# Withdrawal


@pytest.mark.parametrize("status", [Status.SUBMITTED, Status.RECEIVED, Status.NEEDS_SUPPLEMENT])
def test_withdrawal_before_acceptance(status: Status) -> None:
    assert apply(AppState(status), "withdrawn", {}).status == "withdrawn"


@pytest.mark.parametrize("status", [Status.ACCEPTED, Status.COMPLETED, Status.REJECTED, Status.WITHDRAWN])
def test_no_withdrawal_after_acceptance_or_decision(status: Status) -> None:
    with pytest.raises(TransitionRefused):
        apply(AppState(status), "withdrawn", {})


# ---------------------------------------------------------------------------
# derive() and unknown kinds


def test_derive_folds_a_whole_history() -> None:
    events: list[tuple[str, dict[str, Any]]] = [
        ("filed", {"owed": []}),
        ("received", {}),
        ("supplement_requested", {"missing": ["户口簿", "承诺书"]}),
        ("supplemented", {"materials": ["户口簿"]}),
        ("supplemented", {"materials": ["承诺书"]}),
        ("accepted", {"owed": ["照片"]}),
        ("supplemented", {"materials": ["照片"]}),
        ("completed", {"delivery": {"method": "post", "post_tracking": "1180123456789"}}),
        ("evaluated", {"score": 5}),
    ]
    assert derive(events) == AppState(Status.COMPLETED, owed=(), missing=(), evaluation=5)
    # Each prefix folds to the state one would expect at that point.
    assert derive(events[:3]).status == "needs_supplement"
    assert derive(events[:4]).missing == ("承诺书",)
    assert derive(events[:5]).status == "received"
    assert derive(events[:6]).owed == ("照片",)
    assert derive(events[:8]).evaluation is None


def test_derive_withdrawn_history() -> None:
    assert derive([("filed", {}), ("received", {}), ("withdrawn", {})]).status == "withdrawn"


def test_derive_refuses_an_illegal_history() -> None:
    with pytest.raises(TransitionRefused):
        derive([("filed", {}), ("accepted", {})])  # never received
    with pytest.raises(TransitionRefused):
        derive([("received", {})])  # never filed


def test_derive_needs_at_least_the_filing() -> None:
    with pytest.raises(TransitionRefused):
        derive([])


@pytest.mark.parametrize("state", [None, AppState(Status.RECEIVED), AppState(Status.COMPLETED)])
@pytest.mark.parametrize("kind", ["approved", "", "FILED", "Accepted"])
def test_unknown_kind_is_refused(state: AppState | None, kind: str) -> None:
    with pytest.raises(TransitionRefused) as info:
        apply(state, kind, {})
    assert "Unknown event kind" in info.value.message
