"""Validation of what a resident hands over: resident ID number, Unified Social
Credit Code, phone, name, and the item's own form fields against its JSON
Schema. Check digits come from python-stdnum, not hand-written checksums.

Every check returns the normalised value or raises ValidationFailed naming the
field and what is wrong, in the active language; a whole form is checked at
once so the resident hears about every problem together (一次性告知)."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from daiban.errors import Problem, ValidationFailed
from daiban.i18n import _

MOBILE = re.compile(r"^1[3-9]\d{9}$")
LANDLINE = re.compile(r"^0\d{2,3}-?\d{7,8}$")
USCC_SHAPE = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$")
# Names: Chinese characters, the middle dot of minority names (买买提·艾力),
# Latin letters and single spaces for foreign names. Nothing else, so markup
# and control sequences never get into a name.
# 〇 (U+3007) and the compatibility and Extension B–H ideographs are real
# characters of names the ID office issues; digits and controls never are.
NAME = re.compile(r"^[\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U000323afA-Za-z·•．. ]{1,40}$")
MAX_TEXT = 500
# What SQLite and every envelope hold: a field's integer fits in 64 bits.
MIN_INT, MAX_INT = -(2**63), 2**63 - 1


def strip_controls(text: str) -> str:
    """Remove control characters (C0 but newline and tab, C1, bidi overrides)
    from untrusted text where it enters."""
    from daiban.node.text import clean_text

    return clean_text(text)


@dataclass
class Checked:
    """A normalised value, with warnings that do not refuse it."""

    value: Any
    warnings: list[str] = field(default_factory=list)


def id_number(value: str, *, today: dt.date, label: str | None = None) -> Checked:
    """Resident ID number (GB 11643): length, digits, check character, a real
    birth date not in the future. An unknown region code is only a warning:
    people keep codes of divisions that no longer exist, and HK/MO/TW residents'
    numbers are coded to province level."""
    from stdnum.cn import ric  # imported when needed: `daiban list` stays fast

    label = label or _("ID number")
    number = ric.compact(value or "")
    if not number:
        raise ValidationFailed([Problem("id_number", label, _("is required"))])
    if len(number) != 18:
        raise ValidationFailed(
            [Problem("id_number", label, _("must have 18 characters, got {n}").format(n=len(number)))]
        )
    if not number[:17].isdigit() or not (number[17].isdigit() or number[17] == "X"):
        raise ValidationFailed([Problem("id_number", label, _("must be 17 digits followed by a digit or X"))])
    if ric.calc_check_digit(number) != number[17]:
        raise ValidationFailed(
            [Problem("id_number", label, _("check character does not match; read it again digit by digit"))]
        )
    birth = number[6:14]
    try:
        born = dt.date(int(birth[:4]), int(birth[4:6]), int(birth[6:]))
    except ValueError:
        raise ValidationFailed(
            [Problem("id_number", label, _("birth date {date} does not exist").format(date=birth))]
        ) from None
    if born > today:
        raise ValidationFailed(
            [
                Problem(
                    "id_number", label, _("birth date {date} is in the future").format(date=born.isoformat())
                )
            ]
        )
    if born.year < 1900:
        raise ValidationFailed(
            [Problem("id_number", label, _("birth date {date} is before 1900").format(date=born.isoformat()))]
        )
    warnings = []
    if not _known_region(number[:6]):
        warnings.append(
            _("{label}: region code {code} is not a known division; please check it").format(
                label=label, code=number[:6]
            )
        )
    return Checked(number, warnings)


@lru_cache(maxsize=4096)
def _known_region(code: str) -> bool:
    from stdnum import numdb

    # Known when the table names a county for it, in any period: people keep
    # the codes of divisions that were since merged or renamed.
    return any("county" in props for _part, props in numdb.get("cn/loc").info(code))


def credit_code(
    value: str, *, allow_unchecked: bool = False, label: str | None = None, key: str = "uscc"
) -> Checked:
    """Unified Social Credit Code (GB 32100). Some legacy codes in real data fail
    the check; ``allow_unchecked`` lets an operator accept them with a warning."""
    from stdnum.cn import uscc

    label = label or _("credit code")
    code = uscc.compact(value or "")
    if not USCC_SHAPE.match(code):
        raise ValidationFailed(
            [Problem(key, label, _("must be 18 characters from 0-9 and A-Z without I, O, S, V, Z"))]
        )
    if not uscc.is_valid(code):
        if not allow_unchecked:
            raise ValidationFailed(
                [
                    Problem(
                        key,
                        label,
                        _("check character does not match (for a known legacy code, use --unchecked-uscc)"),
                    )
                ]
            )
        return Checked(code, [_("{label}: accepted without its check character").format(label=label)])
    return Checked(code)


def phone(value: str, *, label: str | None = None, key: str = "phone") -> Checked:
    """A mobile number (11 digits, 1[3-9]…) or a landline with its area code."""
    label = label or _("phone")
    number = re.sub(r"[\s()（）]", "", value or "")
    if number.startswith("+86"):
        number = number[3:]
    if not number:
        raise ValidationFailed([Problem(key, label, _("is required"))])
    if MOBILE.match(number) or LANDLINE.match(number):
        return Checked(number)
    raise ValidationFailed(
        [
            Problem(
                key,
                label,
                _(
                    "must be an 11-digit mobile number starting 13-19, "
                    "or a landline with area code such as 0533-1234567"
                ),
            )
        ]
    )


def person_name(value: str, *, label: str | None = None, key: str = "name") -> Checked:
    label = label or _("name")
    name = " ".join((value or "").split())
    if not name:
        raise ValidationFailed([Problem(key, label, _("is required"))])
    if not NAME.match(name):
        raise ValidationFailed(
            [
                Problem(
                    key,
                    label,
                    _("may hold only Chinese characters, letters, spaces and the middle dot (·), up to 40"),
                )
            ]
        )
    return Checked(name)


def text(value: str, *, label: str, key: str, required: bool = False, max_length: int = MAX_TEXT) -> str:
    """Free text (notes, reasons): control characters removed, length bounded."""
    cleaned = strip_controls(value or "").strip()
    if required and not cleaned:
        raise ValidationFailed([Problem(key, label, _("is required"))])
    if len(cleaned) > max_length:
        raise ValidationFailed([Problem(key, label, _("is longer than {n} characters").format(n=max_length))])
    return cleaned


# ---------------------------------------------------------------------------
# Item form fields


TRUE_WORDS = {"true", "yes", "y", "1", "是", "有", "对"}
FALSE_WORDS = {"false", "no", "n", "0", "否", "无", "不是"}


def _coerce(value: Any, spec: Mapping[str, Any]) -> Any:
    """Turn a typed string into the schema's type; raise ValueError with a reason."""
    kind = spec.get("type", "string")
    if not isinstance(value, str):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(_("must be a finite number"))
        if kind == "integer" and isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and not MIN_INT <= value <= MAX_INT:
            raise _out_of_range(spec)
        return value
    raw = value.strip()
    if kind == "integer":
        try:
            number = int(raw)
        except ValueError:
            raise ValueError(_("must be a whole number")) from None
        if not MIN_INT <= number <= MAX_INT:
            raise _out_of_range(spec)
        return number
    if kind == "number":
        try:
            real = float(raw)
        except ValueError:
            raise ValueError(_("must be a number")) from None
        # float() reads nan, inf and 1e400 (inf) too: none is an amount.
        if not math.isfinite(real):
            raise ValueError(_("must be a finite number"))
        return real
    if kind == "boolean":
        low = raw.lower()
        if low in TRUE_WORDS:
            return True
        if low in FALSE_WORDS:
            return False
        raise ValueError(_("must be yes or no (是/否)"))
    return strip_controls(raw)


