"""Tracking numbers (办件编号): 20 digits, unique across all nodes without
coordination, easy to read over the phone.

Layout: the filing node's division code padded to 12 digits, a 7-digit
per-node counter, and a Damm check digit. The node code makes numbers from
different nodes distinct; the counter is kept in the node's own database. The
Damm algorithm (python-stdnum) catches every single mistyped digit and every
swap of two neighbouring digits."""

from __future__ import annotations

import re

from daiban.errors import DaibanError
from daiban.i18n import _

LENGTH = 20
MAX_COUNTER = 9_999_999
_SEPARATORS = re.compile(r"[\s\-_.]")


def make(node_code: str, counter: int) -> str:
    if not 1 <= counter <= MAX_COUNTER:
        raise DaibanError(
            _("This node has used up its tracking numbers; ask the operator to re-enroll it."),
            code="tracking_exhausted",
        )
    from stdnum import damm  # imported when needed: `daiban list` stays fast

    body = node_code.ljust(12, "0") + f"{counter:07d}"
    return body + damm.calc_check_digit(body)


def parse(text: str) -> str:
    """Normalise a typed tracking number (spaces and dashes allowed) and check it."""
    number = _SEPARATORS.sub("", text.strip())
    if len(number) != LENGTH or not number.isascii() or not number.isdigit():
        raise DaibanError(
            _("A tracking number has 20 digits; {text!r} is not one.").format(text=text),
            code="bad_tracking",
        )
    from stdnum import damm

    if not damm.is_valid(number):
        raise DaibanError(
            _(
                "Tracking number {number} fails its check digit: a digit is mistyped "
                "or two are swapped. Read it again from the receipt."
            ).format(number=number),
            code="bad_tracking",
        )
    return number


def grouped(number: str) -> str:
    """``37030300120100000427`` → ``3703 0300 1201 0000 0427``, for receipts."""
    return " ".join(number[i : i + 4] for i in range(0, len(number), 4))
