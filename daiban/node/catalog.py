"""The service catalog: loading and checking a catalog document, and finding
items by code, Chinese name, pinyin initials (``cxjmyl`` finds
城乡居民基本养老保险…) and the names people use for them (低保, 医保, 残疾证, and
their initials: ``db`` finds 低保): the catalog's own ``aliases`` of an item,
and a built-in list of the common short names of the standard items
(``COMMON_ALIASES``). Pinyin initials are computed once, when a catalog is
installed (the built-in list carries its own), so reading and searching the
catalog never imports pypinyin."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from daiban.errors import DaibanError, NotFound
from daiban.i18n import _

LEVELS = ("town", "district", "city")


@dataclass(frozen=True)
class Item:
    code: str
    name: str
    level: str
    department: str
    time_limit_days: int
    trips: int
    fee: float
    materials: tuple[Mapping[str, Any], ...]
    fields: Mapping[str, Any]
    initials: str = ""
    guide: str = ""
    citywide: bool = False
    """全城通办: filed anywhere in the city for a resident of anywhere in it."""
    conditions: Mapping[str, Any] = field(default_factory=dict)
    """The item's conditions checked at filing (node/conditions.py): age range,
    guardian."""
    digest: str = ""
    """Of the item's document (``item_digest``): which version of the item an
    application was filed under."""
    aliases: tuple[tuple[str, str], ...] = ()
    """Other names of the item, each with its pinyin initials: the catalog's
    ``aliases`` and the common short names (``COMMON_ALIASES``) its name calls for."""

    @classmethod
    def from_doc(
        cls,
        doc: Mapping[str, Any],
        initials: str = "",
        digest: str = "",
        alias_initials: Mapping[str, str] | None = None,
    ) -> Item:
        return cls(
            code=doc["code"],
            name=doc["name"],
            level=doc["level"],
            department=doc.get("department", ""),
            time_limit_days=int(doc["time_limit_days"]),
            trips=int(doc.get("trips", 0)),
            fee=float(doc.get("fee", 0)),
            materials=tuple(doc.get("materials", ())),
            fields=doc.get("fields") or {"type": "object", "properties": {}},
            initials=initials,
            guide=doc.get("guide", ""),
            citywide=bool(doc.get("citywide", False)),
            conditions=dict(doc.get("conditions") or {}),
            digest=digest or item_digest(doc),
            aliases=aliases_of(doc, alias_initials or {}),
        )

    @property
    def material_names(self) -> list[str]:
        return [m["name"] for m in self.materials]

    @property
    def owable(self) -> list[str]:
        return [m["name"] for m in self.materials if m.get("owable")]

    def summary(self) -> dict[str, Any]:
        """The stable keys of ``catalog list --json``."""
        return {
            "code": self.code,
            "name": self.name,
            "level": self.level,
            "time_limit_days": self.time_limit_days,
            "department": self.department,
            "trips": self.trips,
            "fee": self.fee,
            "citywide": self.citywide,
        }

    def detail(self) -> dict[str, Any]:
        """The stable keys of ``catalog show --json``."""
        return {
            **self.summary(),
            "materials": [dict(m) for m in self.materials],
            "fields": dict(self.fields),
            "guide": self.guide,
            "conditions": dict(self.conditions),
        }


# Common short names of the standard items, by a part of the item's name:
# (part of the official name, ((alias, its pinyin initials), ...)). The
# initials are written out so searching never imports pypinyin; a test checks
# them against pypinyin.
COMMON_ALIASES: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("最低生活保障", (("低保", "db"),)),
    ("特困人员", (("五保", "wb"), ("特困供养", "tkgy"))),
    ("临时救助", (("临时救济", "lsjj"),)),
    ("医疗保险", (("医保", "yb"), ("居民医保", "jmyb"), ("新农合", "xnh"))),
    ("门诊慢特病", (("慢性病", "mxb"), ("慢病", "mb"), ("医保", "yb"))),
    ("异地就医", (("医保", "yb"),)),
    ("养老保险", (("养老金", "ylj"), ("社保", "sb"), ("居民养老", "jmyl"))),
    ("社会保障卡", (("社保卡", "sbk"),)),
    ("残疾人证", (("残疾证", "cjz"), ("残疾人证", "cjrz"))),
    ("重度残疾人护理补贴", (("两项补贴", "lxbt"), ("残疾人补贴", "cjrbt"))),
    ("高龄津贴", (("高龄补贴", "glbt"), ("老年补贴", "lnbt"))),
    ("老年人优待证", (("老年证", "lnz"),)),
    ("住房公积金", (("公积金", "gjj"),)),
    ("就业创业证", (("就业证", "jyz"), ("失业证", "syz"))),
    ("生育登记", (("准生证", "zsz"), ("生育服务证", "syfwz"))),
    ("计划生育家庭奖励扶助", (("奖扶", "jf"), ("独生子女补贴", "dsznbt"))),
    ("法律援助", (("法援", "fy"),)),
    ("宅基地", (("建房审批", "jfsp"),)),
    ("退役军人优待证", (("优待证", "ydz"),)),
)


def aliases_of(doc: Mapping[str, Any], alias_initials: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """An item's other names with their initials: the catalog's own
    (``alias_initials`` as computed at install), then the common ones."""
    found: dict[str, str] = {}
    for alias in doc.get("aliases") or ():
        found.setdefault(str(alias), alias_initials.get(str(alias), ""))
    name = str(doc.get("name", ""))
    for part, common in COMMON_ALIASES:
        if part in name:
            for alias, letters in common:
                found.setdefault(alias, letters)
    return tuple((alias, letters) for alias, letters in found.items() if alias != name)


def item_digest(doc: Mapping[str, Any]) -> str:
    """A short digest of an item's document, the same wherever it is taken.
    Its ``aliases`` are left out: they only help find it, and a catalog that
    adds one does not make a new version of the item."""
    doc = {k: v for k, v in doc.items() if k != "aliases"}
    text = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def level_label(level: str) -> str:
    return {"town": _("town"), "district": _("district"), "city": _("city")}.get(level, level)


def bundled_path() -> Path:
    return Path(str(resources.files("daiban") / "data" / "demo_catalog.json"))


def schema_path() -> Path:
    return Path(str(resources.files("daiban") / "schemas" / "catalog.schema.json"))


def read_document(path: Path) -> dict[str, Any]:
    """Read and check a catalog document; a bad one is refused whole."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound(_("Catalog file {path} does not exist.").format(path=path)) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DaibanError(
            _("Catalog file {path} is not valid UTF-8 JSON: {error}").format(path=path, error=exc),
            code="bad_catalog",
        ) from None
    check_document(doc)
    return doc


