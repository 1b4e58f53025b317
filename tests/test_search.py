"""Finding what people say: the catalog's aliases and the common short names
of the standard items (低保, 医保, 残疾证) and their pinyin initials (db);
digits as a tracking number or the end of an ID number, never a name; a
name in full at the office that opens the application, masked at a village.
Real node homes, the real catalog, the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from daiban.errors import DaibanError
from daiban.node import catalog, finding
from daiban.node.applications import Node
from tests.conftest import filing

MZ = {"family_size": "3", "monthly_income": "420"}


def codes(node: Node, query: str) -> list[str]:
    return [i.code for i in catalog.search(node.items(), query)]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("低保", "MZ001"),
        ("db", "MZ001"),
        ("医保", "YB001"),
        ("yb", "YB001"),
        ("残疾证", "CL001"),
        ("cjz", "CL001"),
        ("社保卡", "SB003"),
        ("五保", "MZ002"),
        ("公积金", "GJ001"),
    ],
)
def test_the_names_people_use_find_the_item_first(make_node, query: str, code: str) -> None:
    node: Node = make_node()
    assert codes(node, query)[0] == code, codes(node, query)


def test_medical_insurance_finds_every_medical_insurance_item(make_node) -> None:
    node: Node = make_node()
    assert set(codes(node, "医保")) == {"YB001", "YB002", "YB003"}
    assert codes(node, "db") == ["MZ001"]  # not every item whose initials hold a d and a b


def test_the_built_in_initials_are_pypinyin_s() -> None:
    for _part, common in catalog.COMMON_ALIASES:
        for alias, letters in common:
            assert catalog.initials_of(alias) == letters, alias


def test_old_catalogs_stay_valid_and_find_by_the_common_names(make_node) -> None:
    """The bundled catalog lists no aliases (as every catalog before them):
    the common short names still find the standard items."""
    node: Node = make_node()
    assert all(not item.get("aliases") for item in json.loads(catalog.bundled_path().read_text())["items"])
    assert codes(node, "低保")[0] == "MZ001" and codes(node, "db")[0] == "MZ001"
    assert codes(node, "残疾证")[0] == "CL001"


def test_a_catalog_s_own_alias_is_found_by_its_initials(make_node, tmp_path: Path) -> None:
    doc = json.loads(catalog.bundled_path().read_text(encoding="utf-8"))
    [rs] = [i for i in doc["items"] if i["code"] == "RS001"]
    rs["aliases"] = ["下岗登记"]
    own = tmp_path / "own.json"
    own.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    node: Node = make_node(catalog=own)
    assert codes(node, "下岗")[0] == "RS001"
    assert codes(node, "xgdj")[0] == "RS001"  # initials computed at install, stored


def test_aliases_are_not_a_new_version_of_the_item() -> None:
    """A catalog that adds aliases to an item does not change the version of
    the item applications are filed under; the bundled catalog carries none
    (older releases would refuse a manifest with them: the built-in common
    names find its items)."""
    doc = json.loads(catalog.bundled_path().read_text(encoding="utf-8"))
    assert not any("aliases" in item for item in doc["items"])
    [mz] = [i for i in doc["items"] if i["code"] == "MZ001"]
    assert catalog.item_digest({**mz, "aliases": ["低保"]}) == catalog.item_digest(mz)


@pytest.mark.parametrize("aliases", [["低"], ["abc"], ["低保", "低保"], "低保"])
def test_a_bad_alias_is_refused_whole(aliases: object) -> None:
    doc = json.loads(catalog.bundled_path().read_text(encoding="utf-8"))
    doc["items"][0]["aliases"] = aliases
    with pytest.raises(DaibanError, match="aliases"):
        catalog.check_document(doc)


def test_searching_never_imports_pypinyin(tmp_path: Path, make_node) -> None:
    node: Node = make_node()
    home = node.home
    node.close()
    code = (
        "import sys\n"
        "from daiban.node.home import open_node\n"
        "from pathlib import Path\n"
        "from daiban.node import catalog\n"
        f"node = open_node(Path({str(home)!r}))\n"
        "assert catalog.search(node.items(), 'db')[0].code == 'MZ001'\n"
        "assert catalog.search(node.items(), '低保')[0].code == 'MZ001'\n"
        "assert 'pypinyin' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# -- finding applications ------------------------------------------------------


def test_kinds_of_what_is_typed() -> None:
    assert finding.kind_of("3703 0310 1201 0000 0013") == "tracking"
    assert finding.kind_of("37030319800101001X") == "id_number"
    for digits in ("0045", "45", "0012", "3703031", "001X"):
        assert finding.kind_of(digits) == "digits", digits
    assert finding.kind_of("db") == "item" and finding.kind_of("MZ001") == "item"
    assert finding.kind_of("王秀兰") == "name" and finding.kind_of("低保") == "name"


def test_digits_are_a_tracking_number_or_the_end_of_an_id_number_never_a_name(make_node) -> None:
    node: Node = make_node()
    node.actor = "张代办"
    first = node.file(filing())  # ID ends 0012
    second = node.file(filing(item="MZ001", name="李建国", id_number="370303196208150048", fields=MZ))
    found = finding.find(node, "0045")
    assert found.kind == "digits" and found.rows == [] and found.masked == ""
    assert [r["tracking"] for r in finding.find(node, "0048").rows] == [second.tracking]
    assert [r["tracking"] for r in finding.find(node, first.tracking[-5:]).rows] == [first.tracking]
    assert len(finding.find(node, "37030310120100").rows) == 2


def test_an_item_s_name_finds_its_applications(make_node) -> None:
    node: Node = make_node()
    node.actor = "张代办"
    node.file(filing())
    allowance = node.file(filing(item="MZ001", name="李建国", id_number="370303196208150048", fields=MZ))
    for query in ("低保", "db", "MZ001"):
        found = finding.find(node, query)
        assert [r["tracking"] for r in found.rows] == [allowance.tracking], query
        assert found.items == ["最低生活保障审核确认"]


def test_a_village_matches_the_masked_name_and_says_so(make_node) -> None:
    node: Node = make_node()
    node.actor = "张代办"
    node.file(filing(name="王秀兰", id_number="370303195603120020"))
    node.file(filing(name="王桂兰", id_number="370303197511200030"))
    found = finding.find(node, "王秀兰")
    assert found.masked == "王*兰" and found.by_masked_name == 2 and found.by_full_name == 0


def test_an_office_matches_the_full_name_of_what_it_handles(make_node) -> None:
    """王秀兰 and 王桂兰 do not collide at the office that opens them; what it
    filed for another office (sealed to that one) is matched masked."""
    town: Node = make_node("town", "370303101", "南定镇便民服务中心")
    town.actor = "刘窗口"
    region = "370303101201"
    xiulan = town.file(
        filing(item="MZ001", name="王秀兰", id_number="370303195603120020", region=region, fields=MZ)
    )
    town.file(filing(item="MZ001", name="王桂兰", id_number="370303197511200030", region=region, fields=MZ))
    pension = town.file(filing(item="SB001", name="王桂兰", id_number="370303194003190020", region=region))
    found = finding.find(town, "王秀兰")
    handled = [r["tracking"] for r in found.rows if r["office"] == town.code]
    assert handled == [xiulan.tracking] and found.by_full_name == 1
    # The pension is the district's: sealed to it, matched by the masked name only.
    assert [r["tracking"] for r in found.rows if r["office"] != town.code] == [pension.tracking]
    assert found.by_masked_name == 1 and found.masked == "王*兰"
    assert [r["tracking"] for r in finding.find(town, "王桂兰").rows if r["office"] == town.code] != [
        xiulan.tracking
    ]


# -- the CLI's words -------------------------------------------------------------


def test_show_speaks_people_s_words(cli, tmp_path: Path) -> None:
    town = tmp_path / "town"
    assert (
        cli(
            "init", "--role", "town", "--code", "370303101", "--name", "南定镇便民服务中心", home=town
        ).returncode
        == 0
    )
    filed = cli(
        "apply",
        "--item",
        "MZ001",
        "--name",
        "李建国",
        "--id-number",
        "370303196208150048",
        "--phone",
        "0533-2281234",
        "--region",
        "370303101201",
        "--field",
        "family_size=3",
        "--field",
        "monthly_income=420",
        "--field",
        "has_disabled_member=否",
        "--json",
        home=town,
    )
    assert filed.returncode == 0, filed.stderr
    tracking = filed.json()["tracking"]  # type: ignore[index]
    text = cli("show", tracking, home=town, lang="zh").stdout
    lines = {
        key: line
        for line in text.splitlines()
        for key in ("monthly_income", "has_disabled_member")
        if key in line
    }
    assert lines["monthly_income"].endswith(" 420"), text  # not 420.0
    assert lines["has_disabled_member"].endswith(" 否"), text  # not False
    assert "@" not in text and "本机构解密" not in text and "False" not in text
    assert "370303196208150048" in text  # the office opened it: in full
    english = cli("show", tracking, home=town, lang="en").stdout
    assert "  monthly_income: 420\n" in english and "  has_disabled_member: no\n" in english
    assert "Office: 南定镇便民服务中心 (370303101)\n" in english  # by name, the code beside
    assert "Applicant: 李建国  370303196208150048  0533-2281234\n" in english
    assert "office view" not in english and "server" not in english
    assert "  filed  测试代办员 (南定镇便民服务中心)" in english


def test_an_office_s_people_are_staff(cli, tmp_path: Path) -> None:
    town, village = tmp_path / "town", tmp_path / "village"
    assert (
        cli(
            "init", "--role", "town", "--code", "370303101", "--name", "南定镇便民服务中心", home=town
        ).returncode
        == 0
    )
    assert (
        cli(
            "init", "--role", "village", "--code", "370303101201", "--name", "大张村", home=village
        ).returncode
        == 0
    )
    added = cli("agent", "add", "刘窗口", "--pin-stdin", home=town, stdin="135790\n")
    assert added.returncode == 0 and added.stdout.startswith("Staff member 刘窗口 added"), added.stderr
    assert cli("agent", "list", home=town).stdout.lstrip().startswith("staff member")
    added = cli("agent", "add", "张代办", "--pin-stdin", home=village, stdin="246810\n")
    assert added.returncode == 0 and added.stdout.startswith("Agent 张代办 added"), added.stderr
    assert cli("agent", "list", home=village).stdout.lstrip().startswith("agent")


def test_a_home_from_before_the_aliases_is_migrated(make_node) -> None:
    """A home whose catalog was installed before migration 0019 (no
    alias_initials column) opens, and finds by the common names."""
    import sqlite3

    from daiban.node.home import open_node

    node: Node = make_node()
    home = node.home
    node.close()
    conn = sqlite3.connect(home / "daiban.db")
    try:
        with conn:
            conn.execute("ALTER TABLE catalog_items DROP COLUMN alias_initials")
            conn.execute("DELETE FROM _sqlite_migrations WHERE name = '0019_alias_initials'")
    finally:
        conn.close()
    again = open_node(home)
    try:
        assert codes(again, "低保")[0] == "MZ001" and codes(again, "db")[0] == "MZ001"
        rows = again.store.db.execute("SELECT DISTINCT alias_initials FROM catalog_items").fetchall()
        assert rows == [("{}",)]
    finally:
        again.close()


def test_values_in_people_s_words() -> None:
    from daiban import i18n
    from daiban.render import actor_text, correction_lines, value_text

    assert [value_text(v) for v in (True, False, 420.0, 420.5, 3, "3", None, ["a", "b"])] == [
        "yes",
        "no",
        "420",
        "420.5",
        "3",
        "3",
        "",
        "a、b",
    ]
    assert actor_text("server") == "office system" and actor_text("刘窗口") == "刘窗口"
    assert correction_lines([{"fields.has_disabled_member": {"from": False, "to": True}}]) == [
        "Corrected: has_disabled_member no → yes"
    ]
    i18n.set_language("zh")
    assert value_text(True) == "是" and value_text(False) == "否"


def test_full_width_digits_read_as_digits(make_node) -> None:
    node: Node = make_node()
    node.actor = "张代办"
    filed = node.file(filing(item="MZ001", name="李建国", id_number="370303196208150048", fields=MZ))
    assert finding.kind_of("００４８") == "digits"
    assert [r["tracking"] for r in finding.find(node, "００４８").rows] == [filed.tracking]
    assert finding.kind_of("٠٠٤٨") == "name"  # other scripts' digits are not ID digits


def test_catalog_show_names_what_people_call_it(cli, tmp_path: Path) -> None:
    home = tmp_path / "v"
    assert (
        cli("init", "--role", "village", "--code", "370303101201", "--name", "大张村", home=home).returncode
        == 0
    )
    shown = cli("catalog", "show", "MZ001", home=home).stdout
    assert "Also called: 低保\n" in shown
    assert cli("catalog", "list", "db", home=home).stdout.splitlines()[3].startswith("MZ001")


def test_a_node_below_cannot_rename_an_office_or_inject_control_characters(make_node) -> None:
    """Attack: a compromised town reports heartbeats naming its district, a
    village outside its branch, and one of its own villages with an escape
    sequence. The district's names come first from the signed catalog and
    its own records; a report names only nodes below its reporter, cleaned."""
    from daiban.node import places

    district: Node = make_node("district", "370303", "张店区")
    district.store.put_heartbeats(
        "370303101",
        [
            {"code": "370303", "name": "假冒区", "last_sync_at": None, "enrolled_at": None, "gone": False},
            {
                "code": "370303102201",
                "name": "外村",
                "last_sync_at": None,
                "enrolled_at": None,
                "gone": False,
            },
            {
                "code": "370303101209",
                "name": "\x1b]0;pwned\x07大王村",
                "last_sync_at": None,
                "enrolled_at": None,
                "gone": False,
            },
        ],
        version=1,
        taken_at="2026-11-27T10:00:00+08:00",
    )
    known = places.names(district)
    assert known["370303"] == "张店区"
    assert known["370303101"] == "南定镇便民服务中心"  # the catalog's
    assert "370303102201" not in known
    assert known["370303101209"] == "]0;pwned大王村"
