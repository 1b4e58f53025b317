"""The real ``daiban`` command, run in a subprocess on real node homes: init,
the catalog, filing, the queue, the office's decisions, deadlines on the
official calendar, and refusals that exit with the right code, say why in one
line in the agent's language, and change nothing that was stored."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from daiban import cli as cli_module
from tests.conftest import DAIBAN, ZIBO_ID, Result

VILLAGE = "370303101201"
TOWN = "370303101"
DISTRICT = "370303"
CITY = "3703"
CJK = re.compile(r"[\u4e00-\u9fff]")
TRACKING = re.compile(r"^\d{20}$")
LIST_KEYS = {"tracking", "item", "status", "office", "due"}
MZ001_FIELDS = ("--field", "family_size=3", "--field", "monthly_income=420")
MZ003_FIELDS = ("--field", "assistance_kind=急难型", "--field", "hardship_reason=火灾")
SB001_FIELDS = ("--field", "contribution_grade=500")

Run = Callable[..., Result]


# -- helpers --------------------------------------------------------------------


def resident_id(serial: int, birth: str = "19800101", region: str = "370303") -> str:
    """A resident ID number with its GB 11643 check character (ISO 7064 MOD 11-2),
    computed here independently of the code under test."""
    body = f"{region}{birth}{serial:03d}"
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(d) * w for d, w in zip(body, weights, strict=True))
    return body + "10X98765432"[total % 11]


def damm_ok(number: str) -> bool:
    table = [
        [0, 3, 1, 7, 5, 9, 8, 6, 4, 2],
        [7, 0, 9, 2, 1, 5, 4, 8, 6, 3],
        [4, 2, 0, 6, 8, 7, 1, 3, 5, 9],
        [1, 7, 5, 0, 9, 8, 3, 4, 2, 6],
        [6, 1, 2, 3, 0, 4, 5, 9, 7, 8],
        [3, 6, 7, 4, 2, 0, 9, 5, 8, 1],
        [5, 8, 6, 9, 7, 2, 0, 1, 3, 4],
        [8, 9, 4, 5, 3, 6, 2, 0, 1, 7],
        [9, 4, 3, 8, 6, 1, 7, 2, 0, 5],
        [2, 5, 8, 1, 4, 3, 6, 7, 9, 0],
    ]
    interim = 0
    for digit in number:
        interim = table[interim][int(digit)]
    return interim == 0


def dump(home: Path) -> list[str]:
    """Every table's every row, as SQL text."""
    conn = sqlite3.connect(home / "daiban.db")
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def no_traceback(result: Result) -> None:
    assert "Traceback" not in result.stderr
    assert "Traceback" not in result.stdout


def refused(result: Result) -> str:
    """A refusal: exit 1, one line on stderr, no traceback. Returns the line."""
    no_traceback(result)
    assert result.returncode == 1, (result.stdout, result.stderr)
    text = result.stderr.strip()
    assert text, "a refusal must say why"
    assert "\n" not in text, f"a refusal is one line: {result.stderr!r}"
    return text


def apply_args(
    item: str, serial: int, *fields: str, name: str = "王秀兰", phone: str = "13805331234"
) -> list[str]:
    return [
        "apply",
        "--item",
        item,
        "--name",
        name,
        "--id-number",
        resident_id(serial),
        "--phone",
        phone,
        *fields,
    ]


def file_one(cli: Run, home: Path, item: str, serial: int, *fields: str, **env: str) -> str:
    result = cli(*apply_args(item, serial, *fields), home=home, env=env or None)
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    tracking = result.stdout.splitlines()[0]
    assert TRACKING.match(tracking), result.stdout
    return tracking


