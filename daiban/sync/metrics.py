"""The server's Prometheus metrics (prometheus-client), one registry per app
so that several servers in one process stay apart.

Counters move as requests are handled: envelopes in and out by kind (in,
from the batch as the decoder parsed it, off the writer; out, read from the
store on the writer thread after the handler chose them),
refused requests and refused envelopes by reason, requests by route and
status, request latency. Gauges that describe the node's state — queue depth
per neighbour, each child's last sync and whether it is stale — are read
from the store at scrape time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from daiban import __version__
from daiban.node import routing
from daiban.node.children import DEFAULT_STALE_AFTER, ChildSync, child_statuses

if TYPE_CHECKING:
    from daiban.node.applications import Node

# Seconds: village links are slow; a push of 500 envelopes may take a while.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
HOP_LABELS = {routing.UP: "parent", routing.HELD: "held"}
# No *_created series: they double the page and nobody here graphs them.
disable_created_metrics()


@dataclass
class Snapshot:
    """The node's state as the store has it at scrape time."""

    code: str
    role: str
    queues: dict[str, int] = field(default_factory=dict)
    children: list[ChildSync] = field(default_factory=list)
    quarantined: dict[str, int] = field(default_factory=dict)
    """Envelopes this node refused, by the neighbour that sent them."""
    held: int = 0
    """Envelopes held for an upgrade of this node (node/upgrade.py)."""


def snapshot(node: Node, stale_after: dt.timedelta = DEFAULT_STALE_AFTER) -> Snapshot:
    """Read what the gauges show; runs on the writer thread."""
    rows = node.store.children_sync()
    queues = {HOP_LABELS.get(hop, hop): n for hop, n in node.store.outbox_counts().items()}
    for row in rows:
        queues.setdefault(row["code"], 0)
    children = child_statuses(rows, node.clock(), stale_after)
    return Snapshot(
        node.code, node.role, queues, children, node.store.quarantine_counts(), node.store.held_count()
    )


class StoreCollector(Collector):
    """Yields the gauges of the latest snapshot (set just before each scrape)."""

    def __init__(self) -> None:
        self.latest: Snapshot | None = None

    def collect(self) -> Iterator[Metric]:
        snap = self.latest
        if snap is None:
            return
        info = GaugeMetricFamily(
            "daiban_node_info", "This node (always 1)", labels=["code", "role", "version"]
        )
        info.add_metric([snap.code, snap.role, __version__], 1)
        yield info
        depth = GaugeMetricFamily(
            "daiban_queue_depth",
            "Envelopes waiting to be handed to a neighbour (a child's code, parent, or held)",
            labels=["peer"],
        )
        for peer, n in sorted(snap.queues.items()):
            depth.add_metric([peer], n)
        yield depth
        last = GaugeMetricFamily(
            "daiban_child_last_sync_timestamp_seconds",
            "Unix time of each child's last successful push or pull here",
            labels=["child"],
        )
        stale = GaugeMetricFamily(
            "daiban_child_stale",
            "1 if the child has not synced for longer than the stale-after time, else 0",
            labels=["child"],
        )
        for child in snap.children:
            if child.last_sync_at:
                last.add_metric([child.code], dt.datetime.fromisoformat(child.last_sync_at).timestamp())
            stale.add_metric([child.code], 1 if child.stale else 0)
        yield last
        yield stale
        yield GaugeMetricFamily(
            "daiban_children_stale",
            "Children that have gone stale",
            value=sum(c.stale for c in snap.children),
        )
        refused = GaugeMetricFamily(
            "daiban_quarantined",
            "Envelopes this node refused and keeps in quarantine (`daiban quarantine`), by sender",
            labels=["sender"],
        )
        for sender, n in sorted(snap.quarantined.items()):
            refused.add_metric([sender], n)
        yield refused
        yield GaugeMetricFamily(
            "daiban_held_for_upgrade",
            "Envelopes a newer neighbour sent that this build does not know, held for its upgrade",
            value=snap.held,
        )


