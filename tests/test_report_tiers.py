"""The statistics stream end to end, over real HTTP between real `daiban
serve` processes (tests/sync_net.py): a village files three applications;
its town decides two (one completed late, one rejected), its district
completes the third; the village records the residents' evaluations; each
office's statistics travel up with its next sync, and `daiban report` at the
city (and at the district) shows them. The city's files hold nothing
personal of these residents: only the non-personal records reached it.

Every node runs on a frozen clock (DAIBAN_CLOCK), moved forward for the
late completion, so the dates and working days are known in advance."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stdnum.cn import ric

from tests.sync_net import Network

C, D, T, V = "city", "district", "town", "village"
START = "2026-06-01T10:00:00"  # a Monday
LATE = "2026-06-10T16:00:00"  # MZ003 (5 working days, due 06-08) completed two days late


def resident_id(birth: str, seq: str) -> str:
    body = "370303" + birth + seq
    return body + ric.calc_check_digit(body + "0")


# item: (name, resident ID number, phone, form fields); one resident each.
RESIDENTS = {
    "MZ003": (
        "司马春燕",
        resident_id("19620415", "021"),
        "13905337001",
        {"assistance_kind": "急难型", "hardship_reason": "住房失火受损"},
    ),
    "SB002": (
        "上官建国",
        resident_id("19600823", "033"),
        "13905337002",
        {"receive_method": "本人其他银行账户", "bank_account": "6222027777000012345"},
    ),
    "MZ001": (
        "欧阳丽娟",
        resident_id("19580101", "046"),
        "13905337003",
        {"family_size": "4", "monthly_income": "388", "bank_account": "6222028888000054321"},
    ),
}


FREE_FIELDS = ("hardship_reason", "bank_account")


class ClockedNetwork(Network):
    """The sync tests' network, with every command and server on one frozen clock."""

    clock: str = START

    def env(self, home: Path) -> dict[str, str]:
        return {**super().env(home), "DAIBAN_CLOCK": self.clock}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClockedNetwork]:
    root = tmp_path_factory.mktemp("report-tiers") / "net"
    root.mkdir()
    net = ClockedNetwork(root)
    try:  # every server it started is stopped, by PID, whatever happens
        net.build((C, D, T, V))
        yield net
    finally:
        net.close()


@pytest.fixture(scope="module")
def journey(net: ClockedNetwork) -> dict[str, Any]:
    numbers = {}
    for item, (name, id_number, phone, fields) in RESIDENTS.items():
        args = ["apply", "--item", item, "--name", name, "--id-number", id_number, "--phone", phone, "--json"]
        for key, value in fields.items():
            args += ["--field", f"{key}={value}"]
        numbers[item] = net.run(V, *args).ok().json()["tracking"]
    net.sync_all(V, T)
    net.run(T, "review", numbers["MZ003"], "accept").ok()
    net.run(T, "review", numbers["MZ001"], "reject", "--note", "收入超过标准").ok()
    net.run(D, "review", numbers["SB002"], "accept").ok()
    net.run(D, "review", numbers["SB002"], "complete").ok()
    net.clock = LATE
    net.run(T, "review", numbers["MZ003"], "complete").ok()
    net.sync_all(T, V)  # the decisions come down to the village
    net.run(V, "evaluate", numbers["MZ003"], "3").ok()
    net.run(V, "evaluate", numbers["SB002"], "5").ok()
    # Up again: the evaluations reach their offices, whose statistics follow.
    net.sync_all(V, T, D)
    return {
        "numbers": numbers,
        "city": net.run(C, "report", "--from", "2026-06-01", "--to", "2026-06-30", "--json").ok().json(),
        "city_by_item": net.run(C, "report", "--by", "item", "--json").ok().json(),
        "district": net.run(D, "report", "--by", "town", "--json").ok().json(),
        "city_text": net.run(C, "report").ok().stdout,
    }


