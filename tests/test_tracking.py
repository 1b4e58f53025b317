"""Tracking numbers (daiban/node/tracking.py): 20 digits, the node's division
code padded to 12, a 7-digit counter and a Damm check digit that catches every
single mistyped digit and every swap of neighbouring digits."""

from __future__ import annotations

import pytest

from daiban.errors import DaibanError
from daiban.node import tracking

VILLAGE = "370303101201"
TOWN = "370303101"
DISTRICT = "370303"
CITY = "3703"

# Numbers to mutate exhaustively: several nodes, small and large counters.
SAMPLES = [
    tracking.make(VILLAGE, 1),
    tracking.make(VILLAGE, 427),
    tracking.make("370323111205", 9_999_999),
    tracking.make(TOWN, 1_234_567),
    tracking.make(CITY, 90_807),
]


@pytest.mark.parametrize(
    ("code", "counter", "body"),
    [
        (VILLAGE, 1, "370303101201" + "0000001"),
        (VILLAGE, 427, "370303101201" + "0000427"),
        (TOWN, 427, "370303101000" + "0000427"),
        (DISTRICT, 9_999_999, "370303000000" + "9999999"),
        (CITY, 12, "370300000000" + "0000012"),
    ],
)
def test_make_layout(code: str, counter: int, body: str) -> None:
    number = tracking.make(code, counter)
    assert len(number) == 20
    assert number.isdigit()
    assert number.startswith(code.ljust(12, "0"))
    assert number[:19] == body
    assert tracking.parse(number) == number


@pytest.mark.parametrize("counter", [0, -1, 10_000_000])
def test_make_refuses_counter_out_of_range(counter: int) -> None:
    with pytest.raises(DaibanError) as info:
        tracking.make(VILLAGE, counter)
    assert info.value.code == "tracking_exhausted"


def test_parse_accepts_spaces_and_dashes() -> None:
    number = tracking.make(VILLAGE, 427)
    spaced = " ".join(number[i : i + 4] for i in range(0, 20, 4))
    dashed = "-".join(number[i : i + 5] for i in range(0, 20, 5))
    assert tracking.parse(spaced) == number
    assert tracking.parse(dashed) == number
    assert tracking.parse(f"  {number}\n") == number
    assert tracking.parse(number[:6] + " - " + number[6:]) == number


def test_grouped() -> None:
    number = tracking.make(VILLAGE, 427)
    assert tracking.grouped(number) == (f"3703 0310 1201 0000 427{number[-1]}")
    assert tracking.parse(tracking.grouped(number)) == number


def test_grouped_docstring_example() -> None:
    assert tracking.grouped("37030300120100000427") == "3703 0300 1201 0000 0427"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "3703031012010000427",  # 19 digits
        "370303101201000042700",  # 21 digits
        "3703031012010000427A",  # a letter
        "３７０３０３１０１２０１００００４２７５",  # full-width digits
        "37030310120100004275/",
    ],
)
def test_parse_refuses_malformed(text: str) -> None:
    with pytest.raises(DaibanError) as info:
        tracking.parse(text)
    assert info.value.code == "bad_tracking"


@pytest.mark.parametrize("number", SAMPLES)
def test_every_single_digit_substitution_is_rejected(number: str) -> None:
    tried = 0
    for i in range(20):
        for digit in "0123456789":
            if digit == number[i]:
                continue
            typo = number[:i] + digit + number[i + 1 :]
            with pytest.raises(DaibanError):
                tracking.parse(typo)
            tried += 1
    assert tried == 20 * 9


@pytest.mark.parametrize("number", SAMPLES)
def test_every_adjacent_transposition_is_rejected(number: str) -> None:
    tried = 0
    for i in range(19):
        a, b = number[i], number[i + 1]
        if a == b:
            continue
        swapped = number[:i] + b + a + number[i + 2 :]
        with pytest.raises(DaibanError):
            tracking.parse(swapped)
        tried += 1
    assert tried >= 5  # every sample has several unequal neighbours


def test_different_nodes_same_counter_differ() -> None:
    codes = [CITY, DISTRICT, TOWN, VILLAGE, "370303101202", "370303102201", "370304101201"]
    numbers = [tracking.make(code, 1) for code in codes]
    assert len(set(numbers)) == len(codes)


def test_counters_on_one_node_differ() -> None:
    numbers = {tracking.make(VILLAGE, n) for n in range(1, 200)}
    assert len(numbers) == 199
