"""Names of offices and agency points, for showing a division code to people
(南定镇便民服务中心 rather than 370303101). Only reference data the node
already holds: the offices the catalog in force lists, the certificates it
holds (each names its node), the children enrolled here and those reported
below (heartbeats), the city's code changes, and the node itself. A code
none of them names stays a code."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from daiban.node.applications import Node


def names(node: Node) -> dict[str, str]:
    """Division code -> name, as far as this node knows."""
    found: dict[str, str] = {}

    def put(code: object, name: object) -> None:
        if isinstance(code, str) and isinstance(name, str) and name.strip():
            found.setdefault(code, name.strip())

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
        put(row["code"], row["name"])
    for change in node.division_changes():
        put(change.new, change.name)
    return found


def place_name(known: dict[str, str], code: str) -> str:
    """A code's name, or the code itself where none is known."""
    return known.get(code) or code
