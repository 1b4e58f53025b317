"""Conditions of each item (issue 12): an age range on the filing date from
the resident ID's birth date, and a guardian required under an age or for
given values of a field; checked at filing (library, CLI, ledger) with one
clear reason, nothing stored on refusal; the guardian sealed with the rest of
the personal data, never in a summary row, a statistics record or a file."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import ric

from daiban import i18n
from daiban.errors import ValidationFailed
from daiban.node import catalog, conditions, statistics
from daiban.node.applications import Node
from tests.conftest import FrozenClock, Result, filing

MakeNode = Callable[..., Node]
TOWN = "370303101"
VILLAGE = "370303101201"
LL002_FIELDS = {"receive_method": "社会保障卡金融账户"}


def rid(birth: str, seq: str = "012") -> str:
    body = "370303" + birth + seq
    return body + ric.calc_check_digit(body + "0")


CHILD = rid("20150306", "023")  # 11 on 2026-11-27
PARENT = rid("19860412", "041")
GUARDIAN = {"name": "李建华", "id_number": PARENT, "relation": "父母"}


def _count(node: Node) -> tuple[int, int, int]:
    db = node.store.db.conn
    return tuple(  # type: ignore[return-value]
        int(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
        for t in ("events", "personal", "applications")
    )


def test_the_demo_catalog_carries_the_items_conditions() -> None:
    doc = catalog.read_document(catalog.bundled_path())
    rules = {i["code"]: i.get("conditions") for i in doc["items"]}
    assert rules["LL002"] == {"min_age": 80}
    assert rules["LL001"] == {"min_age": 60} and rules["SB002"] == {"min_age": 60}
    assert rules["CL001"] == {
        "guardian": {"under_age": 18, "field": "disability_category", "values": ["智力", "精神"]}
    }
    assert doc["version"] >= 2  # changed, so its version went up


def test_high_age_allowance_refused_at_44_accepted_at_86(make_node: MakeNode, clock: object) -> None:
    node = make_node(role="town", code=TOWN, name="南定镇便民服务中心")
    before = _count(node)
    with pytest.raises(ValidationFailed) as refused:
        node.file(filing(item="LL002", id_number=rid("19800101"), fields=LL002_FIELDS))
    assert "80" in refused.value.message and "46" in refused.value.message
    assert _count(node) == before  # nothing stored
    filed = node.file(filing(item="LL002", id_number=rid("19400101"), fields=LL002_FIELDS))
    assert filed.status == "received"


def test_the_refusal_is_in_the_agents_language(make_node: MakeNode) -> None:
    node = make_node(role="town", code=TOWN, name="南定镇便民服务中心")
    i18n.set_language("zh")
    with pytest.raises(ValidationFailed) as refused:
        node.prepare(filing(item="LL002", id_number=rid("19800101"), fields=LL002_FIELDS))
    assert "周岁" in refused.value.message or "80" in refused.value.message


def test_the_filing_date_is_the_one_that_counts(make_node: MakeNode) -> None:
    node = make_node(role="town", code=TOWN, name="南定镇便民服务中心")
    born = rid("19461128")  # 80 the day after the clock's 2026-11-27
    with pytest.raises(ValidationFailed):
        node.prepare(filing(item="LL002", id_number=born, fields=LL002_FIELDS))
    assert (
        node.prepare(
            filing(item="LL002", id_number=born, fields=LL002_FIELDS), today=dt.date(2026, 11, 28)
        ).applicant["id_number"]
        == born
    )


def test_disability_card_for_a_child_needs_a_guardian(make_node: MakeNode) -> None:
    node = make_node(role="district", code="370303", name="张店区")
    fields = {"apply_type": "新办", "disability_category": "智力"}
    before = _count(node)
    with pytest.raises(ValidationFailed) as refused:
        node.file(filing(item="CL001", id_number=CHILD, region=VILLAGE, fields=fields))
    assert "guardian" in refused.value.message
    assert _count(node) == before
    filed = node.file(filing(item="CL001", id_number=CHILD, region=VILLAGE, fields=fields, guardian=GUARDIAN))
    opened = node.personal(filed.tracking)
    assert opened is not None and opened["guardian"] == GUARDIAN


def test_an_adult_with_an_intellectual_disability_needs_one_too_a_physical_one_not(
    make_node: MakeNode,
) -> None:
    node = make_node(role="district", code="370303", name="张店区")
    adult = rid("19900101", "055")
    with pytest.raises(ValidationFailed):
        node.prepare(
            filing(
                item="CL001",
                id_number=adult,
                region=VILLAGE,
                fields={"apply_type": "新办", "disability_category": "精神"},
            )
        )
    node.prepare(
        filing(
            item="CL001",
            id_number=adult,
            region=VILLAGE,
            fields={"apply_type": "新办", "disability_category": "肢体"},
        )
    )


@pytest.mark.parametrize(
    "guardian, word",
    [
        ({**GUARDIAN, "relation": "朋友"}, "relation"),
        ({**GUARDIAN, "id_number": CHILD}, "own"),
        ({**GUARDIAN, "id_number": rid("20100101", "061")}, "adult"),
        ({**GUARDIAN, "id_number": PARENT[:-1] + ("0" if PARENT[-1] != "0" else "1")}, "check"),
        ({**GUARDIAN, "name": "<b>x</b>"}, "name"),
    ],
)
def test_a_bad_guardian_is_refused(make_node: MakeNode, guardian: dict[str, str], word: str) -> None:
    node = make_node(role="district", code="370303", name="张店区")
    with pytest.raises(ValidationFailed) as refused:
        node.prepare(
            filing(
                item="CL001",
                id_number=CHILD,
                region=VILLAGE,
                fields={"apply_type": "新办", "disability_category": "视力"},
                guardian=guardian,
            )
        )
    assert word in refused.value.message


def test_the_guardian_is_sealed_never_in_a_summary_statistics_or_file(make_node: MakeNode) -> None:
    node = make_node(role="district", code="370303", name="张店区")
    fields = {"apply_type": "新办", "disability_category": "智力"}
    filed = node.file(filing(item="CL001", id_number=CHILD, region=VILLAGE, fields=fields, guardian=GUARDIAN))
    node.review(filed.tracking, "accept")
    node.review(filed.tracking, "complete")
    assert statistics.flush(node) >= 1  # its statistics record made, in an envelope
    conn = node.store.db.conn
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    secrets = [PARENT, GUARDIAN["name"], PARENT[6:14]]
    for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
        for row in conn.execute(f"SELECT * FROM {table}").fetchall():
            text = " ".join(str(c) for c in row)
            for value in secrets:
                assert value not in text, (table, value)
    for path in node.home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for value in secrets:
                assert value.encode() not in data, (path.name, value)
    assert GUARDIAN["name"] not in str(node.show(filed.tracking)["applicant"])


def test_cli_and_ledger_refuse_with_one_line(cli: Callable[..., Result], tmp_path: Path) -> None:
    home = tmp_path / "town"
    cli("init", "--role", "town", "--code", TOWN, "--name", "南定镇", home=home)
    args = [
        "apply",
        "--item",
        "LL002",
        "--name",
        "王秀兰",
        "--phone",
        "13805331234",
        "--field",
        "receive_method=社会保障卡金融账户",
    ]
    bad = cli(*args, "--id-number", rid("19800101"), home=home)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "80" in bad.stderr
    zh = cli(*args, "--id-number", rid("19800101"), home=home, lang="zh")
    assert zh.returncode == 1 and "80" in zh.stderr
    ok = cli(*args, "--id-number", rid("19400101"), "--json", home=home)
    assert ok.returncode == 0, ok.stderr
    ledger = tmp_path / "book.csv"
    ledger.write_text(
        "item,name,id_number,phone,receive_method\n"
        f"LL002,张三,{rid('19300101', '033')},13805331235,社会保障卡金融账户\n"
        f"LL002,李四,{rid('19800101', '035')},13805331236,社会保障卡金融账户\n",
        encoding="utf-8",
    )
    refused = cli("apply", "--from", str(ledger), home=home)
    assert refused.returncode == 1 and "row 3" in refused.stderr and "80" in refused.stderr
    listed = cli("list", "--json", home=home).json()
    assert isinstance(listed, list) and len(listed) == 1  # the ledger is all or nothing


def test_cli_guardian_options(cli: Callable[..., Result], tmp_path: Path) -> None:
    home = tmp_path / "district"
    cli("init", "--role", "district", "--code", "370303", "--name", "张店区", home=home)
    args = [
        "apply",
        "--item",
        "CL001",
        "--name",
        "李小明",
        "--phone",
        "13805331234",
        "--id-number",
        CHILD,
        "--region",
        VILLAGE,
        "--field",
        "apply_type=新办",
        "--field",
        "disability_category=智力",
    ]
    bad = cli(*args, home=home)
    assert bad.returncode == 1 and "guardian" in bad.stderr
    ok = cli(
        *args,
        "--guardian-name",
        "李建华",
        "--guardian-id-number",
        PARENT,
        "--guardian-relation",
        "父母",
        "--json",
        home=home,
    )
    assert ok.returncode == 0, ok.stderr


def test_a_catalog_whose_guardian_rule_names_no_field_is_refused() -> None:
    doc = catalog.read_document(catalog.bundled_path())
    item = next(i for i in doc["items"] if i["code"] == "CL001")
    item["conditions"]["guardian"]["field"] = "no_such_field"
    with pytest.raises(Exception, match="no_such_field"):
        catalog.check_document(doc)
    item["conditions"] = {"min_age": 90, "max_age": 80}
    with pytest.raises(Exception, match="max_age"):
        catalog.check_document(doc)


# -- the age rule at its boundaries ------------------------------------------

births = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2030, 12, 31))


@given(born=births, years=st.integers(min_value=1, max_value=120))
def test_the_age_turns_on_the_birthday(born: dt.date, years: int) -> None:
    birthday = conditions.birthday_in(born, born.year + years)
    assert conditions.age_on(born, birthday) == years
    assert conditions.age_on(born, birthday - dt.timedelta(days=1)) == years - 1


@given(
    year=st.integers(min_value=1904, max_value=2096).filter(
        lambda y: y % 4 == 0 and (y % 100 or y % 400 == 0)
    ),
    years=st.integers(min_value=1, max_value=100),
)
def test_a_leap_day_birth_turns_on_28_february_in_a_common_year(year: int, years: int) -> None:
    born = dt.date(year, 2, 29)
    later = year + years
    leap = later % 4 == 0 and (later % 100 != 0 or later % 400 == 0)
    birthday = dt.date(later, 2, 29) if leap else dt.date(later, 2, 28)
    assert conditions.age_on(born, birthday) == years
    assert conditions.age_on(born, birthday - dt.timedelta(days=1)) == years - 1


@given(
    born=st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2026, 11, 27)),
    low=st.integers(min_value=0, max_value=110),
)
def test_the_min_age_rule_matches_the_age(born: dt.date, low: int) -> None:
    today = dt.date(2026, 11, 27)
    number = rid(born.strftime("%Y%m%d"))
    problems, _g = conditions.check(
        {"min_age": low}, item_name="X", id_number=number, fields={}, guardian=None, today=today
    )
    assert bool(problems) == (conditions.age_on(born, today) < low)


# -- through real tiers: the guardian stays sealed ------------------------------


def test_the_guardian_travels_sealed_through_real_tiers(tmp_path: Path) -> None:
    from tests.sync_net import network_at

    with network_at(tmp_path / "net") as net:
        net.build(("city", "district", "town", "village"))
        base = [
            "apply",
            "--item",
            "CL001",
            "--name",
            "李小明",
            "--phone",
            "13805331234",
            "--id-number",
            CHILD,
            "--field",
            "apply_type=新办",
            "--field",
            "disability_category=智力",
        ]
        refused = net.run("village", *base)
        assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
        assert net.count("village", "events") == 0
        tracking = (
            net.run(
                "village",
                *base,
                "--guardian-name",
                GUARDIAN["name"],
                "--guardian-id-number",
                PARENT,
                "--guardian-relation",
                "父母",
                "--json",
            )
            .ok()
            .json()["tracking"]
        )
        net.sync_all("village", "town", "district")
        net.run("district", "review", tracking, "accept").ok()
        net.run("district", "review", tracking, "complete").ok()
        for _round in range(2):
            net.sync_all("village", "town", "district", "city", "district", "town", "village")
        office_view = net.run("district", "show", tracking, "--json").ok().json()
        assert office_view["personal"]["guardian"] == GUARDIAN
        assert GUARDIAN["name"] in net.run("district", "show", tracking).ok().stdout
        assert net.run("village", "show", tracking, "--json").ok().json()["status"] == "completed"
        assert net.query("city", "SELECT COUNT(*) FROM stats WHERE tracking = ?", (tracking,))[0][0] == 1
        # Not in any summary row, statistics record or file of any node
        # (the office's own included: sealed there), WAL included.
        for name in ("city", "district", "town", "village"):
            for path, data in net.home_bytes(name).items():
                for secret in (PARENT, GUARDIAN["name"]):
                    assert secret.encode() not in data, (name, path.name, secret)
            for table in ("outbox", "quarantine", "set_aside"):
                assert net.count(name, table) == 0, (name, table)
            assert net.query(name, "PRAGMA integrity_check")[0][0] == "ok", name


# -- the terminal form checks the conditions as they are typed -------------------


def test_the_form_asks_for_the_guardian_as_typed_and_files_it_sealed(
    make_node: MakeNode, clock: FrozenClock
) -> None:
    import asyncio

    from daiban.tui.app import DaibanApp
    from daiban.tui.apply import ConfirmScreen, FormScreen
    from tests.tui_helpers import add_agent, login

    node: Node = make_node()
    add_agent(node.home, "张代办", clock)

    async def scenario() -> None:
        app = DaibanApp(node.home, clock=clock)
        async with app.run_test(size=(80, 24)) as pilot:
            await login(pilot, "张代办")
            await pilot.press("n", *"CL001", "enter", "enter")
            await pilot.pause()
            form = app.screen
            assert isinstance(form, FormScreen)
            assert {"guardian_name", "guardian_id_number", "guardian_relation", "address"} <= set(
                form.widgets
            )
            form.widgets["name"].value = "李小明"
            form.widgets["id_number"].value = CHILD
            form.widgets["phone"].value = "13805331234"
            form.widgets["apply_type"].value = "新办"
            form.widgets["disability_category"].value = "智力"
            await pilot.pause()
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert app.screen is form and isinstance(
                form, FormScreen
            )  # refused: the reason beside the guardian
            assert str(form.reasons["guardian_name"].render()).strip() not in ("", "✓")
            assert app.node.store.count_applications(app.node.code) == 0
            form.widgets["guardian_name"].value = GUARDIAN["name"]
            form.widgets["guardian_id_number"].value = PARENT
            form.widgets["guardian_relation"].value = "父母"
            await pilot.pause()
            assert form.check(everything=True) is not None
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert app.node.store.count_applications(app.node.code) == 1

    asyncio.run(scenario())
    (row,) = node.list()
    assert node.personal(row["tracking"])["guardian"] == GUARDIAN  # type: ignore[index]


def test_a_manifest_whose_conditions_cannot_hold_is_refused_at_admission() -> None:
    from daiban.node.admission import Refused, check_body

    doc = catalog.read_document(catalog.bundled_path())
    body = {"version": 2, "catalog": doc, "revoked": [], "offices": []}
    n = next(k for k, i in enumerate(doc["items"]) if i["code"] == "CL001")
    check_body("manifest", body)  # the demo catalog's own conditions pass
    for change in (
        lambda c: c["items"][n]["conditions"]["guardian"].update(field="no_such_field"),
        lambda c: c["items"][n].update(conditions={"min_age": 90, "max_age": 80}),
        lambda c: c["items"][n].update(conditions={"min_age": -1}),
        lambda c: c["items"][n].update(conditions={"guardian": {"field": "disability_category"}}),
    ):
        bad = copy.deepcopy(body)
        change(bad["catalog"])
        with pytest.raises(Refused) as refused:
            check_body("manifest", bad)
        assert refused.value.code == "invalid_body"
        assert refused.value.reason.startswith(f"body.catalog.items[{n}]"), refused.value.reason


def test_catalog_show_and_a_ledger_with_guardian_columns(cli: Callable[..., Result], tmp_path: Path) -> None:
    home = tmp_path / "district"
    cli("init", "--role", "district", "--code", "370303", "--name", "张店区", home=home)
    shown = cli("catalog", "show", "CL001", "--json", home=home).json()
    assert isinstance(shown, dict) and shown["conditions"]["guardian"]["under_age"] == 18
    text = cli("catalog", "show", "LL002", home=home).stdout
    assert "80" in text
    ledger = tmp_path / "cards.csv"
    ledger.write_text(
        "item,name,id_number,phone,region,apply_type,disability_category,"
        "监护人姓名,监护人身份证号,监护关系,送达方式,邮寄地址\n"
        f"CL001,李小明,{CHILD},13805331234,{VILLAGE},新办,智力,李建华,{PARENT},父母,邮寄,"
        "山东省淄博市张店区南定镇大张村幸福路12号\n",
        encoding="utf-8",
    )
    filed = cli("apply", "--from", str(ledger), "--json", home=home)
    assert filed.returncode == 0, filed.stderr
    tracking = filed.json()["applications"][0]["tracking"]  # type: ignore[index]
    personal = cli("show", tracking, "--json", home=home).json()["personal"]  # type: ignore[index]
    assert personal["guardian"] == GUARDIAN
    assert personal["address"] == "山东省淄博市张店区南定镇大张村幸福路12号"
