"""Envelope and event ids: 32 lowercase hex digits, the first 12 the
millisecond they were made, so ids made one after another sort together and
a node's tables take new rows at their end (crypto.new_id)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import ric

from daiban.node.applications import Filing, Node
from daiban.trust import envelope
from daiban.trust.crypto import NodeKeys, new_id
from tests.conftest import filing
from tests.test_journal import MZ001, network

MS = st.integers(min_value=0, max_value=2**48 - 1)


@given(MS)
def test_an_id_is_32_hex_digits_led_by_its_millisecond(at_ms: int) -> None:
    made = new_id(at_ms)
    assert len(made) == 32
    assert set(made) <= envelope.ID_CHARS
    assert int(made[:12], 16) == at_ms


@given(MS, MS)
def test_ids_of_a_later_millisecond_sort_after(a: int, b: int) -> None:
    if a < b:
        assert new_id(a) < new_id(b)
    elif b < a:
        assert new_id(b) < new_id(a)


def test_ids_made_in_one_millisecond_are_all_different() -> None:
    made = {new_id(1_764_000_000_000) for _ in range(20_000)}
    assert len(made) == 20_000


def test_an_envelope_with_such_an_id_parses() -> None:
    keys = NodeKeys.generate()
    made = envelope.make(
        keys,
        id=new_id(),
        origin="370303101201",
        seq=1,
        kind="withdrawn",
        to="370303",
        tracking=None,
        actor="agent",
        at="2026-12-02T10:00:00+08:00",
        body={},
    )
    assert envelope.parse(made.raw).id == made.id


def _resident(n: int) -> str:
    body = f"370303{dt.date(1950, 1, 1) + dt.timedelta(days=n):%Y%m%d}{100 + n:03d}"
    return body + ric.calc_check_digit(body + "0")


def test_a_nodes_envelopes_and_events_are_numbered_in_the_order_made(
    make_node: Callable[..., Node],
) -> None:
    """One filing at a time and a ledger's filings in one go: each table
    keyed by these ids gets them in the order it stores them (by the
    millisecond; ids of one millisecond may sort either way)."""
    village = network(make_node)[3]

    def one(n: int) -> Filing:
        return filing(item="MZ001", id_number=_resident(n), phone=f"1380533{n:04d}", fields=MZ001)

    for n in range(3):
        village.file(one(n))
    village.file_ledger([(n, one(n)) for n in range(3, 40)], digest="0" * 64, filename="台账.csv")
    db = sqlite3.connect(village.home / "daiban.db")
    try:
        envelopes = [r[0] for r in db.execute("SELECT id FROM envelopes ORDER BY n")]
        events = [r[0] for r in db.execute("SELECT id FROM events ORDER BY rowid")]
    finally:
        db.close()
    assert len(envelopes) >= 40
    for ids in (envelopes, events):
        stamps = [i[:12] for i in ids]
        assert stamps == sorted(stamps)
