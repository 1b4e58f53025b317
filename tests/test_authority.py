"""The authorisation table (daiban/node/authority.py): who may record what,
checked from the claim alone at a relay and with what the node holds at the
addressee. Real Zibo codes: city 3703, 张店区 370303, 南定镇 370303101 and two of
its villages; 沣水镇 370303102 is the sibling town, 淄川区 370302 another district."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daiban import i18n
from daiban.node import authority, tracking
from daiban.node.authority import TABLE, Claim, Known, Refusal, Rule, authorise, filer_of, table_markdown
from daiban.node.lifecycle import Kind

CITY = "3703"
DISTRICT = "370303"  # 张店区
TOWN = "370303101"  # 南定镇: the office of town-level items for its villages
VILLAGE = "370303101201"  # the filing node
SIBLING_VILLAGE = "370303101202"
SIBLING_TOWN = "370303102"  # 沣水镇
OTHER_DISTRICT = "370302"  # 淄川区
OTHER_TOWN = "370302001"  # 般阳路街道
FAR_VILLAGE = "370302001201"
NUMBER = tracking.make(VILLAGE, 427)
SERIAL = "0123456789abcdef0123456789abcdef"

WHO = {
    "filer": VILLAGE,
    "office": TOWN,
    "sibling village": SIBLING_VILLAGE,
    "sibling town": SIBLING_TOWN,
    "ancestor": DISTRICT,
    "root": CITY,
}
DECISIONS = ("received", "accepted", "supplement_requested", "rejected", "completed")
FILERS_KINDS = ("withdrawn", "evaluated", "corrected")

RELAY = Known(root=CITY)
# At the addressee of an application event: the filing node (for the office's
# events) or the office (for the filer's), either way holding the application.
HOLDER = Known(
    root=CITY,
    filer=VILLAGE,
    office=TOWN,
    status="completed",
    evaluated=False,
    citywide=False,
    item_level="town",
    is_addressee=True,
)


def code_of(refusal: Refusal | None) -> str | None:
    return None if refusal is None else refusal.code


def app_claim(kind: str, origin: str, to: str, number: str = NUMBER, **body: Any) -> Claim:
    return Claim(kind=kind, origin=origin, to=to, tracking=number, body=body)


def addressed(kind: str, origin: str) -> str:
    """Where a node would address this event for the application (what an
    attacker would write too): routing.destination's rule."""
    if kind in DECISIONS or origin == TOWN:
        return VILLAGE
    if kind == "supplemented" and origin != VILLAGE:
        return VILLAGE  # anyone else would claim to be the office
    return TOWN


# -- (kind × who), at a relay and at the addressee -------------------------------

# Expected code at (relay, addressee); None: allowed.
EXPECTED: dict[str, dict[str, tuple[str | None, str | None]]] = {
    "decision": {
        "filer": ("not_office", "not_office"),
        "office": (None, None),
        "sibling village": ("not_office", "not_office"),
        # An office code: a relay cannot tell which office handles it.
        "sibling town": (None, "not_office"),
        "ancestor": (None, "not_office"),
        "root": (None, "not_office"),
    },
    "supplemented": {
        "filer": (None, None),
        "office": (None, None),
        # The tracking number names the filer: every hop can tell a village is neither.
        "sibling village": ("not_party", "not_party"),
        "sibling town": (None, "not_party"),
        "ancestor": (None, "not_party"),
        "root": (None, "not_party"),
    },
    "filer's": {
        "filer": (None, None),
        # The tracking number names its filer, so every hop can tell.
        "office": ("not_filer", "not_filer"),
        "sibling village": ("not_filer", "not_filer"),
        "sibling town": ("not_filer", "not_filer"),
        "ancestor": ("not_filer", "not_filer"),
        "root": ("not_filer", "not_filer"),
    },
}


def _group(kind: str) -> str:
    if kind in DECISIONS:
        return "decision"
    if kind == "supplemented":
        return "supplemented"
    return "filer's"


