"""Finding applications from what an agent or a member of staff types into
one search box: a tracking number, a resident ID number, a few digits of
either, an item as people name it (低保, 医保, ``db``), or a resident's name.

A string of digits is never a name: 20 digits are a tracking number, 18 (or
17 and X) an ID number, fewer a part of a tracking number or the last digits
of an ID number. Letters name an item (code, pinyin initials, the names people
use). Chinese is a resident's name, and an item's name or alias too.

A name is found as each node may: a village keeps personal data only sealed,
so it matches the masked name it keeps (王秀兰 finds 王*兰, a namesake pattern
such as 王桂兰 too, and says so); an office opens, in memory, the
applications it handles and matches the full name, so 王秀兰 does not find
王桂兰 there. What an office filed for another office stays sealed to that one
and is matched by the masked name."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from daiban.node import catalog, masking, tracking
from daiban.node.applications import PersonalUnavailable, public_view

if TYPE_CHECKING:
    from daiban.node.applications import Node

ID_SHAPE = re.compile(r"^[0-9]{17}[0-9Xx]$")
DIGITS = re.compile(r"^[0-9]+[Xx]?$")
LIMIT = 200
CANDIDATES = 5000
# An item is taken as meant when the query is its code, a part of its name,
# one of its aliases, or its (or an alias's) pinyin initials from the start.
ITEM_SCORE = 50


def kind_of(query: str) -> str:
    """What a search box holds: ``tracking``, ``id_number``, ``digits`` (a
    part of either), ``item`` (letters: a code or pinyin initials) or
    ``name`` (Chinese: a resident's name, or an item's)."""
    compact = compact_query(query)
    if compact.isascii() and compact.isdigit() and len(compact) == 20:
        return "tracking"
    if ID_SHAPE.match(compact):
        return "id_number"
    if DIGITS.match(compact):
        return "digits"
    if compact.isascii():
        return "item"
    return "name"


def compact_query(query: str) -> str:
    """Full-width digits and letters (as a Chinese input method types them)
    read as ASCII; spaces and dashes between groups of digits dropped."""
    return re.sub(r"[\s-]", "", unicodedata.normalize("NFKC", query))


@dataclass
class Found:
    kind: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    """The names of the items the query named (their applications are in rows)."""
    by_full_name: int = 0
    """Rows the resident's full name found (at the office that opens them)."""
    by_masked_name: int = 0
    """Rows found by the masked name only (a village; at an office, what it
    filed for another office)."""
    masked: str = ""
    """The masked name matched where the full name could not be."""
    unopenable: int = 0
    """Applications sealed to a previous key: not searchable by ID number."""

    @property
    def by_name(self) -> int:
        return self.by_full_name + self.by_masked_name


def find(node: Node, query: str) -> Found:
    """Everything the query finds at this node, newest first (see the module)."""
    query = query.strip()
    kind = kind_of(query)
    found = Found(kind)
    if not query:
        return found
    compact = compact_query(query)
    if kind == "tracking":
        found.rows = [node.show(tracking.parse(compact))]
    elif kind == "id_number":
        found.rows = node.list(id_number=compact, limit=LIMIT)
        found.unopenable = len(node.unopenable())
    elif kind == "digits":
        found.rows = [public_view(r) for r in node.store.find_by_digits(node.code, compact, LIMIT)]
    else:
        if kind == "name" and len(query) >= 2:
            found.rows = _by_name(node, query, found)
        items = [i for i in catalog.search(node.items(), query) if catalog.score(i, query) >= ITEM_SCORE]
        found.items = [i.name for i in items]
        seen = {r["tracking"] for r in found.rows}
        for row in node.store.find_by_items(node.code, [i.code for i in items], LIMIT):
            if row["tracking"] not in seen:
                found.rows.append(public_view(row))
    return found


def _by_name(node: Node, name: str, found: Found) -> list[dict[str, Any]]:
    masked = masking.mask_name(name)
    if node.role == "village":
        found.masked = masked
        masked_rows = [public_view(r) for r in node.store.find_by_masked_name(node.code, masked, LIMIT)]
        found.by_masked_name = len(masked_rows)
        return masked_rows
    # An office: the masked name narrows it down (a common one, 王*华, may
    # stand for many: CANDIDATES of them, newest first), the full name decides
    # for what it handles, opened in memory (no full name is ever stored).
    node.index_personal()
    rows: list[dict[str, Any]] = []
    for row in node.store.find_by_masked_name(node.code, masked, CANDIDATES):
        if len(rows) == LIMIT:
            break
        if row["office"] == node.code:
            try:
                personal = node.personal(row["tracking"])
            except PersonalUnavailable:
                continue
            if not personal or personal.get("name") != name:
                continue
            found.by_full_name += 1
        else:  # filed here for another office: sealed to that one
            found.masked = masked
            found.by_masked_name += 1
        rows.append(public_view(row))
    return rows
