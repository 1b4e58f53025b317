"""The store's schema, as numbered migrations (sqlite-utils ``Migrations``).
Each runs in its own transaction and is recorded; never edit one that has
shipped — add the next number."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlite_utils import Database

SET = "daiban"
Step = Callable[["Database"], None]
_STEPS: list[tuple[str, Step]] = []


def migrations(*, name: str) -> Callable[[Step], Step]:
    """Register the next numbered migration (run by sqlite-utils' Migrations)."""

    def register(fn: Step) -> Step:
        _STEPS.append((name, fn))
        return fn

    return register


def names() -> list[str]:
    return [name for name, _fn in _STEPS]


def apply(conn: sqlite3.Connection) -> None:
    """Bring the schema up to date. Opening a home that is up to date (every
    command but the first after an upgrade) asks SQLite one question and
    loads nothing: sqlite-utils, which records and runs migrations, is
    imported only when one is pending (it costs a read-only command such as
    `daiban report` a fifth of its time)."""
    if not pending(conn):
        return
    from sqlite_utils import Database
    from sqlite_utils.migrations import Migrations

    steps = Migrations(SET)
    for name, fn in _STEPS:
        steps(name=name)(fn)
    steps.apply(Database(conn, execute_plugins=False))


def pending(conn: sqlite3.Connection) -> bool:
    """Whether a registered migration is not recorded as applied (in the
    table sqlite-utils' Migrations keeps, ``_sqlite_migrations``)."""
    try:
        done = {
            row[0]
            for row in conn.execute("SELECT name FROM _sqlite_migrations WHERE migration_set = ?", [SET])
        }
    except sqlite3.OperationalError:  # no such table: a new home
        return True
    return not done.issuperset(names())


def _run(db: Database, script: str) -> None:
    """Run a script statement by statement. (sqlite3's executescript would
    COMMIT first, taking the migration out of its transaction.)"""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            if statement.strip().strip(";").strip():
                db.execute(statement)
            statement = ""


@migrations(name="0001_initial")
def m0001_initial(db: Database) -> None:
    _run(
        db,
        """
        -- This node's settings: role, code, name, counters, catalog version.
        CREATE TABLE node (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );

        -- Every change to an application is an immutable event: a unique id,
        -- a gapless sequence number per origin node, the origin's clock (at)
        -- and this node's clock when it stored it (recorded_at). The body
        -- holds nothing personal.
        CREATE TABLE events (
            id TEXT PRIMARY KEY,
            origin TEXT NOT NULL,
            seq INTEGER NOT NULL,
            tracking TEXT NOT NULL,
            kind TEXT NOT NULL,
            actor TEXT NOT NULL,
            at TEXT NOT NULL,
            recorded_at TEXT NOT NULL,
            body TEXT NOT NULL,
            UNIQUE (origin, seq)
        );
        CREATE INDEX events_tracking ON events (tracking);
        CREATE TRIGGER events_no_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'events are immutable'); END;
        CREATE TRIGGER events_no_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'events are immutable'); END;

        -- The one place personal data lives (name, ID number, phone, form
        -- fields), keyed by the event that carried it; the sync layer seals it.
        CREATE TABLE personal (
            event_id TEXT PRIMARY KEY REFERENCES events (id),
            tracking TEXT NOT NULL,
            data TEXT NOT NULL
        );
        CREATE INDEX personal_tracking ON personal (tracking);

        -- Non-personal summary of each application, projected from its events
        -- in the same transaction; masked values only.
        CREATE TABLE applications (
            tracking TEXT PRIMARY KEY,
            item TEXT NOT NULL,
            item_name TEXT NOT NULL,
            level TEXT NOT NULL,
            office TEXT NOT NULL,
            region TEXT NOT NULL,
            origin TEXT NOT NULL,
            status TEXT NOT NULL,
            owed TEXT NOT NULL DEFAULT '[]',
            missing TEXT NOT NULL DEFAULT '[]',
            materials TEXT NOT NULL DEFAULT '[]',
            evaluation INTEGER,
            filed_at TEXT NOT NULL,
            received_at TEXT,
            accepted_on TEXT,
            time_limit_days INTEGER,
            due TEXT,
            due_state TEXT NOT NULL DEFAULT 'pending',
            due_missing_year INTEGER,
            decided_at TEXT,
            completed_at TEXT,
            delivery TEXT,
            name_masked TEXT NOT NULL,
            id_masked TEXT NOT NULL,
            phone_masked TEXT NOT NULL,
            id_hash TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX applications_status ON applications (status);
        CREATE INDEX applications_office ON applications (office, status);
        CREATE INDEX applications_origin ON applications (origin);
        CREATE INDEX applications_resident ON applications (id_hash, item);
        CREATE INDEX applications_due ON applications (due);

        -- The catalog in force (bundled demo until a city-signed one arrives).
        CREATE TABLE catalog_items (
            code TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            initials TEXT NOT NULL,
            level TEXT NOT NULL,
            department TEXT NOT NULL,
            time_limit_days INTEGER NOT NULL,
            trips INTEGER NOT NULL,
            fee REAL NOT NULL,
            doc TEXT NOT NULL
        );

        -- Working-day calendars the city published, for years the bundled
        -- chinesecalendar lacks.
        CREATE TABLE calendar_years (
            year INTEGER PRIMARY KEY,
            spec TEXT NOT NULL
        );

        -- Ledgers imported with `apply --from`, so the same file is not filed twice.
        CREATE TABLE ledger_imports (
            digest TEXT PRIMARY KEY,
            filename TEXT NOT NULL,
            rows INTEGER NOT NULL,
            imported_at TEXT NOT NULL,
            actor TEXT NOT NULL
        );
        """,
    )


@migrations(name="0002_sync")
def m0002_sync(db: Database) -> None:
    _run(
        db,
        """
        -- Every envelope this node holds, as the exact signed text it made or
        -- received (raw), with its own receipt time beside it. n is the local
        -- arrival order.
        CREATE TABLE envelopes (
            n INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            origin TEXT NOT NULL,
            seq INTEGER NOT NULL,
            kind TEXT NOT NULL,
            dest TEXT NOT NULL,
            tracking TEXT,
            digest TEXT NOT NULL,
            raw TEXT NOT NULL,
            origin_at TEXT NOT NULL,
            received_at TEXT NOT NULL,
            received_from TEXT NOT NULL,
            effect TEXT NOT NULL DEFAULT 'none',
            effect_note TEXT,
            UNIQUE (origin, seq)
        );
        CREATE INDEX envelopes_tracking ON envelopes (tracking);
        CREATE INDEX envelopes_pending ON envelopes (effect) WHERE effect = 'pending';
        CREATE TRIGGER envelopes_immutable BEFORE UPDATE OF id, origin, seq, kind, dest, digest, raw
        ON envelopes BEGIN SELECT RAISE(ABORT, 'envelopes are immutable'); END;
        CREATE TRIGGER envelopes_no_delete BEFORE DELETE ON envelopes
        BEGIN SELECT RAISE(ABORT, 'envelopes are kept'); END;

        -- Custody: envelopes this node must still hand to a neighbour. A row
        -- goes only when the neighbour has durably stored the envelope.
        CREATE TABLE outbox (
            n INTEGER PRIMARY KEY AUTOINCREMENT,
            envelope_id TEXT NOT NULL REFERENCES envelopes (id),
            hop TEXT NOT NULL,
            direction TEXT NOT NULL CHECK (direction IN ('up', 'down')),
            queued_at TEXT NOT NULL,
            UNIQUE (envelope_id, hop)
        );
        CREATE INDEX outbox_hop ON outbox (hop, n);

        -- Envelopes a neighbour refused, with its reason; they no longer block the queue.
        CREATE TABLE quarantine (
            envelope_id TEXT PRIMARY KEY REFERENCES envelopes (id),
            hop TEXT NOT NULL,
            code TEXT NOT NULL,
            reason TEXT NOT NULL,
            at TEXT NOT NULL
        );

        -- Envelopes that arrived with a known id but different content.
        CREATE TABLE conflicts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            envelope_id TEXT NOT NULL,
            digest TEXT NOT NULL,
            received_from TEXT NOT NULL,
            at TEXT NOT NULL
        );

        -- Certificates this node knows: its own chain, its ancestors', its
        -- children's and the offices' it may seal to. One current one per code.
        CREATE TABLE certs (
            code TEXT PRIMARY KEY,
            serial TEXT NOT NULL,
            chain TEXT NOT NULL,
            relation TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );

        CREATE TABLE revocations (
            serial TEXT PRIMARY KEY,
            code TEXT NOT NULL,
            by TEXT NOT NULL,
            at TEXT NOT NULL
        );

        -- One-time enrollment codes issued here for children.
        CREATE TABLE enroll_codes (
            code TEXT PRIMARY KEY,
            enroll_code TEXT NOT NULL,
            name TEXT NOT NULL,
            expires TEXT NOT NULL,
            failures INTEGER NOT NULL DEFAULT 0,
            used_at TEXT
        );

        -- Neighbours: the parent (at a child) and the children (at a parent):
        -- the request counter that defeats replays, and the pull cursor.
        CREATE TABLE peers (
            code TEXT PRIMARY KEY,
            relation TEXT NOT NULL CHECK (relation IN ('parent', 'child')),
            counter INTEGER NOT NULL DEFAULT 0,
            cursor INTEGER NOT NULL DEFAULT 0,
            last_seen_at TEXT,
            last_sync_at TEXT
        );

        ALTER TABLE personal ADD COLUMN sealed_to TEXT;
        ALTER TABLE applications ADD COLUMN sync_problem TEXT;
        """,
    )


@migrations(name="0003_bundle_refusals")
def m0003_bundle_refusals(db: Database) -> None:
    _run(
        db,
        """
        -- Envelopes a child handed up on a USB stick that this node refused;
        -- the next bundle back tells the child, which sets them aside.
        CREATE TABLE bundle_refusals (
            child TEXT NOT NULL,
            envelope_id TEXT NOT NULL,
            code TEXT NOT NULL,
            reason TEXT NOT NULL,
            at TEXT NOT NULL,
            PRIMARY KEY (child, envelope_id)
        );
        """,
    )


@migrations(name="0004_bundle_acks")
def m0004_bundle_acks(db: Database) -> None:
    _run(
        db,
        """
        -- Envelopes a child handed up on a USB stick that this node now holds:
        -- the next bundle back acknowledges them by id, so the child lets go.
        -- A row goes once the child's next bundle no longer carries it.
        CREATE TABLE bundle_acks (
            child TEXT NOT NULL,
            envelope_id TEXT NOT NULL,
            PRIMARY KEY (child, envelope_id)
        );
        """,
    )


@migrations(name="0005_agents")
def m0005_agents(db: Database) -> None:
    _run(
        db,
        """
        -- The people who work at this node (agents, office staff): a name and
        -- a PIN kept only as an Argon2 hash. Failed logins are counted so a
        -- guessed PIN locks the name for a while. A removed agent keeps its
        -- row (events name it) but can no longer log in.
        CREATE TABLE agents (
            name TEXT PRIMARY KEY,
            pin_hash TEXT NOT NULL,
            created_at TEXT NOT NULL,
            created_by TEXT NOT NULL,
            failures INTEGER NOT NULL DEFAULT 0,
            locked_until TEXT,
            last_login_at TEXT,
            removed_at TEXT
        );
        """,
    )


@migrations(name="0006_retired_keys")
def m0006_retired_keys(db: Database) -> None:
    _run(
        db,
        """
        -- Signing keys of certificates retired when a node's PC was replaced
        -- and it enrolled again under the same code. A retired key still
        -- vouches for that node's envelopes up to upto_seq (made before the
        -- replacement, restored from its backup); never for a request, nor
        -- for a later envelope.
        CREATE TABLE retired_keys (
            serial TEXT PRIMARY KEY,
            code TEXT NOT NULL,
            sign TEXT NOT NULL,
            upto_seq INTEGER NOT NULL,
            at TEXT NOT NULL
        );
        CREATE INDEX retired_keys_code ON retired_keys (code);
        """,
    )


@migrations(name="0008_stats")
def m0008_stats(db: Database) -> None:
    _run(
        db,
        """
        -- The statistics stream (no personal data): the latest record of each
        -- application, as its office last published it. An office keeps its
        -- own; a district and the city also keep those passing up to them.
        -- version is the office's sequence number of the envelope that carried
        -- the record: a higher one wins, so re-delivery and reordering are harmless.
        CREATE TABLE stats (
            tracking TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            office TEXT NOT NULL,
            level TEXT NOT NULL,
            item TEXT NOT NULL,
            region TEXT NOT NULL,
            filer TEXT NOT NULL,
            proxy INTEGER NOT NULL,
            status TEXT NOT NULL,
            filed_on TEXT NOT NULL,
            received_on TEXT,
            accepted_on TEXT,
            decided_on TEXT,
            completed_on TEXT,
            due TEXT,
            time_limit_days INTEGER,
            working_days INTEGER,
            on_time INTEGER,
            evaluation INTEGER,
            evaluated_on TEXT,
            taken_at TEXT NOT NULL
        );
        CREATE INDEX stats_office ON stats (office);

        -- Applications this office changed since it last published their
        -- records: kept by triggers, so no write path has to remember it.
        CREATE TABLE stats_pending (
            tracking TEXT PRIMARY KEY
        );
        -- (NOT EXISTS, not INSERT OR IGNORE: an outer statement's conflict
        -- policy overrides a trigger's, and the summary is saved by upsert.)
        CREATE TRIGGER applications_stats_insert AFTER INSERT ON applications
        WHEN NEW.office = (SELECT value FROM node WHERE key = 'code')
        AND NOT EXISTS (SELECT 1 FROM stats_pending WHERE tracking = NEW.tracking)
        BEGIN INSERT INTO stats_pending (tracking) VALUES (NEW.tracking); END;
        CREATE TRIGGER applications_stats_update AFTER UPDATE ON applications
        WHEN NEW.office = (SELECT value FROM node WHERE key = 'code')
        AND NOT EXISTS (SELECT 1 FROM stats_pending WHERE tracking = NEW.tracking)
        BEGIN INSERT INTO stats_pending (tracking) VALUES (NEW.tracking); END;

        -- What an office held before this migration is published too.
        INSERT OR IGNORE INTO stats_pending (tracking)
        SELECT tracking FROM applications WHERE office = (SELECT value FROM node WHERE key = 'code');
        """,
    )


@migrations(name="0009_queued_effects")
def m0009_queued_effects(db: Database) -> None:
    _run(
        db,
        """
        -- A server stores what a child pushes first and applies its effect
        -- (an application arriving at its office, a status) right after, so a
        -- push is acknowledged as soon as it is durable. effect = 'queued'
        -- marks those not applied yet; this index finds them.
        CREATE INDEX envelopes_queued ON envelopes (n) WHERE effect = 'queued';
        """,
    )


@migrations(name="0010_quarantine")
def m0010_quarantine(db: Database) -> None:
    _run(
        db,
        """
        -- What used to be called quarantine is this node's own envelopes its
        -- parent refused: set aside so they no longer block the queue.
        ALTER TABLE quarantine RENAME TO set_aside;

        -- Envelopes this node refused when they came in (or that failed to
        -- apply after they were admitted), kept as they came for an operator
        -- to read: `daiban quarantine`. The same bytes from the same sender
        -- again only count up.
        CREATE TABLE quarantine (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            envelope_id TEXT,
            digest TEXT NOT NULL,
            kind TEXT,
            origin TEXT,
            sender TEXT NOT NULL,
            code TEXT NOT NULL,
            reason TEXT NOT NULL,
            raw TEXT NOT NULL,
            first_at TEXT NOT NULL,
            at TEXT NOT NULL,
            count INTEGER NOT NULL DEFAULT 1,
            UNIQUE (digest, sender, code)
        );
        CREATE INDEX quarantine_sender ON quarantine (sender);
        """,
    )


@migrations(name="0011_items_as_filed")
def m0011_items_as_filed(db: Database) -> None:
    import json

    from daiban.node.catalog import item_digest

    _run(
        db,
        """
        -- Every version of every catalog item this node has had in force,
        -- by the digest of its document: an application keeps the item as
        -- it was when it was filed (or reached its office), so it can still
        -- be accepted, supplemented and completed after the city withdraws
        -- or changes the item.
        CREATE TABLE item_docs (
            n INTEGER PRIMARY KEY AUTOINCREMENT,
            digest TEXT NOT NULL UNIQUE,
            code TEXT NOT NULL,
            doc TEXT NOT NULL
        );
        CREATE INDEX item_docs_code ON item_docs (code, n);

        -- The item_docs digest of the item an application was filed under
        -- (NULL for those filed before this migration: the item in force,
        -- else its latest version here).
        ALTER TABLE applications ADD COLUMN item_digest TEXT;
        """,
    )
    for code, doc in db.execute("SELECT code, doc FROM catalog_items ORDER BY code").fetchall():
        db.execute(
            "INSERT OR IGNORE INTO item_docs (digest, code, doc) VALUES (?, ?, ?)",
            [item_digest(json.loads(doc)), code, doc],
        )


@migrations(name="0012_child_heartbeats")
def m0012_child_heartbeats(db: Database) -> None:
    _run(
        db,
        """
        -- Heartbeats (the statistics stream, nothing personal): each town's
        -- and district's direct children as that parent last reported them
        -- (code, name, last sync, enrollment), so a district and the city
        -- see every node below them that has gone silent. A parent keeps its
        -- own as published; a district and the city also keep those passing
        -- up to them. version is the parent's sequence number of the envelope
        -- that carried the record: a higher one wins. gone = 1: the parent no
        -- longer counts it as a child.
        CREATE TABLE child_heartbeats (
            parent TEXT NOT NULL,
            code TEXT NOT NULL,
            version INTEGER NOT NULL,
            name TEXT NOT NULL,
            last_sync_at TEXT,
            enrolled_at TEXT,
            gone INTEGER NOT NULL DEFAULT 0,
            taken_at TEXT NOT NULL,
            PRIMARY KEY (parent, code)
        );
        CREATE INDEX child_heartbeats_code ON child_heartbeats (code);
        """,
    )


@migrations(name="0013_moved_children")
def m0013_moved_children(db: Database) -> None:
    # SQLite cannot change a CHECK constraint in place: the table is made
    # again from its own definition as it stands (with any column an earlier
    # migration added), the constraint widened, the rows copied over.
    old = "CHECK (relation IN ('parent', 'child'))"
    new = "CHECK (relation IN ('parent', 'child', 'moved', 'former'))"
    (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'peers'").fetchone()
    if old not in sql:
        raise RuntimeError("the peers table is not as migration 0013 expects")
    db.execute(sql.replace("CREATE TABLE peers", "CREATE TABLE peers_0013", 1).replace(old, new))
    db.execute("INSERT INTO peers_0013 SELECT * FROM peers")
    db.execute("DROP TABLE peers")
    db.execute("ALTER TABLE peers_0013 RENAME TO peers")
    _run(
        db,
        """
        -- A child that enrolled with another parent since (a village moved
        -- between its town and its district) is kept for the record as
        -- 'moved', with the parent it went to; at the child, the parent it
        -- left is kept as 'former' (a bundle that parent made for it is
        -- still taken in).
        ALTER TABLE peers ADD COLUMN moved_to TEXT;
        ALTER TABLE peers ADD COLUMN moved_at TEXT;

        -- A child enrolled here whose certificate chain the parent has not
        -- acknowledged yet: the next push carries it, so a parent that held
        -- this child before learns that it moved (node/moving.py).
        ALTER TABLE peers ADD COLUMN announce INTEGER NOT NULL DEFAULT 0;
        """,
    )


@migrations(name="0014_custody")
def m0014_custody(db: Database) -> None:
    _run(
        db,
        """
        -- This node's incarnation: a random id, made again whenever the node
        -- is restored from a backup (node/custody.py). Its children see it in
        -- every pull answer; at a child, the parent's as last seen, for the
        -- pull cursor it goes with.
        INSERT OR IGNORE INTO node (key, value) VALUES ('incarnation', lower(hex(randomblob(8))));
        ALTER TABLE peers ADD COLUMN incarnation TEXT;

        -- Filings this node handed up, kept until their office answers for
        -- that application (any event of the office on it). Should the parent
        -- be restored from a backup meanwhile, they go up again.
        CREATE TABLE kept (
            envelope_id TEXT PRIMARY KEY REFERENCES envelopes (id),
            tracking TEXT NOT NULL,
            office TEXT NOT NULL,
            kept_at TEXT NOT NULL
        );
        CREATE INDEX kept_tracking ON kept (tracking);

        -- The personal part of a filing made here, sealed to this node's own
        -- key as well, until its office has answered; enc: the office's key
        -- it went sealed to. Should the office lose its keys and enroll
        -- again, the filing is sealed again to its new key.
        CREATE TABLE kept_personal (
            event_id TEXT PRIMARY KEY,
            tracking TEXT NOT NULL,
            office TEXT NOT NULL,
            sealed TEXT NOT NULL,
            enc TEXT NOT NULL
        );
        CREATE INDEX kept_personal_tracking ON kept_personal (tracking);
        """,
    )


@migrations(name="0015_revoked_children")
def m0015_revoked_children(db: Database) -> None:
    # The peers table again (as in 0013), its relation list widened by
    # 'revoked', whatever other relations an earlier migration allowed.
    (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'peers'").fetchone()
    start = sql.find("CHECK (relation IN (")
    end = sql.find(")", start + len("CHECK (relation IN ("))
    if start < 0 or end < 0:
        raise RuntimeError("the peers table is not as migration 0015 expects")
    widened = sql[:end] + ", 'revoked'" + sql[end:]
    # A renamed table's SQL names it quoted ("peers"): the name is cut off
    # up to the column list, whatever its quoting.
    db.execute("CREATE TABLE peers_0015 " + widened[widened.index("(") :])
    db.execute("INSERT INTO peers_0015 SELECT * FROM peers")
    db.execute("DROP TABLE peers")
    db.execute("ALTER TABLE peers_0015 RENAME TO peers")
    _run(
        db,
        """
        -- Certificates that still count though the certificate of the node
        -- that issued them is revoked: the revoking ancestor listed them in
        -- its revocation (node/revocation.py), as the ones it knew of and keeps.
        CREATE TABLE kept_certs (
            serial TEXT PRIMARY KEY,
            revoked TEXT NOT NULL,
            at TEXT NOT NULL
        );
        """,
    )


@migrations(name="0016_upgrade_holds")
def m0016_upgrade_holds(db: Database) -> None:
    _run(
        db,
        """
        -- held = 1: an envelope of a kind (or a body member) this build does
        -- not know, signed by a verified origin, that a newer neighbour sent:
        -- kept here, in this node's custody, waiting for an upgrade, and
        -- taken in through the journal once a build that knows it opens the
        -- node (node/upgrade.py). Not counted as a refusal.
        ALTER TABLE quarantine ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
        """,
    )


@migrations(name="0018_told")
def m0018_told(db: Database) -> None:
    _run(
        db,
        """
        -- When the filing point's agent told the resident of a rejection
        -- (daiban told): until then it stays on the agent's to-do list.
        ALTER TABLE applications ADD COLUMN told_at TEXT;
        """,
    )


@migrations(name="0019_alias_initials")
def m0019_alias_initials(db: Database) -> None:
    _run(
        db,
        """
        -- The pinyin initials of each of an item's aliases in the catalog
        -- (a JSON object, alias -> initials: {"低保": "db"}), computed when
        -- the catalog is installed, so searching never imports pypinyin.
        -- Catalogs installed before had no aliases: '{}' is right for them.
        ALTER TABLE catalog_items ADD COLUMN alias_initials TEXT NOT NULL DEFAULT '{}';
        """,
    )


@migrations(name="0020_report_indexes")
def m0020_report_indexes(db: Database) -> None:
    _run(
        db,
        """
        -- Reports (node/report.py) count their trend per day and what is late
        -- now in index order: no sort of the whole table, and a period reads
        -- only its own days. The filed day is the office's receipt, the
        -- filing day where not received yet (Store._FILED_DAY, the same
        -- expression, so SQLite uses the index).
        CREATE INDEX stats_filed_day ON stats (COALESCE(NULLIF(received_on, ''), filed_on), office);
        CREATE INDEX stats_completed_day ON stats (completed_on, office) WHERE status = 'completed';
        CREATE INDEX stats_open ON stats (status, received_on, due, office)
            WHERE status IN ('received', 'accepted');
        """,
    )


@migrations(name="0021_receipts_waiting")
def m0021_receipts_waiting(db: Database) -> None:
    _run(
        db,
        """
        -- An office acknowledges many filings with one `receipts` envelope
        -- (node/receipts.py). A receipt in it that cannot apply yet (its
        -- application is not here, or not in a state to take it) waits
        -- here by its tracking number, its envelope's effect 'pending',
        -- until the event before it arrives (journal.retry_pending).
        CREATE TABLE receipts_waiting (
            envelope_id TEXT NOT NULL REFERENCES envelopes (id),
            tracking TEXT NOT NULL,
            PRIMARY KEY (envelope_id, tracking)
        );
        CREATE INDEX receipts_waiting_tracking ON receipts_waiting (tracking);
        """,
    )


@migrations(name="0022_queued_by_sender")
def m0022_queued_by_sender(db: Database) -> None:
    _run(
        db,
        """
        -- A child's pull applies what that child pushed (service.pull), not
        -- every child's: its queued effects found by sender, oldest first.
        CREATE INDEX envelopes_queued_from ON envelopes (received_from, n) WHERE effect = 'queued';
        """,
    )


@migrations(name="0023_stats_pending_by_the_store")
def m0023_stats_pending_by_the_store(db: Database) -> None:
    _run(
        db,
        """
        -- The store notes what changed in stats_pending itself (Store
        -- save_applications, update_applications, set_due, change_office).
        -- A trigger on applications made every write of a summary a
        -- statement that may write several tables, so SQLite copied each
        -- page it touched into a statement journal first: about 40 µs a row
        -- on a slow machine, half the cost of saving 10,000 summaries
        -- (docs/BENCHMARKS.md, "Statement journals, the collector, the logs").
        DROP TRIGGER IF EXISTS applications_stats_insert;
        DROP TRIGGER IF EXISTS applications_stats_update;
        """,
    )
