"""Names of offices and agency points, for showing a division code to people
(南定镇便民服务中心 rather than 370303101). Only reference data the node
already holds: the offices the catalog in force lists, the certificates it
holds (each names its node), the children enrolled here and those reported
below (heartbeats), the city's code changes, and the node itself. A code
none of them names stays a code."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from daiban.node.divisions import is_within
from daiban.node.text import one_line

if TYPE_CHECKING:
    from daiban.node.applications import Node

NAME_CELLS = 60  # the catalog's longest office name


def names(node: Node) -> dict[str, str]:
    """Division code -> name, as far as this node knows. The sources are
    read from the most trusted down (the city's signed catalog, then
    certificates, this node's own enrollments, then what children report),
    and the first name for a code stands: a node below cannot rename an
    office. Names are shown cleaned of control characters, on one line."""
    found: dict[str, str] = {}

    def put(code: object, name: object) -> None:
        if isinstance(code, str) and isinstance(name, str) and one_line(name):
            found.setdefault(code, one_line(name)[:NAME_CELLS])

    put(node.code, node.name)
    offices = json.loads(node.store.setting("catalog_offices", "{}") or "{}")
    for code, office in offices.items():
        if isinstance(office, dict):
            put(code, office.get("name"))
    for cert in node.store.certs():
        for link in cert["chain"] or ():
            if isinstance(link, dict):
                put(link.get("code"), link.get("name"))
    for child in node.store.children_sync(include_moved=True):
        put(child["code"], child["name"])
    for row in node.store.heartbeats_below(node.code[:4]):
        if is_within(row["code"], row["parent"]) and row["code"] != row["parent"]:  # only its own below
            put(row["code"], row["name"])
    for change in node.division_changes():
        put(change.new, change.name)
    return found


def place_name(known: dict[str, str], code: str) -> str:
    """A code's name, or the code itself where none is known."""
    return known.get(code) or code
