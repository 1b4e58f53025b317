"""Administrative division codes: a node's role follows from its code's length,
and an application's office is the prefix of the applicant's code at the item's
level. Pure functions, plain values."""

from __future__ import annotations

from daiban.errors import DaibanError
from daiban.i18n import _
from daiban.trust.codes import ROLE_LENGTHS, role_of

LEVEL_LENGTHS = {"city": 4, "district": 6, "town": 9}
ROLES = tuple(ROLE_LENGTHS)


def check_code(code: str, role: str | None = None) -> str:
    """Normalise a division code and check its shape (and its role's length)."""
    code = code.strip()
    if not code.isascii() or not code.isdigit():
        raise DaibanError(
            _("Division code {code!r} must be digits only, e.g. 370303001201.").format(code=code),
            code="bad_code",
        )
    found = role_of(code)
    if found is None:
        raise DaibanError(
            _(
                "Division code {code} has {n} digits; a city has 4, a district 6, a town 9 and a village 12."
            ).format(code=code, n=len(code)),
            code="bad_code",
        )
    if role is not None and found != role:
        raise DaibanError(
            _("A {role} code has {n} digits; {code} is a {found} code.").format(
                role=role_name(role), n=ROLE_LENGTHS[role], code=code, found=role_name(found)
            ),
            code="bad_code",
        )
    # Every segment below the city must be non-zero: 370300 is the city written
    # the GB/T 2260 way, not a district.
    for start, end in ((4, 6), (6, 9), (9, 12)):
        if len(code) >= end and int(code[start:end]) == 0:
            raise DaibanError(
                _("Division code {code} has an empty segment ({segment}).").format(
                    code=code, segment=code[start:end]
                ),
                code="bad_code",
            )
    return code


def role_name(role: str) -> str:
    return {
        "city": _("city"),
        "district": _("district/county"),
        "town": _("town/street"),
        "village": _("village/community"),
    }.get(role, role)


def office_for(region: str, level: str) -> str | None:
    """The office that handles an item of ``level`` for an applicant of ``region``,
    or None when the region is too coarse to tell (a district code for a town item)."""
    length = LEVEL_LENGTHS[level]
    if len(region) < length:
        return None
    return region[:length]


def is_within(code: str, ancestor: str) -> bool:
    """True when ``code`` is ``ancestor`` or lies below it."""
    return code.startswith(ancestor)


def city_of(code: str) -> str:
    return code[:4]
