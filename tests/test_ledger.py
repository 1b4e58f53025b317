"""``daiban apply --from FILE``: a ledger (台账) of many applications, as CSV in
UTF-8 (with or without BOM) or GBK, or as XLSX, with Chinese headers and item
fields by their Chinese titles. Every row is filed, or none: a refused row is
reported by its number and nothing is stored."""

from __future__ import annotations

import csv
import io
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from openpyxl import Workbook

from tests.conftest import DAIBAN, Result

VILLAGE = "370303101201"
Run = Callable[..., Result]

HEADER = [
    "姓名",
    "身份证号",
    "联系电话",
    "事项编码",
    "缴费档次（元/年）",
    "共同生活家庭成员人数",
    "家庭月人均收入（元）",
]


def resident_id(serial: int, birth: str = "19800101", region: str = "370303") -> str:
    """A resident ID number with its GB 11643 check character (ISO 7064 MOD 11-2)."""
    body = f"{region}{birth}{serial:03d}"
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(d) * w for d, w in zip(body, weights, strict=True))
    return body + "10X98765432"[total % 11]


def bad_id(serial: int) -> str:
    good = resident_id(serial)
    return good[:-1] + ("0" if good[-1] != "0" else "1")


def good_rows() -> list[list[object]]:
    return [
        ["王秀兰", resident_id(1), "13805331234", "SB001", 500, "", ""],
        ["张伟", resident_id(2), "13905332345", "MZ001", "", 3, 420],
        ["欧阳娜娜", resident_id(3), "0533-1234567", "SB001", 300, "", ""],
    ]


def csv_bytes(
    rows: Sequence[Sequence[object]], header: Sequence[str] = HEADER, encoding: str = "utf-8"
) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def write_xlsx(path: Path, rows: Sequence[Sequence[object]], header: Sequence[str] = HEADER) -> Path:
    book = Workbook()
    sheet = book.active
    sheet.append(list(header))
    for row in rows:
        sheet.append([None if cell == "" else cell for cell in row])
    book.save(path)
    return path


def dump(home: Path) -> list[str]:
    conn = sqlite3.connect(home / "daiban.db")
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def listed(cli: Run, home: Path) -> list[dict]:
    result = cli("list", "--json", home=home)
    assert result.returncode == 0, result.stderr
    return result.json()  # type: ignore[return-value]


