"""Admission: whether a received value may enter the journal at all, before a
push is acknowledged. Pure and fast: plain values in, None or ``Refused`` out;
no database, no keys, no transport.

Three checks, each refusing with a reason code (``Refused.code``) and an
English reason naming what is wrong (``Refused.reason``, through ``_()``):

- ``check_value``: any parsed JSON value is one Daiban can hold — nesting at
  most 16 deep, integers within 64 bits, floats finite, strings valid Unicode
  (no lone surrogates). Code ``malformed``.
- ``check_body``: an event body fits its kind's JSON Schema
  (``daiban/schemas/bodies/<kind>.schema.json``), with every date parsed.
  Codes ``unknown_kind`` and ``invalid_body``.
- ``check_envelope``: a whole parsed envelope: the value, then the envelope's
  own members (``malformed``), then the body.

The body schemas are draft-07 because fastjsonschema compiles them to Python
code, several times faster than jsonschema interprets them: the sync push
handles thousands of envelopes a second. Each kind's validator is compiled on
first use and kept. Two things are checked in code beyond what draft-07 says:
a number with a fraction or exponent where the schema says integer (draft-07
counts 5.0 as an integer; Daiban never writes one, and 5.0 is not 5 to the
state machine), and the formats date and date-time, parsed here rather than
left to a validator's optional format support.

Authorisation (who may record what) is not decided here: only whether the
value is well formed."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from importlib import resources
from typing import Any, NoReturn
from urllib.parse import urljoin

import fastjsonschema
from fastjsonschema import JsonSchemaValueException

from daiban.i18n import _
from daiban.trust.envelope import BROADCAST, MEMBERS, VERSION, Envelope

KINDS = (
    "filed",
    "received",
    "accepted",
    "supplement_requested",
    "supplemented",
    "rejected",
    "completed",
    "withdrawn",
    "evaluated",
    "corrected",
    "manifest",
    "revocation",
    "stats",
    "receipts",
)
APPLICATION_KINDS = frozenset(KINDS[:10])
BROADCAST_KINDS = frozenset({"manifest", "revocation"})
_KNOWN = frozenset(KINDS)

MAX_DEPTH = 16
MIN_INT = -(2**63)
MAX_INT = 2**63 - 1
MAX_ACTOR = 100
ENVELOPE_MEMBERS = MEMBERS
SCHEMA_BASE = "https://daiban.example/schemas/"

# Anchored by fullmatch; [0-9], not \d, which matches any script's digits.
_HEX32 = re.compile(r"[0-9a-f]{32}")
_CODE = re.compile(r"[0-9]{4}(?:[0-9]{2}(?:[0-9]{3}(?:[0-9]{3})?)?)?")
_CITY = re.compile(r"[0-9]{4}")
_TRACKING = re.compile(r"[0-9]{20}")
_B64URL_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_SIG = re.compile(r"[A-Za-z0-9_-]{86}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)


def N_(message: str) -> str:
    """Mark a message for translation where it is used, not where it is written."""
    return message


class Refused(Exception):
    """A value that may not enter: ``code`` (malformed, unknown_kind,
    invalid_body) for the verdict, ``reason`` for the operator. ``newer``:
    what is wrong is only that this build does not know something a newer
    protocol may carry (a kind, a body member); the journal may hold such an
    envelope for an upgrade when its origin's signature verifies (it is
    never admitted on that account)."""

    def __init__(self, code: str, reason: str, *, newer: bool = False) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.newer = newer


# The shape of a kind a later build may add: lower-case words and digits.
_NEW_KIND = re.compile(r"[a-z][a-z0-9_]{0,39}")


def _unknown_kind(kind: object) -> NoReturn:
    raise Refused(
        "unknown_kind",
        _("Unknown envelope kind {kind}.").format(kind=_show(kind)),
        newer=isinstance(kind, str) and _NEW_KIND.fullmatch(kind) is not None,
    )


# -- formats ------------------------------------------------------------------


def is_date(text: str) -> bool:
    """YYYY-MM-DD, a day that exists."""
    if _DATE.fullmatch(text) is None:
        return False
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=256)  # the envelopes of one batch mostly share their time
def is_datetime(text: str) -> bool:
    """ISO 8601 with seconds and a UTC offset (2026-11-27T10:00:00+08:00), a
    moment that exists."""
    if _DATETIME.fullmatch(text) is None:
        return False
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_regex(text: str) -> bool:
    try:
        re.compile(text)
    except (re.error, RecursionError, OverflowError):
        return False
    return True


# -- check_value --------------------------------------------------------------


def check_value(value: object, *, max_depth: int = MAX_DEPTH) -> None:
    """Refuse (``malformed``) a value nested deeper than ``max_depth``, with an
    integer outside 64 bits, a float that is not finite, a string holding a
    lone surrogate, or anything that is not a JSON value."""
    _walk(value, max_depth, "malformed")


def _walk(value: object, max_depth: int, code: str) -> bool:
    """check_value's walk, iterative so no input can exhaust the stack;
    returns whether the value holds a float (for the integer check)."""
    wide: list[str] = []  # non-ASCII strings, checked for surrogates in one go
    has_float = False
    stack: list[tuple[Any, int]] = []
    kind = type(value)
    if kind is dict or kind is list:
        stack.append((value, 1))
    else:
        has_float = _scalar(value, wide, stack, 1, code)
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise Refused(code, _("The value is nested more than {n} levels deep.").format(n=max_depth))
        if type(node) is dict:
            for key, item in node.items():
                if type(key) is not str:
                    if not isinstance(key, str):
                        raise Refused(code, _("An object has a member name that is not text."))
                    key = str.__str__(key)
                if not key.isascii():
                    wide.append(key)
                kind = type(item)
                # The common scalars inline: a call per member would cost more
                # than the check.
                if kind is str:
                    if not item.isascii():
                        wide.append(item)
                elif kind is dict or kind is list:
                    stack.append((item, depth + 1))
                elif kind is int:
                    if not MIN_INT <= item <= MAX_INT:
                        raise Refused(code, _("An integer is outside the 64-bit range."))
                elif kind is not bool and item is not None:
                    has_float = _scalar(item, wide, stack, depth + 1, code) or has_float
        else:
            for item in node:
                kind = type(item)
                if kind is str:
                    if not item.isascii():
                        wide.append(item)
                elif kind is dict or kind is list:
                    stack.append((item, depth + 1))
                elif kind is int:
                    if not MIN_INT <= item <= MAX_INT:
                        raise Refused(code, _("An integer is outside the 64-bit range."))
                elif kind is not bool and item is not None:
                    has_float = _scalar(item, wide, stack, depth + 1, code) or has_float
    if wide:
        try:
            # Surrogates never pair up across strings in Python: any one
            # fails the strict encoding, joined or not.
            "".join(wide).encode("utf-8")
        except UnicodeEncodeError:
            raise Refused(code, _("A text holds a lone surrogate, which is not Unicode.")) from None
    return has_float


def _scalar(item: Any, wide: list[str], stack: list[tuple[Any, int]], depth: int, code: str) -> bool:
    """The rarer values: floats, and subclasses of the JSON types (a StrEnum
    member, a tuple) that a local caller may hand in. True for a float."""
    if item is None or item is True or item is False:
        return False
    if isinstance(item, float):
        if not math.isfinite(item):
            raise Refused(code, _("A number is not finite (NaN or infinity)."))
        return True
    if isinstance(item, str):
        if not item.isascii():
            wide.append(str.__str__(item))
        return False
    if isinstance(item, int):
        if not MIN_INT <= item <= MAX_INT:
            raise Refused(code, _("An integer is outside the 64-bit range."))
        return False
    if isinstance(item, dict):
        stack.append((dict(item), depth))
        return False
    if isinstance(item, list | tuple):
        stack.append((list(item), depth))
        return False
    raise Refused(code, _("A value of type {type} is not JSON.").format(type=type(item).__name__))


def _first_float(value: Any, skip: str | None = None) -> str | None:
    """Where the first float in a (checked, shallow) body is, as body.a[0].b;
    ``skip``: a top-level member not to look in."""
    stack: list[tuple[Any, str]] = [(value, "body")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, float):
            return where
        if isinstance(node, dict):
            for key, item in node.items():
                if not (skip is not None and where == "body" and key == skip):
                    stack.append((item, f"{where}.{_show(key)}"))
        elif isinstance(node, list | tuple):
            stack.extend((item, f"{where}[{n}]") for n, item in enumerate(node))
    return None


# -- check_body ---------------------------------------------------------------


def check_body(kind: str, body: object) -> None:
    """Refuse a kind this build does not know (``unknown_kind``) or a body
    that does not fit its kind's schema (``invalid_body``)."""
    if not isinstance(kind, str) or kind not in _KNOWN:
        _unknown_kind(kind)
    has_float = _walk(body, MAX_DEPTH - 1, "invalid_body")
    _check_body(kind, body, has_float)


