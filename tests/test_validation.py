"""Validation of what a resident hands over (daiban/node/validation.py), with
the worked examples of REFERENCE.md §1: resident ID numbers (GB 11643), credit
codes (GB 32100), phones, names, control characters and item form fields."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import ric

from daiban import i18n
from daiban.errors import ValidationFailed
from daiban.node import validation as v

TODAY = dt.date(2026, 11, 27)
CJK = re.compile(r"[\u3400-\u9fff]")

# REFERENCE.md weights: 2^(17-i) mod 11, check = "10X98765432"[S % 11].
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def reference_check(body17: str) -> str:
    s = sum(int(d) * w for d, w in zip(body17, WEIGHTS, strict=True))
    return "10X98765432"[s % 11]


def with_check(body17: str) -> str:
    """A full number whose check character is right. stdnum's calc_check_digit
    takes the whole 18 characters and ignores the last, hence the placeholder."""
    check = ric.calc_check_digit(body17 + "0")
    assert check == reference_check(body17)
    return body17 + check


def refused(call: Any, *args: Any, **kwargs: Any) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as info:
        call(*args, **kwargs)
    return info.value


# ---------------------------------------------------------------------------
# Resident ID number


def test_reference_worked_examples_of_the_check() -> None:
    # S=167 → 2 → "X"; S=186 → 10 → "2"; 44052418800101001 → "4".
    assert reference_check("11010519491231002") == "X"
    assert reference_check("37030319800101001") == "2"
    assert reference_check("44052418800101001") == "4"
    assert with_check("37030319800101001") == "370303198001010012"


@pytest.mark.parametrize("number", ["11010519491231002X", "370303198001010012"])
def test_valid_resident_ids(number: str) -> None:
    checked = v.id_number(number, today=TODAY)
    assert checked.value == number
    assert checked.warnings == []


def test_lowercase_x_is_normalised() -> None:
    assert v.id_number("11010519491231002x", today=TODAY).value == "11010519491231002X"


def test_surrounding_whitespace_is_dropped() -> None:
    assert v.id_number(" 370303198001010012 ", today=TODAY).value == "370303198001010012"


@pytest.mark.parametrize(
    "number",
    [
        "370303198001010013",  # last digit off by one
        "370303198001010010",
        "110105194912310020",  # X replaced by 0
        "370303198001010021",  # two sequence digits swapped: 12 → 21
    ],
)
def test_wrong_check_character(number: str) -> None:
    error = refused(v.id_number, number, today=TODAY)
    assert [p.field for p in error.problems] == ["id_number"]
    assert "check character" in error.problems[0].reason


def test_impossible_birth_date_with_correct_check() -> None:
    number = with_check("37030319900229001")  # 1990 is not a leap year
    error = refused(v.id_number, number, today=TODAY)
    assert error.problems[0].field == "id_number"
    assert "19900229" in error.problems[0].reason
    assert "does not exist" in error.problems[0].reason


def test_leap_day_of_a_leap_year_is_fine() -> None:
    number = with_check("37030319880229001")
    assert v.id_number(number, today=TODAY).value == number


def test_future_birth_date() -> None:
    tomorrow = with_check("37030320261128001")
    error = refused(v.id_number, tomorrow, today=TODAY)
    assert "future" in error.problems[0].reason
    # Born today is not in the future.
    born_today = with_check("37030320261127001")
    assert v.id_number(born_today, today=TODAY).value == born_today


def test_birth_before_1900() -> None:
    error = refused(v.id_number, with_check("37030318991231001"), today=TODAY)
    assert "1900" in error.problems[0].reason
    # REFERENCE.md's own example 440524188001010014 (born 1880) has a right check.
    error = refused(v.id_number, "440524188001010014", today=TODAY)
    assert "1900" in error.problems[0].reason
    first = with_check("37030319000101001")
    assert v.id_number(first, today=TODAY).value == first


@pytest.mark.parametrize("number", ["37030319800101001", "3703031980010100122", "370303", ""])
def test_wrong_length(number: str) -> None:
    error = refused(v.id_number, number, today=TODAY)
    assert [p.field for p in error.problems] == ["id_number"]


@pytest.mark.parametrize("number", ["37030319800101001A", "3703031980O1010012", "X70303198001010012"])
def test_letters_refused(number: str) -> None:
    error = refused(v.id_number, number, today=TODAY)
    assert error.problems[0].field == "id_number"
    assert "digit" in error.problems[0].reason


def test_unknown_region_only_warns() -> None:
    number = with_check("99030319800101001")  # 99 is no province
    checked = v.id_number(number, today=TODAY)
    assert checked.value == number
    assert len(checked.warnings) == 1
    assert "990303" in checked.warnings[0]


def test_historical_region_is_accepted() -> None:
    # 莱芜 3712xx, merged into 济南 in 2019; people keep their numbers.
    number = with_check("37120219800101001")
    checked = v.id_number(number, today=TODAY)
    assert checked.value == number
    assert checked.warnings == []


# ---------------------------------------------------------------------------
# Unified Social Credit Code


@pytest.mark.parametrize("code", ["91370303MAKEJDBW7N", "13370303MB2317407H"])
def test_valid_credit_codes(code: str) -> None:
    checked = v.credit_code(code)
    assert checked.value == code
    assert checked.warnings == []


def test_credit_code_lower_case_normalised() -> None:
    assert v.credit_code("91370303makejdbw7n").value == "91370303MAKEJDBW7N"


def test_legacy_code_failing_check_is_refused() -> None:
    error = refused(v.credit_code, "91350203M0001QAY9B")
    assert [p.field for p in error.problems] == ["uscc"]
    assert "check character" in error.problems[0].reason


def test_legacy_code_accepted_when_allowed_with_warning() -> None:
    checked = v.credit_code("91350203M0001QAY9B", allow_unchecked=True)
    assert checked.value == "91350203M0001QAY9B"
    assert len(checked.warnings) == 1


@pytest.mark.parametrize(
    "code",
    [
        "91370303MAKEJDBW7",  # 17 characters
        "91370303MAKEJDBWIN",  # I is not in the symbol set
        "91370303MAKEJDBW7O",  # nor O
        "913703A3MAKEJDBW7N",  # a letter in the region digits
    ],
)
def test_malformed_credit_code_refused_even_when_unchecked_allowed(code: str) -> None:
    error = refused(v.credit_code, code, allow_unchecked=True)
    assert error.problems[0].field == "uscc"


def test_credit_code_wrong_check_character() -> None:
    refused(v.credit_code, "91370303MAKEJDBW7M")


# ---------------------------------------------------------------------------
# Phone


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("13805331234", "13805331234"),
        ("19905331234", "19905331234"),
        ("0533-2281234", "0533-2281234"),
        ("05332281234", "05332281234"),
        ("+86 138 0533 1234", "13805331234"),
    ],
)
def test_phone_accepted(raw: str, value: str) -> None:
    assert v.phone(raw).value == value


@pytest.mark.parametrize(
    "raw",
    [
        "12345678901",  # 12x is no mobile prefix
        "1380533123",  # 10 digits
        "138053312345",  # 12 digits
        "10086",
        "abcdefghijk",
        "",
    ],
)
def test_phone_refused(raw: str) -> None:
    error = refused(v.phone, raw)
    assert [p.field for p in error.problems] == ["phone"]


# ---------------------------------------------------------------------------
# Names


@pytest.mark.parametrize("name", ["王秀兰", "买买提·艾力", "王五"])
def test_person_name_accepted(name: str) -> None:
    assert v.person_name(name).value == name


def test_person_name_collapses_spaces() -> None:
    assert v.person_name("  John   Smith ").value == "John Smith"


@pytest.mark.parametrize(
    "name",
    [
        "[@click=app.quit]张三[/]",  # Textual markup
        "张\x1b[31m三",  # ANSI escape
        "张三<script>",
        "张三1",
        "王" * 41,
    ],
)
def test_person_name_refuses_markup_and_junk(name: str) -> None:
    error = refused(v.person_name, name)
    assert [p.field for p in error.problems] == ["name"]


@pytest.mark.parametrize("name", ["", "   ", "\t"])
def test_person_name_required(name: str) -> None:
    error = refused(v.person_name, name)
    assert "required" in error.problems[0].reason


# ---------------------------------------------------------------------------
# Control characters


def test_strip_controls() -> None:
    dirty = "王\x1b[31m秀\x07兰\x9b2J\u202e你好\x00\n第二行\t完"
    assert v.strip_controls(dirty) == "王[31m秀兰2J你好\n第二行\t完"


@pytest.mark.parametrize("ch", ["\x1b", "\x07", "\x9b", "\u202e", "\u202d", "\u2066", "\x7f", "\r", "\u2028"])
def test_strip_controls_removes_each(ch: str) -> None:
    assert v.strip_controls(f"a{ch}b") == "ab"


def test_strip_controls_keeps_newline_tab_and_text() -> None:
    text = "申请人：王秀兰\n地址：张店区\t南定镇 · 大张村"
    assert v.strip_controls(text) == text


def test_text_is_cleaned_and_bounded() -> None:
    assert v.text("  不符合\x1b条件 ", label="reason", key="reason") == "不符合条件"
    error = refused(v.text, "字" * 501, label="reason", key="reason")
    assert error.problems[0].field == "reason"
    error = refused(v.text, "\x1b\x07", label="reason", key="reason", required=True)
    assert error.problems[0].field == "reason"


# ---------------------------------------------------------------------------
# Item form fields

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "grade": {"title": "缴费档次", "type": "string", "enum": ["300", "500", "1000"]},
        "members": {"title": "家庭人口", "type": "integer", "minimum": 1},
        "disabled": {"title": "是否残疾", "type": "boolean"},
        "start": {"title": "开始日期", "type": "string", "format": "date"},
        "spouse_id": {"title": "配偶身份证号", "type": "string", "format": "cn-ric"},
        "village": {"title": "所在村", "type": "string"},
    },
    "required": ["grade", "village"],
    "additionalProperties": False,
}

# One bad value for each kind of rule, plus an unknown key and a required
# field left out: 7 problems, one per field.
BAD = {
    "grade": "800",  # not in the enum
    "members": "0",  # below the minimum
    "disabled": "也许",  # not yes/no
    "start": "2026-02-30",  # no such date
    "spouse_id": "370303198001010013",  # wrong check character
    "color": "红",  # not a field of the item
    # "village" is required and missing
}
BAD_FIELDS = {"grade", "members", "disabled", "start", "spouse_id", "color", "village"}


def test_fields_accepts_and_types_values() -> None:
    checked = v.fields(
        SCHEMA,
        {
            "grade": "500",
            "members": " 3 ",
            "disabled": "是",
            "start": "2026/11/01",
            "spouse_id": "11010519491231002x",
            "village": "大张村",
        },
        today=TODAY,
    )
    assert checked.value == {
        "grade": "500",
        "members": 3,
        "disabled": True,
        "start": "2026-11-01",
        "spouse_id": "11010519491231002X",
        "village": "大张村",
    }
    assert checked.warnings == []


@pytest.mark.parametrize(
    ("word", "value"), [("是", True), ("否", False), ("yes", True), ("No", False), ("1", True), ("0", False)]
)
def test_fields_boolean_words(word: str, value: bool) -> None:
    checked = v.fields(SCHEMA, {"grade": "300", "village": "大张村", "disabled": word}, today=TODAY)
    assert checked.value["disabled"] is value


def test_fields_empty_values_count_as_absent() -> None:
    checked = v.fields(
        SCHEMA,
        {"grade": "300", "village": "大张村", "members": "", "start": "  ", "disabled": None},
        today=TODAY,
    )
    assert checked.value == {"grade": "300", "village": "大张村"}
    error = refused(v.fields, SCHEMA, {"grade": "300", "village": "  "}, today=TODAY)
    assert [p.field for p in error.problems] == ["village"]


def test_fields_warnings_pass_through() -> None:
    odd = with_check("99030319800101001")
    checked = v.fields(SCHEMA, {"grade": "300", "village": "大张村", "spouse_id": odd}, today=TODAY)
    assert checked.value["spouse_id"] == odd
    assert len(checked.warnings) == 1


def test_fields_reports_every_problem_at_once() -> None:
    error = refused(v.fields, SCHEMA, BAD, today=TODAY)
    by_field = {p.field: p.reason for p in error.problems}
    assert set(by_field) == BAD_FIELDS
    assert len(error.problems) == len(BAD_FIELDS)  # one problem per field
    assert "300" in by_field["grade"] and "1000" in by_field["grade"]
    assert "1" in by_field["members"]
    assert "是/否" in by_field["disabled"]
    assert "date" in by_field["start"]
    assert "check character" in by_field["spouse_id"]
    assert "not a field" in by_field["color"]
    assert "required" in by_field["village"]
    # The single message names every field.
    for name in BAD_FIELDS:
        assert name in error.message


def test_fields_non_integer() -> None:
    error = refused(v.fields, SCHEMA, {"grade": "300", "village": "大张村", "members": "三"}, today=TODAY)
    assert [p.field for p in error.problems] == ["members"]
    assert "whole number" in error.problems[0].reason


def test_fields_in_chinese() -> None:
    i18n.set_language("zh")
    error = refused(v.fields, SCHEMA, BAD, today=TODAY)
    assert {p.field for p in error.problems} == BAD_FIELDS
    # Every reason is in Chinese, not only the labels.
    for problem in error.problems:
        assert CJK.search(problem.reason), (problem.field, problem.reason)
    assert "must" not in error.message and "required" not in error.message
    titles = {key: spec["title"] for key, spec in SCHEMA["properties"].items()}
    for problem in error.problems:
        if problem.field in titles:
            # In Chinese, a field is labelled by its Chinese title.
            assert problem.label == titles[problem.field]
            assert titles[problem.field] in error.message
            assert CJK.search(problem.text)
        else:
            assert problem.label == problem.field  # "color": unknown, no title


# -- names as the ID office writes them (issue 13) ---------------------------


@pytest.mark.parametrize("name", ["李〇", "王\U00020000", "陈\U0002a6d6华", "林\U00030000", "欧阳\uf900"])
def test_names_take_ling_and_uncommon_ideographs(name: str) -> None:
    assert v.person_name(name).value == name


@given(st.text(min_size=1, max_size=10))
def test_names_with_a_digit_or_a_control_are_refused(text: str) -> None:
    name = "王" + text + "3"
    with pytest.raises(ValidationFailed):
        v.person_name(name)
    control = "王" + text + "\x1b"
    with pytest.raises(ValidationFailed):
        v.person_name(control)
