"""The city's signed manifest: the catalog (with the working-day calendar),
the revocation list and the offices' certificates, under one version number
that only goes up. A node refuses a manifest version older than the one it
holds, by sync or on an old USB stick (journal._check_kind). The catalog's
own version only goes up too: publish refuses a document not above the one
in force, and install leaves the catalog alone when a manifest carries an
older one.

It carries the city's division code changes too (``divisions``, every one
so far, node/codechanges.py), only once there is one, so a manifest without
them keeps its earlier shape: publish_change signs a manifest around the
catalog in force with one more change; install takes them in, gives the
old office's applications to the new office, and at the old office's own
node hands over every envelope of them toward the new one."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from daiban.errors import DaibanError
from daiban.i18n import _
from daiban.node import catalog, codechanges, identity, journal, routing
from daiban.node.clock import CST, stamp
from daiban.trust import certs as certs_mod
from daiban.trust.envelope import Envelope

if TYPE_CHECKING:
    from daiban.node.applications import Node


def offices(node: Node) -> list[list[Any]]:
    """Chains of every office this node knows (towns, districts, the city)."""
    return [c["chain"] for c in node.store.certs() if len(c["code"]) < 12]


def publish(node: Node, doc: dict[str, Any]) -> int:
    """At the city: sign a new manifest around a checked catalog, install it
    here and send it down to every node. Returns the new version."""
    if node.role != "city":
        raise DaibanError(_("Only the city publishes the catalog."), code="not_city")
    catalog.check_document(doc)
    with node.store.transaction():
        in_force = node.catalog_info()["version"]
        if int(doc["version"]) <= in_force:
            raise DaibanError(
                _(
                    "Catalog version {version} is not above the version in force ({current}); "
                    'raise its "version" and publish again.'
                ).format(version=doc["version"], current=in_force),
                code="catalog_rollback",
            )
        return _sign(node, doc, node.division_changes())


def _sign(node: Node, doc: dict[str, Any], changes: tuple[codechanges.Change, ...]) -> int:
    """Sign, install and send a manifest around ``doc`` and ``changes``;
    call inside a transaction."""
    version = int(node.store.setting("manifest_version", "0") or 0) + 1
    now = stamp(node.clock())
    body: dict[str, Any] = {
        "version": version,
        "catalog": doc,
        "revoked": sorted(node.store.revoked()),
        "offices": offices(node),
    }
    if changes:
        body["divisions"] = [c.as_dict() for c in changes]
    env = journal.record_broadcast(node, "manifest", body, now)
    install(node, env, now)
    return version


def publish_change(node: Node, old: str, new: str, name: str, effective: str | None = None) -> int:
    """At the city: publish that office code ``old`` is now ``new`` (named
    ``name``), in force by law from the day ``effective`` (ISO date; today
    when None), in a new manifest around the catalog in force. Refused, with
    one sentence and nothing stored, unless codechanges.check_change allows
    it. Returns the new manifest version."""
    if node.role != "city":
        raise DaibanError(_("Only the city publishes a change of division code."), code="not_city")
    day = _effective_day(node, effective)
    with node.store.transaction():
        changes = node.division_changes()
        in_use = {str(c["code"]) for c in node.store.certs()}
        old, new, name = codechanges.check_change(changes, old, new, name, in_use)
        doc = _catalog_in_force(node)
        change = codechanges.Change(old, new, name, day, stamp(node.clock()))
        return _sign(node, doc, (*changes, change))


def _effective_day(node: Node, effective: str | None) -> str:
    import datetime as dt

    if effective is None:
        return node.clock().astimezone(CST).date().isoformat()
    try:
        return dt.date.fromisoformat(effective.strip()).isoformat()
    except ValueError:
        raise DaibanError(
            _("The effective day {day!r} is not a date like 2026-12-01.").format(day=effective),
            code="bad_date",
        ) from None


def _catalog_in_force(node: Node) -> dict[str, Any]:
    """The catalog document the city's last manifest carried, or the bundled
    one the city started with; a manifest always carries one."""
    source = str(node.catalog_info()["source"])
    raw = node.store.latest_manifest()
    if raw is not None and source.startswith(MANIFEST_SOURCE):
        doc = json.loads(raw)["body"]["catalog"]
        return dict(doc)
    if source == "bundled":
        return catalog.read_document(catalog.bundled_path())
    raise DaibanError(
        _(
            "The catalog in force here came from {source}, not from a manifest; "
            "publish it first with `daiban catalog publish FILE`."
        ).format(source=source),
        code="no_manifest_catalog",
    )


def newer_catalog(node: Node, doc: dict[str, Any]) -> bool:
    """Does a city-published catalog replace the one in force? Only when its
    own version is above that one's: an older catalog in a newer manifest
    (a city that published one by mistake, an old build) changes nothing.
    A catalog this node started with (bundled, or a file given to `init`)
    gives way to the city's whatever its number."""
    info = node.catalog_info()
    if not str(info["source"]).startswith(MANIFEST_SOURCE):
        return True
    return int(doc.get("version", 0)) > int(info["version"])


MANIFEST_SOURCE = "manifest v"


def install(node: Node, env: Envelope, now: str) -> None:
    body = env.body
    for serial in body.get("revoked", []):
        node.store.revoke(str(serial), "", env.origin, now)
    for chain in body.get("offices", []):
        try:
            leaf = certs_mod.Cert.from_dict(chain[-1])
            if leaf.code != node.code:
                identity.trust(node, chain, "directory", now)
        except (certs_mod.CertError, IndexError, TypeError):
            continue
    doc = body.get("catalog")
    if doc and newer_catalog(node, doc):
        catalog.check_document(doc)
        node.install_catalog(doc, source=f"{MANIFEST_SOURCE}{body['version']}")
    install_changes(node, codechanges.from_body(body.get("divisions", [])), now)
    node.store.set_setting("manifest_version", str(body["version"]))


def install_changes(node: Node, changes: tuple[codechanges.Change, ...], now: str) -> None:
    """Take in the city's code changes: the new ones give the old office's
    applications to the new office here; at the old office's own node,
    every envelope of its applications goes up toward the new office, which
    takes them in as the applications' history (journal.store). A manifest
    never takes a change back: one it lacks stays in force."""
    held = node.division_changes()
    known = {c.old for c in held}
    fresh = [c for c in changes if c.old not in known]
    if not fresh:
        return
    merged = (*held, *fresh)
    node.store.set_setting(codechanges.SETTING, json.dumps([c.as_dict() for c in merged], ensure_ascii=False))
    node.changes_installed()
    handed: list[str] = []
    for change in fresh:
        if change.old == node.code:
            handed = node.store.office_envelopes(node.code)
    for change in fresh:
        node.store.change_office(change.old, codechanges.resolve(change.old, merged))
    for envelope_id in handed:
        node.store.enqueue(envelope_id, routing.UP, "up", now)