def test_the_city_report_shows_what_the_offices_did(journey: dict[str, Any]) -> None:
    total = journey["city"]["total"]
    assert total["filed"] == 3
    assert total["completed"] == 2
    # SB002 done the day it was accepted; MZ003 seven working days after (due in five).
    assert (total["on_time"], total["on_time_known"], total["on_time_rate"]) == (1, 2, 0.5)
    assert total["avg_working_days"] == 3.5
    assert (total["proxy"], total["proxy_share"]) == (3, 1.0)  # all filed at the village point
    assert total["evaluations"] == {"5": 1, "4": 0, "3": 1, "2": 0, "1": 0}
    # June, by ISO week (a month is short enough): W23 starts on Monday 1 June.
    assert journey["city"]["trend"] == {
        "unit": "week",
        "periods": [
            {"period": "2026-W23", "filed": 3, "completed": 1},
            {"period": "2026-W24", "filed": 0, "completed": 1},
            *({"period": f"2026-W{w}", "filed": 0, "completed": 0} for w in (25, 26, 27)),
        ],
    }


def test_each_item_is_reported_by_the_office_that_handled_it(journey: dict[str, Any]) -> None:
    groups = {g["key"]: g for g in journey["city_by_item"]["groups"]}
    assert sorted(groups) == ["MZ001", "MZ003", "SB002"]
    assert (groups["MZ001"]["filed"], groups["MZ001"]["completed"]) == (1, 0)
    assert (groups["MZ003"]["avg_working_days"], groups["MZ003"]["on_time_rate"]) == (7, 0.0)
    assert (groups["SB002"]["avg_working_days"], groups["SB002"]["on_time_rate"]) == (0, 1.0)
    assert groups["MZ003"]["name"] and groups["SB002"]["name"]


def test_the_district_reports_its_town_too(journey: dict[str, Any]) -> None:
    report = journey["district"]
    assert report["node"] == "370303"
    assert [(g["key"], g["filed"], g["completed"]) for g in report["groups"]] == [("370303101", 3, 2)]


def test_the_text_report_charts_the_weeks(journey: dict[str, Any]) -> None:
    # Without a period, the span of what is held: ten days, so by ISO week.
    text = journey["city_text"]
    assert "Report for 3703 淄博市" in text and "Trend per week" in text
    # A week reads as words: "2026 week 23" (2026年第23周 in Chinese).
    rows = {
        " ".join(line.split()[:3]): line.split()[3:]
        for line in text.splitlines()
        if line.startswith("2026 week")
    }
    assert sorted(rows) == ["2026 week 23", "2026 week 24"]
    assert (rows["2026 week 23"][0], rows["2026 week 23"][2]) == ("3", "1")  # filed 3, SB002 completed
    assert rows["2026 week 24"][0:2] == ["0", "1"]  # no bar for none filed; MZ003 completed late


def test_the_city_and_the_district_hold_one_record_per_application(
    net: Network, journey: dict[str, Any]
) -> None:
    for node in (C, D):
        rows = net.query(node, "SELECT tracking, status, evaluation FROM stats ORDER BY tracking")
        assert {r["tracking"]: (r["status"], r["evaluation"]) for r in rows} == {
            journey["numbers"]["MZ003"]: ("completed", 3),
            journey["numbers"]["SB002"]: ("completed", 5),
            journey["numbers"]["MZ001"]: ("rejected", None),
        }
    # Signed by their offices, never sealed.
    for row in net.query(C, "SELECT raw FROM envelopes WHERE kind = 'stats'"):
        env = json.loads(row["raw"])
        assert env["origin"] in ("370303", "370303101") and env["to"] == "3703"
        assert env["sealed"] is None and env["sealed_to"] is None
    # Only statistics reached the city: nothing it relays, no application of these.
    kinds = {r["kind"] for r in net.query(C, "SELECT DISTINCT kind FROM envelopes WHERE origin != '3703'")}
    assert kinds == {"stats"}
    assert net.count(C, "applications") == 0


def test_the_citys_files_hold_nothing_personal_of_these_residents(
    net: Network, journey: dict[str, Any]
) -> None:
    secrets = []
    for name, id_number, phone, fields in RESIDENTS.values():
        # The free-text and number fields (the others are the catalog's own choices).
        secrets += [name, id_number, phone, *(v for k, v in fields.items() if k in FREE_FIELDS)]
    files = net.home_bytes(C)
    assert any(p.name == "daiban.db" for p in files)
    for path, data in files.items():
        for secret in secrets:
            assert secret.encode() not in data, (path.name, secret)
