"""Due dates at the office: counted on the office's clock from acceptance; a
year no official calendar covers yet is counted on an estimate (weekends and
statutory holidays by rule), marked provisional (预计), and a catalog that
brings that year's city-published calendar makes it exact."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

from daiban.node import catalog
from daiban.node.applications import Node
from tests.conftest import ZIBO_ID, FrozenClock, filing

MakeNode = Callable[..., Node]
TOWN = "370303101"
# A made-up 2027 calendar for the test (the real one is the State Council's):
# New Year's Day and 3 February off, Saturday 9 January worked.
CALENDAR_2027 = {"2027": {"holidays": ["2027-01-01", "2027-02-03"], "workdays": ["2027-01-09"]}}


def _mz001() -> object:
    return filing(item="MZ001", id_number=ZIBO_ID, fields={"family_size": "3", "monthly_income": "420"})


def _catalog_with_calendar(tmp_path: Path) -> Path:
    doc = catalog.read_document(catalog.bundled_path())
    doc["version"] += 1
    doc["calendar"] = CALENDAR_2027
    path = tmp_path / "catalog-2027.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def test_provisional_due_is_made_exact_when_the_city_publishes_the_year(
    make_node: MakeNode, clock: FrozenClock, tmp_path: Path
) -> None:
    town = make_node(role="town", code=TOWN, name="南定镇便民服务中心")
    tracking = town.file(_mz001()).tracking  # MZ001: 30 working days, town level
    clock.set("2026-12-24T09:00:00")  # Thursday
    row = town.review(tracking, "accept")
    # Estimated: 2026: Dec 25 (1), Dec 28-31 (2-5). 2027 by rule: Jan 1 off;
    # Jan 4-8 (6-10), 11-15, 18-22, 25-29 (11-25), Feb 1-4 (26-29); the Spring
    # Festival (Feb 5-10) off; Feb 11 (30).
    assert row["due"] == "2027-02-11"
    assert row["due_state"] == "provisional"
    assert row["due_missing_year"] == 2027
    assert town.show(tracking)["due_provisional"] is True

    town.install_catalog(catalog.read_document(_catalog_with_calendar(tmp_path)), source="test")
    view = town.show(tracking)
    # 2026: Dec 25 (1), Dec 28-31 (2-5). 2027: Jan 1 off; Jan 4-8 (6-10);
    # Sat Jan 9 worked (11); Jan 11-15 (12-16); 18-22 (17-21); 25-29 (22-26);
    # Feb 1 (27), Feb 2 (28), Feb 3 off, Feb 4 (29), Feb 5 (30).
    assert view["due"] == "2027-02-05"
    assert view["due_state"] == "known"
    assert view["due_missing_year"] is None
    assert view["due_provisional"] is False


def test_init_with_a_catalog_that_brings_a_calendar(
    make_node: MakeNode, clock: FrozenClock, tmp_path: Path
) -> None:
    town = make_node(
        role="town", code=TOWN, name="南定镇便民服务中心", catalog=_catalog_with_calendar(tmp_path)
    )
    bundled = catalog.read_document(catalog.bundled_path())["version"]
    assert town.catalog_info()["version"] == bundled + 1
    tracking = town.file(_mz001()).tracking
    clock.set("2026-12-24T09:00:00")
    assert town.review(tracking, "accept")["due"] == "2027-02-05"


def test_deadline_counts_on_the_office_clock_from_acceptance(make_node: MakeNode, clock: FrozenClock) -> None:
    town = make_node(role="town", code=TOWN, name="南定镇便民服务中心")
    clock.set("2026-09-20T09:00:00")  # filed on a Sunday that is an adjusted workday
    tracking = town.file(
        filing(
            item="MZ003", id_number=ZIBO_ID, fields={"assistance_kind": "急难型", "hardship_reason": "火灾"}
        )
    ).tracking
    clock.set("2026-09-30T16:00:00")  # accepted Wednesday before National Day
    row = town.review(tracking, "accept")
    # MZ003: 5 working days. Oct 1-7 off; Oct 8 (1), Oct 9 (2), Sat Oct 10 worked (3),
    # Oct 12 (4), Oct 13 (5).
    assert row["accepted_on"] == "2026-09-30"
    assert row["due"] == "2026-10-13"


def test_a_30_day_item_accepted_on_1_december_is_provisional_then_exact_and_the_notice_agrees(
    make_node: MakeNode, clock: FrozenClock, tmp_path: Path
) -> None:
    """Issue 12: the due date shows as 预计 with a date; once the city
    publishes 2027 it is exact; the acceptance notice (text and PDF) and
    `show --json`'s due agree at each step."""
    from pypdf import PdfReader

    from daiban import i18n, notices

    town = make_node(role="town", code=TOWN, name="南定镇便民服务中心")
    clock.set("2026-12-01T09:00:00")  # Tuesday
    tracking = town.file(_mz001()).tracking
    town.review(tracking, "accept")
    i18n.set_language("zh")
    try:
        for exact in (False, True):
            view = town.show(tracking)
            assert view["due_provisional"] is (not exact)
            notice = notices.compose(town, tracking, "accepted")
            text = notices.text(notice)
            pdf_text = (
                "".join(page.extract_text() for page in PdfReader(io.BytesIO(notices.pdf(notice))).pages)
                .replace(" ", "")
                .replace("\n", "")
            )
            assert view["due"] in text and view["due"] in pdf_text
            assert ("预计" in text) is (not exact) and ("预计" in pdf_text) is (not exact)
            if not exact:
                # Estimated: 22 working days left in December, 2027 by rule.
                assert view["due"] == "2027-01-13"
                town.install_catalog(catalog.read_document(_catalog_with_calendar(tmp_path)), source="test")
        # The city's 2027 (New Year's Day off, Saturday 9 January worked).
        assert town.show(tracking)["due"] == "2027-01-12"
    finally:
        i18n.set_language("en")