@pytest.mark.parametrize("where", ["relay", "addressee"])
@pytest.mark.parametrize("who", list(WHO))
@pytest.mark.parametrize("kind", [*DECISIONS, "supplemented", *FILERS_KINDS])
def test_application_kinds_by_who(kind: str, who: str, where: str) -> None:
    origin = WHO[who]
    claim = app_claim(kind, origin, addressed(kind, origin), score=5)
    known = RELAY if where == "relay" else HOLDER
    relay_code, addressee_code = EXPECTED[_group(kind)][who]
    assert code_of(authorise(claim, known)) == (relay_code if where == "relay" else addressee_code)


@pytest.mark.parametrize("where", ["relay", "addressee"])
@pytest.mark.parametrize("who", list(WHO))
def test_filing_by_who_under_the_filers_number(who: str, where: str) -> None:
    """Only the village itself may use its numbers; anyone else squatting
    on them is refused at the first hop."""
    claim = app_claim("filed", WHO[who], TOWN, region=VILLAGE, office=TOWN, level="town")
    known = RELAY if where == "relay" else HOLDER
    assert code_of(authorise(claim, known)) == (None if who == "filer" else "foreign_tracking")


@pytest.mark.parametrize(
    ("who", "relay", "addressee"),
    [
        ("filer", None, None),
        ("office", None, None),  # the town's own resident (its village)
        ("sibling village", None, "outside_area"),  # a relay's catalog may lack the item
        ("sibling town", None, "outside_area"),
        ("ancestor", None, None),
        ("root", None, None),
    ],
)
def test_filing_by_who_under_its_own_number(who: str, relay: str | None, addressee: str | None) -> None:
    origin = WHO[who]
    claim = app_claim(
        "filed", origin, TOWN, tracking.make(origin, 1), region=VILLAGE, office=TOWN, level="town"
    )
    assert code_of(authorise(claim, RELAY)) == relay
    assert code_of(authorise(claim, Known(root=CITY, is_addressee=True))) == addressee
    # Wherever the catalog says the item is not 全城通办, the hop can tell.
    assert code_of(authorise(claim, Known(root=CITY, citywide=False))) == addressee


@pytest.mark.parametrize("where", ["relay", "addressee"])
@pytest.mark.parametrize("who", list(WHO))
def test_manifest_by_who(who: str, where: str) -> None:
    claim = Claim("manifest", WHO[who], "*", None, {"version": 2})
    known = RELAY if where == "relay" else Known(root=CITY, is_addressee=True)
    assert code_of(authorise(claim, known)) == (None if who == "root" else "not_root")


def test_manifest_without_a_known_root_is_still_the_city() -> None:
    assert authorise(Claim("manifest", CITY, "*", None, {}), Known()) is None
    assert code_of(authorise(Claim("manifest", DISTRICT, "*", None, {}), Known())) == "not_root"
    assert code_of(authorise(Claim("manifest", CITY, TOWN, None, {}), RELAY)) == "wrong_addressee"


@pytest.mark.parametrize("where", ["relay", "addressee"])
@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("filer", "not_ancestor"),  # nobody revokes itself
        ("office", None),
        ("sibling village", "not_ancestor"),
        ("sibling town", "not_ancestor"),
        ("ancestor", None),
        ("root", None),
    ],
)
def test_revocation_of_the_village_by_who(who: str, expected: str | None, where: str) -> None:
    claim = Claim("revocation", WHO[who], "*", None, {"code": VILLAGE, "serial": SERIAL})
    known = RELAY if where == "relay" else Known(root=CITY, revoked_cert=(VILLAGE, SERIAL))
    assert code_of(authorise(claim, known)) == expected


@pytest.mark.parametrize("who", list(WHO))
def test_nobody_revokes_the_root(who: str) -> None:
    claim = Claim("revocation", WHO[who], "*", None, {"code": CITY, "serial": SERIAL})
    assert code_of(authorise(claim, RELAY)) == "root_revocation"
    assert code_of(authorise(claim, Known())) == "root_revocation"  # the city is the root


