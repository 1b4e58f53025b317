"""The city's signed manifest: the catalog (with the working-day calendar),
the revocation list and the offices' certificates, under one version number
that only goes up. A node refuses a manifest version older than the one it
holds, by sync or on an old USB stick (journal._check_kind). The catalog's
own version only goes up too: publish refuses a document not above the one
in force, and install leaves the catalog alone when a manifest carries an
older one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from daiban.errors import DaibanError
from daiban.i18n import _
from daiban.node import catalog, identity, journal
from daiban.node.clock import stamp
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
        version = int(node.store.setting("manifest_version", "0") or 0) + 1
        now = stamp(node.clock())
        body = {
            "version": version,
            "catalog": doc,
            "revoked": sorted(node.store.revoked()),
            "offices": offices(node),
        }
        env = journal.record_broadcast(node, "manifest", body, now)
        install(node, env, now)
    return version


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
    node.store.set_setting("manifest_version", str(body["version"]))