def _out_of_range(spec: Mapping[str, Any]) -> ValueError:
    """For an integer past 64 bits: the range the field's schema allows,
    within what SQLite and an envelope hold."""
    low, high = spec.get("minimum", MIN_INT), spec.get("maximum", MAX_INT)
    low = max(low, MIN_INT) if isinstance(low, int | float) else MIN_INT
    high = min(high, MAX_INT) if isinstance(high, int | float) else MAX_INT
    return ValueError(_("must be between {low} and {high}").format(low=low, high=high))


def fields(
    schema: Mapping[str, Any],
    raw: Mapping[str, Any],
    *,
    today: dt.date,
    allow_unchecked_uscc: bool = False,
) -> Checked:
    """Check an item's form fields (strings from the command line or a ledger,
    or typed values) against the item's JSON Schema. Empty values count as
    absent. Returns the typed values."""
    props: Mapping[str, Any] = schema.get("properties", {})
    problems: list[Problem] = []
    warnings: list[str] = []
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        spec = props.get(key)
        if spec is None:
            problems.append(
                Problem(
                    key,
                    key,
                    _("is not a field of this item; its fields are: {keys}").format(
                        keys=", ".join(props) or _("(none)")
                    ),
                )
            )
            continue
        label = field_label(key, spec)
        try:
            typed = _coerce(value, spec)
        except ValueError as exc:
            problems.append(Problem(key, label, str(exc)))
            continue
        fmt = spec.get("format")
        try:
            if fmt == "cn-ric":
                checked = id_number(str(typed), today=today, label=label)
            elif fmt == "cn-uscc":
                checked = credit_code(str(typed), allow_unchecked=allow_unchecked_uscc, label=label, key=key)
            elif fmt == "cn-mobile":
                checked = phone(str(typed), label=label, key=key)
            elif fmt == "date":
                checked = Checked(_date(str(typed)))
            else:
                checked = Checked(typed)
        except ValidationFailed as exc:
            problems.extend(Problem(key, p.label, p.reason) for p in exc.problems)
            continue
        except ValueError as exc:
            problems.append(Problem(key, label, str(exc)))
            continue
        warnings.extend(checked.warnings)
        values[key] = checked.value
    reported = {p.field for p in problems}
    for key, reason in _schema_problems(schema, values):
        if key not in reported:
            reported.add(key)
            problems.append(Problem(key, field_label(key, props.get(key, {})), reason))
    if problems:
        raise ValidationFailed(problems)
    return Checked(values, warnings)


