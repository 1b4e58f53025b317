"""Division codes as certificates see them: a role follows from a code's
length (city 4, district 6, town 9, village 12 digits)."""

from __future__ import annotations

from collections.abc import Mapping

ROLE_LENGTHS = {"city": 4, "district": 6, "town": 9, "village": 12}


def role_of(code: str) -> str | None:
    """The role a code of this length names, or None."""
    for role, length in ROLE_LENGTHS.items():
        if len(code) == length:
            return role
    return None


def is_code(value: object) -> bool:
    """A division code: ASCII digits only, of a role's length."""
    return isinstance(value, str) and value.isascii() and value.isdigit() and role_of(value) is not None


def resolve(code: str, renamed: Mapping[str, str]) -> str:
    """Where ``code`` sits in the tree once the city's code changes
    (``renamed``: old office code -> new) are applied: the longest old code
    that is ``code`` or a prefix of it gives way to its new code, again until
    none applies (a change of a change). Bounded by the number of changes, so
    even a cycle (which publish refuses) ends."""
    for _ in range(len(renamed) + 1):
        old = next((o for o in sorted(renamed, key=len, reverse=True) if code.startswith(o)), None)
        if old is None:
            break
        code = renamed[old] + code[len(old) :]
    return code
