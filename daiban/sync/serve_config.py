"""How ``daiban serve`` runs, beyond its address: typed settings, each with
its reason."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from daiban.node.children import DEFAULT_STALE_AFTER
from daiban.sync.schedule import Window


@dataclass(frozen=True)
class ServeConfig:
    forward_window: Window | None = None
    """When this node syncs with its own parent on its own (a district with
    the city, nightly by default); None: never — only ``daiban sync`` does."""
    stale_after: dt.timedelta = DEFAULT_STALE_AFTER
    """How long a child may stay silent before the metrics call it stale."""
    log: bool = True
    """Write JSON log lines to stderr and to the home's logs/ folder (tests
    that build several apps in one process turn it off)."""
