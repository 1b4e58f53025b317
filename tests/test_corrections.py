"""Corrections: before the office accepts, the filing point corrects what was
typed (only what changes, checked as at filing, with a reason); the new
values travel sealed to the office, which reads the application with them
and sees each change, old → new. After acceptance, or from anyone but the
filing point, a correction is refused; no relay ever holds the values in
clear. Withdrawal says why."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sync_net import Network, Resident, network_at

RESIDENT = Resident("王秀兰", "19560312", "002", "13805331234")
FIELDS = ("--field", "family_size=3", "--field", "monthly_income=420")
NEW_PHONE, NEW_NAME = "13912345678", "王秀芝"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with network_at(tmp_path_factory.mktemp("corrections") / "net") as network:
        network.build(("city", "district", "town", "village"))
        yield network


def _file(net: Network, resident: Resident = RESIDENT) -> str:
    filed = net.run(
        "village", "apply", "--item", "MZ001", "--name", resident.name, "--id-number", resident.id_number,
        "--phone", resident.phone, *FIELDS, "--json",
    ).ok()  # fmt: skip
    return str(filed.json()["tracking"])


def test_the_office_reads_the_corrected_values_and_sees_what_changed(net: Network) -> None:
    tracking = _file(net)
    net.sync("village")
    net.run(
        "village", "correct", tracking, "--phone", NEW_PHONE, "--name", NEW_NAME,
        "--field", "family_size=4", "--reason", "录入错误",
    ).ok()  # fmt: skip
    mine = net.run("village", "show", tracking, "--json").ok().json()
    assert (
        mine["applicant"]["phone"] == "139****5678" and mine["applicant"]["name"] != RESIDENT.masked()["name"]
    )
    net.sync("village")
    office = net.run("town", "show", tracking, "--json").ok().json()
    assert office["personal"]["phone"] == NEW_PHONE and office["personal"]["name"] == NEW_NAME
    assert office["personal"]["id_number"] == RESIDENT.id_number  # unchanged values stay
    assert office["personal"]["fields"]["family_size"] == 4
    assert office["personal"]["fields"]["monthly_income"] == 420
    [changed] = office["corrections"]
    assert changed["phone"] == {"from": RESIDENT.phone, "to": NEW_PHONE}
    assert changed["name"] == {"from": RESIDENT.name, "to": NEW_NAME}
    assert changed["fields.family_size"] == {"from": 3, "to": 4}
    [event] = [e for e in office["history"] if e["kind"] == "corrected"]
    assert sorted(event["body"]["changed"]) == ["fields.family_size", "name", "phone"]
    assert event["body"]["reason"] == "录入错误"
    text = net.run("town", "show", tracking).ok().stdout
    assert f"phone {RESIDENT.phone} → {NEW_PHONE}" in text
    # Nobody between holds the new values in clear.
    for relay in ("district", "city"):
        for data in net.home_bytes(relay).values():
            assert NEW_PHONE.encode() not in data and NEW_NAME.encode() not in data
    # Accepted: corrections end there.
    net.run("town", "review", tracking, "accept").ok()
    net.sync("village")
    late = net.run("village", "correct", tracking, "--phone", RESIDENT.phone, "--reason", "又错了")
    assert late.returncode == 1 and "Traceback" not in late.stderr


def test_only_the_filing_point_corrects_and_every_value_is_checked(net: Network) -> None:
    tracking = _file(net, Resident("李志强", "19700505", "013", "13805330001"))
    net.sync("village")
    by_office = net.run("town", "correct", tracking, "--phone", NEW_PHONE, "--reason", "改号")
    assert by_office.returncode == 1 and by_office.stderr.strip().count("\n") == 0
    for args in (
        ("--phone", "12"),  # not a phone
        ("--id-number", "370303195603120021"),  # bad check character
        ("--phone", NEW_PHONE, "--reason", ""),  # no reason
        ("--reason", "没改什么"),  # nothing to change
        ("--field", "family_size=abc", "--reason", "x"),
    ):
        full = args if "--reason" in args else (*args, "--reason", "录入错误")
        before = net.run("village", "show", tracking, "--json").ok().json()
        refused = net.run("village", "correct", tracking, *full)
        assert refused.returncode == 1, full
        assert "Traceback" not in refused.stderr
        assert net.run("village", "show", tracking, "--json").ok().json() == before


def test_withdrawal_says_why(net: Network) -> None:
    tracking = _file(net, Resident("张桂英", "19480808", "024", "13805330002"))
    missing = net.run("village", "withdraw", tracking)
    assert missing.returncode == 2  # --reason is asked for
    other = net.run("village", "withdraw", tracking, "--reason", "other")
    assert other.returncode == 1  # "other" needs its words
    net.run("village", "withdraw", tracking, "--reason", "duplicate").ok()
    net.sync("village")
    [event] = [
        e
        for e in net.run("town", "show", tracking, "--json").ok().json()["history"]
        if e["kind"] == "withdrawn"
    ]
    assert event["body"]["note"] == "filed twice"  # the reason, in the filing point's language
