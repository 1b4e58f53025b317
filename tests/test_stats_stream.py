"""The statistics stream, in process with real node homes, real keys and the
real inbox: an office publishes a record of each application it handles,
signed and not sealed, carrying nothing personal; a district keeps and
forwards what passes up to the city; the latest record wins whatever order
the envelopes come in; and a hop refuses records that are not an office's
own or not in the documented shape."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from daiban.node import identity, journal, routing, statistics, stats
from daiban.node.applications import Node
from daiban.trust import certs, envelope
from daiban.trust.crypto import random_id
from tests.conftest import ZIBO_ID, FrozenClock, filing

MakeNode = Callable[..., Node]
CITY, DISTRICT, TOWN, VILLAGE = "3703", "370303", "370303101", "370303101201"
NOW = "2026-11-27T10:00:00+08:00"
NAME, PHONE, BANK = "欧阳秀兰", "13805339876", "6222021234567890123"
SCHEMA = json.loads(
    (Path(__file__).resolve().parents[1] / "daiban" / "schemas" / "envelope.schema.json").read_text("utf-8")
)


def enroll(parent: Node, child: Node) -> list[dict[str, Any]]:
    """What `daiban enroll` leaves behind at both ends, without HTTP."""
    cert = certs.issue(
        issuer_code=parent.code,
        issuer_sign=parent.keys.sign,
        code=child.code,
        name=child.name,
        sign=child.keys.sign_public,
        enc=child.keys.enc_public,
        serial=random_id(),
        issued_at=NOW,
    )
    chain = [*(identity.own_chain(parent) or []), cert.as_dict()]
    with parent.store.transaction():
        parent.store.put_cert(child.code, cert.serial, chain, "child", NOW)
        parent.store.put_peer(child.code, "child")
        parent._children = None
    with child.store.transaction():
        child.store.set_setting("root_fingerprint", identity.root_fingerprint(parent) or "")
        child.store.set_setting("root_code", parent.store.setting("root_code") or "")
        child.store.put_cert(child.code, cert.serial, chain, "self", NOW)
        child.store.put_peer(parent.code, "parent")
    return chain


def tree(make_node: MakeNode) -> tuple[Node, Node, Node]:
    city = make_node(role="city", code=CITY, name="淄博市")
    district = make_node(role="district", code=DISTRICT, name="张店区")
    town = make_node(role="town", code=TOWN, name="南定镇")
    enroll(city, district)
    enroll(district, town)
    return city, district, town


def file_mz003(town: Node) -> str:
    """A town-level item with a 5-working-day limit, for a village resident."""
    filed = town.file(
        filing(
            item="MZ003",
            name=NAME,
            phone=PHONE,
            region=VILLAGE,
            fields={"assistance_kind": "急难型", "hardship_reason": "房屋失火", "requested_amount": 3721},
        )
    )
    return filed.tracking


def file_mz001(town: Node) -> str:
    """A town-level application filed at the town hall for a village resident."""
    filed = town.file(
        filing(
            item="MZ001",
            name=NAME,
            phone=PHONE,
            region=VILLAGE,
            fields={"family_size": "3", "monthly_income": "420", "bank_account": BANK},
        )
    )
    return filed.tracking


def queued_up(node: Node) -> list[str]:
    return [row.raw for row in node.store.outbox(routing.UP)]


def stats_raws(node: Node) -> list[str]:
    return [r[0] for r in node.store.db.execute("SELECT raw FROM envelopes WHERE kind = 'stats' ORDER BY n")]


def held(node: Node, tracking: str) -> dict[str, Any]:
    return node.store.stats_records_in([tracking])[tracking]


def version(node: Node, tracking: str) -> int:
    return int(
        node.store.db.execute("SELECT version FROM stats WHERE tracking = ?", [tracking]).fetchone()[0]
    )


# -- what an office publishes ---------------------------------------------------


def test_the_record_is_signed_not_sealed_and_carries_nothing_personal(
    make_node: MakeNode, clock: FrozenClock
) -> None:
    _city, _district, town = tree(make_node)
    number = file_mz003(town)
    town.review(number, "accept")
    clock.set("2026-12-02T15:00:00")
    town.review(number, "complete")
    town.evaluate(number, 4)
    row = town.store.application(number)
    assert row is not None and row["name_masked"] and row["id_masked"] and row["phone_masked"]

    assert statistics.flush(town) == 1
    [raw] = stats_raws(town)
    env = envelope.parse(raw)
    assert env.kind == "stats" and env.origin == TOWN and env.to == CITY
    assert env.sealed is None and env.sealed_to is None and env.tracking is None
    envelope.check_signature(env, town.keys.sign_public)
    Draft202012Validator(SCHEMA).validate(json.loads(raw))
    [record] = env.body["records"]
    assert tuple(sorted(record)) == tuple(sorted(stats.FIELDS))
    # Neither the resident's data nor its masked forms, nor any form field.
    for secret in (NAME, ZIBO_ID, PHONE, BANK, row["name_masked"], row["id_masked"], row["phone_masked"]):
        assert secret not in raw, secret
    assert "房屋失火" not in raw and "3721" not in raw  # form fields
    assert record == {
        "tracking": number,
        "office": TOWN,
        "level": "town",
        "item": "MZ003",
        "region": VILLAGE,
        "filer": TOWN,
        "proxy": False,
        "status": "completed",
        "filed_on": "2026-11-27",
        "received_on": "2026-11-27",
        "accepted_on": "2026-11-27",
        "decided_on": "2026-11-27",
        "completed_on": "2026-12-02",
        "due": "2026-12-04",
        "time_limit_days": 5,
        # Fri 27 Nov accepted; Mon 30, Tue 1, Wed 2 Dec are working days.
        "working_days": 3,
        "on_time": True,
        "evaluation": 4,
        "evaluated_on": "2026-12-02",
    }
    # Queued for the parent, on its way to the city.
    assert queued_up(town) == [raw]


def test_a_deadline_no_calendar_covers_is_not_guessed(make_node: MakeNode, clock: FrozenClock) -> None:
    _city, _district, town = tree(make_node)
    number = file_mz001(town)  # 30 working days from late November run into 2027
    town.review(number, "accept")
    clock.set("2026-12-02T15:00:00")
    town.review(number, "complete")
    statistics.flush(town)
    record = held(town, number)
    assert record["due"] is None and record["on_time"] is None
    assert record["working_days"] == 3 and record["status"] == "completed"


def test_only_changes_are_published_each_at_a_higher_version(make_node: MakeNode) -> None:
    _city, _district, town = tree(make_node)
    first, second = (
        file_mz001(town),
        town.file(
            filing(
                item="MZ003", region=VILLAGE, fields={"assistance_kind": "急难型", "hardship_reason": "火灾"}
            )
        ).tracking,
    )
    assert statistics.flush(town) == 2
    assert len(stats_raws(town)) == 1  # both records in one envelope
    assert statistics.flush(town) == 0  # nothing changed, nothing sent
    town.index_personal()  # touches the summary rows, not what the records say
    assert statistics.flush(town) == 0
    v1 = version(town, first)
    town.review(first, "accept")
    assert statistics.flush(town) == 1
    assert version(town, first) > v1
    assert held(town, first)["status"] == "accepted"
    assert held(town, second)["status"] == "received"
    assert len(stats_raws(town)) == 2


def test_many_records_are_split_to_fit_envelopes() -> None:
    record = {k: "x" for k in stats.FIELDS}
    groups = list(statistics.chunks([record] * 250))
    assert [len(g) for g in groups] == [100, 100, 50]
    big = {**record, "item": "y" * 2000}
    groups = list(statistics.chunks([big] * 60))
    assert all(len(json.dumps(g)) <= statistics.BUDGET for g in groups) and sum(map(len, groups)) == 60


def test_a_district_keeps_and_forwards_and_the_latest_record_wins(make_node: MakeNode) -> None:
    city, district, town = tree(make_node)
    number = file_mz001(town)
    statistics.flush(town)
    town.review(number, "accept")
    statistics.flush(town)
    town.review(number, "complete")
    statistics.flush(town)
    v1, v2, v3 = stats_raws(town)
    town_chain = town.store.cert_chain(TOWN)

    # Out of order, and the newest twice: the district holds the newest.
    for batch in ([v3, v1], [v2], [v3]):
        stored, refused = journal.receive(district, batch, sender=TOWN, direction="up", chains=[town_chain])
        assert refused == []
    assert held(district, number)["status"] == "completed"
    assert version(district, number) == envelope.parse(v3).seq
    # Each went on towards the city once.
    assert sorted(queued_up(district)) == sorted([v1, v2, v3])

    # The city gets them in yet another order.
    for batch in ([v2], [v3, v1]):
        stored, refused = journal.receive(city, batch, sender=DISTRICT, direction="up", chains=[town_chain])
        assert refused == [] and all(v.status == "stored" for v in stored)
    assert held(city, number) == held(town, number)
    assert city.store.stats_count() == 1
    assert queued_up(city) == []
    # Re-delivery is a duplicate and changes nothing.
    stored, refused = journal.receive(city, [v1], sender=DISTRICT, direction="up", chains=[town_chain])
    assert [v.status for v in stored] == ["duplicate"]
    assert held(city, number)["status"] == "completed"


def _refusal(node: Node, raw: str, chain: Any, sender: str = TOWN) -> str:
    checked = journal.check(
        node, [raw], sender=sender, direction="up", extra=journal.verify_chains(node, [chain])
    )
    assert checked.accepted == []
    return checked.refused[0].code


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda r, e: r.update(office=DISTRICT, region=VILLAGE), "not_office"),
        (lambda r, e: r.update(name=NAME), "invalid_body"),  # nothing but the documented fields
        (lambda r, e: r.update(evaluation=9), "invalid_body"),
        (lambda r, e: r.update(working_days="3"), "invalid_body"),
        (lambda r, e: r.update(region="370304001001"), "not_office"),  # outside its office
        (lambda r, e: e.update(to=DISTRICT), "malformed"),  # statistics go to the city
        (lambda r, e: e.update(tracking="37030310100000000011"), "malformed"),
    ],
)
def test_a_hop_refuses_records_that_are_not_the_offices_own_or_not_in_shape(
    make_node: MakeNode, change: Callable[[dict[str, Any], dict[str, Any]], None], code: str
) -> None:
    _city, district, town = tree(make_node)
    number = file_mz001(town)
    statistics.flush(town)
    [raw] = stats_raws(town)
    good = envelope.parse(raw)
    record = dict(good.body["records"][0])
    fields: dict[str, Any] = {"to": CITY, "tracking": None}
    change(record, fields)
    forged = envelope.make(
        town.keys,
        id=random_id(),
        origin=TOWN,
        seq=good.seq + 1,
        kind="stats",
        actor="x",
        at=NOW,
        body={"records": [record]},
        **fields,
    )
    assert _refusal(district, forged.raw, town.store.cert_chain(TOWN)) == code
    assert held(town, number)["tracking"] == number
    assert district.store.stats_count() == 0


def test_statistics_are_never_sealed(make_node: MakeNode) -> None:
    _city, district, town = tree(make_node)
    file_mz001(town)
    statistics.flush(town)
    good = envelope.parse(stats_raws(town)[0])
    sealed = envelope.make(
        town.keys,
        id=random_id(),
        origin=TOWN,
        seq=good.seq + 1,
        kind="stats",
        to=CITY,
        tracking=None,
        actor="x",
        at=NOW,
        body=dict(good.body),
        sealed=b"\x00" * 48,
        sealed_to=CITY,
    )
    assert _refusal(district, sealed.raw, town.store.cert_chain(TOWN)) == "malformed"


def test_a_village_publishes_nothing(make_node: MakeNode) -> None:
    village = make_node()
    village.file(filing())
    assert village.store.db.execute("SELECT COUNT(*) FROM stats_pending").fetchone()[0] == 0
    assert statistics.flush(village) == 0
    assert stats_raws(village) == []
