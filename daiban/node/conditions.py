"""Conditions of an item (事项受理条件) that the city publishes in the catalog,
checked at filing: an age range on the filing date, from the birth date in the
resident ID number, and a guardian (监护人: name, ID number, relation) required
under a given age or for given values of one of the item's fields (a
disability card for a minor or for an intellectual or mental disability).

Pure rules: plain values in, a list of Problems out (in the active language),
so the CLI, a ledger and the terminal form all refuse the same filing with the
same reasons, before anything is stored.

Ages are full years (周岁) by the calendar: a resident has N full years from
their Nth birthday on. Someone born on 29 February has their birthday on
28 February in a common year (民法典 Art. 202: where the month has no
corresponding day, its last day)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from daiban.errors import Problem, ValidationFailed
from daiban.i18n import _

ADULT = 18
"""民法典 Art. 17: 18 full years and over is an adult; a guardian must be one."""

RELATIONS = (
    "父母",
    "配偶",
    "子女",
    "祖父母、外祖父母",
    "兄弟姐妹",
    "其他近亲属",
    "其他愿意担任监护人的个人",
    "居民委员会、村民委员会",
    "民政部门",
)
"""Who may be a guardian, in the order of 民法典 Arts. 27, 28 and 32."""


def birth_date(id_number: str) -> dt.date:
    """The birth date in an 18-character resident ID number (already checked)."""
    return dt.date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))


def birthday_in(born: dt.date, year: int) -> dt.date:
    """The resident's birthday in ``year`` (29 February → 28 February in a common year)."""
    try:
        return born.replace(year=year)
    except ValueError:  # 29 February in a common year
        return dt.date(year, 2, 28)


def age_on(born: dt.date, day: dt.date) -> int:
    """Full years (周岁) on ``day`` of someone born on ``born``."""
    years = day.year - born.year
    return years - 1 if day < birthday_in(born, day.year) else years


def guardian_required(conditions: Mapping[str, Any], age: int, fields: Mapping[str, Any]) -> bool:
    """Does this filing need a guardian: the applicant is under the rule's age,
    or one of the item's fields has one of the rule's values."""
    rule = conditions.get("guardian")
    if not rule:
        return False
    under = rule.get("under_age")
    if under is not None and age < int(under):
        return True
    key = rule.get("field")
    return bool(key) and fields.get(key) in set(rule.get("values", ()))


def check(
    conditions: Mapping[str, Any],
    *,
    item_name: str,
    id_number: str,
    fields: Mapping[str, Any],
    guardian: Mapping[str, Any] | None,
    today: dt.date,
) -> tuple[list[Problem], dict[str, str] | None]:
    """Check a filing against its item's conditions. Returns the problems
    (none when it may be filed) and the guardian's checked details (None when
    none was given). ``id_number``: the applicant's, already checked."""
    problems: list[Problem] = []
    age = age_on(birth_date(id_number), today)
    low, high = conditions.get("min_age"), conditions.get("max_age")
    label = _("age")
    if low is not None and age < int(low):
        problems.append(
            Problem(
                "id_number",
                label,
                _(
                    "{item} is for residents aged {n} or over; the applicant is {age} on {date} "
                    "(from the ID number's birth date)"
                ).format(item=item_name, n=low, age=age, date=today.isoformat()),
            )
        )
    if high is not None and age > int(high):
        problems.append(
            Problem(
                "id_number",
                label,
                _(
                    "{item} is for residents aged {n} or under; the applicant is {age} on {date} "
                    "(from the ID number's birth date)"
                ).format(item=item_name, n=high, age=age, date=today.isoformat()),
            )
        )
    given = _given(guardian)
    checked: dict[str, str] | None = None
    if given:
        found, checked = _check_guardian(given, applicant=id_number, today=today)
        problems.extend(found)
    elif guardian_required(conditions, age, fields):
        problems.append(
            Problem(
                "guardian",
                _("guardian"),
                _(
                    "{item} must be applied for by the applicant's guardian here: give the "
                    "guardian's name, ID number and relation"
                ).format(item=item_name),
            )
        )
    return problems, checked


def _given(guardian: Mapping[str, Any] | None) -> dict[str, str]:
    if not guardian:
        return {}
    return {k: str(v).strip() for k, v in guardian.items() if v is not None and str(v).strip()}


def _check_guardian(
    given: Mapping[str, str], *, applicant: str, today: dt.date
) -> tuple[list[Problem], dict[str, str] | None]:
    from daiban.node import validation

    problems: list[Problem] = []
    out: dict[str, str] = {}
    for key, label, run in (
        (
            "name",
            _("guardian's name"),
            lambda v, lb: validation.person_name(v, label=lb, key="guardian_name"),
        ),
        (
            "id_number",
            _("guardian's ID number"),
            lambda v, lb: validation.id_number(v, today=today, label=lb),
        ),
    ):
        try:
            out[key] = run(given.get(key, ""), label).value
        except ValidationFailed as exc:
            problems.extend(Problem(f"guardian_{key}", p.label, p.reason) for p in exc.problems)
    relation = given.get("relation", "")
    if relation not in RELATIONS:
        problems.append(
            Problem(
                "guardian_relation",
                _("guardian's relation"),
                _("must be one of: {choices}").format(choices=" / ".join(RELATIONS)),
            )
        )
    else:
        out["relation"] = relation
    number = out.get("id_number")
    if number is not None:
        if number == applicant:
            problems.append(
                Problem(
                    "guardian_id_number",
                    _("guardian's ID number"),
                    _("is the applicant's own; give the guardian's"),
                )
            )
        elif age_on(birth_date(number), today) < ADULT:
            problems.append(
                Problem(
                    "guardian_id_number",
                    _("guardian's ID number"),
                    _("belongs to someone under {n}; a guardian must be an adult").format(n=ADULT),
                )
            )
    return problems, (out if not problems else None)


def describe(conditions: Mapping[str, Any]) -> list[str]:
    """The conditions as lines an agent reads (``catalog show``)."""
    lines = []
    low, high = conditions.get("min_age"), conditions.get("max_age")
    if low is not None and high is not None:
        lines.append(_("aged {low} to {high} on the filing date").format(low=low, high=high))
    elif low is not None:
        lines.append(_("aged {n} or over on the filing date").format(n=low))
    elif high is not None:
        lines.append(_("aged {n} or under on the filing date").format(n=high))
    rule = conditions.get("guardian") or {}
    if rule.get("under_age") is not None:
        lines.append(_("a guardian applies for an applicant under {n}").format(n=rule["under_age"]))
    if rule.get("field"):
        lines.append(
            _("a guardian applies when {field} is {values}").format(
                field=rule["field"], values=" / ".join(str(v) for v in rule.get("values", ()))
            )
        )
    return lines
