"""Who may record what: the authorisation table, as one pure table in code.

Every event kind has one :class:`Rule`: who may record it (in words, for
docs/ARCHITECTURE.md and the operator) and the checks that enforce it, in
order. :func:`authorise` runs a kind's checks against what an envelope claims
(:class:`Claim`) and what the checking node knows (:class:`Known`), and
answers with the first :class:`Refusal`, or None.

Every hop runs it. A relay knows little: it checks what the claim alone
proves (a tracking number names the node that filed it; a revocation names
the code it revokes; an office's code has 4, 6 or 9 digits). The addressee
holds the application, its catalog and the certificates, so it knows the
most and checks the most. A fact a hop cannot tell is None in Known, and a
check that needs it passes there: "cannot tell" is never "refused".

Plain values in, plain values out: no I/O, no transport. Claims may be of
any shape (the schema check runs first, but this must not rely on it), so
every check looks at types before it looks at values, and authorise is
total: a Refusal or None, never an exception."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from daiban.i18n import _
from daiban.node import codechanges
from daiban.node.codechanges import Change
from daiban.node.divisions import LEVEL_LENGTHS, ROLE_LENGTHS
from daiban.node.lifecycle import kind_label, status_label
from daiban.node.routing import BROADCAST

OFFICE_LENGTHS = frozenset({4, 6, 9})
CODE_LENGTHS = frozenset(ROLE_LENGTHS.values())
TRACKING_LENGTH = 20
PADDED = 12  # a tracking number starts with the filer's code padded to 12 digits
CITY_LENGTH = 4  # the city is the root: nobody is above it, so nobody may revoke it
# Members whose wrong shape is the schema's business; the table's column of
# refusal codes leaves them out (every kind can be refused with them).
SHAPE_CODES = frozenset({"unknown_kind", "malformed", "invalid_body"})


@dataclass(frozen=True)
class Claim:
    """What an envelope claims: its kind, the node that signed it (origin),
    its addressee (a code, or "*" for a broadcast), its tracking number
    (application events only) and its non-personal body."""

    kind: str
    origin: str
    to: str
    tracking: str | None
    body: Mapping[str, Any]
    at: str | None = None
    """When the origin says it signed (decides who was the office then)."""


@dataclass(frozen=True)
class Known:
    """What the checking node knows; None everywhere means "this hop cannot
    tell", and the checks that need a fact pass where it is None.

    ``filer``, ``office``, ``status`` and ``evaluated`` are known where the
    application is held (its office and its filing node). ``citywide`` and
    ``item_level`` come from this node's catalog for a filing's item (None:
    the catalog lacks the item). ``revoked_cert`` is the (code, serial) of the
    certificate this node holds *with the revocation's serial* — looked up by
    serial, not by code, because a replaced PC has several certificates for
    one code. ``is_addressee``: the claim is addressed to this node, which
    then decides what relays could not (see the area rule)."""

    root: str | None = None
    filer: str | None = None
    office: str | None = None
    status: str | None = None
    evaluated: bool | None = None
    citywide: bool | None = None
    item_level: str | None = None
    revoked_cert: tuple[str, str] | None = None
    is_addressee: bool = False
    changes: tuple[Change, ...] = ()
    """The city's code changes this node holds (node/codechanges.py): an old
    office code names the new office, and the old office's decisions count
    only when signed before the change."""


def known_from_row(
    row: Mapping[str, Any],
    root: str | None,
    changes: tuple[Change, ...] = (),
    *,
    addressee: bool = False,
) -> Known:
    """What a node holding an application knows of it, from its summary row
    (``origin``, ``office``, ``status``, ``evaluation``)."""
    return Known(
        root=root,
        filer=row["origin"],
        office=row["office"],
        status=row["status"],
        evaluated=row["evaluation"] is not None,
        is_addressee=addressee,
        changes=changes,
    )


@dataclass(frozen=True)
class Refusal:
    """Why a claim is refused: a reason code (the journal's verdict "code")
    and a sentence for the operator, in the active language."""

    code: str
    reason: str


@dataclass(frozen=True)
class Check:
    """One test of a rule, and the refusal codes it may answer with (for the
    table's documentation: the codes are read from here, not written twice)."""

    codes: tuple[str, ...]
    test: Callable[[Claim, Known], Refusal | None]


@dataclass(frozen=True)
class Rule:
    """Who may record one kind of event, in words (English and Chinese) and
    as the checks that enforce it, run in order."""

    who: str
    who_zh: str
    to: str
    to_zh: str
    checks: tuple[Check, ...]
    application: bool = True
    """Events of an application: they carry its tracking number."""
    recordable: bool = True
    """False for a kind this build names but does not record yet: the journal
    refuses it before authorisation (there is no schema for it)."""

    @property
    def codes(self) -> tuple[str, ...]:
        """Every refusal code this kind's checks may answer with, in order."""
        return tuple(dict.fromkeys(code for check in self.checks for code in check.codes))


# -- plain facts about codes and tracking numbers ----------------------------


# A code's segments: province, city, district, town, village.
_SEGMENTS = ((0, 2), (2, 4), (4, 6), (6, 9), (9, 12))


def is_code(value: object) -> bool:
    """A division code naming a node: 4, 6, 9 or 12 ASCII digits, no segment
    empty (370300 is the city written the GB/T 2260 way, 370303000 a padded
    district, 0000 nothing). This makes the padding of a tracking number
    unambiguous."""
    if not isinstance(value, str) or len(value) not in CODE_LENGTHS:
        return False
    return _is_code_text(value)


@lru_cache(maxsize=8192)
def _is_code_text(value: str) -> bool:
    # Cached: the same few codes are asked about for every envelope of a batch.
    if not (value.isascii() and value.isdigit()):
        return False
    return all(len(value) < end or value[start:end].strip("0") for start, end in _SEGMENTS)


def _is_region(value: object) -> bool:
    """A resident's division as a filing checks it (applications.check_filing):
    4, 6, 9 or 12 ASCII digits."""
    return isinstance(value, str) and len(value) in CODE_LENGTHS and value.isascii() and value.isdigit()


def _is_office(value: object) -> bool:
    """An office's code: a city, district or town, never a village."""
    return isinstance(value, str) and len(value) in OFFICE_LENGTHS and is_code(value)


def _is_tracking_shape(value: object) -> bool:
    return isinstance(value, str) and len(value) == TRACKING_LENGTH and value.isascii() and value.isdigit()


def _damm_ok(number: str) -> bool:
    from stdnum import damm  # imported when needed, as in tracking.py

    return bool(damm.is_valid(number))


def filer_of(tracking: object) -> str | None:
    """The node a tracking number names as its filer: its first 12 digits
    with the padding zeros taken off back to a real code's length (12, 9, 6
    or 4), or None when they name no node or the check digit fails."""
    if not isinstance(tracking, str) or not _is_tracking_shape(tracking):
        return None
    return _filer_of_number(tracking)


@lru_cache(maxsize=4096)
def _filer_of_number(number: str) -> str | None:
    # Cached: a batch's checks ask several times per envelope, and the Damm
    # digit in pure Python is most of authorise's cost on the push path.
    if not _damm_ok(number):
        return None
    padded = number[:PADDED]
    for length in (12, 9, 6, 4):
        code = padded[:length]
        if padded[length:].strip("0") == "" and is_code(code):
            return code
    return None


def _city(known: Known, claim: Claim) -> str:
    """The root's code: known at every enrolled node; else the origin's city
    (every certificate chain leads to the one root)."""
    return known.root if isinstance(known.root, str) and known.root else claim.origin[:CITY_LENGTH]


def _filer(claim: Claim, known: Known) -> str:
    """The filing node: the held application's, else the tracking number's
    (checked by _names_filer before any check that uses it)."""
    if isinstance(known.filer, str) and known.filer:
        return known.filer
    return filer_of(claim.tracking) or ""


def _is_filers_office(claim: Claim, known: Known) -> bool:
    """Whether the origin speaks as the application's office: it is the known
    office, or (where the office is not known) an office's code that is not
    the filer."""
    if known.office is not None:
        return codechanges.may_decide(claim.origin, known.office, claim.at, known.changes)
    return _is_office(claim.origin) and claim.origin != _filer(claim, known)


def _member(claim: Claim, name: str) -> Refusal:
    return Refusal(
        "invalid_body",
        _("The {member!r} member of a {kind!r} body is missing or not valid.").format(
            member=name, kind=claim.kind
        ),
    )


def _misaddressed(claim: Claim, expected: str) -> Refusal:
    return Refusal(
        "wrong_addressee",
        _("A '{kind}' from {origin} goes to {expected}, not {to}.").format(
            kind=kind_label(claim.kind), origin=claim.origin, expected=expected, to=claim.to
        ),
    )


# -- the checks ----------------------------------------------------------------
# Each takes the claim (origin already a code, body a mapping, to a string and,
# for application kinds, the tracking number 20 digits: authorise checked) and
# answers a Refusal or None.


def _own_tracking(claim: Claim, known: Known) -> Refusal | None:
    """A filing only under the origin's own numbers: a sibling that files
    first under another village's next number is refused at its first hop."""
    number = str(claim.tracking)
    if number[:PADDED] == claim.origin.ljust(PADDED, "0") and filer_of(number) == claim.origin:
        return None
    return Refusal(
        "foreign_tracking",
        _("{origin} may file only under its own tracking numbers, not {tracking}.").format(
            origin=claim.origin, tracking=number
        ),
    )


def _own_area(claim: Claim, known: Known) -> Refusal | None:
    """A filing for a resident of the origin's area, unless the item is
    handled anywhere in the city (全城通办); always inside the city. Where the
    item is unknown a relay lets it pass; the addressee refuses it."""
    region = claim.body.get("region")
    if not _is_region(region):
        return _member(claim, "region")
    assert isinstance(region, str)
    city = _city(known, claim)
    if not region.startswith(city):
        return Refusal(
            "outside_area", _("{region} is outside this city ({city}).").format(region=region, city=city)
        )
    if codechanges.within(region, claim.origin, known.changes) or known.citywide is True:
        return None
    if known.citywide is None and not known.is_addressee:
        return None  # this hop's catalog lacks the item: it cannot tell
    return Refusal(
        "outside_area",
        _(
            "{origin} may not file for a resident of {region}: outside its area, and the item "
            "is not handled anywhere in the city (全城通办)."
        ).format(origin=claim.origin, region=region),
    )


def _items_office(claim: Claim, known: Known) -> Refusal | None:
    """The office named is the region's at the item's level (this node's
    catalog's level where it has the item, else the level the filing names),
    and the filing is addressed to it."""
    region = claim.body.get("region")
    office = claim.body.get("office")
    level = known.item_level if known.item_level is not None else claim.body.get("level")
    if not isinstance(level, str) or level not in LEVEL_LENGTHS:
        return _member(claim, "level")
    if not is_code(office):
        return _member(claim, "office")
    assert isinstance(office, str)
    expected = codechanges.resolve(str(region)[: LEVEL_LENGTHS[level]], known.changes)
    if len(str(region)) < LEVEL_LENGTHS[level] or not codechanges.same_office(
        office, expected, known.changes
    ):
        return Refusal(
            "wrong_office",
            _("A {level}-level item for {region} is handled by {expected}, not {office}.").format(
                level=level, region=region, expected=expected, office=office
            ),
        )
    if not codechanges.same_office(claim.to, office, known.changes):
        return Refusal(
            "wrong_office",
            _("A filing for {office} must be addressed to {office}, not {to}.").format(
                office=office, to=claim.to
            ),
        )
    return None


def _names_filer(claim: Claim, known: Known) -> Refusal | None:
    """The tracking number names a node (no application was ever filed under
    one that does not: filings are checked by _own_tracking)."""
    if filer_of(claim.tracking):
        return None
    return Refusal(
        "malformed",
        _("Tracking number {tracking} fails its check digit or names no node.").format(
            tracking=claim.tracking
        ),
    )


def _from_office(claim: Claim, known: Known) -> Refusal | None:
    """A decision only from the application's office: where the office is
    known, exactly it; everywhere, an office's code (never a village)."""
    if not _is_office(claim.origin):
        return Refusal(
            "not_office",
            _("Only an office (a city, district or town) may record '{kind}'; {origin} is not one.").format(
                kind=kind_label(claim.kind), origin=claim.origin
            ),
        )
    said = claim.body.get("office", claim.origin)  # `received` names its office
    for office in (known.office, said):
        if office is not None and not _decides(claim, office, known):
            return Refusal(
                "not_office",
                _("Only the application's office ({office}) may record '{kind}', not {origin}.").format(
                    office=codechanges.resolve(str(office), known.changes),
                    kind=kind_label(claim.kind),
                    origin=claim.origin,
                ),
            )
    return None


def _decides(claim: Claim, office: object, known: Known) -> bool:
    if not isinstance(office, str):
        return False
    return codechanges.may_decide(claim.origin, office, claim.at, known.changes)


def _to_filer(claim: Claim, known: Known) -> Refusal | None:
    """The office's decisions go back to the node that filed."""
    filer = _filer(claim, known)
    return None if claim.to == filer else _misaddressed(claim, filer)


def _by_filer(claim: Claim, known: Known) -> Refusal | None:
    """Withdrawal, correction and evaluation only from the node that filed
    (an office may not evaluate its own work on another node's application)."""
    filer = _filer(claim, known)
    if claim.origin == filer:
        return None
    return Refusal(
        "not_filer",
        _("Only the node that filed {tracking} ({filer}) may record '{kind}', not {origin}.").format(
            tracking=claim.tracking, filer=filer, kind=kind_label(claim.kind), origin=claim.origin
        ),
    )


def _by_party(claim: Claim, known: Known) -> Refusal | None:
    """Supplements from the filing node or the office."""
    if claim.origin == _filer(claim, known) or _is_filers_office(claim, known):
        return None
    return Refusal(
        "not_party",
        _("Only the node that filed {tracking} or its office may record '{kind}', not {origin}.").format(
            tracking=claim.tracking, kind=kind_label(claim.kind), origin=claim.origin
        ),
    )


def _to_other_party(claim: Claim, known: Known) -> Refusal | None:
    """What the filer records goes to the office, what the office records
    back to the filer (as routing.destination addresses them)."""
    filer = _filer(claim, known)
    if _is_filers_office(claim, known):
        return None if claim.to == filer else _misaddressed(claim, filer)
    if known.office is not None:
        if codechanges.same_office(claim.to, known.office, known.changes):
            return None
        return _misaddressed(claim, known.office)
    return None if _is_office(claim.to) else _misaddressed(claim, _("the application's office"))


def _once(claim: Claim, known: Known) -> Refusal | None:
    if known.evaluated is True:
        return Refusal("already_evaluated", _("The resident has already evaluated this application."))
    return None


def _after_completion(claim: Claim, known: Known) -> Refusal | None:
    if known.status is None or known.status == "completed":
        return None
    return Refusal(
        "not_completed",
        _("Cannot record '{kind}' for an application that is '{status}'.").format(
            kind=kind_label(claim.kind), status=status_label(str(known.status))
        ),
    )


def _from_root(claim: Claim, known: Known) -> Refusal | None:
    """The manifest only from the city root (the only 4-digit node)."""
    if known.root is not None:
        ok = claim.origin == known.root
    else:
        ok = len(claim.origin) == CITY_LENGTH
    if ok:
        return None
    return Refusal(
        "not_root",
        _("Only the city root ({root}) may publish the manifest, not {origin}.").format(
            root=_city(known, claim), origin=claim.origin
        ),
    )


def _broadcast(claim: Claim, known: Known) -> Refusal | None:
    return None if claim.to == BROADCAST else _misaddressed(claim, BROADCAST)


def _revoked_code(claim: Claim, known: Known) -> Refusal | None:
    """A revocation names a node (13 digits "extend" every village code, and
    name none) and a serial."""
    if not is_code(claim.body.get("code")):
        return _member(claim, "code")
    if not isinstance(claim.body.get("serial"), str):
        return _member(claim, "serial")
    return None


def _not_root(claim: Claim, known: Known) -> Refusal | None:
    code = str(claim.body["code"])
    if code == known.root or len(code) == CITY_LENGTH:
        return Refusal("root_revocation", _("Nobody may revoke the city root ({code}).").format(code=code))
    return None


def _from_ancestor(claim: Claim, known: Known) -> Refusal | None:
    code = str(claim.body["code"])
    if len(code) > len(claim.origin) and code.startswith(claim.origin):
        return None
    return Refusal(
        "not_ancestor",
        _("{node} may revoke only nodes below it, not {code}.").format(node=claim.origin, code=code),
    )


def _serial_of_code(claim: Claim, known: Known) -> Refusal | None:
    """The serial is of a certificate issued for the code it revokes (else a
    village could name the root's serial beside its own child's code)."""
    held = known.revoked_cert
    code, serial = claim.body["code"], claim.body["serial"]
    if held is None or (isinstance(held, tuple | list) and tuple(held) == (code, serial)):
        return None
    return Refusal(
        "serial_mismatch",
        _("Serial {serial} is not of a certificate issued for {code}.").format(serial=serial, code=code),
    )


def _from_office_code(claim: Claim, known: Known) -> Refusal | None:
    if _is_office(claim.origin):
        return None
    return Refusal(
        "not_office",
        _("Only an office (a city, district or town) may record '{kind}'; {origin} is not one.").format(
            kind=kind_label(claim.kind), origin=claim.origin
        ),
    )


def _to_city(claim: Claim, known: Known) -> Refusal | None:
    city = _city(known, claim)
    return None if claim.to == city else _misaddressed(claim, city)


def _own_records(claim: Claim, known: Known) -> Refusal | None:
    """Statistics only about applications the origin handles: each record's
    office is the origin, and its region lies in the office's area (as an
    office is always a prefix of its applicant's region)."""
    records = claim.body.get("records")
    if not isinstance(records, list):
        return _member(claim, "records")
    for record in records:
        if not isinstance(record, Mapping):
            return _member(claim, "records")
        office, region = record.get("office"), record.get("region")
        if (
            office != claim.origin
            or not isinstance(region, str)
            or not codechanges.within(region, claim.origin, known.changes)
        ):
            return Refusal(
                "not_office",
                _(
                    "{origin} may not publish statistics of applications it does not handle ({tracking})."
                ).format(origin=claim.origin, tracking=record.get("tracking")),
            )
    return None


def _own_children(claim: Claim, known: Known) -> Refusal | None:
    """Heartbeats only about nodes below the origin: each child's code
    extends the origin's (a town reports on its villages, a district on its
    towns and the villages enrolled with it directly)."""
    children = claim.body.get("children", [])
    if not isinstance(children, list):
        return _member(claim, "children")
    for child in children:
        code = child.get("code") if isinstance(child, Mapping) else None
        if not is_code(code):
            return _member(claim, "children")
        assert isinstance(code, str)
        if len(code) <= len(claim.origin) or not codechanges.within(code, claim.origin, known.changes):
            return Refusal(
                "not_ancestor",
                _("{origin} may report only on its own children, not on {code}.").format(
                    origin=claim.origin, code=code
                ),
            )
    return None


def _receipts_of_origin(claim: Claim, known: Known) -> Refusal | None:
    """Receipts in bulk (`receipts`): the office named is the origin, and
    every receipt is of an application the addressee filed, each once. Each
    receipt is then asked as a lone `received` where its application is
    held (journal, node/receipts.py)."""
    if claim.body.get("office") != claim.origin:
        return _member(claim, "office")
    items = claim.body.get("receipts")
    if not isinstance(items, list) or not items:
        return _member(claim, "receipts")
    ids: set[object] = set()
    trackings: set[object] = set()
    for entry in items:
        if not isinstance(entry, Mapping):
            return _member(claim, "receipts")
        tracking, ident = entry.get("tracking"), entry.get("id")
        if tracking in trackings or ident in ids or not isinstance(ident, str):
            return _member(claim, "receipts")
        trackings.add(tracking)
        ids.add(ident)
        filer = filer_of(tracking)
        if filer is None:
            return Refusal(
                "malformed",
                _("Tracking number {tracking} fails its check digit or names no node.").format(
                    tracking=tracking
                ),
            )
        if claim.to != filer:
            return _misaddressed(claim, filer)
    return None


# -- the table -----------------------------------------------------------------

OWN_TRACKING = Check(("foreign_tracking",), _own_tracking)
OWN_AREA = Check(("invalid_body", "outside_area"), _own_area)
ITEMS_OFFICE = Check(("invalid_body", "wrong_office"), _items_office)
NAMES_FILER = Check(("malformed",), _names_filer)
FROM_OFFICE = Check(("not_office",), _from_office)
TO_FILER = Check(("wrong_addressee",), _to_filer)
BY_FILER = Check(("not_filer",), _by_filer)
BY_PARTY = Check(("not_party",), _by_party)
TO_OTHER_PARTY = Check(("wrong_addressee",), _to_other_party)
ONCE = Check(("already_evaluated",), _once)
AFTER_COMPLETION = Check(("not_completed",), _after_completion)
FROM_ROOT = Check(("not_root",), _from_root)
TO_EVERYONE = Check(("wrong_addressee",), _broadcast)
REVOKED_CODE = Check(("invalid_body",), _revoked_code)
NOT_ROOT = Check(("root_revocation",), _not_root)
FROM_ANCESTOR = Check(("not_ancestor",), _from_ancestor)
SERIAL_OF_CODE = Check(("serial_mismatch",), _serial_of_code)
FROM_OFFICE_CODE = Check(("not_office",), _from_office_code)
TO_CITY = Check(("wrong_addressee",), _to_city)
OWN_RECORDS = Check(("invalid_body", "not_office"), _own_records)
OWN_CHILDREN = Check(("invalid_body", "not_ancestor"), _own_children)
RECEIPTS_OF_ORIGIN = Check(("invalid_body", "malformed", "wrong_addressee"), _receipts_of_origin)


def _decision() -> Rule:
    return Rule(
        "only the application's office",
        "仅该办件的办理机构",
        "the filing node",
        "申报节点",
        (NAMES_FILER, FROM_OFFICE, TO_FILER),
    )


def _filers(who: str, who_zh: str, *extra: Check, recordable: bool = True) -> Rule:
    return Rule(
        who,
        who_zh,
        "the application's office",
        "办理机构",
        (NAMES_FILER, BY_FILER, TO_OTHER_PARTY, *extra),
        recordable=recordable,
    )


TABLE: Mapping[str, Rule] = {
    "filed": Rule(
        "the filing node, under its own tracking numbers, for a resident of its own area "
        "(anywhere in the city if the item is 全城通办)",
        "申报节点，仅用本节点的办件编号，仅为本辖区居民申报（全城通办事项可为全市居民申报）",
        "the item's office for the resident's division",
        "申请人所在区划对应事项层级的办理机构",
        (OWN_TRACKING, OWN_AREA, ITEMS_OFFICE),
    ),
    "received": _decision(),
    "accepted": _decision(),
    "supplement_requested": _decision(),
    "rejected": _decision(),
    "completed": _decision(),
    "supplemented": Rule(
        "the filing node or the application's office",
        "申报节点或该办件的办理机构",
        "the other of the two",
        "另一方",
        (NAMES_FILER, BY_PARTY, TO_OTHER_PARTY),
    ),
    "withdrawn": _filers("only the filing node", "仅申报节点"),
    "evaluated": _filers(
        "only the filing node, once, after completion", "仅申报节点，办结后且仅一次", ONCE, AFTER_COMPLETION
    ),
    "corrected": _filers("only the filing node, before acceptance", "仅申报节点，受理前"),
    "manifest": Rule(
        "only the city root",
        "仅市级根节点",
        "every node (`*`)",
        "全部节点（`*`）",
        (FROM_ROOT, TO_EVERYONE),
        application=False,
    ),
    "revocation": Rule(
        "a proper ancestor of the revoked node, naming the serial of a certificate issued for it; "
        "never the root's",
        "被吊销节点的上级节点，所列序列号须属于签发给该节点的证书；不得吊销根节点",
        "every node (`*`)",
        "全部节点（`*`）",
        (TO_EVERYONE, REVOKED_CODE, NOT_ROOT, FROM_ANCESTOR, SERIAL_OF_CODE),
        application=False,
    ),
    "receipts": Rule(
        "only an office, for applications the addressee filed, each receipt as `received` allows",
        "仅办理机构，仅限发往节点申报的办件，每条回执按 `received` 的规则",
        "the filing node",
        "申报节点",
        (FROM_OFFICE_CODE, RECEIPTS_OF_ORIGIN),
        application=False,
    ),
    "stats": Rule(
        "only an office (city, district or town), about the applications it handles "
        "and the last syncs of its own children",
        "仅办理机构（市、区县、镇街），且仅限本机构办理的办件及本节点下级节点的同步情况",
        "its city",
        "所在市",
        (FROM_OFFICE_CODE, TO_CITY, OWN_RECORDS, OWN_CHILDREN),
        application=False,
    ),
}

CODES: frozenset[str] = SHAPE_CODES | {code for rule in TABLE.values() for code in rule.codes}
"""Every code authorise may answer with."""


# -- authorise -------------------------------------------------------------------


def authorise(claim: Claim, known: Known) -> Refusal | None:
    """The first refusal of the claim's kind's rule, or None if this hop
    finds nothing wrong. Total: never raises, whatever the claim holds."""
    kind = claim.kind
    rule = TABLE.get(kind) if isinstance(kind, str) else None
    if rule is None:
        return Refusal("unknown_kind", _("Unknown event kind {kind!r}.").format(kind=kind))
    if not is_code(claim.origin):
        return Refusal(
            "malformed", _("The origin {origin!r} is not a division code.").format(origin=claim.origin)
        )
    if not isinstance(claim.to, str):
        return Refusal("malformed", _("The addressee {to!r} is not a division code.").format(to=claim.to))
    if not isinstance(claim.body, Mapping):
        return Refusal(
            "invalid_body", _("The body of a {kind!r} envelope is not an object.").format(kind=kind)
        )
    if rule.application and not _is_tracking_shape(claim.tracking):
        return Refusal(
            "malformed",
            _("A {kind!r} envelope needs a 20-digit tracking number, not {tracking!r}.").format(
                kind=kind, tracking=claim.tracking
            ),
        )
    if not rule.application and claim.tracking is not None:
        return Refusal("malformed", _("A {kind!r} envelope must carry no tracking number.").format(kind=kind))
    for check in rule.checks:
        refusal = check.test(claim, known)
        if refusal is not None:
            return refusal
    return None


# -- the table in words ----------------------------------------------------------

_HEADERS = {
    "en": ("Kind", "Who may record it", "Addressed to", "Refused with"),
    "zh": ("类型", "谁可以记录", "发往", "拒收代码"),
}
_NOT_YET = {"en": " (not recordable yet)", "zh": "（暂不可记录）"}


def table_markdown(lang: str = "en") -> str:
    """The table as Markdown, in English ("en") or Chinese ("zh"), for
    docs/ARCHITECTURE.md. The refusal codes column leaves out the shape
    codes (unknown_kind, malformed, invalid_body) every kind may get."""
    lang = "zh" if lang.lower().startswith("zh") else "en"
    headers = _HEADERS[lang]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for kind, rule in TABLE.items():
        who = rule.who_zh if lang == "zh" else rule.who
        if not rule.recordable:
            who += _NOT_YET[lang]
        codes = ", ".join(f"`{c}`" for c in rule.codes if c not in SHAPE_CODES)
        to = rule.to_zh if lang == "zh" else rule.to
        lines.append(f"| `{kind}` | {who} | {to} | {codes} |")
    return "\n".join(lines) + "\n"
