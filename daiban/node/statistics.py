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
a higher one wins, so re-delivery and reordering change nothing.

Heartbeats ride the same stream, so a district and the city see every node
below them that has gone silent, not only their own children: a town or a
district publishes, in the same flush, one small record per direct child —
its code, name, last sync here and enrollment (``$defs/childRecord``) — when
the child's last sync has moved by at least ``HEARTBEAT_EVERY`` since the
record last published, or its name or enrollment changed, or it is no longer
a child (``gone``). Many to one envelope, in envelopes of their own
(``records`` empty, ``children`` the heartbeats): a node one version older
refuses only those, never the application records. Kept by (parent, code),
the latest by the envelope's sequence number, at the parent itself (what it
last published) and at every district and the city on the way up."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from daiban.node import codechanges, stats
from daiban.node.clock import stamp
from daiban.node.divisions import city_of

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

    from daiban.node.applications import Node
    from daiban.trust.envelope import Envelope

KIND = "stats"
MAX_RECORDS = 100
# Well under envelope.MAX_RAW, leaving room for the envelope around the records.
BUDGET = 48 * 1024
PENDING_BATCH = 2000
OFFICE_DIGITS = (4, 6, 9)
HEARTBEAT_ROLES = ("district", "town")
"""The nodes that report their children's heartbeats: the city has nobody above it."""
HEARTBEAT_EVERY = dt.timedelta(hours=1)
"""A child's last sync is published again once it has moved this far: a
district or the city knows a node's last sync to within this (plus its
parent's own sync interval), at most one heartbeat per child an hour."""
MAX_NAME = 100


def flush(node: Node) -> int:
    """Publish the records of this office's applications that changed since
    they were last published, then the heartbeats of its children that are
    due; returns how many application records were published."""
    published = 0
    while True:
        with node.store.transaction():
            pending = node.store.stats_pending(PENDING_BATCH)
            if not pending:
                break
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
            if changed:
                # The journal (and through it the admission rules, the
                # signatures) only when there is something to publish: a
                # report with nothing changed starts light.
                from daiban.node import journal
            for chunk in chunks(changed):
                env = journal.record_stats(node, chunk, city_of(node.code), now)
                node.store.put_stats(chunk, version=env.seq, taken_at=now)
            published += len(changed)
    heartbeats(node)
    return published


def heartbeats(node: Node) -> int:
    """Publish the heartbeats of this node's children that are due (see
    ``due``), in one go; returns how many were published."""
    if node.role not in HEARTBEAT_ROLES:
        return 0
    with node.store.transaction():
        current = {row["code"]: heartbeat_of(row) for row in node.store.children_sync()}
        changed = due(node.store.heartbeats_of(node.code), current)
        if not changed:
            return 0
        from daiban.node import journal  # only when publishing

        now = stamp(node.clock())
        for chunk in chunks(changed):
            env = journal.record_heartbeats(node, chunk, city_of(node.code), now)
            node.store.put_heartbeats(node.code, chunk, version=env.seq, taken_at=now)
    return len(changed)


def heartbeat_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """A child's heartbeat record from its ``Store.children_sync()`` row;
    a time that is not a whole ISO 8601 moment with its offset is left out."""
    from daiban.node.admission import is_datetime  # the admission rules load only when used

    def moment(value: Any) -> str | None:
        return value if isinstance(value, str) and is_datetime(value) else None

    return {
        "code": str(row["code"]),
        "name": str(row.get("name") or "")[:MAX_NAME],
        "last_sync_at": moment(row.get("last_sync_at")),
        "enrolled_at": moment(row.get("enrolled_at")),
        "gone": False,
    }


def due(
    held: Mapping[str, Mapping[str, Any]],
    current: Mapping[str, Mapping[str, Any]],
    every: dt.timedelta = HEARTBEAT_EVERY,
) -> list[dict[str, Any]]:
    """The heartbeats to publish, by code: a child not published before; one
    whose name, enrollment or being a child changed; one whose last sync
    moved by at least ``every`` since it was last published; and, marked
    ``gone``, one published before that is no longer a child. Pure."""
    out = []
    for code, record in current.items():
        before = held.get(code)
        if before is None or _moved(before, record, every):
            out.append(dict(record))
    for code, before in held.items():
        if code not in current and not before["gone"]:
            out.append({**before, "gone": True})
    return sorted(out, key=lambda r: str(r["code"]))


def _moved(before: Mapping[str, Any], now: Mapping[str, Any], every: dt.timedelta) -> bool:
    if any(before[k] != now[k] for k in ("name", "enrolled_at", "gone")):
        return True
    if before["last_sync_at"] == now["last_sync_at"]:
        return False
    if before["last_sync_at"] is None or now["last_sync_at"] is None:
        return True
    then = dt.datetime.fromisoformat(before["last_sync_at"])
    return abs(dt.datetime.fromisoformat(now["last_sync_at"]) - then) >= every


def chunks(records: Sequence[Mapping[str, Any]]) -> Iterator[list[Mapping[str, Any]]]:
    """Records in groups that fit one envelope each."""
    from daiban.trust.crypto import canonical  # the signing library loads only when publishing
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
    from daiban.trust.envelope import EnvelopeError
    if len(env.origin) not in OFFICE_DIGITS or env.to != city_of(env.origin):
        raise EnvelopeError("malformed", "statistics go from an office up to its city")
    error = next(iter(_validator().iter_errors(json.loads(env.raw))), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "envelope"
        raise EnvelopeError("malformed", f"statistics envelope does not fit its schema at {where}")
    changes = node.division_changes()
    for record in env.body["records"]:
        if record["office"] != env.origin:
            raise EnvelopeError(
                "forged_origin", f"{env.origin} may not publish records of {record['office']}'s applications"
            )
        if not codechanges.within(record["region"], record["office"], changes):
            raise EnvelopeError("malformed", f"{record['tracking']}: region outside its office")
    for child in env.body.get("children", ()):
        code = child["code"]
        if len(code) <= len(env.origin) or not codechanges.within(code, env.origin, changes):
            raise EnvelopeError("not_ancestor", f"{env.origin} may not report on {code}: not below it")


def take(node: Node, env: Envelope, now: str, sender: str) -> None:
    """Keep the records (a district and the city report on them) and pass
    the envelope on towards the city; call inside inbox.store's transaction."""
    changes = node.division_changes()
    records = env.body["records"]
    if changes and codechanges.changed_away(env.origin, changes):
        # An old office's records (sent before it learned of the change):
        # they count under the new code, below whatever the new office
        # publishes of the same applications.
        new = codechanges.resolve(env.origin, changes)
        node.store.put_stats([{**r, "office": new} for r in records], version=0, taken_at=now)
    else:
        node.store.put_stats(records, version=env.seq, taken_at=now)
    children = env.body.get("children")
    if children:
        node.store.put_heartbeats(env.origin, children, version=env.seq, taken_at=now)
    node.store.set_effect(env.id, "applied")
    if env.to != node.code:
        node.route(env.id, env.to, now, came_from=sender)


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    from jsonschema import Draft202012Validator

    text = resources.files("daiban").joinpath("schemas/envelope.schema.json").read_text(encoding="utf-8")
    return Draft202012Validator(json.loads(text))