def _check_body(kind: str, body: Any, has_float: bool) -> None:
    if not isinstance(body, dict):
        raise Refused("invalid_body", _("{where}: must be {what}").format(where="body", what=_("an object")))
    try:
        _validator(kind)(body)
    except JsonSchemaValueException as exc:
        # A member of the body this build does not know may be one a newer
        # protocol added (a member deeper down is refused: what a record may
        # hold, say, is no news to wait for).
        newer = exc.rule == "additionalProperties" and exc.name == "data"
        raise Refused("invalid_body", _reason(kind, exc), newer=newer) from None
    if has_float:
        where = _first_float(body, "catalog" if kind == "manifest" else None)
        if where is not None:
            raise Refused(
                "invalid_body",
                _("{where}: must be an integer, without a fraction or an exponent").format(where=where),
            )
    if kind == "manifest":
        _check_catalog(body["catalog"])


# -- check_envelope -----------------------------------------------------------


def check_envelope(value: object) -> None:
    """Refuse a parsed envelope that is not well formed (``malformed``), of a
    kind this build does not know (``unknown_kind``), or whose body does not
    fit its kind (``invalid_body``). Signatures are not checked here."""
    has_float = _walk(value, MAX_DEPTH, "malformed")
    if not isinstance(value, dict):
        raise Refused("malformed", _("An envelope must be a JSON object."))
    if value.keys() != ENVELOPE_MEMBERS:
        _members(value)
    # Each check inline and its words translated only on failure: this runs
    # for every envelope of every push.
    v = value["v"]
    if v != VERSION or type(v) is not int:
        raise Refused("malformed", _("Not a version-1 envelope."))
    text = value["id"]
    if not isinstance(text, str) or _HEX32.fullmatch(text) is None:
        _bad("id", N_("32 lowercase hex digits"))
    text = value["origin"]
    if not isinstance(text, str) or _CODE.fullmatch(text) is None:
        _bad("origin", N_("a division code of 4, 6, 9 or 12 digits"))
    seq = value["seq"]
    if type(seq) is not int or not 1 <= seq <= MAX_INT:
        _bad("seq", N_("an integer from 1 to 2^63 - 1"))
    kind = value["kind"]
    if not isinstance(kind, str):
        _bad("kind", N_("a string"))
    to = value["to"]
    if to != BROADCAST and (not isinstance(to, str) or _CODE.fullmatch(to) is None):
        _bad("to", N_("a division code of 4, 6, 9 or 12 digits, or *"))
    tracking = value["tracking"]
    if tracking is not None and (not isinstance(tracking, str) or _TRACKING.fullmatch(tracking) is None):
        _bad("tracking", N_("a tracking number of 20 digits, or null"))
    text = value["actor"]
    if not isinstance(text, str) or len(text) > MAX_ACTOR:
        _bad("actor", N_("a string of at most 100 characters"))
    text = value["at"]
    if not isinstance(text, str) or not is_datetime(text):
        _bad("at", N_("a date and time with its UTC offset (2026-11-27T10:00:00+08:00)"))
    sealed, sealed_to = value["sealed"], value["sealed_to"]
    if sealed is not None:
        if not isinstance(sealed, str) or len(sealed) % 4 == 1 or not _is_b64url(sealed):
            _bad("sealed", N_("base64url without padding, or null"))
        if not isinstance(sealed_to, str) or _CODE.fullmatch(sealed_to) is None:
            _bad("sealed_to", N_("a division code of 4, 6, 9 or 12 digits"))
    elif sealed_to is not None:
        _bad("sealed_to", N_("null, as nothing is sealed"))
    text = value["sig"]
    if not isinstance(text, str) or _SIG.fullmatch(text) is None:
        _bad("sig", N_("an Ed25519 signature in base64url (86 characters)"))
    if kind not in _KNOWN:
        _unknown_kind(kind)
    _route_shape(kind, to, tracking, sealed)
    _check_body(kind, value["body"], has_float)


