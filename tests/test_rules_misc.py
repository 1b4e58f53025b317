"""Small pure rules: masking personal values, division codes and offices, and
the service catalog (checking a document, pinyin-initials search)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from daiban.errors import DaibanError
from daiban.node import catalog, divisions, masking

# ---------------------------------------------------------------------------
# Masking


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("王秀兰", "王*兰"),
        ("王五", "王*"),
        ("买买提·艾力", "买****力"),
        ("王", "*"),
    ],
)
def test_mask_name(name: str, masked: str) -> None:
    assert masking.mask_name(name) == masked


def test_mask_id_number() -> None:
    assert masking.mask_id_number("370303198001010012") == "3703**********0012"
    assert masking.mask_id_number("11010519491231002X") == "1101**********002X"


def test_mask_phone() -> None:
    assert masking.mask_phone("13805331234") == "138****1234"


@pytest.mark.parametrize("value", ["370303198001010012", "11010519491231002X"])
def test_masked_id_hides_birth_date(value: str) -> None:
    masked = masking.mask_id_number(value)
    assert len(masked) == len(value)
    assert value[6:14] not in masked


# ---------------------------------------------------------------------------
# Division codes


@pytest.mark.parametrize(
    ("code", "role"),
    [
        ("3703", "city"),
        ("370303", "district"),
        ("370303101", "town"),
        ("370303101201", "village"),
        ("37030", None),
        ("37", None),
        ("3703031012011", None),
    ],
)
def test_role_of(code: str, role: str | None) -> None:
    assert divisions.role_of(code) == role


@pytest.mark.parametrize(
    ("code", "role"),
    [
        ("3703", "city"),
        ("370303", "district"),
        ("370323", "district"),
        ("370303001", "town"),  # 车站街道
        ("370323111", "town"),  # 南鲁山镇
        ("370303101201", "village"),
        ("370303101001", "village"),
    ],
)
def test_check_code_accepts(code: str, role: str) -> None:
    assert divisions.check_code(code) == code
    assert divisions.check_code(code, role) == code


def test_check_code_strips_whitespace() -> None:
    assert divisions.check_code(" 370303 \n") == "370303"


@pytest.mark.parametrize(
    "code", ["37030", "3703031", "37030310", "3703031012", "37030310120", "3703031012011", ""]
)
def test_check_code_refuses_wrong_lengths(code: str) -> None:
    with pytest.raises(DaibanError) as info:
        divisions.check_code(code)
    assert info.value.code == "bad_code"


@pytest.mark.parametrize("code", ["3703a3", "370-303", "3703 03", "３７０３", "37030３"])
def test_check_code_refuses_non_digits(code: str) -> None:
    with pytest.raises(DaibanError) as info:
        divisions.check_code(code)
    assert info.value.code == "bad_code"


@pytest.mark.parametrize(
    "code",
    [
        "370300",  # the city written the GB/T 2260 way, not a district
        "370303000",  # empty town segment
        "370303101000",  # empty village segment
        "370300101201",  # empty district segment under a village
    ],
)
def test_check_code_refuses_zero_segments(code: str) -> None:
    with pytest.raises(DaibanError) as info:
        divisions.check_code(code)
    assert info.value.code == "bad_code"


@pytest.mark.parametrize(
    ("code", "role"),
    [
        ("370303", "town"),
        ("370303101", "village"),
        ("370303101201", "district"),
        ("3703", "district"),
    ],
)
def test_check_code_refuses_role_mismatch(code: str, role: str) -> None:
    with pytest.raises(DaibanError) as info:
        divisions.check_code(code, role)
    assert info.value.code == "bad_code"
    assert code in info.value.message


@pytest.mark.parametrize(
    ("region", "level", "office"),
    [
        ("370303101201", "town", "370303101"),
        ("370303101201", "district", "370303"),
        ("370303101201", "city", "3703"),
        ("370303101", "town", "370303101"),
        ("370303101", "district", "370303"),
        ("370303", "district", "370303"),
        ("370303", "city", "3703"),
        ("3703", "city", "3703"),
    ],
)
def test_office_for(region: str, level: str, office: str) -> None:
    assert divisions.office_for(region, level) == office


@pytest.mark.parametrize(
    ("region", "level"),
    [
        ("370303", "town"),
        ("3703", "town"),
        ("3703", "district"),
    ],
)
def test_office_for_too_coarse_is_none(region: str, level: str) -> None:
    assert divisions.office_for(region, level) is None


# ---------------------------------------------------------------------------
# Catalog

SB001_NAME = "城乡居民基本养老保险参保登记"


@pytest.fixture(scope="module")
def bundled_doc() -> dict[str, Any]:
    return catalog.read_document(catalog.bundled_path())


@pytest.fixture(scope="module")
def items(bundled_doc: dict[str, Any]) -> list[catalog.Item]:
    return [catalog.Item.from_doc(doc, catalog.initials_of(doc["name"])) for doc in bundled_doc["items"]]


def codes(found: list[catalog.Item]) -> list[str]:
    return [item.code for item in found]


def test_initials_of() -> None:
    initials = catalog.initials_of(SB001_NAME)
    assert initials.startswith("cxjm")
    assert initials == "cxjmjbylbxcbdj"
    assert catalog.initials_of("《就业创业证》申领") == "jycyzsl"  # punctuation dropped


def test_bundled_catalog_has_sb001(items: list[catalog.Item]) -> None:
    sb001 = next(item for item in items if item.code == "SB001")
    assert sb001.name == SB001_NAME
    assert sb001.initials.startswith("cxjm")


def test_search_by_pinyin_initials_prefix(items: list[catalog.Item]) -> None:
    assert "SB001" in codes(catalog.search(items, "cxjm"))
    assert "SB001" in codes(catalog.search(items, "CXJM"))


def test_search_by_pinyin_initials_cxjmyl(items: list[catalog.Item]) -> None:
    # 城乡居民(cxjm)…养老(yl): the documented way an agent finds SB001.
    found = codes(catalog.search(items, "cxjmyl"))
    assert "SB001" in found


def test_search_by_chinese_substring(items: list[catalog.Item]) -> None:
    found = codes(catalog.search(items, "养老"))
    assert "SB001" in found
    assert "SB002" in found
    assert "MZ003" not in found  # 临时救助
    assert all("养老" in item.name for item in catalog.search(items, "养老"))


@pytest.mark.parametrize("query", ["SB001", "sb001", " SB001 "])
def test_search_by_code(items: list[catalog.Item], query: str) -> None:
    assert codes(catalog.search(items, query)) == ["SB001"]


def test_search_by_level(items: list[catalog.Item]) -> None:
    city = catalog.search(items, level="city")
    assert city
    assert all(item.level == "city" for item in city)
    assert "SB001" not in codes(city)  # a district item
    district = catalog.search(items, "养老", level="district")
    assert "SB001" in codes(district)
    assert catalog.search(items, "养老", level="town") == []


def test_empty_query_finds_everything(items: list[catalog.Item]) -> None:
    assert len(catalog.search(items, "")) == len(items)


def test_search_finds_nothing_for_unrelated_query(items: list[catalog.Item]) -> None:
    assert catalog.search(items, "护照签证") == []
    assert catalog.search(items, "zzzz") == []


def test_bundled_document_passes_check(bundled_doc: dict[str, Any]) -> None:
    catalog.check_document(copy.deepcopy(bundled_doc))  # no exception
    assert len({item["code"] for item in bundled_doc["items"]}) == len(bundled_doc["items"])


def test_check_document_refuses_duplicate_code(bundled_doc: dict[str, Any]) -> None:
    doc = copy.deepcopy(bundled_doc)
    doc["items"].append(copy.deepcopy(doc["items"][0]))
    with pytest.raises(DaibanError) as info:
        catalog.check_document(doc)
    assert info.value.code == "bad_catalog"
    assert doc["items"][0]["code"] in info.value.message


def test_check_document_refuses_missing_items(bundled_doc: dict[str, Any]) -> None:
    doc = copy.deepcopy(bundled_doc)
    del doc["items"]
    with pytest.raises(DaibanError) as info:
        catalog.check_document(doc)
    assert info.value.code == "bad_catalog"
    assert "items" in info.value.message
