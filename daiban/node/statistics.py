"""The statistics stream: offices publish a non-personal record of each
application they handle (node/stats.py) up to the city, for reports.

An office does not sign a record on every change: triggers on the summary
table note which applications changed (``stats_pending``), and ``flush`` —
run before each push to the parent, each bundle export and each report —
publishes the records that differ from what was last published, many to one
envelope (kind ``stats``, to the city). Such an envelope is signed by its
office and *not* sealed: nothing in it is personal, which its JSON Schema
(``$defs/statsRecord``, no other members allowed) enforces at every hop.

Each district and the city keep the records passing up to them, keyed by
tracking number; the envelope's sequence number is the records' version and
a higher one wins, so re-delivery and reordering change nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from daiban.node import stats
from daiban.node.clock import stamp
from daiban.node.divisions import city_of
from daiban.trust.crypto import canonical
from daiban.trust.envelope import Envelope, EnvelopeError

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

    from daiban.node.applications import Node

KIND = "stats"
MAX_RECORDS = 100
# Well under envelope.MAX_RAW, leaving room for the envelope around the records.
BUDGET = 48 * 1024
PENDING_BATCH = 2000
OFFICE_DIGITS = (4, 6, 9)


def flush(node: Node) -> int:
    """Publish the records of this office's applications that changed since
    they were last published; returns how many were published."""
    from daiban.node import journal  # the journal takes statistics in: imported when needed

    published = 0
    while True:
        with node.store.transaction():
            pending = node.store.stats_pending(PENDING_BATCH)
            if not pending:
                return published
            held = node.store.stats_records_in(pending)
            calendar = node.calendar()
            changed = []
            for row in node.store.applications_in(pending):
                if row["office"] != node.code:
                    continue
                record = stats.record_of(row, calendar)
                if held.get(record["tracking"]) != record:
                    changed.append(record)
            node.store.clear_stats_pending(pending)
            now = stamp(node.clock())
            for chunk in chunks(changed):
                env = journal.record_stats(node, chunk, city_of(node.code), now)
                node.store.put_stats(chunk, version=env.seq, taken_at=now)
            published += len(changed)


def chunks(records: Sequence[Mapping[str, Any]]) -> Iterator[list[Mapping[str, Any]]]:
    """Records in groups that fit one envelope each."""
    chunk: list[Mapping[str, Any]] = []
    size = 0
    for record in records:
        length = len(canonical(record)) + 1
        if chunk and (len(chunk) >= MAX_RECORDS or size + length > BUDGET):
            yield chunk
            chunk, size = [], 0
        chunk.append(record)
        size += length
    if chunk:
        yield chunk


def check(node: Node, env: Envelope) -> None:
    """Refuse a statistics envelope that is not an office's own records,
    addressed to its city, in exactly the documented shape."""
    if len(env.origin) not in OFFICE_DIGITS or env.to != city_of(env.origin):
        raise EnvelopeError("malformed", "statistics go from an office up to its city")
    error = next(iter(_validator().iter_errors(json.loads(env.raw))), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "envelope"
        raise EnvelopeError("malformed", f"statistics envelope does not fit its schema at {where}")
    for record in env.body["records"]:
        if record["office"] != env.origin:
            raise EnvelopeError(
                "forged_origin", f"{env.origin} may not publish records of {record['office']}'s applications"
            )
        if not record["region"].startswith(record["office"]):
            raise EnvelopeError("malformed", f"{record['tracking']}: region outside its office")


def take(node: Node, env: Envelope, now: str, sender: str) -> None:
    """Keep the records (a district and the city report on them) and pass
    the envelope on towards the city; call inside inbox.store's transaction."""
    node.store.put_stats(env.body["records"], version=env.seq, taken_at=now)
    node.store.set_effect(env.id, "applied")
    if env.to != node.code:
        node.route(env.id, env.to, now, came_from=sender)


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    from jsonschema import Draft202012Validator

    text = resources.files("daiban").joinpath("schemas/envelope.schema.json").read_text(encoding="utf-8")
    return Draft202012Validator(json.loads(text))