@pytest.mark.parametrize(
    "code", ["3703031012011", "3703031012010", VILLAGE + "0", "37030", "abcd", 370303, None]
)
def test_revocation_of_what_is_not_a_node(code: object) -> None:
    """13 digits "extend" every village code but name no node."""
    claim = Claim("revocation", TOWN, "*", None, {"code": code, "serial": SERIAL})
    assert code_of(authorise(claim, RELAY)) == "invalid_body"


def test_revocation_serial_must_be_of_a_certificate_for_that_code() -> None:
    claim = Claim("revocation", TOWN, "*", None, {"code": VILLAGE, "serial": SERIAL})
    assert authorise(claim, Known(root=CITY, revoked_cert=(VILLAGE, SERIAL))) is None
    # The root's serial named beside a child's code:
    assert code_of(authorise(claim, Known(root=CITY, revoked_cert=(CITY, SERIAL)))) == "serial_mismatch"
    assert code_of(authorise(claim, Known(revoked_cert=(VILLAGE, "f" * 32)))) == "serial_mismatch"
    assert authorise(claim, Known(root=CITY)) is None  # a hop with no such certificate cannot tell
    no_serial = Claim("revocation", TOWN, "*", None, {"code": VILLAGE, "serial": 7})
    assert code_of(authorise(no_serial, RELAY)) == "invalid_body"
    assert code_of(authorise(Claim("revocation", TOWN, TOWN, None, claim.body), RELAY)) == "wrong_addressee"


def _record(office: str, region: str = VILLAGE) -> dict[str, Any]:
    return {"tracking": NUMBER, "office": office, "region": region}


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("filer", "not_office"),  # a village is no office
        ("office", None),
        ("sibling village", "not_office"),
        ("sibling town", "not_office"),  # records of TOWN's applications
        ("ancestor", "not_office"),
        ("root", "not_office"),
    ],
)
def test_stats_of_the_towns_applications_by_who(who: str, expected: str | None) -> None:
    claim = Claim("stats", WHO[who], CITY, None, {"records": [_record(TOWN)]})
    assert code_of(authorise(claim, RELAY)) == expected


@pytest.mark.parametrize("who", list(WHO))
def test_stats_of_own_applications_by_who(who: str) -> None:
    origin = WHO[who]
    claim = Claim("stats", origin, CITY, None, {"records": [_record(origin, origin)]})
    assert code_of(authorise(claim, RELAY)) == (None if len(origin) < 12 else "not_office")


def test_stats_shape_and_address() -> None:
    ok = {"records": [_record(TOWN), _record(TOWN, TOWN)]}
    assert authorise(Claim("stats", TOWN, CITY, None, ok), Known()) is None
    assert code_of(authorise(Claim("stats", TOWN, DISTRICT, None, ok), RELAY)) == "wrong_addressee"
    outside = {"records": [_record(TOWN, SIBLING_TOWN + "201")]}
    assert code_of(authorise(Claim("stats", TOWN, CITY, None, outside), RELAY)) == "not_office"
    for body in ({}, {"records": "x"}, {"records": [1]}, {"records": {"office": TOWN}}):
        assert code_of(authorise(Claim("stats", TOWN, CITY, None, body), RELAY)) == "invalid_body"


# -- the tracking number --------------------------------------------------------


@pytest.mark.parametrize("code", [VILLAGE, TOWN, DISTRICT, CITY, "370323111205", "370302001"])
def test_the_tracking_number_names_its_filer(code: str) -> None:
    for counter in (1, 427, 9_999_999):
        assert filer_of(tracking.make(code, counter)) == code


def _mistyped(number: str) -> str:
    return number[:-1] + str((int(number[-1]) + 1) % 10)


@pytest.mark.parametrize(
    "number",
    [
        _mistyped(NUMBER),  # check digit wrong
        NUMBER[:10] + NUMBER[11] + NUMBER[10] + NUMBER[12:],  # two digits swapped
        "0" * 20,
        NUMBER[:19],
        "３" + NUMBER[1:],
        None,
        37030310120100004275,
    ],
)
def test_no_filer_in_a_bad_number(number: object) -> None:
    assert filer_of(number) is None