def check_parsed_envelope(env: Envelope) -> None:
    """``check_parsed`` of a parsed envelope's members."""
    check_parsed(
        seq=env.seq,
        kind=env.kind,
        to=env.to,
        tracking=env.tracking,
        actor=env.actor,
        at=env.at,
        sealed_to=env.sealed_to,
        sealed=env.sealed_text,
        body=env.body,
    )


def check_parsed(
    *,
    seq: int,
    kind: str,
    to: str,
    tracking: Any,
    actor: str,
    at: str,
    sealed_to: Any,
    sealed: str | None,
    body: Any,
) -> None:
    """check_envelope for an envelope daiban.trust.envelope.parse has read:
    parse has already checked its members, their types, the id, origin,
    destination, signature and sealed text, and that the text is canonical
    (so nothing in it is nested past what orjson renders). What is left:
    the bounds parse does not know, the kind, its route, its body. The hot
    path of every push: the same refusals as check_envelope, less work."""
    if not 1 <= seq <= MAX_INT:
        _bad("seq", N_("an integer from 1 to 2^63 - 1"))
    if tracking is not None and (not isinstance(tracking, str) or _TRACKING.fullmatch(tracking) is None):
        _bad("tracking", N_("a tracking number of 20 digits, or null"))
    if len(actor) > MAX_ACTOR:
        _bad("actor", N_("a string of at most 100 characters"))
    if not is_datetime(at):
        _bad("at", N_("a date and time with its UTC offset (2026-11-27T10:00:00+08:00)"))
    if sealed_to is not None and (not isinstance(sealed_to, str) or _CODE.fullmatch(sealed_to) is None):
        _bad("sealed_to", N_("a division code of 4, 6, 9 or 12 digits"))
    if kind not in _KNOWN:
        _unknown_kind(kind)
    _route_shape(kind, to, tracking, sealed)
    if kind == "filed" and filed_surely_valid(body):
        return  # the common case, decided without the general walk and validator
    if kind == "received" and type(body) is dict and body.keys() == _RECEIVED_MEMBERS:
        office = body["office"]
        if type(office) is str and _CODE.fullmatch(office):
            return  # an office's receipt, {"office": code}: as received.schema.json says
    has_float = _walk(body, MAX_DEPTH - 1, "malformed")
    _check_body(kind, body, has_float)


