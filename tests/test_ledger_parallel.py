"""A large ledger is sealed and signed in worker processes: what comes back
must be exactly what filing one by one would have made — envelopes that
verify, with the event's id, tracking number and sequence number, sealed to
the office, and a gapless sequence."""

from __future__ import annotations

import csv
import datetime as dt
import sqlite3
from collections.abc import Callable
from pathlib import Path

from stdnum.cn import ric

from daiban.node.applications import Node
from daiban.node.ledger import filings, read
from daiban.trust import envelope
from daiban.trust.sealing import PARALLEL_FROM

MakeNode = Callable[..., Node]


def _ledger(path: Path, count: int) -> None:
    base = dt.date(1950, 1, 1)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["item", "name", "id_number", "phone", "assistance_kind", "hardship_reason"])
        for i in range(count):
            body = f"370303{base + dt.timedelta(days=i):%Y%m%d}{i % 900 + 100:03d}"
            w.writerow(
                ["MZ003", "李建国", body + ric.calc_check_digit(body + "0"), f"139{i:08d}", "急难型", "火灾"]
            )


def test_a_large_ledger_is_sealed_and_signed_in_parallel_correctly(
    make_node: MakeNode, tmp_path: Path
) -> None:
    town = make_node(role="town", code="370303101", name="南定镇便民服务中心")
    count = PARALLEL_FROM + 37
    path = tmp_path / "ledger.csv"
    _ledger(path, count)
    book = read(path)
    filed = town.file_ledger(filings(book, {}), digest=book.digest, filename=path.name)
    assert len(filed) == count
    conn = sqlite3.connect(town.home / "daiban.db")
    rows = conn.execute("SELECT raw FROM envelopes WHERE origin = ? ORDER BY seq", [town.code]).fetchall()
    envs = [envelope.parse(r[0]) for r in rows]
    # Each filing and its `received` (filed at its own office), in one gapless sequence.
    assert [e.seq for e in envs] == list(range(1, 2 * count + 1))
    events = dict(conn.execute("SELECT id, seq FROM events WHERE origin = ?", [town.code]).fetchall())
    for env in envs:
        envelope.check_signature(env, town.keys.sign_public)
        assert events[env.id] == env.seq
    filings_ = [e for e in envs if e.kind == "filed"]
    assert {e.tracking for e in filings_} == {f.tracking for f in filed}
    # Sealed to the office (the town itself), openable only with its key and
    # carrying the right resident.
    sample = filings_[count // 2]
    personal = envelope.open_sealed(sample, town.keys, town.keys.sign_public)
    expected = next(f for f in filed if f.tracking == sample.tracking)
    assert personal["id_number"] == expected.applicant["id_number"]
    assert sample.sealed_to == town.code


def test_a_large_ledger_checked_in_parallel_reports_every_bad_row_in_chinese(
    make_node: MakeNode, tmp_path: Path
) -> None:
    from daiban import i18n
    from daiban.errors import LedgerRefused

    town = make_node(role="town", code="370303101", name="南定镇便民服务中心")
    count = PARALLEL_FROM + 200
    path = tmp_path / "ledger.csv"
    _ledger(path, count)
    lines = path.read_text(encoding="utf-8").splitlines()
    # Break two rows far apart: a bad check character, and a missing field.
    bad1, bad2 = 3, count - 5
    cells = lines[bad1 - 1].split(",")
    cells[2] = cells[2][:-1] + ("0" if cells[2][-1] != "0" else "1")
    lines[bad1 - 1] = ",".join(cells)
    cells = lines[bad2 - 1].split(",")
    cells[5] = ""
    lines[bad2 - 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    before = town.store.count_events()
    i18n.set_language("zh")
    book = read(path)
    try:
        town.file_ledger(filings(book, {}), digest=book.digest, filename=path.name)
    except LedgerRefused as exc:
        refused = {r["row"]: r["reason"] for r in exc.rows}
    else:
        raise AssertionError("a ledger with bad rows was filed")
    assert sorted(refused) == [bad1, bad2]
    assert "身份证号" in refused[bad1]
    assert "困难原因" in refused[bad2] or "hardship_reason" in refused[bad2]
    assert town.store.count_events() == before
    assert town.count() == 0
