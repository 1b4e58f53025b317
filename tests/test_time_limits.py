"""Time limits that warn (node/timeliness.py): an application received and not
answered for 4 working days (行政许可法 Art. 32 allows 5) and one past its due
date show in `list`, `show`, the report, the office's dashboard and the to-do
lists; a rejection stays on the filing point's to-do list until the agent has
told the resident. Clocks are injected; nothing waits."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daiban import i18n
from daiban.errors import DaibanError
from daiban.node import report, timeliness
from daiban.node.applications import Node
from daiban.node.stats import FIELDS
from daiban.node.workdays import WorkCalendar
from daiban.render import application_detail, application_table, report_text
from daiban.tui.app import DaibanApp
from tests.conftest import ZIBO_ID, FrozenClock, filing
from tests.sync_net import network_at
from tests.tui_helpers import add_agent, login, screen_text

MakeNode = Callable[..., Node]
TOWN, VILLAGE = "370303101", "370303101201"
CAL = WorkCalendar()


def _mz001(id_number: str = ZIBO_ID) -> Any:
    return filing(
        item="MZ001",
        id_number=id_number,
        region=VILLAGE,
        fields={"family_size": "3", "monthly_income": "420"},
    )


# -- the rule ----------------------------------------------------------------------


def test_the_fourth_working_day_without_an_answer_warns() -> None:
    received = "2026-11-02T09:00:00+08:00"  # a Monday
    assert timeliness.lateness("received", received, None, dt.date(2026, 11, 5), CAL) is None  # 3 days
    late = timeliness.lateness("received", received, None, dt.date(2026, 11, 6), CAL)
    assert late == timeliness.Late("unanswered", 4)
    # The weekend does not count; answered applications are not late.
    assert timeliness.lateness("received", received, None, dt.date(2026, 11, 8), CAL) == late
    assert timeliness.lateness("needs_supplement", received, None, dt.date(2026, 11, 20), CAL) is None


def test_past_due_counts_working_days() -> None:
    due = "2026-11-06"  # a Friday
    assert timeliness.lateness("accepted", None, due, dt.date(2026, 11, 6), CAL) is None  # the day itself
    assert timeliness.lateness("accepted", None, due, dt.date(2026, 11, 7), CAL) == timeliness.Late(
        "overdue", 0
    )
    assert timeliness.lateness("accepted", None, due, dt.date(2026, 11, 10), CAL) == timeliness.Late(
        "overdue", 2
    )
    assert timeliness.lateness("completed", None, due, dt.date(2026, 12, 10), CAL) is None


@given(
    received=st.dates(min_value=dt.date(2026, 1, 1), max_value=dt.date(2027, 6, 30)),
    waited=st.integers(min_value=0, max_value=40),
)
def test_unanswered_exactly_from_the_fourth_working_day(received: dt.date, waited: int) -> None:
    today = received + dt.timedelta(days=waited)
    late = timeliness.lateness("received", received.isoformat(), None, today, CAL)
    days = CAL.working_days_between(received, today, estimate=True)
    assert (late is not None) == (days >= timeliness.WARN_FROM)
    if late is not None:
        assert late == timeliness.Late("unanswered", days)


# -- at the office -----------------------------------------------------------------


def test_office_sees_unanswered_and_past_due_in_list_show_and_the_dashboard(
    make_node: MakeNode, clock: FrozenClock
) -> None:
    town = make_node("town", TOWN, "南定镇便民服务中心")
    town.actor = "刘窗口"
    clock.set("2026-11-02T09:00:00")  # Monday
    waiting = town.file(_mz001()).tracking
    accepted = town.file(_mz001("370303195603120020")).tracking
    town.review(accepted, "accept")  # MZ001: 30 working days, due 2026-12-14
    clock.set("2026-11-05T09:00:00")  # Thursday: 3 working days
    assert {r["tracking"]: r["late"] for r in town.list()} == {waiting: None, accepted: None}

    clock.set("2026-11-06T09:00:00")  # Friday: the fourth
    listed = {r["tracking"]: r for r in town.list()}
    assert listed[waiting]["late"] == {"kind": "unanswered", "working_days": 4}
    assert listed[accepted]["late"] is None
    i18n.set_language("zh")
    try:
        table = application_table(list(listed.values()), total=2, node="南定镇")
        assert "！1件收件满4个工作日尚未答复（法定5个工作日）。" in table
        detail = application_detail(town.show(waiting))
        assert "！已收件4个工作日尚未答复（法定时限5个工作日）：" in detail
    finally:
        i18n.set_language("en")

    clock.set("2026-12-16T09:00:00")  # two working days past 2026-12-14
    listed = {r["tracking"]: r for r in town.list()}
    assert listed[accepted]["late"] == {"kind": "overdue", "working_days": 2}
    assert "Past its due date by 2 working days." in application_detail(town.show(accepted))

    add_agent(town.home, "刘窗口", clock)

    async def scenario() -> str:
        app = DaibanApp(town.home, clock=clock)
        async with app.run_test(size=(80, 24)) as pilot:
            await login(pilot, "刘窗口")
            await pilot.press("d")
            await pilot.pause()
            return screen_text(app)

    assert "! Not answered for 4+ working days: 1   past due: 1" in asyncio.run(scenario())


def _record(tracking: str, status: str, received_on: str, due: str | None = None) -> dict[str, Any]:
    record: dict[str, Any] = dict.fromkeys(FIELDS)
    record.update(
        tracking=tracking,
        office="370303101",
        level="town",
        item="MZ001",
        region=VILLAGE,
        filer=VILLAGE,
        proxy=True,
        status=status,
        filed_on=received_on,
        received_on=received_on,
        due=due,
        time_limit_days=30,
    )
    if status == "accepted":
        record["accepted_on"] = record["decided_on"] = received_on
    return record


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_report_counts_what_is_late_now(make_node: MakeNode, clock: FrozenClock, lang: str) -> None:
    district = make_node("district", "370303", "张店区")
    records = [
        _record("37030310120100000010", "received", "2026-11-02"),
        _record("37030310120100000020", "received", "2026-11-05"),
        _record("37030310120100000030", "accepted", "2026-10-12", due="2026-11-04"),
        _record("37030310120100000040", "accepted", "2026-11-02", due="2026-12-14"),
    ]
    with district.store.transaction():
        district.store.put_stats(records, version=1, taken_at="2026-11-06T02:00:00+08:00")
    clock.set("2026-11-06T09:00:00")
    data = report.for_node(district)
    assert data["late"] == {"unanswered": 1, "overdue": 1}
    assert (
        report.for_node(district, start=dt.date(2026, 11, 5))["late"] == data["late"]
    )  # open now, any period
    i18n.set_language(lang)
    try:
        text = report_text(data)
    finally:
        i18n.set_language("en")
    want = (
        "当前：满4个工作日未答复1件，已逾期1件"
        if lang == "zh"
        else "unanswered for 4+ working days 1, past due 1"
    )
    assert want in text


# -- at the filing point -------------------------------------------------------------


def test_filing_point_to_do_has_past_due_and_rejections_until_told(
    make_node: MakeNode, clock: FrozenClock
) -> None:
    town = make_node("town", TOWN, "南定镇便民服务中心")  # files and decides: the one node
    clock.set("2026-11-02T09:00:00")
    accepted = town.file(_mz001()).tracking
    rejected = town.file(_mz001("370303195603120020")).tracking
    town.review(accepted, "accept")
    town.review(rejected, "reject", note="不符合低保条件")
    assert [r["tracking"] for r in town.to_do()] == [rejected]
    clock.set("2026-12-16T09:00:00")  # the acceptance is past due
    assert sorted(r["tracking"] for r in town.to_do()) == sorted([accepted, rejected])
    with pytest.raises(DaibanError):
        town.mark_told(accepted)  # nothing to tell: not rejected
    told = town.mark_told(rejected)
    assert told["told_at"]
    assert [r["tracking"] for r in town.to_do()] == [accepted]


def test_a_rejection_reaches_the_villages_to_do_list(tmp_path: Path) -> None:
    with network_at(tmp_path / "net") as net:
        _rejection_reaches_the_village(net.build(("city", "district", "town", "village")))


def _rejection_reaches_the_village(net: Any) -> None:
    filed = net.run(
        "village",
        "apply",
        "--item",
        "MZ001",
        "--name",
        "王秀兰",
        "--id-number",
        ZIBO_ID,
        "--phone",
        "13800000001",
        "--field",
        "family_size=3",
        "--field",
        "monthly_income=420",
        "--json",
    ).ok()
    tracking = filed.json()["tracking"]
    net.sync("village")
    net.run("town", "review", tracking, "reject", "--note", "不符合低保条件").ok()
    net.sync("village")
    to_do = net.run("village", "list", "--to-do", "--json").ok().json()
    assert [(r["tracking"], r["status"]) for r in to_do] == [(tracking, "rejected")]
    refused = net.run("town", "told", tracking)  # only the filing point tells its resident
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    net.run("village", "told", tracking).ok()
    assert net.run("village", "list", "--to-do", "--json").ok().json() == []
    assert net.run("village", "show", tracking, "--json").ok().json()["status"] == "rejected"


def test_the_office_inbox_says_how_long_an_answer_has_waited() -> None:
    """The office's to-do list in the terminal app (tui/inbox.py): from the
    fourth working day without an answer, and past due, marked with !."""
    from daiban.tui.inbox import deadline_text

    received = {"status": "received", "received_at": "2026-11-02T09:00:00+08:00", "due": None}
    assert not deadline_text(received, dt.date(2026, 11, 5), CAL, {}).startswith("!")
    assert deadline_text(received, dt.date(2026, 11, 6), CAL, {}) == "! no answer for 4 working days"
    accepted = {"status": "accepted", "received_at": "2026-11-02", "due": "2026-11-06", "due_state": "known"}
    assert deadline_text(accepted, dt.date(2026, 11, 10), CAL, {}) == "! overdue 2 working days"