_FILED_MEMBERS = frozenset(
    {"item", "item_name", "level", "region", "office", "materials", "owed", "applicant"}
)
_APPLICANT_MEMBERS = frozenset({"name", "id_number", "phone"})
_RECEIVED_MEMBERS = frozenset({"office"})
_LEVELS = frozenset({"town", "district", "city"})
_ITEM_CODE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_MASKED_NAME = re.compile(r"[^*]?[*]+[^*]?")
_MASKED_ID = re.compile(r"[0-9]{4}[*]{10}[0-9]{3}[0-9X]")
_MASKED_PHONE = re.compile(r"[^*]{3}[*]{3,5}[^*]{4}")


def filed_surely_valid(body: Any) -> bool:
    """A fast test, for the kind every push is made of: True only for a
    `filed` body that fits schemas/bodies/filed.schema.json (checked with
    fullmatch, stricter than the schema's anchors); False sends it to the
    full validator, which also says what is wrong. A body made only of
    bounded strings in fixed members cannot nest, hold numbers or exceed a
    bound, so the general walk has nothing to add."""
    if type(body) is not dict or body.keys() != _FILED_MEMBERS:
        return False
    item, name, level = body["item"], body["item_name"], body["level"]
    if not (type(item) is str and _ITEM_CODE.fullmatch(item)):
        return False
    if not (type(name) is str and 1 <= len(name) <= 100 and type(level) is str and level in _LEVELS):
        return False
    for code in (body["region"], body["office"]):
        if not (type(code) is str and _CODE.fullmatch(code)):
            return False
    for names in (body["materials"], body["owed"]):
        if type(names) is not list or len(names) > 100:
            return False
        for material in names:
            if not (type(material) is str and 1 <= len(material) <= 100):
                return False
    applicant = body["applicant"]
    if type(applicant) is not dict or applicant.keys() != _APPLICANT_MEMBERS:
        return False
    masked, number, phone = applicant["name"], applicant["id_number"], applicant["phone"]
    return (
        type(masked) is str
        and len(masked) <= 40
        and _MASKED_NAME.fullmatch(masked) is not None
        and type(number) is str
        and _MASKED_ID.fullmatch(number) is not None
        and type(phone) is str
        and _MASKED_PHONE.fullmatch(phone) is not None
    )