class ServerMetrics:
    """Every metric of one server."""

    def __init__(self, stale_after: dt.timedelta = DEFAULT_STALE_AFTER) -> None:
        self.stale_after = stale_after
        self.registry = CollectorRegistry()
        r = self.registry
        self.envelopes_in = Counter(
            "daiban_envelopes_in",
            "New envelopes stored here, by kind and by the neighbour they came from (child or parent)",
            ["kind", "peer"],
            registry=r,
        )
        self.envelopes_out = Counter(
            "daiban_envelopes_out",
            "Envelopes handed out, by kind and neighbour (a child's pull; one sent again counts again)",
            ["kind", "peer"],
            registry=r,
        )
        self.duplicates = Counter(
            "daiban_envelopes_duplicate", "Envelopes pushed here again that were already stored", registry=r
        )
        self.refusals = Counter(
            "daiban_refusals", "Requests refused, by reason (the error code)", ["reason"], registry=r
        )
        self.envelopes_refused = Counter(
            "daiban_envelopes_refused", "Envelopes refused inside a push, by reason", ["reason"], registry=r
        )
        self.requests = Counter(
            "daiban_requests", "Requests answered, by route and status", ["path", "status"], registry=r
        )
        self.latency = Histogram(
            "daiban_request_seconds",
            "Time to answer a request, by route",
            ["path"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.forwards = Counter(
            "daiban_forwards",
            "Scheduled syncs with the parent, by result (ok or failed)",
            ["result"],
            registry=r,
        )
        self.forward_last_success = Gauge(
            "daiban_forward_last_success_timestamp_seconds",
            "Unix time of the last successful scheduled sync with the parent",
            registry=r,
        )
        self.store = StoreCollector()
        r.register(self.store)

    # -- what the server calls ---------------------------------------------

    def count_kinds(self, counter: Counter, kinds: Mapping[str, int], peer: str) -> None:
        for kind, n in kinds.items():
            counter.labels(kind=kind, peer=peer).inc(n)

    def pushed(self, result: Mapping[str, Any], kinds: Mapping[str, int]) -> None:
        self.count_kinds(self.envelopes_in, kinds, "child")
        dup = sum(1 for r in result.get("results", []) if r.get("status") == "duplicate")
        if dup:
            self.duplicates.inc(dup)

    def refused(self, reason: str, extra: Mapping[str, Any]) -> None:
        self.refusals.labels(reason=reason).inc()
        for verdict in extra.get("refused") or ():
            if isinstance(verdict, Mapping):
                self.envelopes_refused.labels(reason=str(verdict.get("code") or "unknown")).inc()

    def answered(self, path: str, status: int, seconds: float) -> None:
        self.requests.labels(path=path, status=str(status)).inc()
        self.latency.labels(path=path).observe(seconds)

    def forwarded(self, ok: bool, pushed: int = 0, pulled: int = 0, at: float | None = None) -> None:
        self.forwards.labels(result="ok" if ok else "failed").inc()
        if ok:
            # The client's report has counts, not kinds: the parent's traffic is kind "any".
            if pushed:
                self.envelopes_out.labels(kind="any", peer="parent").inc(pushed)
            if pulled:
                self.envelopes_in.labels(kind="any", peer="parent").inc(pulled)
            if at is not None:
                self.forward_last_success.set(at)

    def render(self, snap: Snapshot, accept: str = "") -> tuple[bytes, str]:
        """The exposition (Prometheus text, or OpenMetrics if asked) and its content type."""
        self.store.latest = snap
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


# -- counted after a push is answered, off the writer -------------------------


def kinds_stored(prepared: Sequence[Any], result: Mapping[str, Any]) -> dict[str, int]:
    """How many envelopes of each kind a push stored, from the batch as
    the decoder parsed it (journal.Prepared), off the writer."""
    kind_of = {p.env.id: p.env.kind for p in prepared if p.env is not None}
    counts: dict[str, int] = {}
    for r in result.get("results", []):
        if r.get("status") == "stored":
            kind = kind_of.get(r.get("id"), "unknown")
            counts[kind] = counts.get(kind, 0) + 1
    return counts


# -- run on the writer thread, around the service's handlers -----------------


def pull_kinds(node: Node, child: str, after: int, result: Mapping[str, Any]) -> dict[str, int]:
    through = result.get("cursor")
    if not result.get("envelopes") or not isinstance(through, int):
        return {}
    return node.store.outbox_kinds(child, after, through)