@settings(max_examples=300, deadline=None)
@given(digits=st.text("0123456789", min_size=20, max_size=20))
def test_any_twenty_digits_name_a_filer_only_under_their_damm_digit(digits: str) -> None:
    """A number names a filer only when its Damm digit holds (python-stdnum
    over the whole number), and then the same one whatever the digit."""
    from stdnum import damm

    named = filer_of(digits)
    if not damm.is_valid(digits):
        assert named is None
    else:
        assert named is None or digits.startswith(named)
        body = digits[:-1]
        assert filer_of(body + damm.calc_check_digit(body)) == named
        assert filer_of(_mistyped(digits)) is None


def test_a_padded_code_that_names_no_node() -> None:
    """370300 is the city written the GB/T 2260 way, not a district: a number
    under it names no node (only the city's own, padded, does)."""
    body = "370300" + "123" + "000" + "0000001"
    from stdnum import damm

    number = body + damm.calc_check_digit(body)
    assert filer_of(number) is None
    claim = app_claim("withdrawn", "370300123", TOWN, number)
    assert code_of(authorise(claim, RELAY)) == "malformed"


def test_squatting_on_a_siblings_next_number() -> None:
    """A sibling village files first under the victim's next number."""
    next_number = tracking.make(VILLAGE, 428)
    claim = app_claim(
        "filed", SIBLING_VILLAGE, TOWN, next_number, region=SIBLING_VILLAGE, office=TOWN, level="town"
    )
    refusal = authorise(claim, RELAY)
    assert refusal is not None and refusal.code == "foreign_tracking"
    assert SIBLING_VILLAGE in refusal.reason and next_number in refusal.reason


@pytest.mark.parametrize(
    ("origin", "number"),
    [
        (TOWN, tracking.make(DISTRICT, 1)),  # the district's padded number
        (DISTRICT, tracking.make(TOWN, 1)),  # a number under the district's code, but the town's
        (TOWN, tracking.make(VILLAGE, 1)),  # a village below it
        (TOWN, _mistyped(tracking.make(TOWN, 5))),  # its own prefix, a wrong check digit
    ],
)
def test_numbers_that_are_not_the_origins_own(origin: str, number: str) -> None:
    claim = app_claim("filed", origin, TOWN, number, region=VILLAGE, office=TOWN, level="town")
    assert code_of(authorise(claim, RELAY)) == "foreign_tracking"


# -- area and office --------------------------------------------------------------


def filing(origin: str = VILLAGE, **body: Any) -> Claim:
    full = {"region": VILLAGE, "office": TOWN, "level": "town", **body}
    return app_claim("filed", origin, str(full["office"]), tracking.make(origin, 9), **full)


def test_a_filing_for_its_own_resident_passes_everywhere() -> None:
    claim = filing()
    for known in (Known(), RELAY, HOLDER, Known(root=CITY, citywide=True, item_level="town")):
        assert authorise(claim, known) is None


def test_outside_area_unless_citywide() -> None:
    claim = filing(region=SIBLING_VILLAGE)  # same town: office still TOWN
    assert code_of(authorise(claim, HOLDER)) == "outside_area"
    assert code_of(authorise(claim, Known(root=CITY, citywide=False))) == "outside_area"
    assert authorise(claim, Known(root=CITY, citywide=True, is_addressee=True)) is None
    # A relay whose catalog lacks the item cannot tell; the addressee can.
    assert authorise(claim, RELAY) is None
    assert code_of(authorise(claim, Known(root=CITY, is_addressee=True))) == "outside_area"


def test_a_citywide_filing_for_another_district() -> None:
    claim = filing(region=FAR_VILLAGE, office=OTHER_TOWN)
    assert authorise(claim, Known(root=CITY, citywide=True, item_level="town", is_addressee=True)) is None
    assert code_of(authorise(claim, Known(root=CITY, citywide=False))) == "outside_area"


@pytest.mark.parametrize("citywide", [True, False, None])
def test_never_outside_the_city(citywide: bool | None) -> None:
    claim = filing(region="370402001201", office="370402001")  # 枣庄
    assert code_of(authorise(claim, Known(root=CITY, citywide=citywide))) == "outside_area"
    assert code_of(authorise(claim, Known(citywide=citywide))) == "outside_area"  # the origin's city