def _bad(member: str, what: str) -> NoReturn:
    raise Refused("malformed", _("{where}: must be {what}").format(where=member, what=_(what)))


def _is_b64url(text: str) -> bool:
    # bytes.translate deletes the alphabet in C: faster than a regex over the
    # hundreds of characters of a sealed part.
    return text.isascii() and not text.encode("ascii").translate(None, _B64URL_BYTES)


def _members(value: Mapping[str, Any]) -> NoReturn:
    missing = sorted(ENVELOPE_MEMBERS - value.keys())
    if missing:
        raise Refused("malformed", _("The envelope lacks the member {member}.").format(member=missing[0]))
    unknown = sorted(_show(k) for k in value.keys() - ENVELOPE_MEMBERS)
    raise Refused("malformed", _("The envelope has an unknown member {member}.").format(member=unknown[0]))


def _route_shape(kind: str, to: str, tracking: str | None, sealed: str | None) -> None:
    """What envelope.schema.json says of each kind's addressee and tracking."""
    if kind in APPLICATION_KINDS:
        if tracking is None:
            raise Refused("malformed", _("An application event needs its tracking number."))
        if to == BROADCAST:
            raise Refused("malformed", _("An application event goes to one node, not to every node."))
    elif kind in BROADCAST_KINDS:
        if to != BROADCAST or tracking is not None:
            raise Refused(
                "malformed",
                _("A {kind} goes to every node (*), without a tracking number.").format(kind=kind),
            )
    elif kind == "receipts":
        if to == BROADCAST or tracking is not None or sealed is not None:
            raise Refused(
                "malformed",
                _("Receipts go to the node that filed, without a tracking number, never sealed."),
            )
    elif _CITY.fullmatch(to) is None or tracking is not None or sealed is not None:
        raise Refused(
            "malformed", _("Statistics go to a city (4 digits), without a tracking number, never sealed.")
        )


# -- the schemas ----------------------------------------------------------------


def _schema_text(uri: str) -> Any:
    """A schema of ours by its URI; never fetched from the network."""
    if not uri.startswith(SCHEMA_BASE):
        raise ValueError(f"not one of Daiban's schemas: {uri}")
    path = uri[len(SCHEMA_BASE) :].split("#", 1)[0]
    node = resources.files("daiban").joinpath("schemas")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise ValueError(f"not one of Daiban's schemas: {uri}")
        node = node.joinpath(part)
    return json.loads(node.read_text(encoding="utf-8"))


def body_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema document of a kind's body."""
    schema: dict[str, Any] = _schema_text(f"{SCHEMA_BASE}bodies/{kind}.schema.json")
    return schema


FORMATS: dict[str, Callable[[str], bool]] = {"date": is_date, "date-time": is_datetime}

_validators: dict[str, Callable[[Any], Any]] = {}


def _validator(kind: str) -> Callable[[Any], Any]:
    """The compiled validator of a kind's body, compiled on first use."""
    found = _validators.get(kind)
    if found is None:
        uri = f"{SCHEMA_BASE}bodies/{kind}.schema.json"
        found = fastjsonschema.compile(
            inlined(body_schema(kind), uri),
            handlers={"https": _schema_text, "http": _schema_text},
            formats=FORMATS,
            use_default=False,
        )
        _validators[kind] = found
    return found


