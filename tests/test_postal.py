"""Postal delivery that can arrive (issue 12): a delivery address sealed like
the rest of the personal data — given at filing or at completion — shown in
full at the office and masked everywhere else, after sync through real
tiers; China Post tracking numbers checked (UPU S10 with its check digit, or
a 13-digit domestic waybill), a bad one refused in one line, nothing stored."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daiban.errors import ValidationFailed
from daiban.node import postal
from daiban.node.applications import Node
from tests.conftest import filing
from tests.sync_net import Network, Resident, network_at

MakeNode = Callable[..., Node]
C, D, T, V = "city", "district", "town", "village"
ADDRESS = "山东省淄博市张店区南定镇大张村幸福路12号"
ADDRESS2 = "山东省淄博市张店区南定镇小张村和平街7号"
GOOD = ("EA123456785CN", "RR000000005CN", "1100123456789", "9876543210123")
BAD = (
    "EA123456784CN",
    "EA12345678CN",
    "EA123456785US",
    "2100123456789",
    "110012345678",
    "快递单号",
    "x" * 60,
)


def s10(prefix: str, serial: str) -> str:
    return prefix + serial + postal.s10_check_digit(serial) + "CN"


# -- the tracking number's forms ----------------------------------------------


def test_the_s10_check_digit_of_the_upu_example() -> None:
    # UPU S10's own worked example: serial 47312482 → S = 200, 11 − 2 = 9.
    assert postal.s10_check_digit("47312482") == "9"
    assert postal.s10_check_digit("12345678") == "5"  # 11 − 0 = 11 → 5


@pytest.mark.parametrize("number", GOOD)
def test_good_numbers_pass(number: str) -> None:
    assert postal.tracking_number(number) == number
    assert postal.tracking_number(" " + number.lower()[:2] + number[2:] + " ") == number


@pytest.mark.parametrize("number", BAD)
def test_bad_numbers_are_refused_in_one_line(number: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        postal.tracking_number(number)
    assert "\n" not in refused.value.message and len(refused.value.message) < 200


@given(
    letters=st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2),
    serial=st.from_regex(r"\A[0-9]{8}\Z"),
)
def test_every_s10_with_its_check_digit_passes_and_no_other_digit_does(letters: str, serial: str) -> None:
    good = s10(letters, serial)
    assert postal.is_valid(good) and postal.tracking_number(good) == good
    for digit in "0123456789":
        if digit != good[10]:
            assert not postal.is_valid(good[:10] + digit + "CN")


@given(st.text(max_size=20))
def test_anything_else_is_refused_or_is_one_of_the_forms(text: str) -> None:
    number = postal.compact(text)
    shaped = re.fullmatch(r"[A-Z]{2}[0-9]{9}CN|[19][0-9]{12}", number) is not None
    if not shaped:
        with pytest.raises(ValidationFailed):
            postal.tracking_number(text)


@pytest.mark.parametrize(
    "address, masked",
    [
        (ADDRESS, "山东省淄博市张店区南定镇****"),
        ("北京市朝阳区建国路88号", "北京市朝阳区****"),
        ("幸福路12号院3单元", "幸福****"),
    ],
)
def test_an_address_masked(address: str, masked: str) -> None:
    assert postal.mask_address(address) == masked


# -- in the library --------------------------------------------------------------


def test_post_at_filing_needs_an_address_and_seals_it(make_node: MakeNode) -> None:
    town = make_node(role="town", code="370303101", name="南定镇便民服务中心")
    mz = {"family_size": "3", "monthly_income": "420"}
    with pytest.raises(ValidationFailed, match="address"):
        town.prepare(filing(item="MZ001", fields=mz, delivery="post"))
    filed = town.file(filing(item="MZ001", fields=mz, delivery="post", address=ADDRESS))
    assert town.personal(filed.tracking)["address"] == ADDRESS  # type: ignore[index]
    town.review(filed.tracking, "accept")
    before = town.store.db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    for bad in ("", "EA123456784CN"):
        with pytest.raises(ValidationFailed):
            town.review(filed.tracking, "complete", delivery="post", post_tracking=bad)
    assert town.store.db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == before
    row = town.review(filed.tracking, "complete", delivery="post", post_tracking="EA123456785CN")
    assert row["delivery"] == {
        "method": "post",
        "post_tracking": "EA123456785CN",
        "address": "山东省淄博市张店区南定镇****",
    }
    town.store.db.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    for path in town.home.rglob("*"):
        if path.is_file():
            assert "幸福路".encode() not in path.read_bytes(), path.name


def test_post_without_any_address_is_refused(make_node: MakeNode) -> None:
    town = make_node(role="town", code="370303101", name="南定镇便民服务中心")
    filed = town.file(filing(item="MZ001", fields={"family_size": "3", "monthly_income": "420"}))
    town.review(filed.tracking, "accept")
    with pytest.raises(ValidationFailed, match="address"):
        town.review(filed.tracking, "complete", delivery="post", post_tracking="1100123456789")
    with pytest.raises(ValidationFailed, match="post"):
        town.review(filed.tracking, "complete", post_tracking="1100123456789")


# -- through real tiers -------------------------------------------------------------


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Network]:
    with network_at(tmp_path / "net") as network:
        network.build((C, D, T, V))
        yield network


def test_the_address_is_sealed_shown_at_the_office_masked_at_the_village(net: Network) -> None:
    mz = Resident("欧阳秀兰", "19620415", "021", "13905337001")
    sb = Resident("上官建国", "19700823", "033", "13905337002")
    town_app = (
        net.run(
            V,
            "apply",
            "--item",
            "MZ001",
            "--name",
            mz.name,
            "--id-number",
            mz.id_number,
            "--phone",
            mz.phone,
            "--field",
            "family_size=3",
            "--field",
            "monthly_income=420",
            "--delivery",
            "post",
            "--address",
            ADDRESS,
            "--json",
        )
        .ok()
        .json()["tracking"]
    )
    district_app = (
        net.run(
            V,
            "apply",
            "--item",
            "SB001",
            "--name",
            sb.name,
            "--id-number",
            sb.id_number,
            "--phone",
            sb.phone,
            "--field",
            "contribution_grade=500",
            "--json",
        )
        .ok()
        .json()["tracking"]
    )
    net.sync_all(V, T, D)
    net.run(T, "review", town_app, "accept").ok()
    net.run(D, "review", district_app, "accept").ok()
    # A bad tracking number: one line, exit 1, nothing changed.
    before = net.count(T, "events")
    bad = net.run(T, "review", town_app, "complete", "--delivery", "post", "--post-tracking", "EA123456784CN")
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    assert net.count(T, "events") == before
    net.run(T, "review", town_app, "complete", "--delivery", "post", "--post-tracking", "EA123456785CN").ok()
    net.run(
        D,
        "review",
        district_app,
        "complete",
        "--delivery",
        "post",
        "--post-tracking",
        "1100123456789",
        "--address",
        ADDRESS2,
    ).ok()
    for _round in range(2):
        net.sync_all(V, T, D, C, D, T, V)

    # The offices see the address; the village sees it masked.
    for office, tracking, address in ((T, town_app, ADDRESS), (D, district_app, ADDRESS2)):
        view = net.run(office, "show", tracking, "--json").ok().json()
        assert view["personal"]["address"] == address
        assert address in net.run(office, "show", tracking).ok().stdout
    for tracking, address in ((town_app, ADDRESS), (district_app, ADDRESS2)):
        view = net.run(V, "show", tracking, "--json").ok().json()
        assert view["status"] == "completed"
        assert view["delivery"]["address"] == postal.mask_address(address)
        assert "personal" not in view
        assert postal.mask_address(address) in net.run(V, "show", tracking).ok().stdout
    listed = {a["tracking"]: a for a in net.run(V, "list", "--json").ok().json()}
    assert listed[district_app]["delivery"]["address"] == "山东省淄博市张店区南定镇****"

    # No address in the clear in any file of any node that is not its office
    # (the filing village included: the address was sealed to the office), nor
    # in any office's files (sealed there too), WAL included.
    for name in (C, D, T, V):
        for path, data in net.home_bytes(name).items():
            for secret in ("幸福路", "和平街"):
                assert secret.encode() not in data, (name, path.name, secret)
    # Each application at its office once, every status at the village,
    # nothing stuck or quarantined, every database whole.
    for office, tracking in ((T, town_app), (D, district_app)):
        holders = [
            n
            for n in (C, D, T)
            if net.query(
                n, "SELECT 1 FROM applications WHERE tracking = ? AND office = ?", (tracking, net.code(n))
            )
        ]
        assert holders == [office]
    for name in (C, D, T, V):
        for table in ("outbox", "quarantine", "set_aside"):
            assert net.count(name, table) == 0, (name, table)
        assert net.query(name, "PRAGMA integrity_check")[0][0] == "ok", name
