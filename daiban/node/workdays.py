"""Working days on China's official calendar, and the due dates counted on it.

Years the bundled ``chinesecalendar`` knows come from it (adjusted workdays,
调休, included). A year it lacks comes from the calendar the city publishes with
the catalog. With neither, ``is_workday`` answers *unknown* (None) — never a
silent guess that every weekday is a working day — and ``due`` counts on an
estimate instead, said as such (预计): weekends and the statutory holidays by
rule (the ``holidays`` library's China calendar, lunar dates included, 调休
not), replaced by the exact date once the city publishes that year."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache


@lru_cache(maxsize=64)
def _bundled_has(year: int) -> bool:
    import chinese_calendar

    try:
        chinese_calendar.is_workday(dt.date(year, 6, 1))
    except NotImplementedError:
        return False
    return True


@lru_cache(maxsize=8192)
def _bundled_workday(day: dt.date) -> bool:
    """chinesecalendar's answer, remembered: it checks the date's range against
    its whole table on every call (~50 µs), and reports count many days."""
    import chinese_calendar

    return bool(chinese_calendar.is_workday(day))


@lru_cache(maxsize=16)
def _estimated_holidays(year: int) -> frozenset[dt.date]:
    import holidays

    return frozenset(holidays.country_holidays("CN", years=year))


def estimated_workday(day: dt.date) -> bool:
    """A working day as far as a year's calendar can be foreseen: not a
    weekend, not a statutory holiday by rule."""
    return day.weekday() < 5 and day not in _estimated_holidays(day.year)


@dataclass(frozen=True)
class Due:
    """A due date, and whether it is counted partly on an estimate
    (``missing_year``: the first year counted without its calendar)."""

    date: dt.date
    missing_year: int | None = None

    @property
    def provisional(self) -> bool:
        return self.missing_year is not None


@dataclass(frozen=True)
class PublishedYear:
    """One year of a city-published calendar: weekdays that are off, and
    weekend days that are worked (调休)."""

    holidays: frozenset[dt.date] = frozenset()
    workdays: frozenset[dt.date] = frozenset()


@dataclass(frozen=True)
class WorkCalendar:
    published: Mapping[int, PublishedYear] = field(default_factory=dict)

    @classmethod
    def from_catalog(cls, calendar: Mapping[str, Mapping[str, list[str]]] | None) -> WorkCalendar:
        """Build from a catalog's ``calendar`` object: {"2027": {"holidays": [...], "workdays": [...]}}."""
        years: dict[int, PublishedYear] = {}
        for year, spec in (calendar or {}).items():
            years[int(year)] = PublishedYear(
                holidays=frozenset(dt.date.fromisoformat(d) for d in spec.get("holidays", [])),
                workdays=frozenset(dt.date.fromisoformat(d) for d in spec.get("workdays", [])),
            )
        return cls(years)

    def knows(self, year: int) -> bool:
        return _bundled_has(year) or year in self.published

    def is_workday(self, day: dt.date) -> bool | None:
        """True or False, or None when no calendar covers the day's year."""
        if _bundled_has(day.year):
            return _bundled_workday(day)
        spec = self.published.get(day.year)
        if spec is None:
            return None
        if day in spec.workdays:
            return True
        if day in spec.holidays:
            return False
        return day.weekday() < 5

    def add_working_days(self, start: dt.date, days: int) -> dt.date | None:
        """The ``days``-th working day after ``start`` (``start`` itself not
        counted); ``start`` for 0 (decided on the spot). None when the count
        runs into a year no calendar covers."""
        if days < 0:
            raise ValueError("days must be >= 0")
        day = start
        left = days
        while left > 0:
            day += dt.timedelta(days=1)
            work = self.is_workday(day)
            if work is None:
                return None
            if work:
                left -= 1
        return day

    def due(self, start: dt.date, days: int) -> Due:
        """The ``days``-th working day after ``start``, exact where calendars
        cover the count, else counted on the estimate (``Due.provisional``)."""
        if days < 0:
            raise ValueError("days must be >= 0")
        day, left, missing = start, days, None
        while left > 0:
            day += dt.timedelta(days=1)
            work = self.is_workday(day)
            if work is None:
                missing = missing or day.year
                work = estimated_workday(day)
            if work:
                left -= 1
        return Due(day, missing)

    def working_days_between(self, start: dt.date, end: dt.date, *, estimate: bool = False) -> int | None:
        """Working days after ``start`` up to and including ``end`` (0 if end
        <= start); None where a year is not covered, unless ``estimate``."""
        count = 0
        day = start
        while day < end:
            day += dt.timedelta(days=1)
            work = self.is_workday(day)
            if work is None:
                if not estimate:
                    return None
                work = estimated_workday(day)
            count += int(work)
        return count

    def missing_year(self, start: dt.date, days: int) -> int | None:
        """The first year the count would need and no calendar covers, if any."""
        day = start
        left = days
        while left > 0:
            day += dt.timedelta(days=1)
            work = self.is_workday(day)
            if work is None:
                return day.year
            left -= int(work)
        return None


WARN_FROM_MONTH = 11  # from 1 November, next year's missing calendar is said


def missing_calendar(calendar: WorkCalendar, today: dt.date) -> int | None:
    """The year whose official calendar due dates need and nobody has
    published yet: this year, or from 1 November the next; else None."""
    if not calendar.knows(today.year):
        return today.year
    if today.month >= WARN_FROM_MONTH and not calendar.knows(today.year + 1):
        return today.year + 1
    return None