def check_document(doc: Any) -> None:
    from jsonschema import Draft202012Validator

    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    errors = sorted(Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.path) or "/"
        raise DaibanError(
            _("The catalog does not match its schema at {where}: {error}").format(
                where=where, error=first.message
            ),
            code="bad_catalog",
        )
    codes = [item["code"] for item in doc["items"]]
    duplicates = sorted({c for c in codes if codes.count(c) > 1})
    if duplicates:
        raise DaibanError(
            _("The catalog lists item codes more than once: {codes}").format(codes=", ".join(duplicates)),
            code="bad_catalog",
        )
    for item in doc["items"]:
        Draft202012Validator.check_schema(item.get("fields") or {})
        check_conditions(item)


def check_conditions(item: Mapping[str, Any]) -> None:
    """What the schema cannot say of an item's conditions: an age range that
    can be met, a guardian rule on a field the form has, with its values."""
    rules = item.get("conditions") or {}
    low, high = rules.get("min_age"), rules.get("max_age")
    if low is not None and high is not None and low > high:
        raise DaibanError(
            _("Item {code}: its min_age {low} is above its max_age {high}.").format(
                code=item["code"], low=low, high=high
            ),
            code="bad_catalog",
        )
    key = (rules.get("guardian") or {}).get("field")
    props = (item.get("fields") or {}).get("properties", {})
    if key is not None and key not in props:
        raise DaibanError(
            _("Item {code}: its guardian rule names {field}, which is not one of its fields.").format(
                code=item["code"], field=key
            ),
            code="bad_catalog",
        )


def initials_of(name: str) -> str:
    """Pinyin initials of a Chinese name, lower case (城乡居民 → cxjm)."""
    from pypinyin import Style, lazy_pinyin

    letters = lazy_pinyin(name, style=Style.FIRST_LETTER, errors="ignore")
    return "".join(x[:1] for x in letters if x).lower()


def _subsequence(letters: str, initials: str) -> bool:
    it = iter(initials)
    return all(ch in it for ch in letters)


def alias_initials_of(doc: Mapping[str, Any]) -> dict[str, str]:
    """At install: the pinyin initials of the catalog's aliases of an item."""
    return {str(alias): initials_of(str(alias)) for alias in doc.get("aliases") or ()}


def score(item: Item, query: str) -> int:
    """How well the query finds this item; 0 for not at all. An agent types
    the initials of the words they remember, skipping some (``cxjmyl`` for
    城乡居民(基本)养老…), so initials match in order, starting at the first.
    The names people use count as much as the official one (低保 and ``db``
    find 最低生活保障审核确认)."""
    q = query.strip()
    if not q:
        return 1
    low = q.lower()
    if item.code.lower() == low:
        return 100
    if q in item.name:
        return 80 if item.name.startswith(q) else 60
    aliases = [alias for alias, _letters in item.aliases]
    if q in aliases:
        return 75
    if any(q in alias for alias in aliases):
        return 55
    if low.isascii() and low.isalpha():
        letters = [item.initials, *(x for _alias, x in item.aliases if x)]
        if low in letters[1:]:
            return 52
        if any(x.startswith(low) for x in letters):
            return 50
        if any(low in x for x in letters):
            return 40
        if item.initials[:1] == low[:1] and _subsequence(low, item.initials):
            return 20
    return 0


def matches(item: Item, query: str) -> bool:
    """Does the query find this item: by code, part of the name, or pinyin initials."""
    return score(item, query) > 0


def search(items: Iterable[Item], query: str = "", level: str | None = None) -> list[Item]:
    """Items the query finds, best first (catalog order among equals)."""
    scored = [(score(i, query), n, i) for n, i in enumerate(items) if level is None or i.level == level]
    return [i for s, _n, i in sorted((x for x in scored if x[0] > 0), key=lambda x: (-x[0], x[1]))]
