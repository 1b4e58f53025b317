"""One look at a node (`daiban status`): who it is, its parent, its versions,
its queues and when it last synced — read from its database, with no network
call unless asked to check the parent (/v1/healthz, briefly)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from daiban.node import custody, routing
from daiban.node.clock import stamp
from daiban.sync import protocol
from daiban.trust import certs as certs_mod

if TYPE_CHECKING:
    from daiban.node.applications import Node

CHECK_TIMEOUT = 3.0
"""Seconds `status --check` waits for the parent's /v1/healthz, at most."""

# Settings the sync client keeps about its last attempt to reach the parent.
LAST_ATTEMPT = "parent_last_attempt_at"
REACHABLE = "parent_reachable"
REFUSAL = "parent_refusal"


def note_attempt(node: Node, reachable: bool, refusal: str | None = None) -> None:
    """Record that a sync tried the parent, whether it answered, and the
    code of its refusal if it refused this node (``revoked``, …). A refusal
    stands until the parent answers without one."""
    with node.store.transaction():
        node.store.set_setting(LAST_ATTEMPT, stamp(node.clock()))
        node.store.set_setting(REACHABLE, "1" if reachable else "0")
        if reachable:
            node.store.set_setting(REFUSAL, refusal or "")


def _serial(chain: Any, index: int) -> str | None:
    try:
        return certs_mod.Cert.from_dict(chain[index]).serial
    except (certs_mod.CertError, IndexError, KeyError, TypeError, ValueError):
        return None


def status(node: Node, *, check: bool = False) -> dict[str, Any]:
    """The node's state, with the stable keys of `status --json`."""
    import daiban

    settings = node.store.settings()
    revoked = node.store.revoked()
    chain = node.store.cert_chain(node.code) or []
    own_serial = _serial(chain, -1) if chain else None
    counts = node.store.outbox_counts()
    parent_code = node.parent()
    parent: dict[str, Any] | None = None
    if parent_code is not None:
        peer = node.store.peer(parent_code) or {}
        parent_serial = _serial(chain, -2) if len(chain) >= 2 else None
        reachable = settings.get(REACHABLE)
        parent = {
            "code": parent_code,
            "url": settings.get("parent_url"),
            "reachable": None if reachable is None else reachable == "1",
            "last_attempt_at": settings.get(LAST_ATTEMPT),
            "last_sync_at": peer.get("last_sync_at"),
            "revoked": parent_serial is not None and parent_serial in revoked,
            # Who revoked it: where to enroll instead, unless told otherwise.
            "revoked_by": node.store.revoked_by(parent_serial) if parent_serial is not None else None,
            "refusal": settings.get(REFUSAL) or None,
            "checked": None,
        }
        if check and parent["url"]:
            parent["checked"] = check_parent(str(parent["url"]))
    return {
        "code": node.code,
        "role": node.role,
        "name": node.name,
        "enrolled": node.role == "city" or parent_code is not None,
        # Revoked: its own serial is in the revocations it holds, or the
        # parent refused its last sync as revoked (which it cannot pull).
        "revoked": (own_serial is not None and own_serial in revoked)
        or (parent is not None and parent["refusal"] == "revoked"),
        "parent": parent,
        "version": daiban.__version__,
        "protocol": protocol.PROTOCOL,
        "catalog_version": node.catalog_info()["version"],
        "manifest_version": int(settings.get("manifest_version", "0") or 0),
        "queued_up": counts.get(routing.UP, 0),
        "held_for_children": {
            hop: n for hop, n in sorted(counts.items()) if hop not in (routing.UP, routing.HELD)
        },
        "held_unenrolled": counts.get(routing.HELD, 0),
        "quarantined": sum(node.store.quarantine_counts().values()),
        "held_for_upgrade": node.store.held_count(),
        "last_sync_at": parent["last_sync_at"] if parent else None,
        # Made anew by every restore (node/custody.py); and the filings
        # handed up that wait for their office's answer.
        "incarnation": custody.incarnation(node.store),
        "kept": node.store.kept_count(),
    }


def check_parent(url: str, timeout: float = CHECK_TIMEOUT) -> dict[str, Any]:
    """Ask the parent's /v1/healthz once, waiting at most ``timeout`` seconds:
    whether it answered, and the versions it speaks."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url.rstrip("/") + protocol.HEALTH, headers=protocol.PROTOCOL_HEADERS)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            body = json.loads(resp.read(64 * 1024).decode("utf-8"))
    except urllib.error.HTTPError as exc:  # it answered, not with its health
        exc.close()
        error = f"HTTP {exc.code}"
        return {"reachable": True, "error": error, "code": None, "version": None, "protocol": None}
    except (OSError, ValueError) as exc:
        error = type(exc).__name__
        return {"reachable": False, "error": error, "code": None, "version": None, "protocol": None}
    if not isinstance(body, Mapping):
        body = {}
    return {
        "reachable": True,
        "error": None,
        "code": body.get("code"),
        "version": body.get("version"),
        "protocol": body.get("protocol"),
    }