def clean(result: Result) -> None:
    assert "Traceback" not in result.stderr + result.stdout


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("ledger-template") / "village"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAIBAN_")}
    env.update({"DAIBAN_HOME": str(home), "DAIBAN_LANG": "en"})
    proc = subprocess.run(
        [DAIBAN, "init", "--role", "village", "--code", VILLAGE, "--name", "大张村代办点"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return home


@pytest.fixture
def village(template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "village"))


def assert_filed_good_rows(cli: Run, home: Path) -> None:
    rows = listed(cli, home)
    assert len(rows) == 3
    assert sorted((r["item"], r["applicant"]["name"]) for r in rows) == sorted(
        [("SB001", "王*兰"), ("MZ001", "张*"), ("SB001", "欧**娜")]
    )
    assert {r["item"]: r["office"] for r in rows} == {"SB001": "370303", "MZ001": "370303101"}
    assert all(r["status"] == "submitted" for r in rows)


# -- formats ---------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
def test_csv_ledger_is_filed(cli: Run, village: Path, tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "台账.csv"
    path.write_bytes(csv_bytes(good_rows(), encoding=encoding))
    if encoding == "utf-8-sig":
        assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    result = cli("apply", "--from", str(path), home=village)
    clean(result)
    assert result.returncode == 0, result.stderr
    assert "3" in result.stdout
    assert_filed_good_rows(cli, village)


def test_xlsx_ledger_is_filed(cli: Run, village: Path, tmp_path: Path) -> None:
    rows = good_rows()
    rows[1][6] = 420.5  # a real number cell
    path = write_xlsx(tmp_path / "台账.xlsx", rows)
    result = cli("apply", "--from", str(path), "--json", home=village)
    clean(result)
    assert result.returncode == 0, result.stderr
    report = result.json()
    assert report["ok"] is True and report["filed"] == 3
    assert len({a["tracking"] for a in report["applications"]}) == 3
    assert_filed_good_rows(cli, village)


def test_english_headers_and_field_keys(cli: Run, village: Path, tmp_path: Path) -> None:
    header = ["item", "name", "id_number", "phone", "contribution_grade", "family_size", "monthly_income"]
    rows = [[r[3], r[0], r[1], r[2], *r[4:]] for r in good_rows()]
    path = tmp_path / "ledger.csv"
    path.write_bytes(csv_bytes(rows, header=header))
    result = cli("apply", "--from", str(path), home=village)
    assert result.returncode == 0, result.stderr
    assert_filed_good_rows(cli, village)


# -- refused ledgers store nothing --------------------------------------------------------


def test_a_malformed_row_refuses_the_whole_ledger(cli: Run, village: Path, tmp_path: Path) -> None:
    rows = good_rows()
    rows.insert(2, ["赵六", bad_id(4), "13705334567", "SB001", 500, "", ""])  # line 4
    path = tmp_path / "台账.csv"
    path.write_bytes(csv_bytes(rows))
    before = dump(village)
    result = cli("apply", "--from", str(path), home=village)
    clean(result)
    assert result.returncode == 1
    assert "row 4" in result.stderr
    assert "ID number" in result.stderr
    assert "row 2" not in result.stderr and "row 3" not in result.stderr
    assert dump(village) == before

    as_json = cli("apply", "--from", str(path), "--json", home=village)
    assert as_json.returncode == 1
    report = as_json.json()
    assert report["ok"] is False and report["filed"] == 0
    assert [r["row"] for r in report["refused"]] == [4]
    assert dump(village) == before

    rows[2][1] = resident_id(4)  # fixed
    path.write_bytes(csv_bytes(rows))
    fixed = cli("apply", "--from", str(path), home=village)
    assert fixed.returncode == 0, fixed.stderr
    assert len(listed(cli, village)) == 4


def test_every_refused_row_is_reported_at_once(cli: Run, village: Path, tmp_path: Path) -> None:
    rows = good_rows()
    rows[0][2] = "12345"  # row 2: phone
    rows[1][5] = ""  # row 3: required field family_size
    path = write_xlsx(tmp_path / "台账.xlsx", rows)
    before = dump(village)
    result = cli("apply", "--from", str(path), home=village)
    clean(result)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    row2 = [line for line in lines if "row 2" in line]
    row3 = [line for line in lines if "row 3" in line]
    assert row2 and "phone" in row2[0]
    assert row3 and "family_size" in row3[0]
    assert not any("row 4" in line for line in lines)
    assert dump(village) == before


def test_the_same_ledger_twice_files_nothing_again(cli: Run, village: Path, tmp_path: Path) -> None:
    path = tmp_path / "台账.csv"
    path.write_bytes(csv_bytes(good_rows()))
    assert cli("apply", "--from", str(path), home=village).returncode == 0
    before = dump(village)
    again = cli("apply", "--from", str(path), home=village)
    clean(again)
    assert again.returncode == 1
    assert "already imported" in again.stderr
    assert dump(village) == before
    copy = tmp_path / "台账-副本.csv"
    copy.write_bytes(path.read_bytes())
    assert cli("apply", "--from", str(copy), home=village).returncode == 1
    assert dump(village) == before
    assert len(listed(cli, village)) == 3


def test_two_rows_for_the_same_resident_and_item_are_refused(cli: Run, village: Path, tmp_path: Path) -> None:
    rows = good_rows()
    rows.append(["王秀兰", resident_id(1), "13805331234", "SB001", 800, "", ""])  # line 5
    path = tmp_path / "台账.csv"
    path.write_bytes(csv_bytes(rows))
    before = dump(village)
    result = cli("apply", "--from", str(path), home=village)
    clean(result)
    assert result.returncode == 1
    refused = [line for line in result.stderr.splitlines() if line.startswith("row 5")]
    assert refused and "row 2" in refused[0]
    assert dump(village) == before


def test_a_row_already_in_progress_is_refused(cli: Run, village: Path, tmp_path: Path) -> None:
    single = cli(
        "apply",
        "--item",
        "MZ001",
        "--name",
        "张伟",
        "--id-number",
        resident_id(2),
        "--phone",
        "13905332345",
        "--field",
        "family_size=3",
        "--field",
        "monthly_income=420",
        home=village,
    )
    assert single.returncode == 0, single.stderr
    tracking = single.stdout.splitlines()[0]
    path = tmp_path / "台账.csv"
    path.write_bytes(csv_bytes(good_rows()))
    before = dump(village)
    result = cli("apply", "--from", str(path), home=village)
    clean(result)
    assert result.returncode == 1
    refused = [line for line in result.stderr.splitlines() if line.startswith("row 3")]
    assert refused and tracking in refused[0]
    assert dump(village) == before
    assert len(listed(cli, village)) == 1


@pytest.mark.parametrize(
    "content,expected",
    [
        (b"", "empty"),
        (csv_bytes([]), "no rows"),
        ("姓名,身份证号,事项编码\r\n王秀兰,{id},SB001\r\n".encode(), "phone"),
        ("name,phone\r\n王秀兰,13805331234\r\n".encode(), "id_number"),
    ],
    ids=["empty file", "header only", "no phone column", "no item and id columns"],
)
def test_an_empty_ledger_or_missing_columns_is_refused(
    cli: Run, village: Path, tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "台账.csv"
    path.write_bytes(content.replace(b"{id}", resident_id(1).encode()))
    before = dump(village)
    result = cli("apply", "--from", str(path), home=village)
    clean(result)
    assert result.returncode == 1
    text = result.stderr.strip()
    assert "\n" not in text, text
    assert expected in text
    assert dump(village) == before


def test_a_ledger_that_is_not_there_or_not_a_ledger(cli: Run, village: Path, tmp_path: Path) -> None:
    before = dump(village)
    missing = cli("apply", "--from", str(tmp_path / "无.csv"), home=village)
    clean(missing)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    broken = tmp_path / "坏.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really a workbook")
    result = cli("apply", "--from", str(broken), home=village)
    clean(result)
    assert result.returncode == 1 and "\n" not in result.stderr.strip()
    assert dump(village) == before


def test_from_with_applicant_options_is_bad_usage(cli: Run, village: Path, tmp_path: Path) -> None:
    path = tmp_path / "台账.csv"
    path.write_bytes(csv_bytes(good_rows()))
    before = dump(village)
    result = cli("apply", "--from", str(path), "--item", "SB001", home=village)
    clean(result)
    assert result.returncode == 2
    assert dump(village) == before


# -- Excel's number trap (issue 13) ------------------------------------------------------


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_an_xlsx_whose_id_numbers_excel_stored_as_numbers_is_named_once(
    cli: Run, village: Path, tmp_path: Path, lang: str
) -> None:
    rows = good_rows()
    for row in rows[:2]:
        row[1] = float(str(row[1]))  # what Excel keeps of an 18-digit number: 15 significant digits
    path = write_xlsx(tmp_path / "台账.xlsx", rows)
    before = dump(village)
    result = cli("apply", "--from", str(path), home=village, lang=lang)
    clean(result)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines  # once for the column, not once a row
    assert ("文本" in lines[0]) and ("row 2" in lines[0] or "第 2 行" in lines[0]), lines[0]
    assert ("身份证号" if lang == "zh" else "ID number") in lines[0]
    assert dump(village) == before


def test_a_csv_with_numbers_excel_already_cut_is_named_once(cli: Run, village: Path, tmp_path: Path) -> None:
    rows = good_rows()
    rows[1][1] = "3.70303E+17"
    rows[2][1] = "3.70303E+17"
    path = tmp_path / "台账.csv"
    path.write_bytes(csv_bytes(rows, encoding="gbk"))
    before = dump(village)
    result = cli("apply", "--from", str(path), home=village, lang="zh")
    clean(result)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "3.70303E+17" in line and "第 3 行" in line and "文本" in line
    assert dump(village) == before


def test_a_mobile_number_stored_as_a_number_is_whole_and_taken(
    cli: Run, village: Path, tmp_path: Path
) -> None:
    rows = good_rows()[:2]
    rows[0][2] = 13805331234  # a number cell, but all eleven digits are there
    path = write_xlsx(tmp_path / "台账.xlsx", rows)
    result = cli("apply", "--from", str(path), home=village)
    assert result.returncode == 0, result.stderr
    assert len(listed(cli, village)) == 2
