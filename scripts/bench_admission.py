"""Benchmark of admission (daiban/node/admission.py): microseconds per call
of check_envelope on a real `filed` envelope (a town files an application on
a temp home, its envelope read back as sent), and beside it the parts:
check_value alone, check_body alone, and check_envelope for the envelope of
each other kind a town makes. The sync push handles about 5,000 envelopes a
second (200 µs each), so 10 µs of admission costs it about 5 %.

The best of --repeat runs of --number calls each is printed: on a shared
machine the minimum is the figure least disturbed by other work.

Usage: .venv/bin/python scripts/bench_admission.py [--number N] [--repeat R]"""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
import tempfile
import timeit
from pathlib import Path
from typing import Any

import orjson

from daiban import i18n
from daiban.node import admission
from daiban.node.applications import Filing
from daiban.node.clock import CST
from daiban.node.home import init_home
from daiban.node.store import DB_NAME


def real_envelopes(base: Path) -> dict[str, dict[str, Any]]:
    """One envelope of each kind a town makes for an application it handles."""
    clock = lambda: dt.datetime(2026, 11, 27, 10, 0, tzinfo=CST)  # noqa: E731
    town = init_home(base / "town", role="town", code="370303101", name="南定镇", clock=clock)
    try:
        filed = town.file(
            Filing(
                item="MZ003",
                name="欧阳秀兰",
                id_number="370303198001010012",
                phone="13805331234",
                region="370303101201",
                fields={"assistance_kind": "急难型", "hardship_reason": "房屋失火", "requested_amount": 3721},
                missing=["困难情况证明材料"],
            )
        )
        town.review(filed.tracking, "accept", note="容缺受理", missing=["困难情况证明材料"])
        town.supplement(filed.tracking, ["困难情况证明材料"])
        town.review(filed.tracking, "complete", note="准予救助", delivery="pickup")
        town.evaluate(filed.tracking, 5, comment="很满意")
    finally:
        town.close()
    with sqlite3.connect(base / "town" / DB_NAME) as db:
        raws = [row[0] for row in db.execute("SELECT raw FROM envelopes ORDER BY n")]
    return {env["kind"]: env for env in (orjson.loads(raw) for raw in raws)}


def micros(stmt: str, names: dict[str, Any], number: int, repeat: int) -> float:
    return min(timeit.repeat(stmt, globals=names, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    i18n.set_language("en")
    with tempfile.TemporaryDirectory() as tmp:
        envelopes = real_envelopes(Path(tmp))
    filed = envelopes["filed"]
    names = {"admission": admission, "filed": filed, "body": filed["body"]}
    admission.check_envelope(filed)  # compiles the validator outside the timing
    print(f"filed envelope: {len(orjson.dumps(filed)):,} bytes of JSON")
    rows = [
        ("check_envelope(filed)", "admission.check_envelope(filed)"),
        ("check_value(filed)", "admission.check_value(filed)"),
        ("check_body('filed', body)", "admission.check_body('filed', body)"),
    ]
    for label, stmt in rows:
        print(f"{label:32s} {micros(stmt, names, args.number, args.repeat):6.2f} µs")
    for kind, env in envelopes.items():
        if kind == "filed":
            continue
        admission.check_envelope(env)
        value = micros("admission.check_envelope(env)", {**names, "env": env}, args.number, args.repeat)
        print(f"{'check_envelope(' + kind + ')':32s} {value:6.2f} µs")


if __name__ == "__main__":
    main()
