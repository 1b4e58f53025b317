"""Working days and due dates (daiban/node/workdays.py) on China's official
calendar. The bundled chinesecalendar covers 2004–2026; its 2026 data has
Mid-Autumn Fri 09-25 – Sun 09-27 and National Day Thu 10-01 – Wed 10-07 off,
with adjusted workdays (调休) Sun 2026-09-20 and Sat 2026-10-10. 2027 is not
bundled: without a city-published calendar the answer is unknown (None), and
a due date is counted on an estimate, marked provisional."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daiban.node import workdays
from daiban.node.workdays import WorkCalendar

D = dt.date.fromisoformat

# A city-published 2027 calendar (as a catalog's "calendar" object). Made-up
# arrangement for the test: New Year's Day Fri 2027-01-01 off, and Sat
# 2027-01-09 worked (调休).
CITY_2027 = {"2027": {"holidays": ["2027-01-01"], "workdays": ["2027-01-09"]}}


@pytest.fixture
def bundled() -> WorkCalendar:
    return WorkCalendar()


@pytest.fixture
def with_2027() -> WorkCalendar:
    return WorkCalendar.from_catalog(CITY_2027)


# ---------------------------------------------------------------------------
# Single days


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        ("2026-09-20", True),  # Sun, 调休 workday
        ("2026-10-10", True),  # Sat, 调休 workday
        ("2026-10-11", False),  # Sun, ordinary weekend
        ("2026-09-19", False),  # Sat, ordinary weekend
        ("2026-09-25", False),  # Fri, Mid-Autumn
        ("2026-10-01", False),  # Thu, National Day
        ("2026-10-07", False),  # Wed, last day of the National Day holiday
        ("2026-10-08", True),  # Thu, first day back
        ("2026-12-31", True),  # Thu, ordinary weekday
    ],
)
def test_bundled_2026_days(bundled: WorkCalendar, day: str, expected: bool) -> None:
    assert bundled.is_workday(D(day)) is expected


def test_unbundled_year_is_unknown_not_guessed(bundled: WorkCalendar) -> None:
    # Mon 2027-01-04 would be a working day by a weekday guess; it must be None.
    assert bundled.is_workday(D("2027-01-04")) is None
    assert bundled.is_workday(D("2027-01-02")) is None  # a Saturday: not False either
    assert bundled.knows(2026) is True
    assert bundled.knows(2027) is False


# ---------------------------------------------------------------------------
# Due dates inside the bundled years


def test_due_date_across_national_day(bundled: WorkCalendar) -> None:
    # Accepted Wed 2026-09-30; Oct 1–7 off; Oct 8 Thu=1, Oct 9 Fri=2,
    # Oct 10 Sat 调休=3, Oct 11 Sun off, Oct 12 Mon=4, Oct 13 Tue=5.
    assert bundled.add_working_days(D("2026-09-30"), 5) == D("2026-10-13")
    # 1 working day after 09-30 is the first day back, Oct 8.
    assert bundled.add_working_days(D("2026-09-30"), 1) == D("2026-10-08")


def test_due_date_across_mid_autumn_and_national_day(bundled: WorkCalendar) -> None:
    # Accepted Thu 2026-09-24; Sep 25 Fri (中秋) – Sep 27 Sun off;
    # Sep 28 Mon=1, Sep 29 Tue=2, Sep 30 Wed=3; Oct 1–7 off; Oct 8 Thu=4,
    # Oct 9 Fri=5, Oct 10 Sat 调休=6, Oct 12 Mon=7.
    assert bundled.add_working_days(D("2026-09-24"), 7) == D("2026-10-12")


def test_adjusted_saturday_counts_as_working_day(bundled: WorkCalendar) -> None:
    # Accepted Fri 2026-10-09; Sat Oct 10 is a 调休 working day = 1.
    assert bundled.add_working_days(D("2026-10-09"), 1) == D("2026-10-10")
    # …and 2: Sun Oct 11 off, Mon Oct 12 = 2.
    assert bundled.add_working_days(D("2026-10-09"), 2) == D("2026-10-12")


def test_adjusted_sunday_counts_as_working_day(bundled: WorkCalendar) -> None:
    # Accepted Fri 2026-09-18; Sat Sep 19 off; Sun Sep 20 调休 = 1.
    assert bundled.add_working_days(D("2026-09-18"), 1) == D("2026-09-20")


def test_time_limit_of_20_working_days(bundled: WorkCalendar) -> None:
    # Accepted Mon 2026-09-14. Sep 15 Tue=1, 16=2, 17=3, 18 Fri=4, (19 Sat off)
    # 20 Sun 调休=5, 21 Mon=6, 22=7, 23=8, 24 Thu=9, (25–27 off), 28 Mon=10,
    # 29=11, 30 Wed=12, (Oct 1–7 off), Oct 8=13, 9=14, 10 Sat 调休=15,
    # (11 off), 12 Mon=16, 13=17, 14=18, 15=19, 16 Fri=20.
    assert bundled.add_working_days(D("2026-09-14"), 20) == D("2026-10-16")


def test_zero_days_is_the_same_day(bundled: WorkCalendar) -> None:
    assert bundled.add_working_days(D("2026-11-27"), 0) == D("2026-11-27")
    # Even on a holiday: decided on the spot.
    assert bundled.add_working_days(D("2026-10-03"), 0) == D("2026-10-03")


def test_negative_days_are_an_error(bundled: WorkCalendar) -> None:
    with pytest.raises(ValueError):
        bundled.add_working_days(D("2026-11-27"), -1)


# ---------------------------------------------------------------------------
# Year end: 2027 unknown without a published calendar


def test_due_date_into_2027_is_unknown(bundled: WorkCalendar) -> None:
    # Accepted Mon 2026-12-28; Dec 29 Tue=1, Dec 30 Wed=2, Dec 31 Thu=3,
    # then 2027 — not covered: None, never a weekday guess (which would give
    # Mon 2027-01-04 or Fri 2027-01-01).
    assert bundled.add_working_days(D("2026-12-28"), 5) is None
    assert bundled.add_working_days(D("2026-12-28"), 4) is None


def test_due_date_ending_on_dec_31_is_known(bundled: WorkCalendar) -> None:
    # Dec 29=1, Dec 30=2, Dec 31=3: the count never needs 2027.
    assert bundled.add_working_days(D("2026-12-28"), 3) == D("2026-12-31")


def test_missing_year_reports_2027(bundled: WorkCalendar) -> None:
    assert bundled.missing_year(D("2026-12-28"), 5) == 2027
    assert bundled.missing_year(D("2026-12-28"), 3) is None
    assert bundled.missing_year(D("2026-09-30"), 5) is None


def test_missing_year_none_with_published_calendar(with_2027: WorkCalendar) -> None:
    assert with_2027.missing_year(D("2026-12-28"), 5) is None
    # 2028 is covered by neither.
    assert with_2027.missing_year(D("2027-12-28"), 10) == 2028


# ---------------------------------------------------------------------------
# A city-published 2027 calendar


def test_published_calendar_is_read(with_2027: WorkCalendar) -> None:
    assert with_2027.knows(2027) is True
    assert with_2027.knows(2028) is False
    assert with_2027.is_workday(D("2027-01-01")) is False  # Fri, published holiday
    assert with_2027.is_workday(D("2027-01-09")) is True  # Sat, published 调休
    assert with_2027.is_workday(D("2027-01-10")) is False  # Sun, ordinary weekend
    assert with_2027.is_workday(D("2027-01-04")) is True  # Mon, ordinary weekday


def test_due_date_into_2027_with_published_calendar(with_2027: WorkCalendar) -> None:
    # Accepted Mon 2026-12-28; Dec 29=1, Dec 30=2, Dec 31=3;
    # Jan 1 Fri published holiday; Jan 2 Sat, Jan 3 Sun off; Jan 4 Mon=4,
    # Jan 5 Tue=5.
    assert with_2027.add_working_days(D("2026-12-28"), 5) == D("2027-01-05")


def test_due_date_honours_published_workday(with_2027: WorkCalendar) -> None:
    # Continuing: Jan 6 Wed=6, Jan 7 Thu=7, Jan 8 Fri=8, Jan 9 Sat published
    # 调休=9, Jan 10 Sun off, Jan 11 Mon=10. (Without the 调休: Jan 12.)
    assert with_2027.add_working_days(D("2026-12-28"), 9) == D("2027-01-09")
    assert with_2027.add_working_days(D("2026-12-28"), 10) == D("2027-01-11")


def test_from_catalog_without_calendar() -> None:
    empty = WorkCalendar.from_catalog(None)
    assert empty.add_working_days(D("2026-12-28"), 5) is None
    assert WorkCalendar.from_catalog({}).knows(2027) is False


# ---------------------------------------------------------------------------
# working_days_between


def test_working_days_between_across_national_day(bundled: WorkCalendar) -> None:
    # After Wed 09-30 up to and including Tue 10-13: Oct 8, 9, 10 (调休), 12, 13.
    assert bundled.working_days_between(D("2026-09-30"), D("2026-10-13")) == 5
    # Inside the holiday only: nothing.
    assert bundled.working_days_between(D("2026-09-30"), D("2026-10-07")) == 0


def test_working_days_between_counts_adjusted_sunday(bundled: WorkCalendar) -> None:
    # After Fri 09-18 to Mon 09-21: Sat off, Sun 09-20 调休, Mon = 2.
    assert bundled.working_days_between(D("2026-09-18"), D("2026-09-21")) == 2


def test_working_days_between_same_or_reversed(bundled: WorkCalendar) -> None:
    assert bundled.working_days_between(D("2026-11-27"), D("2026-11-27")) == 0
    assert bundled.working_days_between(D("2026-10-13"), D("2026-09-30")) == 0


def test_working_days_between_into_2027(bundled: WorkCalendar, with_2027: WorkCalendar) -> None:
    assert bundled.working_days_between(D("2026-12-28"), D("2027-01-05")) is None
    # Dec 29, 30, 31, (Jan 1 holiday, 2–3 weekend) Jan 4, Jan 5 = 5.
    assert with_2027.working_days_between(D("2026-12-28"), D("2027-01-05")) == 5


def test_between_agrees_with_add(bundled: WorkCalendar) -> None:
    start = D("2026-09-14")
    for n in range(0, 25):
        due = bundled.add_working_days(start, n)
        assert due is not None
        assert bundled.working_days_between(start, due) == n


# -- estimates for a year without its official calendar ----------------------


def test_due_into_2027_is_an_estimate_with_a_date(bundled: WorkCalendar) -> None:
    # Accepted Tue 2026-12-01, 30 working days: December 2026 exactly (22
    # working days after the 1st: 2-4, 7-11, 14-18, 21-25, 28-31), then 2027 by
    # rule: Jan 1 (New Year) off, Jan 4-8 (23-27), Jan 11-13 (28-30).
    due = bundled.due(dt.date(2026, 12, 1), 30)
    assert due.date == dt.date(2027, 1, 13)
    assert due.provisional and due.missing_year == 2027


def test_estimate_skips_the_spring_festival_by_rule() -> None:
    assert not workdays.estimated_workday(dt.date(2027, 2, 8))  # a Monday in the Spring Festival
    assert not workdays.estimated_workday(dt.date(2027, 10, 1))  # National Day, a Friday
    assert not workdays.estimated_workday(dt.date(2027, 1, 9))  # a Saturday (调休 unknown ahead)
    assert workdays.estimated_workday(dt.date(2027, 3, 3))  # an ordinary Wednesday


def test_due_inside_covered_years_is_exact_and_agrees(bundled: WorkCalendar, with_2027: WorkCalendar) -> None:
    assert bundled.due(dt.date(2026, 9, 30), 5) == workdays.Due(dt.date(2026, 10, 13))
    exact = with_2027.due(dt.date(2026, 12, 24), 30)
    assert not exact.provisional and exact.date == with_2027.add_working_days(dt.date(2026, 12, 24), 30)


@given(
    start=st.dates(min_value=dt.date(2026, 1, 1), max_value=dt.date(2028, 12, 31)),
    days=st.integers(min_value=0, max_value=60),
)
def test_due_is_always_a_date_and_exact_where_add_is(start: dt.date, days: int) -> None:
    cal = WorkCalendar()
    due = cal.due(start, days)
    exact = cal.add_working_days(start, days)
    assert due.date >= start
    if exact is not None:
        assert due == workdays.Due(exact)
    else:
        assert due.provisional and due.missing_year == cal.missing_year(start, days)
    assert cal.working_days_between(start, due.date, estimate=True) == days


def test_missing_calendar_is_said_from_november() -> None:
    cal = WorkCalendar()
    assert workdays.missing_calendar(cal, dt.date(2026, 10, 31)) is None
    assert workdays.missing_calendar(cal, dt.date(2026, 11, 1)) == 2027
    assert workdays.missing_calendar(cal, dt.date(2027, 1, 5)) == 2027
    published = WorkCalendar.from_catalog({"2027": {"holidays": ["2027-01-01"], "workdays": []}})
    assert workdays.missing_calendar(published, dt.date(2026, 12, 1)) is None
