"""Receipts in bulk: an office acknowledges many filings of one filing node
with one signed `receipts` envelope instead of one `received` envelope each.

Each receipt in it is still an event of its own — its id, the office's
sequence number, its application's tracking number — recorded at the office
when the filing arrives, exactly as a lone `received` would be; only the
envelope that carries it back is shared, so the office signs, stores and
routes one envelope per batch, and the filer verifies one signature. At
the filer each receipt folds into its application as a `received` event
(asked of the authorisation table as one, with what the filer knows of the
application); one that cannot apply yet waits by its tracking number
(store.wait_receipts) and applies when the event before it arrives.

Plain values in, plain values out, except :func:`fold`, which writes through
the store in the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from daiban.errors import TransitionRefused
from daiban.node import authority, lifecycle, projection
from daiban.node.lifecycle import Kind
from daiban.node.store import Event
from daiban.trust.envelope import Envelope, EnvelopeError

if TYPE_CHECKING:
    from daiban.node.applications import Node

KIND = "receipts"
MAX_RECEIPTS = 500
"""Receipts in one envelope: about 80 bytes each, well inside an envelope's
64 KiB, and one request's batch of filings from one child is at most 1,000."""


def body_of(office: str, events: Sequence[Event]) -> dict[str, Any]:
    """The body of a `receipts` envelope for these receipt events of ``office``."""
    return {
        "office": office,
        "receipts": [{"id": e.id, "seq": e.seq, "tracking": e.tracking} for e in events],
    }


def entries(env: Envelope) -> list[Mapping[str, Any]]:
    """The receipts an envelope of this kind carries (its schema checked)."""
    items = env.body.get("receipts")
    return [e for e in items if isinstance(e, Mapping)] if isinstance(items, list) else []


class Tally(NamedTuple):
    """What a pulled page's stored envelopes bring: events (one each, a
    `receipts` envelope one per receipt: what an agent counts), and the
    receipts among them for this node and for others (relayed through it)."""

    events: int
    here: int
    through: int


def tally(raws: Sequence[Any], stored: set[str], code: str) -> Tally:
    """Tally these envelope texts, counting only those whose ids are in
    ``stored`` (they verified and were stored now); ``code``: this node."""
    events, here, through = len(stored), 0, 0
    for raw in raws:
        if not isinstance(raw, str) or '"kind":"receipts"' not in raw:
            continue
        try:
            value = orjson.loads(raw)
        except ValueError:  # orjson.JSONDecodeError is one
            continue
        items = value.get("body", {}).get("receipts") if isinstance(value, dict) else None
        if value.get("id") in stored and isinstance(items, list):
            events += len(items) - 1
            if value.get("to") == code:
                here += len(items)
            else:
                through += len(items)
    return Tally(events, here, through)


def answered(envelopes: Iterable[Envelope]) -> list[tuple[str, str]]:
    """(tracking, office) of every receipt these envelopes carry."""
    return [
        (str(e.get("tracking")), env.origin) for env in envelopes if env.kind == KIND for e in entries(env)
    ]


def event_of(env: Envelope, entry: Mapping[str, Any], now: str) -> Event:
    """One receipt of a `receipts` envelope as the `received` event it stands for."""
    return Event(
        id=str(entry["id"]),
        origin=env.origin,
        seq=int(entry["seq"]),
        tracking=str(entry["tracking"]),
        kind=Kind.RECEIVED.value,
        actor=env.actor,
        at=env.at,
        recorded_at=now,
        body={"office": env.body.get("office", env.origin)},
    )


def claim_of(env: Envelope, entry: Mapping[str, Any]) -> authority.Claim:
    """One receipt as the table sees a lone `received`."""
    return authority.Claim(
        kind=Kind.RECEIVED.value,
        origin=env.origin,
        to=env.to,
        tracking=str(entry.get("tracking")),
        body={"office": env.body.get("office")},
        at=env.at,
    )


def fold(node: Node, env: Envelope, now: str, *, only: str | None = None) -> tuple[list[str], list[str]]:
    """Fold the receipts of ``env`` into their applications here (the filer,
    or the office taking its own back after a restore): each exactly once
    (an event id already here is skipped), each asked of the table as a
    `received` with the application as it is now (a refusal raises
    EnvelopeError, and the caller's savepoint undoes the whole envelope).
    ``only``: fold just that tracking number's receipt (one that waited).
    Returns the tracking numbers folded now and those that cannot apply yet
    (the caller keeps them waiting); call inside a transaction."""
    items = [e for e in entries(env) if only is None or e.get("tracking") == only]
    done = node.store.event_ids_among([str(e["id"]) for e in items])
    items = [e for e in items if str(e["id"]) not in done]
    rows = node.store.applications_many([str(e["tracking"]) for e in items])
    root, changes = node.root_code(), node.division_changes()
    calendar = node.calendar()
    folded: list[str] = []
    waiting: list[str] = []
    events: list[Event] = []
    saved: list[dict[str, Any]] = []
    for entry in items:
        tracking = str(entry["tracking"])
        row = rows.get(tracking)
        if row is None:
            waiting.append(tracking)
            continue
        refusal = authority.authorise(
            claim_of(env, entry), authority.known_from_row(row, root, changes, addressee=True)
        )
        if refusal is not None:
            raise EnvelopeError(refusal.code, f"receipt for {tracking}: {refusal.reason}")
        event = event_of(env, entry, now)
        try:
            new = lifecycle.apply(projection.state_of(row), Kind.RECEIVED, event.body)
        except TransitionRefused:
            waiting.append(tracking)  # an earlier event of it has not arrived
            continue
        events.append(event)
        before = dict(row)
        projection.project(row, new, Kind.RECEIVED, event.body, now, calendar)
        row["sync_problem"] = None
        # Only what the receipt changed is written (one statement per set of columns).
        saved.append({k: v for k, v in row.items() if k == "tracking" or before.get(k) != v})
        folded.append(tracking)
    node.store.insert_events(events)
    node.store.update_applications(saved)
    return folded, waiting
