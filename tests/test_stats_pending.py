"""Which applications an office must publish again (``stats_pending``): the
store notes them itself on every write that can change a statistics record
(node/store.py), not a trigger (migration 0023 says why). Real node homes,
real SQLite files."""

from __future__ import annotations

from collections.abc import Callable

from daiban.node.applications import Node
from tests.conftest import filing

MakeNode = Callable[..., Node]
TOWN, OTHER = "370303101", "370303102"


def pending(node: Node) -> set[str]:
    return set(node.store.stats_pending(1000))


def clear(node: Node) -> None:
    with node.store.transaction():
        node.store.clear_stats_pending(node.store.stats_pending(1000))


def town_with_one(make_node: MakeNode) -> tuple[Node, str]:
    """A town that handles the application it files (MZ003 is town-level)."""
    town = make_node(role="town", code=TOWN, name="南定镇")
    filed = town.file(
        filing(
            item="MZ003",
            region="370303101201",
            fields={"assistance_kind": "急难型", "hardship_reason": "房屋失火", "requested_amount": 3721},
        )
    )
    return town, filed.tracking


def test_no_trigger_on_applications(make_node: MakeNode) -> None:
    """A trigger would make every summary write a multi-table statement,
    each page it touches copied to a statement journal first."""
    town = make_node(role="town", code=TOWN, name="南定镇")
    triggers = town.store.conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'applications'"
    ).fetchall()
    assert triggers == []


def test_filing_and_decisions_at_the_office_are_noted(make_node: MakeNode) -> None:
    town, tracking = town_with_one(make_node)
    assert pending(town) == {tracking}
    clear(town)
    town.review(tracking, "accept", note="受理")
    assert pending(town) == {tracking}


def test_each_write_that_changes_a_record_notes_it(make_node: MakeNode) -> None:
    town, tracking = town_with_one(make_node)
    store = town.store
    writes: list[Callable[[], None]] = [
        lambda: store.update_applications([{"tracking": tracking, "status": "received"}]),
        lambda: store.set_due(tracking, "2026-12-20", "exact", None),
        lambda: store.save_applications([store.application(tracking) or {}]),
    ]
    for write in writes:
        clear(town)
        with store.transaction():
            write()
        assert pending(town) == {tracking}


def test_another_offices_applications_are_not_noted(make_node: MakeNode) -> None:
    town, tracking = town_with_one(make_node)
    store = town.store
    row = dict(store.application(tracking) or {})
    clear(town)
    with store.transaction():
        store.save_applications([{**row, "tracking": tracking[:-1] + "9", "office": OTHER}])
        store.update_applications([{"tracking": tracking[:-1] + "9", "status": "received"}])
    assert pending(town) == set()


def test_a_code_change_notes_what_became_this_offices(make_node: MakeNode) -> None:
    town, tracking = town_with_one(make_node)
    store = town.store
    with store.transaction():
        store.change_office(TOWN, OTHER)
    clear(town)
    with store.transaction():
        store.change_office(OTHER, TOWN)  # back under this node's code
    assert pending(town) == {tracking}
    clear(town)
    with store.transaction():
        store.change_office(TOWN, OTHER)  # away from it: nothing of this office's changed
    assert pending(town) == set()