def inlined(schema: Any, base: str, depth: int = 0) -> Any:
    """``schema`` with every $ref replaced by what it refers to. fastjsonschema
    makes a $ref a function call that formats the path of every array item
    it checks, even valid ones; inline, the path is made only for an error.
    Siblings of a $ref are dropped, as draft-07 ignores them."""
    if depth > 32:
        raise ValueError("schema references nest too deep (a cycle?)")
    if isinstance(schema, list):
        return [inlined(part, base, depth) for part in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = urljoin(base, ref)
        doc_uri, _hash, fragment = target.partition("#")
        doc = _schema_text(doc_uri)
        return inlined(_pointer(doc, fragment), doc_uri, depth + 1)
    return {key: inlined(value, base, depth) for key, value in schema.items()}


def _pointer(doc: Any, fragment: str) -> Any:
    for part in fragment.lstrip("/").split("/") if fragment.strip("/") else []:
        part = part.replace("~1", "/").replace("~0", "~")
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


# Friendly words for the patterns the schemas use, by pattern.
_PATTERNS = {
    "^([0-9]{4}|[0-9]{6}|[0-9]{9}|[0-9]{12})$": N_("a division code of 4, 6, 9 or 12 digits"),
    "^[0-9]{20}$": N_("a tracking number of 20 digits"),
    "^[0-9a-f]{32}$": N_("32 lowercase hex digits"),
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}$": N_("a date (YYYY-MM-DD)"),
    "^[A-Za-z0-9_-]{43}$": N_("a public key in base64url (43 characters)"),
    "^[A-Za-z0-9_-]{86}$": N_("a signature in base64url (86 characters)"),
    "^[A-Za-z0-9_-]{1,32}$": N_("an item code (letters, digits, _ or -, at most 32)"),
    "^[^*]?[*]+[^*]?$": N_("a masked name (王*兰)"),
    "^[0-9]{4}[*]{10}[0-9]{3}[0-9X]$": N_("a masked ID number (3703**********0012)"),
    "^[^*]{3}[*]{3,5}[^*]{4}$": N_("a masked phone number (138****5678)"),
}
_TYPES = {
    "object": N_("an object"),
    "array": N_("an array"),
    "string": N_("a string"),
    "integer": N_("an integer"),
    "number": N_("a number"),
    "boolean": N_("true or false"),
    "null": N_("null"),
}


def _pattern_words(pattern: str) -> str:
    # The English phrases above are msgids, translated where they are used.
    words = _PATTERNS.get(pattern)
    return _(words) if words else _("the pattern {pattern}").format(pattern=pattern)


