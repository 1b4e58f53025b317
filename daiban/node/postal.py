"""Postal delivery (免费邮寄): the resident's delivery address and China Post's
tracking numbers. Pure rules; no package checks these numbers (python-stdnum
has no UPU S10 module), so the check is written here.

Tracking numbers accepted, after spaces and dashes are removed and letters
upper-cased:

* **UPU S10** (EMS, registered letters and parcels, 挂号信, 国际/港澳台 EMS):
  13 characters, two letters (the service indicator, e.g. ``EA`` EMS, ``RR``
  registered), 8 serial digits, 1 check digit, and the country ``CN``. The
  check digit: weights 8 6 4 2 3 5 9 7 over the 8 serial digits, S their sum,
  c = 11 − (S mod 11), with 10 written 0 and 11 written 5 (UPU S10, as in
  /work/shared/domain/REFERENCE.md). E.g. ``EA123456785CN``.
* **Domestic waybills**: 13 digits, starting 1 (EMS 国内标准快递, e.g.
  ``1100123456789``) or 9 (邮政快递包裹 and 国内小包). China Post publishes no
  check rule for them, so only their form is checked.

Anything else is refused with one line saying which forms are accepted."""

from __future__ import annotations

import re

from daiban.errors import Problem, ValidationFailed
from daiban.i18n import _

S10 = re.compile(r"^([A-Z]{2})([0-9]{8})([0-9])(CN)$")
DOMESTIC = re.compile(r"^[19][0-9]{12}$")
WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)
MIN_ADDRESS, MAX_ADDRESS = 6, 120


def s10_check_digit(serial: str) -> str:
    """The S10 check digit of 8 serial digits."""
    if len(serial) != 8 or not serial.isascii() or not serial.isdigit():
        raise ValueError("an S10 serial is 8 digits")
    c = 11 - sum(int(d) * w for d, w in zip(serial, WEIGHTS, strict=True)) % 11
    return {10: "0", 11: "5"}.get(c, str(c))


def compact(value: str) -> str:
    return re.sub(r"[\s\-]", "", value or "").upper()


def is_valid(value: str) -> bool:
    number = compact(value)
    m = S10.match(number)
    if m:
        return s10_check_digit(m.group(2)) == m.group(3)
    return bool(DOMESTIC.match(number))


def tracking_number(value: str) -> str:
    """A China Post tracking number, normalised, or ValidationFailed in one line."""
    label = _("postal tracking number")
    number = compact(value)
    if not number:
        raise ValidationFailed([Problem("post_tracking", label, _("is required for postal delivery"))])
    m = S10.match(number)
    if m and s10_check_digit(m.group(2)) != m.group(3):
        raise ValidationFailed(
            [
                Problem(
                    "post_tracking",
                    label,
                    _("{number}: its check digit does not match; read it again from the waybill").format(
                        number=number
                    ),
                )
            ]
        )
    if m or DOMESTIC.match(number):
        return number
    raise ValidationFailed(
        [
            Problem(
                "post_tracking",
                label,
                _(
                    "{number} is not a China Post number: 2 letters, 9 digits and CN "
                    "(e.g. EA123456785CN), or 13 digits starting 1 or 9"
                ).format(number=number[:40]),
            )
        ]
    )


def address(value: str) -> str:
    """A delivery address: control characters removed, spaces squeezed, 6 to 120 characters."""
    from daiban.node.text import clean_text

    label = _("delivery address")
    text = " ".join(clean_text(value or "").split())
    if not text:
        raise ValidationFailed([Problem("address", label, _("is required for postal delivery"))])
    if not MIN_ADDRESS <= len(text) <= MAX_ADDRESS:
        raise ValidationFailed(
            [
                Problem(
                    "address",
                    label,
                    _("must be {low} to {high} characters: province, city, street and number").format(
                        low=MIN_ADDRESS, high=MAX_ADDRESS
                    ),
                )
            ]
        )
    return text


_AREA = re.compile(r"^(.{0,12}?(?:省|自治区|市|州|盟|区|县|旗|镇|乡|街道))")


def mask_address(text: str) -> str:
    """What the address shows where personal data must not be: its area
    (up to the district, county or town), the rest as ****
    (山东省淄博市张店区南定镇幸福村12号 → 山东省淄博市张店区南定镇****)."""
    area = ""
    rest = text
    while True:
        m = _AREA.match(rest)
        if not m or len(area) + len(m.group(1)) > 16:
            break
        area += m.group(1)
        rest = rest[len(m.group(1)) :]
    if not area or not rest:
        area = text[: min(2, len(text) // 3)]  # no area to show: hardly anything
    return area + "****"
