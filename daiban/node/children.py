"""Which children have gone quiet: a pure rule over the rows
``Store.children_sync()`` returns. A child is stale when it has not synced
for longer than ``stale_after``; one that never synced counts from its
enrollment, and one with neither time on record is stale (nobody can say
when it was last heard from). Used by ``daiban children``, the server's
metrics, the reports and the staff TUI.

Further down the same rule runs over heartbeats (node/statistics.py): at a
district or the city, ``nodes_below`` lists every node below it — its own
children first-hand, and the nodes below them as their parents last
reported them (``Store.heartbeats_below()``) — each with the parent it
hangs under. Used by ``daiban children --all`` and the reports'
``stale_nodes``."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daiban.node.applications import Node

DEFAULT_STALE_AFTER = dt.timedelta(hours=48)
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([dhms])")


@dataclass(frozen=True)
class ChildSync:
    """One child as its parent sees it."""

    code: str
    name: str
    last_sync_at: str | None
    """The parent's clock at the child's last successful push or pull, ISO 8601."""
    enrolled_at: str | None
    queued: int
    """Envelopes waiting at the parent for this child."""
    silent_seconds: float | None
    """Seconds since the last sync (since enrollment if it never synced); None if unknown."""
    stale: bool
    quarantined: int = 0
    """Envelopes from this child the parent refused and keeps in quarantine."""
    moved_to: str | None = None
    """The parent this child enrolled with since (node/moving.py); None while it is a child here."""
    moved_at: str | None = None
    """When this node learnt that it moved, ISO 8601."""
    revoked: bool = False
    """Its certificate is revoked (node/revocation.py): what comes for its branch is held here."""

    @property
    def moved(self) -> bool:
        return self.moved_to is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "last_sync_at": self.last_sync_at,
            "enrolled_at": self.enrolled_at,
            "queued": self.queued,
            "silent_seconds": None if self.silent_seconds is None else int(self.silent_seconds),
            "stale": self.stale,
            "quarantined": self.quarantined,
        }

    def listing(self) -> dict[str, Any]:
        """What `daiban children --json` prints: as_dict(), and whether the
        child moved to another parent (``moved``, ``moved_to``, ``moved_at``)."""
        return {
            **self.as_dict(),
            "moved": self.moved,
            "moved_to": self.moved_to,
            "moved_at": self.moved_at,
            "revoked": self.revoked,
        }


@dataclass(frozen=True)
class NodeSync:
    """A node somewhere below this one, as this node knows it."""

    code: str
    name: str
    parent: str
    """The node it hangs under: this node for its own children."""
    last_sync_at: str | None
    """Its parent's clock at its last successful push or pull, ISO 8601."""
    enrolled_at: str | None
    silent_seconds: float | None
    """Seconds since the last sync (since enrollment if it never synced); None if unknown."""
    stale: bool
    reported_at: str | None = None
    """This node's clock when the parent's report of it arrived; None for this node's own children."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "parent": self.parent,
            "last_sync_at": self.last_sync_at,
            "enrolled_at": self.enrolled_at,
            "silent_seconds": None if self.silent_seconds is None else int(self.silent_seconds),
            "stale": self.stale,
            "reported_at": self.reported_at,
        }


def parse_duration(text: str) -> dt.timedelta:
    """``48h``, ``2d``, ``90m``, ``3600s``, ``1d12h`` (a bare number is hours)."""
    value = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        value += "h"
    if not value or _DURATION.sub("", value):
        raise ValueError(text)
    seconds = sum(float(n) * _UNITS[unit] for n, unit in _DURATION.findall(value))
    if seconds <= 0:
        raise ValueError(text)
    return dt.timedelta(seconds=seconds)


def format_duration(seconds: float) -> str:
    """The shortest of ``2d``, ``48h``, ``90m`` or ``3600s`` that is exact."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _moment(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def _silence(
    row: Mapping[str, Any], now: dt.datetime, stale_after: dt.timedelta
) -> tuple[float | None, bool]:
    since = _moment(row.get("last_sync_at")) or _moment(row.get("enrolled_at"))
    silent = max(0.0, (now - since).total_seconds()) if since is not None else None
    return silent, silent is None or silent > stale_after.total_seconds()


