"""The load generator (scripts/bench_load.py) at a small size, in the suite:
30 simulated villages, each with its own keys, enrolled through the real
``/v1/enroll`` with codes from the real ``daiban enroll-code``, push 5
applications each to one real ``daiban serve`` district and pull. Checked,
not timed: no error, every application at the district exactly once (its
CLI and its database), every receipt back at its village, nothing
quarantined, the database intact, every process it started gone; the same
load on the bare baseline server stores every document. A second run
reuses the enrolled district and villages (--state) and holds the same."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daiban.errors import DaibanError
from daiban.node.divisions import check_code
from scripts import bench_load

VILLAGES, PER_VILLAGE = 30, 5


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def check(result: bench_load.Result) -> None:
    n = VILLAGES * PER_VILLAGE
    assert result.stats.errors == []
    assert result.stats.stored == n
    assert len(result.stats.push_ms) == VILLAGES  # one push each, none sent twice
    checked = result.checked
    assert checked.listed == n and checked.filed_events == n
    assert (checked.missing, checked.duplicates, checked.strangers) == (0, 0, 0)
    assert checked.exactly_once
    assert checked.quarantined == 0 and checked.integrity == "ok"
    assert len(set(result.trackings)) == n
    assert result.answered == n  # every receipt back at its village
    assert result.pids and all(gone(pid) for pid in result.pids)
    if result.baseline is not None:  # the same load on the bare server: every document once, no error
        assert result.baseline.errors == [] and result.baseline.stored == n


def test_thirty_villages_push_and_pull_exactly_once(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = bench_load.run_load(tmp_path / "first", VILLAGES, PER_VILLAGE, in_flight=200, state=state)
    assert not first.reused_state and first.baseline is not None
    check(first)
    assert "0/0/0" in bench_load.report(first)

    # The check is not vacuous: a tracking number the district never got is
    # missing, one it holds that was not expected is a stranger.
    district = tmp_path / "first" / "district"
    extra = first.trackings[0][:-8] + "99999990"
    missing = bench_load.check_district(district, [*first.trackings, extra])
    assert missing.missing == 2 and not missing.exactly_once
    strangers = bench_load.check_district(district, first.trackings[1:])
    assert strangers.strangers == 2 and not strangers.exactly_once

    again = bench_load.run_load(
        tmp_path / "again", VILLAGES, PER_VILLAGE, in_flight=7, state=state, with_baseline=False
    )
    assert again.reused_state and again.baseline is None
    check(again)
    assert set(again.trackings) == set(first.trackings)  # the same villages, a fresh district copy


def test_village_codes_are_valid_and_distinct() -> None:
    codes = bench_load.village_codes(3000)
    assert len(set(codes)) == 3000
    for code in (codes[0], codes[499], codes[500], codes[-1]):
        assert check_code(code, "village") == code and code.startswith("370303")
    with pytest.raises(ValueError):
        bench_load.village_codes(0)
    with pytest.raises(DaibanError):
        check_code("370303101000", "village")  # what the generator never makes: an empty segment


def test_an_altered_or_unsigned_answer_is_an_error_not_a_figure() -> None:
    """The generator counts an answer only once its signature verifies: one
    altered on the way, bound to another request, or unsigned is refused."""
    key = Ed25519PrivateKey.generate()
    body, binding, server = b"answer", "A" * 86, "370303"
    digest = hashlib.sha256(body).hexdigest()
    message = "\n".join(["DAIBAN-ANSWER-1", "200", digest, binding, server]).encode()
    header = bench_load.b64(key.sign(message))
    bench_load.check_answer(key.public_key(), header, 200, body, binding, server)
    for status, text, bound, signed in (
        (200, body + b"x", binding, header),
        (409, body, binding, header),
        (200, body, "B" * 86, header),
        (200, body, binding, None),
    ):
        with pytest.raises(bench_load.LoadError):
            bench_load.check_answer(key.public_key(), signed, status, text, bound, server)


def test_receipts_are_counted_alone_or_in_bulk() -> None:
    assert bench_load.answered_by({"kind": "received", "tracking": "1"}) == ["1"]
    bulk = {
        "kind": "receipts",
        "tracking": None,
        "body": {"receipts": [{"tracking": "1"}, {"tracking": "2"}]},
    }
    assert bench_load.answered_by(bulk) == ["1", "2"]
    assert bench_load.answered_by({"kind": "receipts", "body": "not an object"}) == []
    assert bench_load.answered_by({"kind": "filed", "tracking": "1"}) == []
