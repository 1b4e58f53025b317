"""Division codes as certificates see them: a role follows from a code's
length (city 4, district 6, town 9, village 12 digits)."""

from __future__ import annotations

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