_VALIDATORS: dict[int, tuple[Mapping[str, Any], Any]] = {}
_OUTCOMES: dict[tuple[int, tuple[tuple[str, Any], ...]], list[tuple[str, str]]] = {}


def _schema_problems(schema: Mapping[str, Any], values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, reason) for every way ``values`` break the item's schema. A
    ledger repeats the same field values row after row, so outcomes are
    remembered per schema and values (in the active language)."""
    from daiban.i18n import language

    try:
        key = (id(schema), (("", language()), *sorted(values.items())))
        hash(key)
    except TypeError:
        key = None
    if key is not None and key in _OUTCOMES and _VALIDATORS.get(id(schema), (None,))[0] is schema:
        return _OUTCOMES[key]
    props: Mapping[str, Any] = schema.get("properties", {})
    found = [pair for error in _validator(schema).iter_errors(values) for pair in _explain(error, props)]
    if key is not None:
        if len(_OUTCOMES) > 4096:
            _OUTCOMES.clear()
        _OUTCOMES[key] = found
    return found


def _validator(schema: Mapping[str, Any]) -> Any:
    """A compiled jsonschema validator for an item's form. Cached by the schema
    object (the node keeps one per catalog item), so a 10,000-row ledger
    compiles each item's schema once."""
    cached = _VALIDATORS.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    from jsonschema import Draft202012Validator

    # Formats (resident ID, credit code, phone, date) were checked above
    # with messages of our own; jsonschema checks the rest.
    validator = Draft202012Validator(schema)
    if len(_VALIDATORS) > 256:
        _VALIDATORS.clear()
    _VALIDATORS[id(schema)] = (schema, validator)
    return validator


def _explain(error: Any, props: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Turn one jsonschema error into (field, reason) pairs in the active language."""
    kind = error.validator
    if kind == "required":
        return [(k, _("is required")) for k in error.validator_value if k not in error.instance]
    key = str(error.path[0]) if error.path else ""
    spec = props.get(key, {})
    if kind == "additionalProperties":
        extra = sorted(set(error.instance) - set(props))
        return [(k, _("is not a field of this item")) for k in extra]
    if kind == "enum":
        reason = _("must be one of: {choices}").format(
            choices=" / ".join(str(c) for c in error.validator_value)
        )
    elif kind == "minimum":
        reason = _("must be at least {n}").format(n=error.validator_value)
    elif kind == "maximum":
        reason = _("must be at most {n}").format(n=error.validator_value)
    elif kind == "maxLength":
        reason = _("is longer than {n} characters").format(n=error.validator_value)
    elif kind == "minLength":
        reason = _("is shorter than {n} characters").format(n=error.validator_value)
    elif kind == "pattern":
        reason = spec.get("description") or _("is not in the expected form")
    elif kind == "type":
        reason = _("must be of type {kind}").format(kind=error.validator_value)
    else:
        reason = _("is not valid ({rule})").format(rule=kind)
    return [(key, reason)]


def _date(raw: str) -> str:
    try:
        return dt.date.fromisoformat(raw.replace("/", "-").replace(".", "-")).isoformat()
    except ValueError:
        raise ValueError(_("must be a date such as 2026-11-27")) from None


def field_label(key: str, spec: Mapping[str, Any]) -> str:
    from daiban.i18n import language

    title = spec.get("title")
    if language() == "zh" and title:
        return str(title)
    return key
