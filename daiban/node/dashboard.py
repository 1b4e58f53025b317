"""The office dashboard's figures, from the office's summary rows: volume per
day, on-time completion, working days from acceptance to completion and the
residents' evaluations, overall and by village. Pure: rows in, numbers out."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from daiban.node.workdays import WorkCalendar


@dataclass
class Figures:
    filed: int = 0
    completed: int = 0
    on_time: int = 0
    working_days: list[int] = field(default_factory=list)
    scores: Counter[int] = field(default_factory=Counter)

    @property
    def on_time_rate(self) -> float | None:
        """Share of completed applications completed by their due date."""
        return self.on_time / self.completed if self.completed else None

    @property
    def average_days(self) -> float | None:
        return sum(self.working_days) / len(self.working_days) if self.working_days else None

    @property
    def average_score(self) -> float | None:
        n = sum(self.scores.values())
        return sum(s * c for s, c in self.scores.items()) / n if n else None


@dataclass
class Dashboard:
    per_day: list[tuple[dt.date, int]]
    total: Figures
    by_village: dict[str, Figures]


def _date(value: Any) -> dt.date | None:
    return dt.date.fromisoformat(str(value)[:10]) if value else None


def dashboard(
    rows: Iterable[Mapping[str, Any]], *, today: dt.date, calendar: WorkCalendar, days: int = 14
) -> Dashboard:
    first = today - dt.timedelta(days=days - 1)
    per_day: Counter[dt.date] = Counter()
    total = Figures()
    villages: dict[str, Figures] = defaultdict(Figures)
    span: dict[tuple[str, str], int | None] = {}  # many rows share their dates
    for row in rows:
        filed = _date(row["filed_at"])
        if filed is not None and first <= filed <= today:
            per_day[filed] += 1
        for figures in (total, villages[str(row["region"])]):
            figures.filed += 1
            if row["status"] == "completed":
                figures.completed += 1
                done, due, accepted = _date(row["completed_at"]), _date(row["due"]), _date(row["accepted_on"])
                if done is not None and due is not None and done <= due:
                    figures.on_time += 1
                if done is not None and accepted is not None:
                    key = (accepted.isoformat(), done.isoformat())
                    if key not in span:
                        span[key] = calendar.working_days_between(accepted, done)
                    if span[key] is not None:
                        figures.working_days.append(int(span[key] or 0))
            if row["evaluation"]:
                figures.scores[int(row["evaluation"])] += 1
    series = [(first + dt.timedelta(days=n), per_day[first + dt.timedelta(days=n)]) for n in range(days)]
    return Dashboard(series, total, dict(sorted(villages.items())))
