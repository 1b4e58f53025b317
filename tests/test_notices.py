"""The notices that follow an application's state (daiban/notices.py): filed
at a village, decided at its town and synced through real ``daiban serve``
processes (tests/sync_net.py), each notice read back as the text
``daiban notice`` prints and as the text of its PDF page (pypdf), in Chinese
and in English, for every element the law and the resident need. In-process
nodes where no sync is needed: a catalog without contacts, the dates, bad
input, printing, and the screens at 80x24."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from rich.cells import cell_len
from textual.pilot import Pilot
from textual.widgets import Input, RadioButton, SelectionList

from daiban import i18n, notices
from daiban.node import admission
from daiban.node.applications import Node
from daiban.node.catalog import bundled_path
from daiban.tui.app import DaibanApp
from tests.conftest import filing
from tests.sync_net import AGENT, NODES, Network, Resident, network_at
from tests.tui_helpers import add_agent, login, screen_text

C, D, T, V = "city", "district", "town", "village"
OWED = "承诺书"
MISSING = "户口簿"
REASON = "申请人家庭人均收入高于本地最低生活保障标准，经入户核查不符合最低生活保障条件，" * 2
POST_NUMBER = "1181234567890"
ADDRESS = "山东省淄博市张店区南定镇大张村8号"
SIGNATURES = ("经办人签字", "群众签字", "机构印章")
REMEDIES_ZH = (
    "行政复议",
    "60",
    "行政诉讼",
    "6",
    "《中华人民共和国行政复议法》第二十条",
    "《中华人民共和国行政诉讼法》第四十六条",
)
LAW = "《中华人民共和国行政许可法》第三十二条"
FIELDS = ("--field", "family_size=3", "--field", "monthly_income=420")


def flat(text: str) -> str:
    """Text without any white space: a PDF breaks lines where it likes."""
    return "".join(text.split())


def pdf_text(path: Path) -> str:
    assert path.read_bytes().startswith(b"%PDF-")
    reader = PdfReader(str(path))
    assert len(reader.pages) == 1  # one printable page
    return reader.pages[0].extract_text()


def fits(text: str) -> None:
    widths = [cell_len(line) for line in text.splitlines()]
    assert max(widths) <= 80, [line for line in text.splitlines() if cell_len(line) > 80]


def contains(text: str, *parts: str) -> None:
    flat_text = flat(text)
    missing = [p for p in parts if flat(p) not in flat_text]
    assert not missing, (missing, text)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with network_at(tmp_path_factory.mktemp("notices") / "net") as network:
        network.build((C, D, T, V))
        yield network


def notice(net: Network, tracking: str, *args: str, lang: str = "en") -> tuple[str, str]:
    """The notice as ``daiban notice`` prints it, and the text of its PDF."""
    shown = net.run(V, "--lang", lang, "notice", tracking, *args).ok().stdout
    written = net.run(V, "--lang", lang, "notice", tracking, *args, "--pdf").ok().stdout.strip()
    path = Path(written)
    assert path.parent == net.home(V) / "receipts" and path.suffix == ".pdf", written
    return shown, pdf_text(path)


def test_every_notice_through_the_tiers(net: Network) -> None:
    resident = Resident("李建国", "19620815", "004", "13905331234")
    other = Resident("赵德胜", "19751120", "003", "13905339876")

    def file(who: Resident, *extra: str) -> str:
        args = ["apply", "--item", "MZ001", "--name", who.name, "--id-number", who.id_number]
        args += ["--phone", who.phone, *FIELDS, *extra, "--json"]
        return str(net.run(V, *args).ok().json()["tracking"])

    kept = file(resident, "--missing", OWED)
    refused = file(other)
    grouped = f"{kept[:4]} {kept[4:8]} {kept[8:12]} {kept[12:16]} {kept[16:]}"
    masked = resident.masked()
    common = (
        grouped,
        "最低生活保障审核确认",
        masked["name"],
        masked["id_number"],
        "大张村",  # the filing point
        AGENT,  # the agent who filed
        "南定镇便民服务中心",  # the office, by name
        "张店区南定镇人民政府（演示地址）一楼大厅",  # its address line
        "12345",  # the enquiry phone
        *SIGNATURES,
    )

    # -- at filing: a receipt of materials, not of acceptance -------------------------------------
    for lang in ("en", "zh"):
        text, page = notice(net, kept, lang=lang)
        for paper in (text, page):
            contains(paper, "收件回执", *common, "居民身份证", OWED, "30")
            assert "受理回执" not in paper and resident.id_number not in paper and resident.name not in paper
        fits(text)
    text, page = notice(net, kept)
    for paper in (text, page):
        contains(paper, "Receipt of materials", "Materials received", "Owed", "Expected completion", "not")
    assert net.run(V, "notice", kept, "--kind", "accepted").returncode == 1

    # -- the town asks for a supplement, and refuses the other --------------------------------------
    net.sync_all(V, T)
    today = dt.date.fromisoformat(net.run(T, "show", kept, "--json").ok().json()["filed_at"][:10])
    by = (today + dt.timedelta(days=20)).isoformat()
    args = ("review", kept, "supplement", "--missing", MISSING, "--supplement-by", by, "--note", "原件")
    net.run(T, *args).ok()
    net.run(T, "review", refused, "reject", "--note", REASON).ok()
    net.sync_all(T, V)
    # at the town too, the materials go to the village point where the resident filed
    at_town = net.run(T, "notice", kept).ok().stdout
    contains(at_town, "the filing point, 大张村 (370303101201)", MISSING, OWED, by)
    fits(at_town)
    # the office can open the resident's sealed data; its papers still print only masked values
    assert resident.name in net.run(T, "show", kept).ok().stdout
    assert resident.id_number not in at_town and resident.name not in at_town

    for lang in ("en", "zh"):
        text, page = notice(net, kept, lang=lang)  # the state's notice: no --kind needed
        for paper in (text, page):
            contains(
                paper, "补正材料一次性告知单", *common, MISSING, OWED, by, LAW, "一次性告知", "视为撤回申请"
            )
        # everything missing in one list: the supplement items and the 容缺 item owed
        listed = text[text.index("1. " + MISSING) :]
        assert listed.index("2. " + OWED) < listed.index(by)
        fits(text)
    text, page = notice(net, kept)
    for paper in (text, page):
        contains(paper, "One-time notice", "Hand in all of these", "Hand in by", "the filing point, 大张村")
        contains(paper, "treated as withdrawn", "Legal basis")

    for lang in ("en", "zh"):
        text, page = notice(net, refused, lang=lang)
        for paper in (text, page):
            contains(
                paper, "不予受理通知书", REASON, LAW, *REMEDIES_ZH, "南定镇便民服务中心", "12345", *SIGNATURES
            )
        fits(text)
    text, page = notice(net, refused)
    for paper in (text, page):
        contains(paper, "administrative reconsideration", "within 60 days", "administrative lawsuit")
        contains(paper, "within 6 months", "Reason")

    # -- supplied at the village; the town accepts with the 容缺 material still owed ---------------
    net.run(V, "supplement", kept, "--material", MISSING).ok()
    net.sync_all(V, T)
    accepted = net.run(T, "review", kept, "accept", "--json").ok().json()
    net.sync_all(T, V)
    view = net.run(V, "show", kept, "--json").ok().json()
    assert view["status"] == "accepted" and view["due"] == accepted["due"]
    for lang in ("en", "zh"):
        text, page = notice(net, kept, lang=lang)
        for paper in (text, page):
            contains(paper, "受理通知书", *common, view["accepted_on"], view["due"], "30", OWED, LAW)
            if view["due_provisional"]:
                contains(paper, "预计")
        fits(text)
    text, page = notice(net, kept)
    for paper in (text, page):
        contains(paper, "Notice of acceptance", "Accepted on", "Due date", "30 working days")

    # -- the owed material in; completed and sent by post -----------------------------------------
    net.run(V, "supplement", kept, "--material", OWED).ok()
    net.sync_all(V, T)
    args = (
        "review",
        kept,
        "complete",
        "--delivery",
        "post",
        "--post-tracking",
        POST_NUMBER,
        "--address",
        ADDRESS,
        "--note",
        "核准",
    )
    net.run(T, *args).ok()
    net.sync_all(T, V)
    completed = net.run(V, "show", kept, "--json").ok().json()
    for lang in ("en", "zh"):
        text, page = notice(net, kept, lang=lang)
        for paper in (text, page):
            contains(
                paper, "办结通知", *common, POST_NUMBER, "免费邮寄", "核准", completed["completed_at"][:10]
            )
            address = (completed.get("delivery") or {}).get("address")
            if address:  # the postal address, where the view carries one
                contains(paper, str(address))
        fits(text)
    text, page = notice(net, kept)
    for paper in (text, page):
        contains(paper, "Notice of completion", "by post", "Postal tracking number")
    # every earlier notice can still be printed, by its kind
    for kind in ("receipt", "supplement", "accepted"):
        text, _page = notice(net, kept, "--kind", kind)
        fits(text)
    assert net.run(V, "notice", refused, "--kind", "completed").returncode == 1

    # -- the end state --------------------------------------------------------------------------
    for _round in range(2):  # what the town sent on (statistics) reaches the city
        net.sync_all(V, T, D)
    for tracking in (kept, refused):
        holders = [
            name
            for name in (C, D, T)
            if net.query(name, "SELECT 1 FROM applications WHERE tracking = ? AND office = ?",
                         (tracking, NODES[name].code))
        ]  # fmt: skip
        assert holders == [T]
        town = net.run(T, "show", tracking, "--json").ok().json()["status"]
        assert net.run(V, "show", tracking, "--json").ok().json()["status"] == town
    for name in (C, D, T, V):
        for table in ("outbox", "quarantine", "set_aside", "conflicts"):
            assert net.count(name, table) == 0, (name, table)
        assert net.query(name, "PRAGMA integrity_check")[0][0] == "ok", name


def test_bad_notice_requests_say_one_line_and_change_nothing(net: Network) -> None:
    who = Resident("钱进", "19800101", "011", "13905330011")
    args = ["apply", "--item", "MZ001", "--name", who.name, "--id-number", who.id_number]
    tracking = str(net.run(V, *args, "--phone", who.phone, *FIELDS, "--json").ok().json()["tracking"])
    before = net.home_bytes(V)[net.home(V) / "daiban.db"]
    for args in (
        ("notice", tracking, "--kind", "rejected"),  # not rejected
        ("notice", "37030310120199999999"),  # no such application
    ):
        result = net.run(V, *args)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    result = net.run(V, "notice", tracking, "--kind", "nonsense")
    assert result.returncode == 2 and "invalid choice" in result.stderr.strip().splitlines()[-1]
    assert net.home_bytes(V)[net.home(V) / "daiban.db"] == before
    net.sync_all(V, T)
    for bad in ("2020-01-01", "tomorrow", "2026-02-30"):
        result = net.run(T, "review", tracking, "supplement", "--missing", MISSING, "--supplement-by", bad)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result
        assert "supplement by" in result.stderr
    assert net.run(T, "show", tracking, "--json").ok().json()["status"] == "received"


# -- in-process nodes: no sync needed --------------------------------------------------------


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    i18n.set_language("en")
    yield
    i18n.set_language("zh")


@pytest.fixture
def town(make_node, clock) -> Node:
    node: Node = make_node("town", "370303101", "南定镇便民服务中心")
    node.actor = "刘窗口"
    return node


PEOPLE = [
    Resident(name, f"19{60 + n}0{n + 1}1{n}", f"0{n}{n}", f"1390533{n:04d}")
    for n, name in enumerate(("李建国", "王秀兰", "赵德胜", "孙立华", "周桂英", "吴志强"))
]


def walk_in(node: Node, n: int = 0, **extra: Any) -> str:
    who = PEOPLE[n]
    values: dict[str, Any] = {
        "item": "MZ001",
        "name": who.name,
        "id_number": who.id_number,
        "phone": who.phone,
        "region": "370303101201",
        "fields": {"family_size": "3", "monthly_income": "420"},
    }
    values.update(extra)
    return node.file(filing(**values)).tracking


def test_an_office_without_contacts_prints_blanks_to_fill_in(make_node, tmp_path: Path) -> None:
    doc = json.loads(bundled_path().read_text(encoding="utf-8"))
    del doc["offices"]
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    node: Node = make_node("town", "370303101", "南定镇便民服务中心", catalog=path)
    tracking = walk_in(node)
    node.review(tracking, "reject", note="不符合条件")
    text = notices.text(notices.compose(node, tracking))
    lines = {line.split(":")[0].strip(): line for line in text.splitlines() if ":" in line}
    assert lines["Office address"].rstrip().endswith(notices.BLANK)
    assert lines["Enquiries"].rstrip().endswith(notices.BLANK)
    assert "南定镇便民服务中心 (370303101)" in lines["Handling office"]  # its own name, from the node


def test_the_supplement_date_defaults_to_ten_working_days(town: Node, clock) -> None:
    clock.set("2026-11-27T10:00:00")  # a Friday
    tracking = walk_in(town, missing=[OWED])
    town.review(tracking, "supplement", missing=[MISSING])
    text = notices.text(notices.compose(town, tracking))
    assert "2026-12-11" in text  # ten working days later
    [event] = [e for e in town.show(tracking)["history"] if e["kind"] == "supplement_requested"]
    assert "supplement_by" not in event["body"]  # an older node reads it as before


def test_supplement_by_is_optional_in_the_body_schema() -> None:
    admission.check_body("supplement_requested", {"missing": [MISSING], "note": ""})
    admission.check_body(
        "supplement_requested", {"missing": [MISSING], "note": "", "supplement_by": "2026-12-10"}
    )
    with pytest.raises(Exception):  # noqa: B017 - whichever refusal the checker raises
        admission.check_body(
            "supplement_requested", {"missing": [MISSING], "note": "", "supplement_by": "soon"}
        )


def test_printing_says_where_the_paper_is(
    town: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracking = walk_in(town)
    path = notices.save_notice(town.home, notices.compose(town, tracking), as_pdf=True)
    assert path == town.home / "receipts" / f"{tracking}-receipt.pdf"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    message = notices.print_file(path)
    assert message.startswith("No printer command here") and str(path) in message
    assert len(message.splitlines()) == 1
    refusing = tmp_path / "bin"
    refusing.mkdir()
    lp = refusing / "lp"
    lp.write_text("#!/bin/sh\necho 'lp: Error - no default destination available.' >&2\nexit 1\n")
    lp.chmod(0o755)
    monkeypatch.setenv("PATH", f"{refusing}{os.pathsep}/usr/bin{os.pathsep}/bin")
    message = notices.print_file(path)
    assert "no default destination" in message and str(path) in message
    assert len(message.splitlines()) == 1


# -- the screens at 80x24 --------------------------------------------------------------------


def _states(town: Node, clock: Any) -> dict[str, str]:
    """One application in each state a notice answers to."""
    clock.set("2026-11-27T10:00:00")
    kinds = {"receipt": walk_in(town, 0, missing=[OWED])}
    supplement = walk_in(town, 1, missing=[OWED])
    town.review(supplement, "supplement", missing=[MISSING], supplement_by="2026-12-10")
    kinds["supplement"] = supplement
    accepted = walk_in(town, 2)
    town.review(accepted, "accept")
    kinds["accepted"] = accepted
    rejected = walk_in(town, 3)
    town.review(rejected, "reject", note=REASON)
    kinds["rejected"] = rejected
    completed = walk_in(town, 4)
    town.review(completed, "accept")
    town.review(
        completed, "complete", delivery="post", post_tracking=POST_NUMBER, address=ADDRESS, note="核准"
    )
    kinds["completed"] = completed
    return kinds


def test_each_notice_fits_80_columns_in_both_languages(town: Node, clock) -> None:
    for kind, tracking in _states(town, clock).items():
        for lang in ("zh", "en"):
            i18n.set_language(lang)
            made = notices.compose(town, tracking)
            assert made.kind == kind
            fits(notices.text(made))


@pytest.mark.parametrize("kind", notices.KINDS)
def test_notice_screen(snap_compare, town: Node, clock, kind: str) -> None:
    i18n.set_language("zh")
    tracking = _states(town, clock)[kind]
    add_agent(town.home, "刘窗口", clock)
    app = DaibanApp(town.home, clock=clock)

    async def run_before(pilot: Pilot[Any]) -> None:
        await login(pilot, "刘窗口")
        await pilot.press("f", *tracking, "enter", "enter")
        await pilot.pause()
        await pilot.press("o")  # the notice for the state now
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
    assert (town.home / "receipts" / f"{tracking}-{kind}.txt").exists()


def test_notice_print_from_the_command_line(cli, tmp_path: Path) -> None:
    home = tmp_path / "town"
    made = cli("init", "--role", "town", "--code", "370303101", "--name", "南定镇便民服务中心", home=home)
    assert made.returncode == 0, made.stderr
    who = PEOPLE[5]
    args = [
        "apply",
        "--item",
        "MZ001",
        "--name",
        who.name,
        "--id-number",
        who.id_number,
        "--phone",
        who.phone,
    ]
    filed = cli(*args, "--region", "370303101201", *FIELDS, "--json", home=home)
    assert filed.returncode == 0, filed.stderr
    tracking = str(json.loads(filed.stdout)["tracking"])
    saved = home / "receipts" / f"{tracking}-receipt.pdf"
    nowhere = cli("notice", tracking, "--print", home=home, env={"PATH": str(tmp_path / "empty")})
    assert nowhere.returncode == 0, nowhere.stderr
    assert nowhere.stdout.strip().splitlines() == [f"No printer command here; the paper is saved as {saved}."]
    assert "收件回执" in pdf_text(saved)
    printer = tmp_path / "bin"
    printer.mkdir()
    log = tmp_path / "lp.log"
    (printer / "lp").write_text(f'#!/bin/sh\necho "$@" > {log}\necho "request id is office-1 (1 file(s))"\n')
    (printer / "lp").chmod(0o755)
    sent = cli("notice", tracking, "--print", home=home, env={"PATH": f"{printer}{os.pathsep}/usr/bin:/bin"})
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.strip() == f"Sent to the printer; also saved as {saved}."
    assert log.read_text().strip() == str(saved)


def test_the_office_sets_the_supplement_date_in_the_app(town: Node, clock) -> None:
    i18n.set_language("zh")
    tracking = walk_in(town, 0, missing=[OWED])
    add_agent(town.home, "刘窗口", clock)

    async def scenario() -> str:
        app = DaibanApp(town.home, clock=clock)
        async with app.run_test(size=(80, 24)) as pilot:
            await login(pilot, "刘窗口")
            await pilot.press("f", *tracking, "enter", "enter")
            await pilot.pause()
            await pilot.press("d")
            await pilot.pause()
            screen = app.screen
            screen.query_one("#a-supplement", RadioButton).value = True
            await pilot.pause()
            screen.query_one("#missing", SelectionList).select(MISSING)
            screen.query_one("#by", Input).value = "2026-12-10"
            await pilot.press("ctrl+s")
            await pilot.pause()
            await pilot.press("o")  # the notice for the state now: the one-time notice
            await pilot.pause()
            return screen_text(app)

    shown = asyncio.run(scenario())
    assert "补正材料一次性告知单" in shown and "2026-12-10" in shown, shown
    [asked] = [e for e in town.show(tracking)["history"] if e["kind"] == "supplement_requested"]
    assert asked["body"] == {"missing": [MISSING], "note": "", "supplement_by": "2026-12-10"}
    saved = (town.home / "receipts" / f"{tracking}-supplement.txt").read_text(encoding="utf-8")
    contains(saved, "1. " + MISSING, "2. " + OWED, "2026-12-10", LAW)