def view(cli: Run, home: Path, tracking: str) -> dict:
    result = cli("show", tracking, "--json", home=home)
    assert result.returncode == 0, result.stderr
    return result.json()  # type: ignore[return-value]


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAIBAN_")}
    env.update({"DAIBAN_HOME": str(home), "DAIBAN_LANG": "en", "DAIBAN_AGENT": "测试代办员"})
    proc = subprocess.run([DAIBAN, *args], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


# -- node homes -------------------------------------------------------------------
# `init` computes the catalog's pinyin initials (about a second), so each kind of
# home is made once by the real command and copied for every test that needs one.


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("templates")
    homes = {}
    for role, code in (("village", VILLAGE), ("town", TOWN)):
        home = base / role
        _run(home, "init", "--role", role, "--code", code, "--name", f"测试{role}")
        homes[role] = home
    return homes


@pytest.fixture
def village(templates: dict[str, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(templates["village"], tmp_path / "village"))


@pytest.fixture
def town(templates: dict[str, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(templates["town"], tmp_path / "town"))


# -- init ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "role,code", [("village", VILLAGE), ("town", TOWN), ("district", DISTRICT), ("city", CITY)]
)
def test_init_makes_a_node_for_each_role(cli: Run, tmp_path: Path, role: str, code: str) -> None:
    home = tmp_path / role
    result = cli("init", "--role", role, "--code", code, "--name", "测试节点", "--json", home=home)
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    info = result.json()
    assert info["role"] == role and info["code"] == code and info["name"] == "测试节点"
    assert info["items"] > 0
    conn = sqlite3.connect(home / "daiban.db")
    try:
        settings = dict(conn.execute("SELECT key, value FROM node"))
        stored_items = conn.execute("SELECT COUNT(*) FROM catalog_items").fetchone()[0]
    finally:
        conn.close()
    assert (settings["role"], settings["code"]) == (role, code)
    assert stored_items == info["items"]


@pytest.mark.parametrize(
    "role,code", [("town", "370303"), ("village", "370303101"), ("district", "37030310")]
)
def test_init_with_a_code_of_the_wrong_length_is_refused(
    cli: Run, tmp_path: Path, role: str, code: str
) -> None:
    home = tmp_path / "bad"
    line = refused(cli("init", "--role", role, "--code", code, "--name", "测试", home=home))
    assert code in line
    assert not (home / "daiban.db").exists()


def test_init_twice_is_refused_and_the_first_node_is_untouched(cli: Run, village: Path) -> None:
    before = dump(village)
    key = (village / "keys" / "lookup.key").read_bytes()
    line = refused(cli("init", "--role", "town", "--code", TOWN, "--name", "另一个", home=village))
    assert "already" in line
    assert dump(village) == before
    assert (village / "keys" / "lookup.key").read_bytes() == key
    assert "VALUES('code','370303101201')" in "\n".join(before)


# -- catalog --------------------------------------------------------------------------


def test_catalog_list_shows_the_items(cli: Run, village: Path) -> None:
    result = cli("catalog", "list", home=village)
    assert result.returncode == 0, result.stderr
    for code in ("SB001", "MZ001", "GJ001"):
        assert code in result.stdout


def test_catalog_list_json_has_the_stable_keys(cli: Run, village: Path) -> None:
    items = cli("catalog", "list", "--json", home=village).json()
    assert isinstance(items, list) and items
    for entry in items:
        assert {"code", "name", "level", "time_limit_days"} <= set(entry)
        assert entry["level"] in ("town", "district", "city")
        assert isinstance(entry["time_limit_days"], int)
    by_code = {e["code"]: e for e in items}
    assert by_code["SB001"]["level"] == "district"
    assert by_code["SB001"]["name"] == "城乡居民基本养老保险参保登记"
    assert by_code["MZ001"]["level"] == "town"
    assert by_code["MZ001"]["time_limit_days"] == 30
    assert by_code["GJ001"]["level"] == "city"


def test_catalog_list_finds_by_pinyin_initials_and_by_chinese(cli: Run, village: Path) -> None:
    by_chinese = cli("catalog", "list", "养老", "--json", home=village)
    assert by_chinese.returncode == 0
    assert "SB001" in {e["code"] for e in by_chinese.json()}
    # 城乡居民（基本）养老 → cxjmyl, as an agent types it (DESIGN, catalog docstring).
    by_initials = cli("catalog", "list", "cxjmyl", "--json", home=village)
    no_traceback(by_initials)
    assert by_initials.returncode == 0, by_initials.stderr
    assert "SB001" in {e["code"] for e in by_initials.json()}


def test_catalog_show_json_has_materials_and_fields(cli: Run, village: Path) -> None:
    result = cli("catalog", "show", "SB001", "--json", home=village)
    assert result.returncode == 0, result.stderr
    item = result.json()
    assert item["code"] == "SB001" and item["level"] == "district"
    assert [m["name"] for m in item["materials"]] == ["居民身份证", "户口簿"]
    assert item["fields"]["type"] == "object"
    assert "contribution_grade" in item["fields"]["properties"]
    assert "contribution_grade" in item["fields"]["required"]


# -- filing and the queue -------------------------------------------------------------


def test_apply_prints_the_tracking_number_first(cli: Run, village: Path) -> None:
    result = cli(*apply_args("SB001", 1, *SB001_FIELDS), home=village)
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert TRACKING.match(first)
    assert damm_ok(first)
    assert first.startswith(VILLAGE)
    assert resident_id(1) not in result.stdout  # the receipt on screen is not the store


def test_apply_json(cli: Run, village: Path) -> None:
    result = cli(*apply_args("SB001", 2, *SB001_FIELDS), "--json", home=village)
    assert result.returncode == 0, result.stderr
    filed = result.json()
    assert TRACKING.match(filed["tracking"]) and damm_ok(filed["tracking"])
    assert filed["item"] == "SB001"
    assert filed["status"] == "submitted"
    assert filed["office"] == DISTRICT
    assert view(cli, village, filed["tracking"])["status"] == "submitted"


def test_list_status_and_limit(cli: Run, village: Path) -> None:
    first = file_one(cli, village, "SB001", 3, *SB001_FIELDS)
    second = file_one(cli, village, "MZ001", 3, *MZ001_FIELDS)
    third = file_one(cli, village, "SB001", 4, *SB001_FIELDS)
    assert len({first, second, third}) == 3

    rows = cli("list", "--json", home=village).json()
    assert [r["tracking"] for r in rows] == [third, second, first]  # newest first
    for row in rows:
        assert LIST_KEYS <= set(row)
        assert row["status"] == "submitted"
        assert row["due"] is None
    assert {r["tracking"]: r["office"] for r in rows} == {first: DISTRICT, second: TOWN, third: DISTRICT}

    assert cli("withdraw", second, "--reason", "resident", home=village).returncode == 0
    withdrawn = cli("list", "--status", "withdrawn", "--json", home=village).json()
    assert [r["tracking"] for r in withdrawn] == [second]
    submitted = cli("list", "--status", "submitted", "--json", home=village).json()
    assert [r["tracking"] for r in submitted] == [third, first]

    limited = cli("list", "--limit", "2", "--json", home=village).json()
    assert [r["tracking"] for r in limited] == [third, second]

    table = cli("list", home=village)
    assert table.returncode == 0
    for tracking in (first, second, third):
        assert tracking in table.stdout
    assert resident_id(3) not in table.stdout


def test_show_json_has_the_history(cli: Run, village: Path) -> None:
    tracking = file_one(cli, village, "SB001", 5, *SB001_FIELDS)
    shown = view(cli, village, tracking)
    assert shown["tracking"] == tracking
    assert LIST_KEYS <= set(shown)
    assert shown["item"] == "SB001" and shown["office"] == DISTRICT
    history = shown["history"]
    assert [h["kind"] for h in history] == ["filed"]
    assert history[0]["origin"] == VILLAGE
    assert history[0]["actor"] == "测试代办员"
    # A village keeps personal data only sealed: its view is masked.
    assert "personal" not in shown
    assert shown["applicant"]["id_number"] == resident_id(5)[:4] + "*" * 10 + resident_id(5)[-4:]
    text = cli("show", tracking, home=village)
    assert text.returncode == 0 and tracking.replace(" ", "") in text.stdout.replace(" ", "")
    assert resident_id(5) not in text.stdout + text.stderr


# -- the office's work, at a town ---------------------------------------------------


def test_town_flow_with_owed_material(cli: Run, town: Path) -> None:
    filed = cli(*apply_args("MZ001", 10, *MZ001_FIELDS), "--json", home=town)
    assert filed.returncode == 0, filed.stderr
    tracking = filed.json()["tracking"]
    # Filed at the office that handles it: received at once.
    assert filed.json()["status"] == "received"
    assert filed.json()["office"] == TOWN

    accepted = cli("review", tracking, "accept", "--missing", "承诺书", "--json", home=town)
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.json()["status"] == "accepted"
    assert accepted.json()["owed"] == ["承诺书"]

    before = dump(town)
    line = refused(cli("review", tracking, "complete", home=town))
    assert "承诺书" in line
    assert dump(town) == before

    supplied = cli("supplement", tracking, "--material", "承诺书", "--json", home=town)
    assert supplied.returncode == 0, supplied.stderr
    assert supplied.json()["owed"] == []
    assert supplied.json()["status"] == "accepted"

    done = cli(
        "review",
        tracking,
        "complete",
        "--delivery",
        "post",
        "--post-tracking",
        "EA123456785CN",
        "--address",
        "山东省淄博市张店区南定镇大张村幸福路12号",
        "--json",
        home=town,
    )
    assert done.returncode == 0, done.stderr
    assert done.json()["status"] == "completed"
    assert done.json()["delivery"] == {
        "method": "post",
        "post_tracking": "EA123456785CN",
        "address": "山东省淄博市张店区南定镇****",
    }

    evaluated = cli("evaluate", tracking, "5", "--json", home=town)
    assert evaluated.returncode == 0, evaluated.stderr
    assert evaluated.json()["evaluation"] == 5

    before = dump(town)
    refused(cli("evaluate", tracking, "1", home=town))
    assert dump(town) == before

    shown = view(cli, town, tracking)
    assert [h["kind"] for h in shown["history"]] == [
        "filed",
        "received",
        "accepted",
        "supplemented",
        "completed",
        "evaluated",
    ]
    assert shown["evaluation"] == 5
    assert shown["completed_at"]
    # The office may read the personal data it handles.
    assert shown["personal"]["id_number"] == resident_id(10)


def test_postal_delivery_needs_a_tracking_number(cli: Run, town: Path) -> None:
    tracking = file_one(cli, town, "MZ001", 11, *MZ001_FIELDS)
    assert cli("review", tracking, "accept", home=town).returncode == 0
    before = dump(town)
    refused(cli("review", tracking, "complete", "--delivery", "post", home=town))
    assert dump(town) == before


def test_supplement_request_lists_everything_at_once(cli: Run, town: Path) -> None:
    tracking = file_one(cli, town, "MZ001", 12, *MZ001_FIELDS)
    asked = cli(
        "review",
        tracking,
        "supplement",
        "--missing",
        "户口簿",
        "--missing",
        "家庭经济状况核对授权书",
        "--json",
        home=town,
    )
    assert asked.returncode == 0, asked.stderr
    assert asked.json()["status"] == "needs_supplement"
    assert asked.json()["missing"] == ["户口簿", "家庭经济状况核对授权书"]
    request = [h for h in view(cli, town, tracking)["history"] if h["kind"] == "supplement_requested"]
    assert len(request) == 1  # one notice with everything (一次性告知)
    assert request[0]["body"]["missing"] == ["户口簿", "家庭经济状况核对授权书"]

    before = dump(town)
    refused(cli("review", tracking, "accept", home=town))  # not while materials are missing
    assert dump(town) == before

    part = cli("supplement", tracking, "--material", "户口簿", "--json", home=town)
    assert part.returncode == 0, part.stderr
    assert part.json()["status"] == "needs_supplement"
    assert part.json()["missing"] == ["家庭经济状况核对授权书"]

    rest = cli("supplement", tracking, "--json", home=town)  # everything outstanding
    assert rest.returncode == 0, rest.stderr
    assert rest.json()["status"] == "received"
    assert rest.json()["missing"] == []

    accepted = cli("review", tracking, "accept", "--json", home=town)
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.json()["status"] == "accepted"


def test_supplement_request_must_list_something(cli: Run, town: Path) -> None:
    tracking = file_one(cli, town, "MZ001", 13, *MZ001_FIELDS)
    before = dump(town)
    refused(cli("review", tracking, "supplement", home=town))
    assert dump(town) == before


def test_reject_needs_a_reason(cli: Run, town: Path) -> None:
    tracking = file_one(cli, town, "MZ001", 14, *MZ001_FIELDS)
    before = dump(town)
    line = refused(cli("review", tracking, "reject", home=town))
    assert "note" in line.lower() or "reason" in line.lower()
    assert dump(town) == before

    done = cli("review", tracking, "reject", "--note", "户籍不在本镇", "--json", home=town)
    assert done.returncode == 0, done.stderr
    assert done.json()["status"] == "rejected"
    rejected = [h for h in view(cli, town, tracking)["history"] if h["kind"] == "rejected"]
    assert rejected[0]["body"]["reason"] == "户籍不在本镇"


def test_withdraw_before_acceptance_only(cli: Run, town: Path) -> None:
    early = file_one(cli, town, "MZ001", 15, *MZ001_FIELDS)
    late = file_one(cli, town, "MZ001", 16, *MZ001_FIELDS)
    withdrawn = cli("withdraw", early, "--reason", "typo", "--json", home=town)
    assert withdrawn.returncode == 0, withdrawn.stderr
    assert withdrawn.json()["status"] == "withdrawn"

    assert cli("review", late, "accept", home=town).returncode == 0
    before = dump(town)
    refused(cli("withdraw", late, "--reason", "resident", home=town))
    assert dump(town) == before
    assert view(cli, town, late)["status"] == "accepted"


def test_due_date_counts_working_days_across_national_day(cli: Run, town: Path) -> None:
    # Accepted Wed 2026-09-30 with a 5-working-day limit. Oct 1–7 are off; working
    # days after that: Thu 8 (1), Fri 9 (2), Sat 10 (3, adjusted workday 调休),
    # Sun 11 off, Mon 12 (4), Tue 13 (5).
    clock = {"DAIBAN_CLOCK": "2026-09-30T10:00:00+08:00"}
    tracking = file_one(cli, town, "MZ003", 17, *MZ003_FIELDS, **clock)
    accepted = cli("review", tracking, "accept", "--json", home=town, env=clock)
    assert accepted.returncode == 0, accepted.stderr
    row = accepted.json()
    assert row["accepted_on"] == "2026-09-30"
    assert row["due_state"] == "known"
    assert row["due"] == "2026-10-13"
    listed = cli("list", "--json", home=town, env=clock).json()
    assert {r["tracking"]: r["due"] for r in listed}[tracking] == "2026-10-13"


def test_due_date_in_a_year_without_a_calendar_is_an_estimate(cli: Run, town: Path) -> None:
    # MZ001, 30 working days, accepted Tue 2026-12-01: 22 working days left in
    # December, then 2027 by rule (Jan 1 off): Jan 4-8, Jan 11-13.
    clock = {"DAIBAN_CLOCK": "2026-12-01T10:00:00+08:00"}
    tracking = file_one(cli, town, "MZ001", 18, *MZ001_FIELDS, **clock)
    accepted = cli("review", tracking, "accept", "--json", home=town, env=clock)
    assert accepted.returncode == 0, accepted.stderr
    row = accepted.json()
    assert row["due_state"] == "provisional"
    assert row["due"] == "2027-01-13"
    assert row["due_missing_year"] == 2027
    shown = view(cli, town, tracking)
    assert shown["due"] == "2027-01-13" and shown["due_provisional"] is True
    text = cli("show", tracking, home=town, env=clock, lang="zh").stdout
    assert "办结期限：2027-01-13（预计" in text
    listed = cli("list", home=town, env=clock, lang="zh").stdout
    assert "预计2027-01-13" in listed


def test_review_at_a_node_that_is_not_the_office_is_refused(cli: Run, village: Path) -> None:
    tracking = file_one(cli, village, "SB001", 19, *SB001_FIELDS)
    before = dump(village)
    for action in ("accept", "reject"):
        line = refused(cli("review", tracking, action, "--note", "x", home=village))
        assert DISTRICT in line
    assert dump(village) == before


# -- refusals: right exit code, one line, the agent's language, nothing changed ------


@pytest.fixture(scope="module")
def stocked_village(
    templates: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, str]]:
    """A village with applications in it, shared by the refusal tests (each
    checks that the store is the same after its refusal)."""
    home = Path(shutil.copytree(templates["village"], tmp_path_factory.mktemp("stocked") / "v"))
    out = _run(home, *apply_args("SB001", 30, *SB001_FIELDS))
    _run(home, *apply_args("MZ001", 31, *MZ001_FIELDS))
    yield home, out.stdout.splitlines()[0]


BAD_ID = ZIBO_ID[:-1] + "3"

# name: (argv after the global options, exit code, English text, words naming the
# field in English, a pattern naming it in Chinese)
REFUSALS: dict[str, tuple[list[str], int, str, str, str]] = {
    "bad id number": (
        [
            "apply",
            "--item",
            "SB001",
            "--name",
            "王秀兰",
            "--id-number",
            BAD_ID,
            "--phone",
            "13805331234",
            *SB001_FIELDS,
        ],
        1,
        "check character does not match",
        "ID number",
        "身份",
    ),
    "unknown item": (
        ["apply", "--item", "XX999", "--name", "王秀兰", "--id-number", ZIBO_ID, "--phone", "13805331234"],
        1,
        "is not in the catalog",
        "XX999",
        "XX999",
    ),
    "missing required field": (
        [
            "apply",
            "--item",
            "SB001",
            "--name",
            "王秀兰",
            "--id-number",
            resident_id(40),
            "--phone",
            "13805331234",
        ],
        1,
        "is required",
        "contribution_grade",
        "缴费档次",
    ),
    "bad phone": (
        [
            "apply",
            "--item",
            "SB001",
            "--name",
            "王秀兰",
            "--id-number",
            resident_id(41),
            "--phone",
            "12345",
            *SB001_FIELDS,
        ],
        1,
        "must be an 11-digit mobile number",
        "phone",
        "电话|手机",
    ),
    "bad tracking number": (
        ["show", "37030310120100000010"],
        1,
        "fails its check digit",
        "Tracking number",
        "37030310120100000010",
    ),
    "bad score": (["evaluate", "{tracking}", "9"], 2, "a score is 1 to 5", "SCORE", "SCORE"),
    "unknown command": (["frobnicate"], 2, "invalid choice", "frobnicate", "frobnicate"),
    "missing --item": (
        ["apply", "--name", "王秀兰", "--id-number", resident_id(42), "--phone", "13805331234"],
        2,
        "the following arguments are required",
        "--item",
        "--item",
    ),
}


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusal_exits_with_a_reason_and_changes_nothing(
    cli: Run, stocked_village: tuple[Path, str], case: str, lang: str
) -> None:
    home, tracking = stocked_village
    argv, code, english, en_field, zh_field = REFUSALS[case]
    argv = [a.replace("{tracking}", tracking) for a in argv]
    before = dump(home)
    # The --lang flag wins over DAIBAN_LANG set to the other language.
    other = "zh" if lang == "en" else "en"
    result = cli("--lang", lang, *argv, home=home, lang=other)
    no_traceback(result)
    assert result.returncode == code, (result.stdout, result.stderr)
    if code == 1:
        line = refused(result)
    else:
        line = result.stderr.strip().splitlines()[-1]
    if lang == "en":
        assert english in line
        assert en_field in line
    else:
        assert CJK.search(line), f"not in Chinese: {line!r}"
        assert english not in line, f"untranslated: {line!r}"
        assert re.search(zh_field, line), line
    assert result.stdout == ""
    assert dump(home) == before


def test_language_defaults_to_chinese_and_follows_daiban_lang(
    cli: Run, stocked_village: tuple[Path, str]
) -> None:
    home, _tracking = stocked_village
    argv = ["show", "37030310120100000010"]
    english = refused(cli(*argv, home=home, lang="en"))
    assert "check digit" in english and not CJK.search(english)
    default = refused(cli(*argv, home=home, lang=""))
    assert CJK.search(default), f"the default language is Chinese: {default!r}"


def test_a_duplicate_in_progress_is_refused(cli: Run, village: Path) -> None:
    first = file_one(cli, village, "SB001", 50, *SB001_FIELDS)
    before = dump(village)
    line = refused(cli(*apply_args("SB001", 50, *SB001_FIELDS), home=village))
    assert first in line
    assert dump(village) == before
    # Another item for the same resident is fine, and so is the same item once
    # the first application is no longer in progress.
    file_one(cli, village, "MZ001", 50, *MZ001_FIELDS)
    assert cli("withdraw", first, "--reason", "duplicate", home=village).returncode == 0
    again = file_one(cli, village, "SB001", 50, *SB001_FIELDS)
    assert again != first


def test_owing_a_material_that_cannot_be_owed_is_refused(cli: Run, village: Path) -> None:
    before = dump(village)
    line = refused(cli(*apply_args("MZ001", 51, *MZ001_FIELDS), "--missing", "户口簿", home=village))
    assert "户口簿" in line
    assert dump(village) == before
    filed = cli(*apply_args("MZ001", 51, *MZ001_FIELDS), "--missing", "承诺书", "--json", home=village)
    assert filed.returncode == 0, filed.stderr
    assert filed.json()["owed"] == ["承诺书"]


# -- help, and a home that does not exist ----------------------------------------------


def _commands() -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []

    def walk(parser: argparse.ArgumentParser, prefix: tuple[str, ...]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found.append((*prefix, name))
                    walk(sub, (*prefix, name))

    walk(cli_module.build_parser(), ())
    return found


def test_help_covers_every_command() -> None:
    commands = _commands()
    for expected in (
        "init",
        "apply",
        "list",
        "show",
        "review",
        "supplement",
        "withdraw",
        "evaluate",
        "catalog",
        ("catalog", "list"),
        ("catalog", "show"),
    ):
        assert (expected if isinstance(expected, tuple) else (expected,)) in commands


@pytest.mark.parametrize("command", [(), *_commands()], ids=lambda c: " ".join(c) or "daiban")
def test_help_exits_0_with_text(cli: Run, tmp_path: Path, command: tuple[str, ...]) -> None:
    home = tmp_path / "never-made"
    result = cli(*command, "--help", home=home)
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()
    assert "--help" in result.stdout or "-h" in result.stdout
    if command:
        assert f"daiban {' '.join(command)}" in result.stdout
    else:
        for name in ("init", "apply", "list", "review", "catalog"):
            assert name in result.stdout
    assert not home.exists()


@pytest.mark.parametrize("argv", [["list"], ["catalog", "list"], ["apply", "--from", "x.csv"]])
def test_a_home_that_does_not_exist_gives_a_hint(cli: Run, tmp_path: Path, argv: list[str]) -> None:
    home = tmp_path / "nowhere"
    line = refused(cli(*argv, home=home))
    assert "init" in line
    assert not (home / "daiban.db").exists()


def test_frozen_clock_is_iso_and_dates_are_cst(cli: Run, town: Path) -> None:
    clock = {"DAIBAN_CLOCK": "2026-11-27T23:30:00+00:00"}  # already the 28th in China
    tracking = file_one(cli, town, "MZ003", 60, *MZ003_FIELDS, **clock)
    row = cli("review", tracking, "accept", "--json", home=town, env=clock).json()
    assert row["accepted_on"] == "2026-11-28"
    assert dt.datetime.fromisoformat(row["filed_at"]).utcoffset() == dt.timedelta(hours=8)


@pytest.mark.parametrize("word", ["已受理", "accepted", "受理"])
def test_list_status_in_the_users_words(cli: Run, town: Path, word: str) -> None:
    clock = {"DAIBAN_CLOCK": "2026-09-30T10:00:00+08:00"}
    accepted = file_one(cli, town, "MZ003", 31, *MZ003_FIELDS, **clock)
    waiting = file_one(cli, town, "MZ003", 32, *MZ003_FIELDS, **clock)
    assert cli("review", accepted, "accept", home=town, env=clock).returncode == 0
    result = cli("list", "--status", word, "--json", home=town, lang="zh")
    if word == "受理":  # not a status's name: refused, the choices named
        assert result.returncode == 2 and "accepted" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    assert [r["tracking"] for r in result.json()] == [accepted]
    assert waiting not in result.stdout
