"""The store's schema, as numbered migrations (sqlite-utils ``Migrations``).
Each runs in its own transaction and is recorded; never edit one that has
shipped — add the next number."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("daiban")


@migrations(name="0001_initial")
def m0001_initial(db: Database) -> None:
    db.executescript(
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
        """
    )