@pytest.mark.parametrize(
    ("body", "known"),
    [
        ({"office": DISTRICT}, RELAY),  # a town item sent to the district
        ({"office": SIBLING_TOWN}, RELAY),  # another town
        ({"level": "district"}, RELAY),  # a district item must go to 370303
        ({"office": TOWN}, Known(root=CITY, item_level="district")),  # this node's catalog says district
        ({"region": DISTRICT, "office": TOWN}, RELAY),  # too coarse for a town item
        ({"region": DISTRICT, "office": DISTRICT}, RELAY),
    ],
)
def test_wrong_office(body: dict[str, Any], known: Known) -> None:
    claim = filing(origin=DISTRICT, **body)
    assert code_of(authorise(claim, known)) == "wrong_office"


def test_the_offices_of_each_level() -> None:
    for level, office in (("town", TOWN), ("district", DISTRICT), ("city", CITY)):
        claim = filing(level=level, office=office)
        assert authorise(claim, Known(root=CITY, item_level=level)) is None


def test_a_filing_addressed_elsewhere_than_its_office() -> None:
    claim = filing()
    misaddressed = Claim("filed", VILLAGE, SIBLING_TOWN, claim.tracking, claim.body)
    assert code_of(authorise(misaddressed, RELAY)) == "wrong_office"


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("region", None),
        ("region", 370303101201),
        ("region", "37030310120"),
        ("office", "x"),
        ("level", "village"),
    ],
)
def test_filing_members_of_the_wrong_shape(member: str, value: object) -> None:
    body: dict[str, Any] = {member: value}
    assert code_of(authorise(filing(**body), RELAY)) == "invalid_body"


# -- decisions, supplements, the filer's kinds -------------------------------------


def test_a_decision_goes_back_to_the_filer() -> None:
    to_sibling = app_claim("completed", TOWN, SIBLING_VILLAGE)
    assert code_of(authorise(to_sibling, RELAY)) == "wrong_addressee"
    assert code_of(authorise(to_sibling, HOLDER)) == "wrong_addressee"


def test_received_names_its_office() -> None:
    assert authorise(app_claim("received", TOWN, VILLAGE, office=TOWN), RELAY) is None
    assert code_of(authorise(app_claim("received", TOWN, VILLAGE, office=DISTRICT), RELAY)) == "not_office"


def test_filed_at_the_office_itself() -> None:
    """A town files for its own resident of a town item: it is filer and
    office at once, and its own events stay with it."""
    number = tracking.make(TOWN, 3)
    held = Known(root=CITY, filer=TOWN, office=TOWN, status="completed", evaluated=False, is_addressee=True)
    for kind in (*DECISIONS, "supplemented", *FILERS_KINDS):
        claim = app_claim(kind, TOWN, TOWN, number, score=4)
        assert authorise(claim, held) is None, kind
        assert authorise(claim, RELAY) is None, kind


def test_the_filers_events_go_to_the_office() -> None:
    to_village = app_claim("withdrawn", VILLAGE, SIBLING_VILLAGE)
    assert code_of(authorise(to_village, RELAY)) == "wrong_addressee"  # no office is a village
    to_other_town = app_claim("withdrawn", VILLAGE, SIBLING_TOWN)
    assert authorise(to_other_town, RELAY) is None  # a relay cannot tell which office
    assert code_of(authorise(to_other_town, HOLDER)) == "wrong_addressee"


def test_supplements_either_way() -> None:
    assert authorise(app_claim("supplemented", VILLAGE, TOWN), HOLDER) is None
    assert authorise(app_claim("supplemented", TOWN, VILLAGE), HOLDER) is None
    assert code_of(authorise(app_claim("supplemented", TOWN, TOWN), HOLDER)) == "wrong_addressee"
    assert code_of(authorise(app_claim("supplemented", TOWN, DISTRICT), RELAY)) == "wrong_addressee"


