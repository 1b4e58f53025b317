"""The pure rules behind the terminal app's screens: dashboard figures,
text bars, deadlines in the inbox, what a search box holds, the papers'
layout."""

from __future__ import annotations

import datetime as dt

from rich.cells import cell_len

from daiban import notices
from daiban.node.dashboard import dashboard
from daiban.node.workdays import WorkCalendar
from daiban.tui.dashboard import bar
from daiban.tui.find import kind_of
from daiban.tui.inbox import deadline_text
from tests.tui_helpers import EVIL, EVIL_SHOWN

TODAY = dt.date(2026, 11, 27)  # a Friday


def _row(
    region: str,
    status: str,
    filed: str,
    accepted: str | None = None,
    due: str | None = None,
    completed: str | None = None,
    evaluation: int | None = None,
) -> dict[str, object]:
    return {
        "origin": region,
        "region": region,
        "status": status,
        "filed_at": filed + "T09:00:00+08:00",
        "received_at": None,
        "accepted_on": accepted,
        "due": due,
        "completed_at": completed and completed + "T16:00:00+08:00",
        "evaluation": evaluation,
    }


def test_dashboard_figures() -> None:
    rows = [
        _row("370303101201", "completed", "2026-11-16", "2026-11-16", "2026-11-20", "2026-11-19", 5),
        _row("370303101201", "completed", "2026-11-16", "2026-11-16", "2026-11-18", "2026-11-20", 2),
        _row("370303101202", "accepted", "2026-11-27", "2026-11-27", "2026-12-04"),
        _row("370303101202", "received", "2026-10-01"),  # before the two weeks shown
    ]
    board = dashboard(rows, today=TODAY, calendar=WorkCalendar.from_catalog(None), days=14)
    assert board.total.filed == 4 and board.total.completed == 2 and board.total.on_time == 1
    assert board.total.on_time_rate == 0.5
    assert board.total.working_days == [3, 4]  # Mon 16 → Thu 19, → Fri 20
    assert board.total.average_score == 3.5
    assert dict(board.per_day)[dt.date(2026, 11, 16)] == 2
    assert dict(board.per_day)[dt.date(2026, 11, 27)] == 1
    assert sum(n for _d, n in board.per_day) == 3
    assert board.by_village["370303101202"].completed == 0
    assert board.by_village["370303101201"].on_time == 1


def test_bars() -> None:
    assert bar(0, 10) == "" and bar(5, 0) == ""
    assert bar(10, 10, 8) == "█" * 8
    assert bar(5, 10, 8) == "████"
    assert bar(1, 1000, 8) == "▏"  # a sliver for anything above zero


def test_inbox_deadlines() -> None:
    cal = WorkCalendar.from_catalog(None)
    cache: dict[str, str] = {}
    late = {"status": "accepted", "due": "2026-11-20"}
    soon = {"status": "accepted", "due": "2026-12-01"}
    waiting = {"status": "received", "received_at": "2026-11-24T09:00:00+08:00"}
    assert deadline_text(late, TODAY, cal, cache) == "! overdue 5 working days"
    assert deadline_text(soon, TODAY, cal, cache) == "2 working days left"
    assert deadline_text(waiting, TODAY, cal, cache) == "waiting 3 days"
    assert deadline_text({"status": "accepted", "due": None}, TODAY, cal, cache) == "due unknown"


def test_what_a_search_box_holds() -> None:
    assert kind_of("3703 0310 1201 0000 0013") == "tracking"
    assert kind_of("37030319800101001X") == "id_number"
    assert kind_of("王秀兰") == "name"


def test_papers_fit_80_columns_and_show_untrusted_text_literally() -> None:
    view = {
        "tracking": "37030310120100000013",
        "item": "SB001",
        "item_name": "城乡居民基本养老保险参保登记" * 3,
        "applicant": {"name": "王*兰", "id_number": "3703**********0020", "phone": "138****1234"},
        "filed_at": "2026-11-27T10:00:00+08:00",
        "office": "370303",
        "materials": ["居民身份证"] * 4,
        "owed": ["承诺书"],
        "missing": [EVIL],
        "history": [
            {
                "kind": "supplement_requested",
                "actor": "陈窗口",
                "at": "2026-11-28T09:00:00+08:00",
                "body": {"missing": [EVIL], "note": EVIL * 3},
            }
        ],
    }
    contact = {"name": "大张村代办点 (370303101201)", "address": EVIL, "phone": "12345"}
    papers = {
        kind: notices.text(
            notices.build(
                kind,
                {
                    **view,
                    "history": [
                        *view["history"],
                        {"kind": "rejected", "at": "2026-11-28", "body": {"reason": EVIL * 5}},
                    ],
                },
                office=contact,
                point=contact,
                agent="张代办",
                expected="2026-12-08",
                supplement_by="2026-12-10",
                today=dt.date(2026, 11, 28),
            )
        )
        for kind in ("receipt", "supplement", "rejected")
    }
    for text in papers.values():
        assert max(cell_len(line) for line in text.splitlines()) <= 80
        assert "\x1b" not in text and "\x07" not in text
    assert EVIL_SHOWN in papers["supplement"] and EVIL_SHOWN in papers["rejected"]