def child_statuses(
    rows: Iterable[Mapping[str, Any]], now: dt.datetime, stale_after: dt.timedelta = DEFAULT_STALE_AFTER
) -> list[ChildSync]:
    """Every child with its silence and whether it is stale, in the rows' order.
    A child that moved to another parent is never stale here: its silence is
    its new parent's to watch."""
    out = []
    for row in rows:
        silent, stale = _silence(row, now, stale_after)
        moved_to = row.get("moved_to") or None
        revoked = bool(row.get("revoked"))
        out.append(
            ChildSync(
                code=str(row["code"]),
                name=str(row.get("name") or ""),
                last_sync_at=row.get("last_sync_at"),
                enrolled_at=row.get("enrolled_at"),
                queued=int(row.get("queued") or 0),
                silent_seconds=silent,
                stale=moved_to is None and not revoked and stale,
                quarantined=int(row.get("quarantined") or 0),
                moved_to=None if moved_to is None else str(moved_to),
                moved_at=row.get("moved_at") if moved_to is not None else None,
                revoked=revoked,
            )
        )
    return out


def nodes_below(
    here: str,
    children: Iterable[Mapping[str, Any]],
    reported: Iterable[Mapping[str, Any]],
    now: dt.datetime,
    stale_after: dt.timedelta = DEFAULT_STALE_AFTER,
) -> list[NodeSync]:
    """Every node below ``here``, by code, each once: its own children
    (``Store.children_sync()`` rows) first-hand, and the nodes its
    descendants reported (``Store.heartbeats_below()`` rows: parent, code,
    name, last_sync_at, enrolled_at, reported_at). A code reported by more
    than one parent (a node that moved) is listed under the one that heard
    from it last; one that is also this node's own child, as its own."""
    found: dict[str, NodeSync] = {}
    for row in reported:
        silent, stale = _silence(row, now, stale_after)
        node = NodeSync(
            code=str(row["code"]),
            name=str(row.get("name") or ""),
            parent=str(row["parent"]),
            last_sync_at=row.get("last_sync_at"),
            enrolled_at=row.get("enrolled_at"),
            silent_seconds=silent,
            stale=stale,
            reported_at=row.get("reported_at"),
        )
        held = found.get(node.code)
        if held is None or _quieter(held, node):
            found[node.code] = node
    for row in children:
        silent, stale = _silence(row, now, stale_after)
        code = str(row["code"])
        found[code] = NodeSync(
            code=code,
            name=str(row.get("name") or ""),
            parent=here,
            last_sync_at=row.get("last_sync_at"),
            enrolled_at=row.get("enrolled_at"),
            silent_seconds=silent,
            stale=stale,
        )
    return [found[code] for code in sorted(found)]


def below(node: Node, stale_after: dt.timedelta = DEFAULT_STALE_AFTER) -> list[NodeSync]:
    """``nodes_below`` at a node, on its clock."""
    store = node.store
    return nodes_below(
        node.code, store.children_sync(), store.heartbeats_below(node.code), node.clock(), stale_after
    )


def _quieter(held: NodeSync, other: NodeSync) -> bool:
    """Whether ``held`` was heard from less recently than ``other``."""
    if held.silent_seconds is None or other.silent_seconds is None:
        return held.silent_seconds is None and other.silent_seconds is not None
    return other.silent_seconds < held.silent_seconds


def stale_nodes(nodes: Iterable[NodeSync]) -> list[NodeSync]:
    """Only the stale ones, the longest silent first (unknown first of all)."""
    stale = [n for n in nodes if n.stale]
    return sorted(stale, key=lambda n: (n.silent_seconds is not None, -(n.silent_seconds or 0), n.code))


def stale_children(
    rows: Iterable[Mapping[str, Any]], now: dt.datetime, stale_after: dt.timedelta = DEFAULT_STALE_AFTER
) -> list[ChildSync]:
    """Only the stale children, the longest silent first (unknown first of all)."""
    stale = [c for c in child_statuses(rows, now, stale_after) if c.stale]
    return sorted(stale, key=lambda c: (c.silent_seconds is not None, -(c.silent_seconds or 0), c.code))
