"""A node home: creating one (``daiban init``) and opening it.

The home holds the database (daiban.db), and keys/ with the secret that keys
the resident-ID lookup hash. Secrets are files readable only by the owner
(0600) and are kept out of the database, so a copied database or replica alone
cannot be searched by ID number."""

from __future__ import annotations

import secrets
from pathlib import Path

from daiban.errors import HomeError
from daiban.i18n import _
from daiban.node import catalog as catalog_mod
from daiban.node.applications import Node
from daiban.node.clock import Clock, stamp, system_clock
from daiban.node.divisions import check_code
from daiban.node.store import DB_NAME, Store
from daiban.node.validation import strip_controls
from daiban.trust.files import write_secret

LOOKUP_KEY = "keys/lookup.key"



def init_home(
    home: Path,
    *,
    role: str,
    code: str,
    name: str,
    catalog_path: Path | None = None,
    clock: Clock = system_clock,
    passphrase: str | None = None,
) -> Node:
    """Make a node home with its database, keys, settings and a catalog (the
    bundled demo catalog unless another file is given). Refuses a home that
    already holds a node. With a recovery passphrase, the keys are also sealed
    under it, for ``daiban backup`` to keep (keybackup.py)."""
    from daiban.node import keybackup

    code = check_code(code, role)
    if passphrase is not None:
        passphrase = keybackup.check_passphrase(passphrase)  # refused before anything is made
    name = " ".join(strip_controls(name or "").split())
    if not name:
        raise HomeError(_("A node needs a name (--name), e.g. 南定镇大张村代办点."))
    db_path = home / DB_NAME
    if db_path.exists():
        raise HomeError(
            _("{home} already holds a node; choose another --home or remove it first.").format(home=home)
        )
    source = catalog_path or catalog_mod.bundled_path()
    try:
        doc = catalog_mod.read_document(source)
    except IsADirectoryError:
        raise HomeError(_("{path} is a folder, not a catalog file.").format(path=source)) from None
    except OSError as exc:
        raise HomeError(
            _("Cannot read {path}: {error}").format(path=source, error=exc.strerror or type(exc).__name__)
        ) from None
    if not code.startswith(doc["city"]["code"]):
        raise HomeError(
            _("Code {code} is not within the catalog's city {city}.").format(
                code=code, city=doc["city"]["code"]
            )
        )
    try:
        home.mkdir(parents=True, exist_ok=True)
        write_secret(home / LOOKUP_KEY, secrets.token_bytes(32))
    except OSError as exc:
        # A read-only folder, a path under a file, a full disk: nothing was made.
        raise HomeError(
            _(
                "Cannot make a node home at {home}: {error}. Choose a folder you can write to "
                "with --home or DAIBAN_HOME."
            ).format(home=home, error=exc.strerror or type(exc).__name__)
        ) from exc
    store = Store.open(db_path, create=True)
    try:
        # Settings and catalog in one transaction: a half-made home never opens.
        with store.transaction():
            store.set_setting("role", role)
            store.set_setting("code", code)
            store.set_setting("name", name)
            store.set_setting("created_at", stamp(clock()))
            node = Node(home, store, clock=clock)
            from daiban.node import identity

            identity.create(node, stamp(clock()))
            node.install_catalog(doc, source="bundled" if catalog_path is None else str(catalog_path))
            from daiban.node import upgrade

            upgrade.record_build(node)
            if passphrase is not None:
                keybackup.set_passphrase(home, code, passphrase)
    except BaseException:
        store.close()
        raise
    return node


def open_node(home: Path, *, clock: Clock = system_clock, actor: str | None = None) -> Node:
    db_path = home / DB_NAME
    if not db_path.exists():
        raise HomeError(
            _(
                "No node at {home}. Run `daiban init --role ROLE --code CODE --name NAME` first, "
                "or point --home / DAIBAN_HOME at the node's folder."
            ).format(home=home)
        )
    store = Store.open(db_path)
    if store.setting("code") is None:
        store.close()
        raise HomeError(
            _("The node at {home} was not fully initialised; remove it and run init again.").format(home=home)
        )
    node = Node(home, store, clock=clock, actor=actor)
    if store.has_queued_effects():
        # A server stored a push and stopped before applying all of it:
        # apply the rest now, so every reader sees it.
        from daiban.node.journal import drain

        drain(node)
    from daiban.node import upgrade

    # Opened by another build than last time: what an older one could not
    # admit is examined again (node/upgrade.py).
    upgrade.after_upgrade(node)
    return node