def test_evaluation_once_after_completion() -> None:
    claim = app_claim("evaluated", VILLAGE, TOWN, score=5)
    assert authorise(claim, HOLDER) is None
    again = Known(root=CITY, filer=VILLAGE, office=TOWN, status="completed", evaluated=True)
    assert code_of(authorise(claim, again)) == "already_evaluated"
    early = Known(root=CITY, filer=VILLAGE, office=TOWN, status="accepted", evaluated=False)
    refusal = authorise(claim, early)
    assert refusal is not None and refusal.code == "not_completed"
    assert "accepted" in refusal.reason


def test_the_office_cannot_evaluate_its_own_work() -> None:
    refusal = authorise(app_claim("evaluated", TOWN, VILLAGE, score=5), RELAY)
    assert refusal is not None and refusal.code == "not_filer"
    assert VILLAGE in refusal.reason and TOWN in refusal.reason


# -- shape -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claim", "code"),
    [
        (Claim("moved", VILLAGE, TOWN, NUMBER, {}), "unknown_kind"),
        (Claim(7, VILLAGE, TOWN, NUMBER, {}), "unknown_kind"),  # type: ignore[arg-type]
        (Claim("withdrawn", "37030310120", TOWN, NUMBER, {}), "malformed"),
        (Claim("withdrawn", "370300", TOWN, NUMBER, {}), "malformed"),  # the city written GB/T-style
        (Claim("withdrawn", VILLAGE, 370303101, NUMBER, {}), "malformed"),  # type: ignore[arg-type]
        (Claim("withdrawn", VILLAGE, TOWN, None, {}), "malformed"),
        (Claim("withdrawn", VILLAGE, TOWN, NUMBER[:-1], {}), "malformed"),
        (Claim("withdrawn", VILLAGE, TOWN, NUMBER, []), "invalid_body"),  # type: ignore[arg-type]
        (Claim("stats", TOWN, CITY, NUMBER, {"records": []}), "malformed"),
        (Claim("manifest", CITY, "*", NUMBER, {}), "malformed"),
    ],
)
def test_shape(claim: Claim, code: str) -> None:
    assert code_of(authorise(claim, RELAY)) == code


def test_reasons_in_chinese() -> None:
    i18n.set_language("zh")
    refusal = authorise(app_claim("withdrawn", SIBLING_VILLAGE, TOWN), RELAY)
    assert refusal is not None and refusal.code == "not_filer" and SIBLING_VILLAGE in refusal.reason


# -- the table itself ------------------------------------------------------------------

CONTEXT_CODES = {
    "invalid_body",
    "malformed",
    "unknown_kind",
    "foreign_tracking",
    "outside_area",
    "wrong_office",
    "not_office",
    "not_filer",
    "not_party",
    "already_evaluated",
    "not_ancestor",
    "root_revocation",
    "serial_mismatch",
}
NEW_CODES = {"wrong_addressee", "not_root", "not_completed"}


def test_the_table_covers_every_kind() -> None:
    assert set(TABLE) == {k.value for k in Kind} | {
        "corrected",
        "manifest",
        "revocation",
        "stats",
        "receipts",
    }
    assert [k for k, rule in TABLE.items() if not rule.recordable] == []  # corrected is recordable now
    for rule in TABLE.values():
        assert rule.who and rule.who_zh and rule.to and rule.to_zh and rule.checks


def test_every_code_is_documented() -> None:
    assert authority.CODES == CONTEXT_CODES | NEW_CODES


def test_authorise_is_driven_by_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    claim = app_claim("withdrawn", SIBLING_VILLAGE, TOWN)
    assert code_of(authorise(claim, RELAY)) == "not_filer"
    monkeypatch.setitem(TABLE, "withdrawn", Rule("anyone", "任何节点", "x", "x", ()))
    assert authorise(claim, RELAY) is None


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_table_markdown(lang: str) -> None:
    text = table_markdown(lang)
    lines = text.strip().splitlines()
    assert len(lines) == 2 + len(TABLE)
    assert all(line.startswith("| ") or line.startswith("|---") for line in lines)
    for kind, rule in TABLE.items():
        row = next(line for line in lines if line.startswith(f"| `{kind}` |"))
        assert (rule.who_zh if lang == "zh" else rule.who) in row
        assert row.count("|") == 5
        for code in rule.codes:
            assert (f"`{code}`" in row) == (code not in authority.SHAPE_CODES)
    assert ("谁可以记录" in text) == (lang == "zh")
    # Every kind is recordable now (corrected since issue 12): none is marked.
    assert ("暂不可记录" if lang == "zh" else "not recordable yet") not in text


