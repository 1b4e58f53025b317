"""A village's day over a slow link that drops (tests/slowlink.py): the
real `daiban serve` town, the real `daiban sync` at the village, and a cut
that strikes where the test chooses — in the middle of the push's body
(the town never has the whole request), or once the town has answered the
push, before the answer reaches the village (the town has stored it all;
the village does not know). After each, syncing again converges: every
application at the town exactly once, every receipt back, nothing queued
or set aside, the databases whole; and what the cut cost on the wire is
bounded. A cut mid-body costs the part that went before it: the town had
nothing of that request, and each envelope goes up whole once. A lost
answer costs one small request: before pushing again the village asks the
town what it holds (a pull with ``holds``) and lets go of that, so nothing
the town stored goes up twice.

The link is scaled down from a village's (64 kbit/s, 300 ms round trip)
so the test runs in seconds; its figures are not asserted on."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fault_net import (
    VILLAGE,
    Processes,
    Tree,
    build_tree,
    copy_tree,
    daiban,
    enroll,
    event_counts,
    file_ledger,
    integrity,
    listed,
    one_line_failure,
    outbox_count,
    query,
    sync_until_converged,
    write_ledger,
)
from tests.slowlink import Request, SlowLink, Strike

APPS = 12
RATE = 200_000.0  # bytes/s each way: fast enough to be quick, slow enough to cut inside a request
DELAY = 0.01  # seconds one way
MAX_RUNS = 10


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tree]:
    procs = Processes()
    try:
        yield build_tree(tmp_path_factory.mktemp("slow-tree") / "tree", procs)
    finally:
        procs.stop_all()


@pytest.fixture
def procs() -> Iterator[Processes]:
    p = Processes()
    try:
        yield p
    finally:
        p.stop_all()


@pytest.fixture
def tree(template: Tree, tmp_path: Path) -> Tree:
    return copy_tree(template, tmp_path / "tree")


def day_with_a_cut(
    tree: Tree, procs: Processes, tmp_path: Path, strike: Strike
) -> tuple[SlowLink, list[str], int]:
    """Enroll the village through the link, file APPS applications, then sync
    with the strike armed: that sync fails, in one line; syncing again
    converges. The link (closed), the tracking numbers, and how many of
    the village's envelopes the town had stored when the cut struck."""
    town = procs.serve(tree.town, log_dir=tmp_path)
    with SlowLink(town.port, rate=RATE, delay=DELAY) as link:
        enroll(tree.village, VILLAGE, tree.town, link.url)
        trackings = file_ledger(tree.village, write_ledger(tmp_path / "台账.csv", APPS))
        link.strike = strike
        cut = daiban(tree.village, "sync", "--json")
        assert link.struck, "the chosen cut did not strike"
        assert one_line_failure(cut) is None, one_line_failure(cut)
        assert outbox_count(tree.village) > 0  # still in the village's custody
        stored = query(tree.town, "SELECT COUNT(*) FROM envelopes WHERE origin = ?", (VILLAGE,))[0][0]
        after = sync_until_converged(tree.village, MAX_RUNS)
        assert after.converged, after.failures
        assert not after.problems, after.problems
    check_the_day(tree, trackings)
    return link, trackings, stored


def check_the_day(tree: Tree, trackings: list[str]) -> None:
    at_town = [r["tracking"] for r in listed(tree.town)]
    assert sorted(at_town) == sorted(trackings)  # each exactly once
    assert event_counts(tree.town, "filed") == Counter(dict.fromkeys(trackings, 1))
    assert event_counts(tree.village, "received") == Counter(dict.fromkeys(trackings, 1))
    assert {r["status"] for r in listed(tree.village)} == {"received"}
    assert outbox_count(tree.village) == 0
    assert query(tree.town, "SELECT COUNT(*) FROM outbox WHERE hop = ?", (VILLAGE,))[0][0] == 0
    for home, table in ((tree.village, "set_aside"), (tree.town, "quarantine"), (tree.village, "conflicts")):
        assert query(home, f"SELECT COUNT(*) FROM {table}")[0][0] == 0, table
    assert integrity(tree.village) == "ok"
    assert integrity(tree.town) == "ok"


def pushes(link: SlowLink) -> list[Request]:
    return [r for r in link.requests() if r.path == "/v1/push"]


def test_a_cut_mid_push_sends_nothing_the_town_stored_again(
    tree: Tree, procs: Processes, tmp_path: Path
) -> None:
    link, trackings, stored = day_with_a_cut(tree, procs, tmp_path, Strike("/v1/push", "body", fraction=0.5))
    assert stored == 0  # the town never had the whole request
    sent = pushes(link)
    cut = [r for r in sent if not r.complete]
    assert len(cut) == 1, sent
    full = [r for r in sent if r.complete and r.envelopes]
    # The town had none of the cut request: each envelope went up whole once.
    once = Counter(e for r in full for e in r.envelopes)
    assert once and max(once.values()) == 1, "an envelope went up whole twice"
    assert len(once) >= len(trackings)
    # What the cut cost: the part of the request that went before it, less
    # than the request sent whole afterwards.
    assert cut[0].bytes < sum(r.bytes for r in full)


def test_an_answer_lost_sends_nothing_the_town_stored_again(
    tree: Tree, procs: Processes, tmp_path: Path
) -> None:
    """The town stored the push and answered; the cut loses the answer. The
    next sync asks the town what it holds first and lets go of it: no
    envelope goes up whole twice."""
    link, trackings, stored = day_with_a_cut(tree, procs, tmp_path, Strike("/v1/push", "answer"))
    assert stored >= APPS  # the town had stored the whole push when the answer was lost
    full = [r for r in pushes(link) if r.complete and r.envelopes]
    times = Counter(e for r in full for e in r.envelopes)
    assert len(times) >= len(trackings)
    assert max(times.values()) == 1, "an envelope the town had stored went up again"
    asked = [r for r in link.requests() if r.path == "/v1/pull" and r.complete]
    assert asked, "the village did not ask the town what it holds"


BACKLOG = 120


def test_a_backlog_longer_than_the_link_carries_between_cuts_still_goes_up(
    tree: Tree, procs: Processes, tmp_path: Path
) -> None:
    """Every push whose body is larger than the link carries between two cuts
    is cut half-way (the test's choice, not a timer): a push that gets no
    answer halves the next ones (client.PUSH_BUDGET), so the backlog goes up
    in smaller pushes, each envelope whole once, and converges."""
    town = procs.serve(tree.town, log_dir=tmp_path)
    with SlowLink(town.port, rate=RATE, delay=DELAY) as link:
        enroll(tree.village, VILLAGE, tree.town, link.url)
        trackings = file_ledger(tree.village, write_ledger(tmp_path / "积压.csv", BACKLOG))
        link.strike = Strike("/v1/push", "body", fraction=0.5, min_body=12_000, every=True)
        after = sync_until_converged(tree.village, MAX_RUNS)
        assert link.strikes >= 1, "no push was large enough to be cut"
        assert after.converged, after.failures
        assert not after.problems, after.problems
        full = [r for r in pushes(link) if r.complete and r.envelopes]
    check_the_day(tree, trackings)
    once = Counter(e for r in full for e in r.envelopes)
    assert len(once) >= BACKLOG and max(once.values()) == 1