def _reason(kind: str, exc: JsonSchemaValueException) -> str:
    """An operator's reason for a schema failure: where, and what is wrong."""
    name = exc.name or "data"
    where = "body" + name[4:] if name.startswith("data") else name
    rule = exc.rule
    definition = exc.definition if isinstance(exc.definition, dict) else {}
    value = exc.value
    if rule == "type":
        types = definition.get("type")
        names = [types] if isinstance(types, str) else list(types or [])
        what = _(" or ").join(_(_TYPES.get(t, t)) for t in names)
        return _("{where}: must be {what}").format(where=where, what=what)
    if rule == "required" and isinstance(value, dict):
        missing = [k for k in definition.get("required", []) if k not in value]
        return _("{where}: lacks the member {member}").format(
            where=where, member=missing[0] if missing else "?"
        )
    if rule == "additionalProperties" and isinstance(value, dict):
        known = definition.get("properties", {})
        unknown = sorted(_show(k) for k in value if k not in known)
        return _("{where}: has an unknown member {member}").format(
            where=where, member=unknown[0] if unknown else "?"
        )
    if rule == "format":
        if definition.get("format") == "date":
            return _("{where}: is not a date that exists (YYYY-MM-DD)").format(where=where)
        return _("{where}: is not a date and time with its UTC offset (2026-11-27T10:00:00+08:00)").format(
            where=where
        )
    if rule == "pattern":
        return _("{where}: must be {what}").format(where=where, what=_pattern_words(definition["pattern"]))
    if rule == "minLength":
        if definition["minLength"] == 1:
            return _("{where}: must not be empty").format(where=where)
        return _("{where}: is shorter than {n} characters").format(where=where, n=definition["minLength"])
    if rule == "maxLength":
        return _("{where}: is longer than {n} characters").format(where=where, n=definition["maxLength"])
    if rule == "minItems":
        if definition["minItems"] == 1:
            return _("{where}: must not be empty").format(where=where)
        return _("{where}: has fewer than {n} items").format(where=where, n=definition["minItems"])
    if rule == "maxItems":
        return _("{where}: has more than {n} items").format(where=where, n=definition["maxItems"])
    if rule == "minimum":
        return _("{where}: must be at least {n}").format(where=where, n=definition["minimum"])
    if rule == "maximum":
        return _("{where}: must be at most {n}").format(where=where, n=definition["maximum"])
    if rule == "enum":
        return _("{where}: must be one of {values}").format(
            where=where, values=", ".join(str(v) for v in definition["enum"])
        )
    if rule == "const":
        return _("{where}: must be {what}").format(where=where, what=json.dumps(definition["const"]))
    if rule == "dependencies" and isinstance(value, dict):
        for member, needs in (definition.get("dependencies") or {}).items():
            if member in value:
                for other in needs if isinstance(needs, list) else []:
                    if other not in value:
                        return _("{where}: has {member} without {other}").format(
                            where=where, member=member, other=other
                        )
    if rule == "anyOf":
        return _("{where}: fits none of its allowed forms").format(where=where)
    return _("{where}: does not fit the {kind} body schema ({rule})").format(
        where=where, kind=kind, rule=rule
    )


def _show(value: Any, limit: int = 40) -> str:
    """An untrusted name or value made safe to show: escaped, bounded."""
    text = value if isinstance(value, str) else repr(value)
    shown = json.dumps(text[: limit + 1], ensure_ascii=True)[1:-1]
    return shown[:limit] + "…" if len(shown) > limit else shown


# -- the manifest's catalog -------------------------------------------------------


@lru_cache(maxsize=1)
def _catalog_validator() -> Any:
    from jsonschema import Draft202012Validator, FormatChecker

    checker = FormatChecker(formats=())
    for name, check in (("date", is_date), ("date-time", is_datetime), ("regex", _is_regex)):
        checker.checks(name)(_strings_only(check))
    return Draft202012Validator(_schema_text(f"{SCHEMA_BASE}catalog.schema.json"), format_checker=checker)


def _strings_only(check: Callable[[str], bool]) -> Callable[[object], bool]:
    """A format check as jsonschema calls it: on any value, where a format
    says nothing of what is not a string."""
    return lambda value: not isinstance(value, str) or check(value)


def _check_catalog(doc: Any) -> None:
    """A manifest's catalog: what daiban.node.catalog.check_document checks,
    with the dates parsed; a manifest is rare, so jsonschema's own validator,
    the one the catalog loader uses, decides."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    from daiban.errors import DaibanError
    from daiban.node.catalog import check_conditions

    errors = sorted(_catalog_validator().iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        first = errors[0]
        where = "body.catalog" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{_show(p)}" for p in first.absolute_path
        )
        _refuse_catalog(where, _show(first.message, 200))
    codes = [item["code"] for item in doc["items"]]
    duplicates = sorted({c for c in codes if codes.count(c) > 1})
    if duplicates:
        raise Refused(
            "invalid_body",
            _("{where}: lists item codes more than once: {codes}").format(
                where="body.catalog.items", codes=", ".join(duplicates)
            ),
        )
    for n, item in enumerate(doc["items"]):
        try:
            Draft202012Validator.check_schema(item.get("fields") or {})
        except SchemaError as exc:
            _refuse_catalog(f"body.catalog.items[{n}].fields", _show(exc.message, 200))
        try:
            check_conditions(item)
        except DaibanError as exc:
            _refuse_catalog(f"body.catalog.items[{n}].conditions", _show(exc.message, 200))


def _refuse_catalog(where: str, error: str) -> NoReturn:
    raise Refused(
        "invalid_body",
        _("{where}: does not fit the catalog schema: {error}").format(where=where, error=error),
    )