# -- total: whatever a claim holds, a Refusal or None -------------------------------------

CODES = [CITY, DISTRICT, TOWN, VILLAGE, SIBLING_VILLAGE, SIBLING_TOWN, FAR_VILLAGE, "370300", "3703031012011"]
NUMBERS = [NUMBER, tracking.make(TOWN, 1), tracking.make(CITY, 2), "0" * 20, _mistyped(NUMBER)]
MEMBERS = ["region", "office", "level", "code", "serial", "records", "tracking", "item", "score"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=15),
    st.sampled_from(CODES + NUMBERS + ["town", "district", "city", "*", SERIAL]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(MEMBERS) | st.text(max_size=6), inner, max_size=5)
        | st.tuples(inner, inner)
    ),
    max_leaves=12,
)
bodies = st.one_of(values, st.dictionaries(st.sampled_from(MEMBERS), values, max_size=6))
claims = st.builds(
    Claim,
    kind=st.one_of(st.sampled_from(sorted(TABLE)), values),
    origin=st.one_of(st.sampled_from(CODES), values),
    to=st.one_of(st.sampled_from([*CODES, "*"]), values),
    tracking=st.one_of(st.sampled_from(NUMBERS), values),
    body=bodies,
)
knowns = st.builds(
    Known,
    root=st.one_of(st.none(), st.sampled_from(CODES), values),
    filer=st.one_of(st.none(), st.sampled_from(CODES), values),
    office=st.one_of(st.none(), st.sampled_from(CODES), values),
    status=st.one_of(st.none(), st.sampled_from(["completed", "accepted"]), values),
    evaluated=st.one_of(st.none(), st.booleans()),
    citywide=st.one_of(st.none(), st.booleans()),
    item_level=st.one_of(st.none(), st.sampled_from(["town", "district", "city"]), values),
    revoked_cert=st.one_of(
        st.none(), st.tuples(st.sampled_from(CODES), st.sampled_from([SERIAL, "x"])), values
    ),
    is_addressee=st.booleans(),
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(claim=claims, known=knowns)
def test_authorise_is_total(claim: Claim, known: Known) -> None:
    refusal = authorise(claim, known)
    assert refusal is None or (
        isinstance(refusal, Refusal) and refusal.code in authority.CODES and isinstance(refusal.reason, str)
    )


# Plausible envelopes: a known kind from a real node with a fitting tracking
# number (or none), so the kind's own checks are reached, with any body.
plausible_bodies = st.dictionaries(
    st.sampled_from(MEMBERS),
    st.one_of(
        st.sampled_from(CODES),
        values,
        st.lists(st.dictionaries(st.sampled_from(MEMBERS), st.sampled_from(CODES) | values, max_size=4)),
    ),
    max_size=6,
)


@st.composite
def plausible_claims(draw: st.DrawFn) -> Claim:
    kind = draw(st.sampled_from(sorted(TABLE)))
    number = draw(st.sampled_from(NUMBERS)) if TABLE[kind].application else None
    return Claim(
        kind,
        draw(st.sampled_from(CODES[:-2])),
        draw(st.sampled_from([*CODES, "*"])),
        number,
        draw(plausible_bodies),
    )


@settings(max_examples=500, deadline=None)
@given(claim=plausible_claims(), known=knowns)
def test_a_known_kind_with_any_body(claim: Claim, known: Known) -> None:
    refusal = authorise(claim, known)
    assert refusal is None or (isinstance(refusal, Refusal) and refusal.code in authority.CODES)
