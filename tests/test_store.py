"""The node's store, through the library on real SQLite files: durable settings,
immutable events with unique ids and gapless per-origin sequence numbers,
personal data only in its own table, all-or-nothing operations, and a summary
that always equals what the events add up to."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daiban.errors import Conflict, DaibanError, TransitionRefused, ValidationFailed
from daiban.node import lifecycle
from daiban.node.applications import Node
from daiban.node.home import open_node
from daiban.node.store import Store
from tests.conftest import BEIJING_ID, ZIBO_ID, filing

MakeNode = Callable[..., Node]
TOWN = "370303101"
NAME = "欧阳秀兰"
PHONE = "13805331234"
BANK = "6222021234567890123"


def dump(node: Node) -> list[str]:
    return list(node.store.db.conn.iterdump())


def tables(conn: sqlite3.Connection) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]


def cells(conn: sqlite3.Connection, table: str) -> list[str]:
    return [
        str(value) for row in conn.execute(f'SELECT * FROM "{table}"') for value in row if value is not None
    ]


def mz001(**overrides: object) -> object:
    values: dict[str, object] = {
        "item": "MZ001",
        "name": NAME,
        "id_number": ZIBO_ID,
        "phone": PHONE,
        "fields": {"family_size": "3", "monthly_income": "420", "bank_account": BANK},
    }
    values.update(overrides)
    return filing(**values)


def test_pragmas(make_node: MakeNode) -> None:
    node = make_node()
    store = node.store
    assert store.pragma("journal_mode") == "wal"
    assert store.pragma("synchronous") == 2  # FULL
    assert store.pragma("foreign_keys") == 1
    assert store.pragma("busy_timeout") > 0
    home = node.home
    node.close()
    again = open_node(home)
    try:
        assert again.store.pragma("journal_mode") == "wal"
        assert again.store.pragma("synchronous") == 2
        assert again.store.pragma("foreign_keys") == 1
        assert again.store.pragma("busy_timeout") > 0
    finally:
        again.close()


def test_schema_is_recorded_as_migrations(make_node: MakeNode) -> None:
    node = make_node()
    rows = node.store.db.execute("SELECT migration_set, name FROM _sqlite_migrations").fetchall()
    assert ("daiban", "0001_initial") in rows
    names = set(tables(node.store.db.conn))
    assert {"events", "personal", "applications", "node", "catalog_items"} <= names
    # Opening again applies nothing twice.
    home = node.home
    node.close()
    Store.open(home / "daiban.db").close()
    conn = sqlite3.connect(home / "daiban.db")
    try:
        again = conn.execute("SELECT migration_set, name FROM _sqlite_migrations").fetchall()
    finally:
        conn.close()
    assert sorted(again) == sorted(rows)
    assert len(again) == len(set(again))


def test_events_are_immutable(make_node: MakeNode) -> None:
    node = make_node()
    tracking = node.file(filing()).tracking
    conn = sqlite3.connect(node.home / "daiban.db")  # any connection, not only the store's
    try:
        with pytest.raises(sqlite3.DatabaseError, match="immutable"):
            conn.execute("UPDATE events SET kind = 'rejected' WHERE tracking = ?", [tracking])
        with pytest.raises(sqlite3.DatabaseError, match="immutable"):
            conn.execute("DELETE FROM events WHERE tracking = ?", [tracking])
        with pytest.raises(sqlite3.DatabaseError):
            conn.execute("UPDATE events SET body = '{}'")
    finally:
        conn.close()
    events = node.store.events_for(tracking)
    assert [e.kind for e in events] == ["filed"]
    assert events[0].body["item"] == "SB001"


def _long_town_flow(node: Node) -> list[str]:
    """Several applications through many events at a town (their office)."""
    a = node.file(mz001()).tracking
    node.review(a, "supplement", missing=["户口簿", "家庭经济状况核对授权书"])
    node.supplement(a, ["户口簿"])
    node.supplement(a, ["家庭经济状况核对授权书"])
    node.review(a, "accept", missing=["承诺书"])
    node.supplement(a, ["承诺书"])
    node.review(
        a, "complete", delivery="post", post_tracking="EA123456785CN", address="淄博市张店区南定镇幸福路12号"
    )
    node.evaluate(a, 4, comment="办事快")

    b = node.file(mz001(id_number=BEIJING_ID, name="李四", phone="13905332345", missing=["承诺书"])).tracking
    node.review(b, "accept")  # owed from filing stays owed

    c = node.file(
        filing(
            item="MZ003",
            id_number=BEIJING_ID,
            name="李四",
            phone="13905332345",
            fields={"assistance_kind": "急难型", "hardship_reason": "火灾"},
        )
    ).tracking
    node.review(c, "reject", note="不符合条件")

    d = node.file(
        filing(item="MZ003", fields={"assistance_kind": "支出型", "hardship_reason": "重病"})
    ).tracking
    node.withdraw(d, note="本人撤回")
    return [a, b, c, d]


def test_per_origin_sequence_is_gapless_and_ids_are_unique(make_node: MakeNode) -> None:
    node = make_node(role="town", code=TOWN, name="南定镇")
    _long_town_flow(node)
    # Refusals in between consume no sequence number.
    with pytest.raises(DaibanError):
        node.review(node.list()[0]["tracking"], "accept")
    rows = node.store.db.execute("SELECT id, origin, seq FROM events ORDER BY rowid").fetchall()
    assert len(rows) >= 17
    assert {r[1] for r in rows} == {TOWN}
    assert [r[2] for r in rows] == list(range(1, len(rows) + 1))
    ids = [r[0] for r in rows]
    assert len(set(ids)) == len(ids)
    assert all(isinstance(i, str) and len(i) >= 16 for i in ids)


@pytest.mark.parametrize("role,code", [("village", "370303101201"), ("town", TOWN)])
def test_personal_data_is_kept_only_sealed(make_node: MakeNode, role: str, code: str) -> None:
    node = make_node(role=role, code=code, name="测试节点")
    filed = node.file(mz001())
    if role == "town":
        node.review(filed.tracking, "accept")
        node.review(filed.tracking, "complete")
        node.evaluate(filed.tracking, 5)
    conn = node.store.db.conn
    secrets = (ZIBO_ID, PHONE, NAME, BANK)
    assert len(cells(conn, "personal")) >= 4  # the sealed part is stored, in its one place
    for table in tables(conn):
        for cell in cells(conn, table):
            for value in secrets:
                assert value not in cell, f"{value} found in table {table}: {cell[:80]}"
    # Every file of the home, WAL included, holds no plaintext either.
    node.store.db.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    for path in node.home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for value in secrets:
                assert value.encode() not in data, f"{value} in {path.name}"
    # The key holder opens it in memory: the town (its own office), or the
    # village while its office's key is not yet known (sealed to itself).
    opened = node.personal(filed.tracking)
    assert opened is not None
    assert opened["id_number"] == ZIBO_ID and opened["fields"]["bank_account"] == BANK


def test_the_summary_row_holds_masked_values(make_node: MakeNode) -> None:
    node = make_node()
    tracking = node.file(mz001()).tracking
    row = node.store.application(tracking)
    assert row is not None
    assert row["name_masked"] == "欧**兰"
    assert row["id_masked"] == "3703**********0012"
    assert row["phone_masked"] == "138****1234"
    assert row["id_hash"] != ZIBO_ID and ZIBO_ID not in row["id_hash"]
    (body,) = [e.body for e in node.store.events_for(tracking)]
    assert body["applicant"] == {"name": "欧**兰", "id_number": "3703**********0012", "phone": "138****1234"}
    personal = node.personal(tracking)
    assert personal is not None
    assert personal["id_number"] == ZIBO_ID and personal["fields"]["bank_account"] == BANK


def _state(node: Node, tracking: str) -> tuple[int, dict | None, list[str]]:
    return node.store.count_events(), node.store.application(tracking), dump(node)


def test_a_refused_change_stores_nothing(make_node: MakeNode) -> None:
    node = make_node(role="town", code=TOWN, name="南定镇")
    tracking = node.file(mz001()).tracking
    node.review(tracking, "accept", missing=["承诺书"])
    before = _state(node, tracking)
    with pytest.raises(TransitionRefused):
        node.review(tracking, "complete")  # still owed
    assert _state(node, tracking) == before
    with pytest.raises(TransitionRefused):
        node.withdraw(tracking)  # after acceptance
    assert _state(node, tracking) == before
    with pytest.raises(ValidationFailed):
        node.review(tracking, "complete", note="x" * 10_000)
    assert _state(node, tracking) == before
    with pytest.raises(TransitionRefused):
        node.supplement(tracking, ["户口簿"])  # not outstanding
    assert _state(node, tracking) == before
    with pytest.raises(Conflict):
        node.file(mz001())  # the same resident's application is in progress
    assert _state(node, tracking) == before


def test_a_failure_midway_rolls_back_everything(make_node: MakeNode, monkeypatch: pytest.MonkeyPatch) -> None:
    node = make_node(role="town", code=TOWN, name="南定镇")
    tracking = node.file(mz001()).tracking
    before = _state(node, tracking)

    def crash(row: object) -> None:
        raise OSError("disk unplugged")

    # The event is written, then saving the summary fails: neither may remain.
    monkeypatch.setattr(node.store, "save_application", crash)
    with pytest.raises(OSError):
        node.review(tracking, "accept")
    assert _state(node, tracking) == before
    with pytest.raises(OSError):
        node.file(mz001(id_number=BEIJING_ID, name="李四"))
    assert _state(node, tracking) == before
    assert node.store.setting("tracking_counter") == "1"
    monkeypatch.undo()
    assert node.review(tracking, "accept")["status"] == "accepted"
    assert node.store.count_events() == before[0] + 1


def test_the_summary_equals_what_the_events_add_up_to(make_node: MakeNode) -> None:
    node = make_node(role="town", code=TOWN, name="南定镇")
    trackings = _long_town_flow(node)
    expected = {
        trackings[0]: ("completed", [], [], 4),
        trackings[1]: ("accepted", ["承诺书"], [], None),
        trackings[2]: ("rejected", [], [], None),
        trackings[3]: ("withdrawn", [], [], None),
    }
    for tracking in trackings:
        events = node.store.events_for(tracking)
        derived = lifecycle.derive((e.kind, e.body) for e in events)
        row = node.store.application(tracking)
        assert row is not None
        assert derived.status.value == row["status"]
        assert list(derived.owed) == row["owed"]
        assert list(derived.missing) == row["missing"]
        assert derived.evaluation == row["evaluation"]
        assert (row["status"], row["owed"], row["missing"], row["evaluation"]) == expected[tracking]
    # The stored body is JSON text and decodes to what the events carry.
    raw = node.store.db.execute(
        "SELECT body FROM events WHERE tracking = ? AND kind = 'completed'", [trackings[0]]
    ).fetchone()[0]
    assert json.loads(raw)["delivery"] == {
        "method": "post",
        "post_tracking": "EA123456785CN",
        "address": "淄博市张店区南定镇****",
    }


def test_a_transaction_inside_another_is_undone_alone(make_node: MakeNode) -> None:
    """Inside a server's group commit each call's transaction is a
    savepoint: one that fails leaves what came before it, and the outer
    transaction goes on and commits."""
    node = make_node()
    store = node.store
    with store.transaction():
        store.set_setting("before", "1")
        with pytest.raises(RuntimeError), store.transaction():
            store.set_setting("inside", "1")
            raise RuntimeError("this call fails")
        with store.transaction():
            store.set_setting("after", "1")
    assert (store.setting("before"), store.setting("inside"), store.setting("after")) == ("1", None, "1")
    assert not store.in_transaction()


def test_a_missing_migration_is_pending_and_a_complete_home_asks_nothing_more(make_node: MakeNode) -> None:
    from daiban.node import migrations

    node = make_node()
    conn = node.store.conn
    assert not migrations.pending(conn)
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = ?", [migrations.names()[-1]])
    assert migrations.pending(conn)
    blank = sqlite3.connect(":memory:")
    assert migrations.pending(blank)  # no table at all: a new home


def test_a_transaction_that_need_not_wait_for_the_disk_leaves_full_sync_behind(make_node: MakeNode) -> None:
    node = make_node()
    store = node.store
    with store.transaction(durable=False):
        assert store.pragma("synchronous") == 1  # NORMAL: no fsync at this commit
        store.set_setting("let_go", "1")
    assert store.pragma("synchronous") == 2  # FULL again for every other commit
    with pytest.raises(RuntimeError), store.transaction(durable=False):
        store.set_setting("undone", "1")
        raise RuntimeError("fails")
    assert store.pragma("synchronous") == 2
    assert (store.setting("let_go"), store.setting("undone")) == ("1", None)


_SEQS = st.lists(st.integers(min_value=1, max_value=2**33), max_size=40, unique=True)


def test_high_water_is_the_top_of_the_gapless_run_from_one(make_node: MakeNode) -> None:
    """Store.high_water counts in SQL; here the plain definition, read row by
    row: the highest n with 1..n all held (0 when 1 is not)."""
    node = make_node()
    taken = iter(range(10**6))

    @settings(max_examples=60, deadline=None)
    @given(held=st.lists(_SEQS, min_size=1, max_size=3))
    def check(held: list[list[int]]) -> None:
        origins = [f"370303{next(taken):06d}" for _ in held]
        with node.store.transaction():
            for origin, seqs in zip(origins, held, strict=True):
                node.store.conn.executemany(
                    "INSERT INTO envelopes (id, origin, seq, kind, dest, digest, raw, origin_at, "
                    "received_at, received_from) VALUES (?, ?, ?, 'filed', '370303', '', '', '', '', ?)",
                    [(f"{origin}-{seq}", origin, seq, origin) for seq in seqs],
                )
        expected = {}
        for origin, seqs in zip(origins, held, strict=True):
            top, present = 0, set(seqs)
            while top + 1 in present:
                top += 1
            expected[origin] = top
        unknown = f"370303{next(taken):06d}"
        assert node.store.high_water([*origins, unknown]) == {**expected, unknown: 0}

    check()
