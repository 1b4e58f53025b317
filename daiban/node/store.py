"""The node's local store: one SQLite file per node home, read with sqlite3
and written with sqlite-utils where it helps (loaded when first needed).
WAL mode with full sync, foreign keys, a busy timeout, and no forced
checkpoint (Litestream replicates the WAL). All SQL lives here.

Writes go through ``transaction()``, which takes the write lock up front
(BEGIN IMMEDIATE) so a read-then-write never fails half-way on a busy
database; an event and the summary it changes are written in one transaction."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from daiban.node import migrations
from daiban.node.stats import BOOLEAN_FIELDS as STATS_BOOLEANS
from daiban.node.stats import FIELDS as STATS_FIELDS

if TYPE_CHECKING:
    from sqlite_utils import Database

BUSY_TIMEOUT_MS = 10_000
DURABLE = "FULL"  # every commit waits for the disk, but those that ask not to (transaction)
DB_NAME = "daiban.db"


class OutboxRow(NamedTuple):
    """An envelope waiting in the outbox for a hop."""

    n: int
    raw: str
    id: str
    origin: str
    seq: int


@dataclass(frozen=True)
class Event:
    id: str
    origin: str
    seq: int
    tracking: str
    kind: str
    actor: str
    at: str
    recorded_at: str
    body: Mapping[str, Any]

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "origin": self.origin,
            "seq": self.seq,
            "tracking": self.tracking,
            "kind": self.kind,
            "actor": self.actor,
            "at": self.at,
            "recorded_at": self.recorded_at,
            "body": _dumps(self.body),
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Event:
        return cls(
            id=row["id"],
            origin=row["origin"],
            seq=row["seq"],
            tracking=row["tracking"],
            kind=row["kind"],
            actor=row["actor"],
            at=row["at"],
            recorded_at=row["recorded_at"],
            body=json.loads(row["body"]),
        )


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _dumps(value: Any) -> str:
    """Compact JSON, keys sorted, non-ASCII as itself: orjson writes the
    same text several times faster (a float that is not a number as null:
    JSON has none); what it will not write (a key that is not a string, an
    integer past 64 bits) the standard encoder does."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return _ENCODER.encode(value)


JSON_COLUMNS = ("owed", "missing", "materials", "delivery")


def _queued(sender: str | None) -> tuple[str, list[str]]:
    """The envelopes whose effect waits, all or one sender's (index
    envelopes_queued, envelopes_queued_from)."""
    if sender is None:
        return "effect = 'queued'", []
    return "effect = 'queued' AND received_from = ?", [sender]


class Store:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    @cached_property
    def db(self) -> Database:
        """The connection as sqlite-utils sees it, for what it writes best
        (insert_all, nested savepoints); imported on first use only."""
        from sqlite_utils import Database

        return Database(self.conn, execute_plugins=False)

    # -- opening -----------------------------------------------------------

    @classmethod
    def open(cls, path: Path, *, create: bool = False) -> Store:
        if not create and not path.exists():
            raise FileNotFoundError(path)
        # isolation_level=None: no implicit transactions; every write is inside
        # transaction() (or a migration's), nothing left open by accident.
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before the agent is told it is filed.
        conn.execute(f"PRAGMA synchronous={DURABLE}")
        # Checkpoints stay SQLite's own PASSIVE auto-checkpoint (every 1000
        # pages), set here so nobody lowers or disables it by accident, and
        # Daiban never forces one: a PASSIVE checkpoint neither waits for nor
        # blocks readers, so it cannot fight Litestream, which holds a read
        # transaction while it copies the WAL and checkpoints on its own
        # schedule. A RESTART or TRUNCATE checkpoint here would. The busy
        # timeout above covers the moments Litestream holds the write lock.
        conn.execute("PRAGMA wal_autocheckpoint=1000")
        conn.execute("PRAGMA foreign_keys=ON")
        # Deleted or overwritten rows are zeroed on disk, not left in free pages.
        conn.execute("PRAGMA secure_delete=ON")
        store = cls(conn)
        migrations.apply(conn)
        return store

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[None]:
        """One write transaction, holding the write lock from the start.
        ``durable=False``: committed without waiting for the disk (atomic all
        the same; the next durable commit takes it to disk), for what a crash
        may undo without harm — what, undone, is only done again."""
        conn = self.conn
        if conn.in_transaction:
            # Inside another (a server's group commit): a savepoint, undone
            # alone if this part fails.
            conn.execute("SAVEPOINT daiban_nested")
            try:
                yield
            except BaseException:
                if conn.in_transaction:  # unless SQLite gave the whole transaction up
                    conn.execute("ROLLBACK TO SAVEPOINT daiban_nested")
                    conn.execute("RELEASE SAVEPOINT daiban_nested")
                raise
            conn.execute("RELEASE SAVEPOINT daiban_nested")
            return
        if not durable:
            conn.execute("PRAGMA synchronous=NORMAL")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")
        finally:
            if not durable:
                conn.execute(f"PRAGMA synchronous={DURABLE}")

    def in_transaction(self) -> bool:
        return bool(self.conn.in_transaction)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> Iterator[dict[str, Any]]:
        """Rows as dicts. (sqlite-utils' query() wraps each in a savepoint,
        three statements where a read needs one.)"""
        cur = self.conn.execute(sql, params)
        names = [c[0] for c in cur.description]
        for row in cur:
            yield dict(zip(names, row, strict=True))

    def pragma(self, name: str) -> Any:
        return self.conn.execute(f"PRAGMA {name}").fetchone()[0]

    # -- settings ----------------------------------------------------------

    def setting(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM node WHERE key = ?", [key]).fetchone()
        return row[0] if row else default

    def settings(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM node").fetchall())

    def set_setting(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO node (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )

    def next_counter(self, key: str) -> int:
        """Increment and return a counter kept in the settings (inside a transaction)."""
        value = int(self.setting(key, "0") or 0) + 1
        self.set_setting(key, str(value))
        return value

    # -- events ------------------------------------------------------------

    def next_seq(self, origin: str) -> int:
        """The origin's next sequence number: events and envelopes share one
        gapless sequence (an event may wait for its envelope; a manifest has
        no event)."""
        row = self.conn.execute(
            "SELECT MAX(COALESCE((SELECT MAX(seq) FROM events WHERE origin = ?), 0), "
            "COALESCE((SELECT MAX(seq) FROM envelopes WHERE origin = ?), 0))",
            [origin, origin],
        ).fetchone()
        return int(row[0]) + 1

    def insert_event(self, event: Event) -> None:
        self.conn.execute(
            "INSERT INTO events (id, origin, seq, tracking, kind, actor, at, recorded_at, body) "
            "VALUES (:id, :origin, :seq, :tracking, :kind, :actor, :at, :recorded_at, :body)",
            event.row(),
        )

    def insert_events(self, events: Sequence[Event]) -> None:
        self.conn.executemany(
            "INSERT INTO events (id, origin, seq, tracking, kind, actor, at, recorded_at, body) "
            "VALUES (:id, :origin, :seq, :tracking, :kind, :actor, :at, :recorded_at, :body)",
            [event.row() for event in events],
        )

    def insert_personal(self, event_id: str, tracking: str, sealed: str, sealed_to: str) -> None:
        """Personal data, only ever sealed (base64 of the HPKE ciphertext)."""
        self.conn.execute(
            "INSERT INTO personal (event_id, tracking, data, sealed_to) VALUES (?, ?, ?, ?)",
            [event_id, tracking, sealed, sealed_to],
        )

    def insert_personals(self, rows: Sequence[tuple[str, str, str, str]]) -> None:
        """insert_personal for many (event id, tracking, sealed, sealed to) at once."""
        self.conn.executemany(
            "INSERT INTO personal (event_id, tracking, data, sealed_to) VALUES (?, ?, ?, ?)", rows
        )

    def update_personal(self, event_id: str, sealed: str, sealed_to: str) -> None:
        self.conn.execute(
            "UPDATE personal SET data = ?, sealed_to = ? WHERE event_id = ?", [sealed, sealed_to, event_id]
        )

    def personal_sealed(self, event_id: str) -> dict[str, Any] | None:
        rows = list(self._query("SELECT * FROM personal WHERE event_id = ?", [event_id]))
        return rows[0] if rows else None

    def events_for(self, tracking: str) -> list[Event]:
        rows = self._query("SELECT * FROM events WHERE tracking = ? ORDER BY rowid", [tracking])
        return [Event.from_row(r) for r in rows]

    def personal_for(self, tracking: str) -> list[dict[str, Any]]:
        """The sealed personal parts of an application, with their event's origin and kind."""
        return list(
            self._query(
                "SELECT p.event_id, p.data, p.sealed_to, e.origin, e.kind FROM personal p "
                "JOIN events e ON e.id = p.event_id WHERE p.tracking = ? ORDER BY e.rowid",
                [tracking],
            )
        )

    def count_events(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    # -- applications ------------------------------------------------------

    def save_application(self, row: Mapping[str, Any]) -> None:
        self.save_applications([row])

    def save_applications(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert or replace summary rows: one statement per set of columns."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in rows:
            values = {k: (_dumps(v) if k in JSON_COLUMNS and v is not None else v) for k, v in row.items()}
            groups.setdefault(tuple(values), []).append(values)
        for columns, group in groups.items():
            self.conn.executemany(_upsert_sql(columns), group)
        code = self.setting("code")
        if all("office" in row for row in rows):
            self._note_changed(row["tracking"] for row in rows if row["office"] == code)
        else:
            self._note_changed_here([row["tracking"] for row in rows], code)

    def update_applications(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Change these columns of applications held here (each row: its
        tracking number and the columns that changed): one statement per
        set of columns."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in rows:
            values = {k: (_dumps(v) if k in JSON_COLUMNS and v is not None else v) for k, v in row.items()}
            groups.setdefault(tuple(values), []).append(values)
        for columns, group in groups.items():
            changed = [c for c in columns if c != "tracking"]
            if changed:
                self.conn.executemany(
                    f"UPDATE applications SET {', '.join(f'{c} = :{c}' for c in changed)} "
                    "WHERE tracking = :tracking",
                    group,
                )
        self._note_changed_here([row["tracking"] for row in rows], self.setting("code"))

    def _note_changed(self, trackings: Iterable[str]) -> None:
        """Note applications whose statistics record may have changed, for
        node/statistics.py to publish. Every write here that can change a
        field stats.record_of reads calls this or _note_changed_here (once
        triggers did: migration 0023 says why not)."""
        self.conn.executemany(
            "INSERT OR IGNORE INTO stats_pending (tracking) VALUES (?)", [(t,) for t in trackings]
        )

    def _note_changed_here(self, trackings: Sequence[str], code: str | None) -> None:
        """_note_changed for those of ``trackings`` this node is the office of."""
        for start in range(0, len(trackings), 500):
            part = list(trackings[start : start + 500])
            marks = ", ".join("?" * len(part))
            sql = f"SELECT tracking FROM applications WHERE office = ? AND tracking IN ({marks})"
            self._note_changed([r[0] for r in self.conn.execute(sql, [code, *part])])

    def applications_many(self, trackings: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The summary rows of these applications that are here, by tracking number."""
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(trackings), 500):
            part = list(trackings[start : start + 500])
            marks = ", ".join("?" * len(part))
            for row in self._query(f"SELECT * FROM applications WHERE tracking IN ({marks})", part):
                out[row["tracking"]] = _decode(row)
        return out

    def application(self, tracking: str) -> dict[str, Any] | None:
        rows = list(self._query("SELECT * FROM applications WHERE tracking = ?", [tracking]))
        return _decode(rows[0]) if rows else None

    def open_application_for(self, id_hash: str, item: str) -> dict[str, Any] | None:
        """An application of this resident for this item that is still in progress."""
        cur = self.conn.execute(
            "SELECT * FROM applications WHERE id_hash = ? AND item = ? "
            "AND status NOT IN ('rejected', 'completed', 'withdrawn') LIMIT 1",
            [id_hash, item],
        )
        row = cur.fetchone()
        if row is None:
            return None
        return _decode(dict(zip([c[0] for c in cur.description], row, strict=True)))

    def _where(self, node_code: str, status: str | None, id_hash: str | None) -> tuple[str, list[Any]]:
        clauses = ["(office = ? OR origin = ?)"]
        params: list[Any] = [node_code, node_code]
        if status:
            clauses.append("status = ?")
            params.append(status)
        if id_hash:
            clauses.append("id_hash = ?")
            params.append(id_hash)
        return " AND ".join(clauses), params

    def list_applications(
        self,
        node_code: str,
        *,
        status: str | None = None,
        id_hash: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """This node's applications (those it handles or filed), newest first."""
        where, params = self._where(node_code, status, id_hash)
        # Newest first by walking the table backwards and stopping at the limit:
        # without NOT INDEXED, SQLite answers the OR through both indexes and
        # then sorts every matching row (0.2 s at 100,000 rows, not 0.2 ms).
        # A resident's applications are few, so that search keeps its index.
        hint = "" if id_hash else " NOT INDEXED"
        sql = f"SELECT * FROM applications{hint} WHERE {where} ORDER BY rowid DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_decode(r) for r in self._query(sql, params)]

    def count_applications(
        self, node_code: str, *, status: str | None = None, id_hash: str | None = None
    ) -> int:
        where, params = self._where(node_code, status, id_hash)
        return int(
            self.conn.execute(f"SELECT COUNT(*) FROM applications WHERE {where}", params).fetchone()[0]
        )

    def status_counts(self, node_code: str) -> dict[str, int]:
        where, params = self._where(node_code, None, None)
        rows = self.conn.execute(
            f"SELECT status, COUNT(*) FROM applications WHERE {where} GROUP BY status", params
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    def unindexed(self, office: str) -> list[str]:
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT tracking FROM applications WHERE office = ? AND id_hash = ''", [office]
            )
        ]

    def set_resident(self, tracking: str, id_hash: str, name: str, id_masked: str, phone: str) -> None:
        self.conn.execute(
            "UPDATE applications SET id_hash = ?, name_masked = ?, id_masked = ?, phone_masked = ? "
            "WHERE tracking = ?",
            [id_hash, name, id_masked, phone, tracking],
        )

    def unknown_dues(self) -> list[dict[str, Any]]:
        """Accepted applications whose due date is not exact yet."""
        return [
            _decode(r)
            for r in self._query(
                "SELECT * FROM applications WHERE due_state IN ('unknown', 'provisional') "
                "AND accepted_on IS NOT NULL"
            )
        ]

    def set_due(self, tracking: str, due: str | None, state: str, missing_year: int | None) -> None:
        self.conn.execute(
            "UPDATE applications SET due = ?, due_state = ?, due_missing_year = ? WHERE tracking = ?",
            [due, state, missing_year, tracking],
        )
        self._note_changed_here([tracking], self.setting("code"))

    # -- catalog -----------------------------------------------------------

    def replace_catalog(self, items: Sequence[Mapping[str, Any]], calendar: Mapping[str, Any] | None) -> None:
        self.conn.execute("DELETE FROM catalog_items")
        self.db.table("catalog_items").insert_all([{**item, "doc": _dumps(item["doc"])} for item in items])
        for year, spec in (calendar or {}).items():
            self.conn.execute(
                "INSERT INTO calendar_years (year, spec) VALUES (?, ?) "
                "ON CONFLICT (year) DO UPDATE SET spec = excluded.spec",
                [int(year), _dumps(spec)],
            )

    def keep_item_docs(self, docs: Sequence[tuple[str, str, Mapping[str, Any]]]) -> None:
        """Keep each (digest, code, document) of items put in force, once."""
        self.conn.executemany(
            "INSERT OR IGNORE INTO item_docs (digest, code, doc) VALUES (?, ?, ?)",
            [(digest, code, _dumps(doc)) for digest, code, doc in docs],
        )

    def item_doc(self, digest: str | None, code: str) -> dict[str, Any] | None:
        """An item's document as kept: that version by its digest, else the
        latest version of that code this node has had in force."""
        if digest:
            row = self.conn.execute("SELECT doc FROM item_docs WHERE digest = ?", [digest]).fetchone()
            if row is not None:
                return dict(json.loads(row[0]))
        row = self.conn.execute(
            "SELECT doc FROM item_docs WHERE code = ? ORDER BY n DESC LIMIT 1", [code]
        ).fetchone()
        return dict(json.loads(row[0])) if row is not None else None

    def catalog_rows(self) -> list[dict[str, Any]]:
        return [
            {**r, "doc": json.loads(r["doc"])}
            for r in self._query("SELECT * FROM catalog_items ORDER BY code")
        ]

    def catalog_row(self, code: str) -> dict[str, Any] | None:
        rows = list(self._query("SELECT * FROM catalog_items WHERE code = ?", [code]))
        return {**rows[0], "doc": json.loads(rows[0]["doc"])} if rows else None

    def calendar(self) -> dict[str, Any]:
        return {
            str(r[0]): json.loads(r[1])
            for r in self.conn.execute("SELECT year, spec FROM calendar_years").fetchall()
        }

    # -- ledgers -----------------------------------------------------------

    def ledger_import(self, digest: str) -> dict[str, Any] | None:
        rows = list(self._query("SELECT * FROM ledger_imports WHERE digest = ?", [digest]))
        return rows[0] if rows else None

    def record_ledger(self, digest: str, filename: str, rows: int, at: str, actor: str) -> None:
        self.conn.execute(
            "INSERT INTO ledger_imports (digest, filename, rows, imported_at, actor) VALUES (?, ?, ?, ?, ?)",
            [digest, filename, rows, at, actor],
        )

    # -- envelopes and custody (sync) ---------------------------------------

    def insert_envelope(
        self, env: Any, *, dest: str, received_at: str, received_from: str, effect: str = "none"
    ) -> int:
        cur = self.conn.execute(
            "INSERT INTO envelopes (id, origin, seq, kind, dest, tracking, digest, raw, origin_at, "
            "received_at, received_from, effect) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                env.id,
                env.origin,
                env.seq,
                env.kind,
                dest,
                env.tracking,
                env.digest,
                env.raw,
                env.at,
                received_at,
                received_from,
                effect,
            ],
        )
        return int(cur.lastrowid or 0)

    def envelope_row(self, envelope_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT id, digest, received_at, effect FROM envelopes WHERE id = ?", [envelope_id]
        ).fetchone()
        return {"id": row[0], "digest": row[1], "received_at": row[2], "effect": row[3]} if row else None

    def envelope_rows(self, envelope_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The stored envelopes among ``envelope_ids``, in one query."""
        rows = self.conn.execute(
            "SELECT id, digest, received_at, effect FROM envelopes "
            "WHERE id IN (SELECT value FROM json_each(?))",
            [json.dumps(envelope_ids)],
        )
        return {r[0]: {"id": r[0], "digest": r[1], "received_at": r[2], "effect": r[3]} for r in rows}

    def envelopes_at(self, slots: list[tuple[str, int]]) -> dict[tuple[str, int], str]:
        """{(origin, seq): id} for those of ``slots`` already taken, in one query."""
        rows = self.conn.execute(
            "SELECT v.origin, v.seq, v.id FROM json_each(?) j JOIN envelopes v "
            "ON v.origin = json_extract(j.value, '$[0]') AND v.seq = json_extract(j.value, '$[1]')",
            [json.dumps(slots)],
        )
        return {(r[0], r[1]): r[2] for r in rows}

    def insert_envelopes(self, rows: list[tuple[Any, str]], *, received_at: str, received_from: str) -> None:
        """Store many checked (envelope, effect) pairs; each envelope's
        destination is its addressee."""
        self.conn.executemany(
            "INSERT INTO envelopes (id, origin, seq, kind, dest, tracking, digest, raw, origin_at, "
            "received_at, received_from, effect) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    e.id,
                    e.origin,
                    e.seq,
                    e.kind,
                    e.to,
                    e.tracking,
                    e.digest,
                    e.raw,
                    e.at,
                    received_at,
                    received_from,
                    effect,
                )
                for e, effect in rows
            ],
        )

    def queued_effects_from(self, limit: int, sender: str | None = None) -> list[tuple[str, str, str]]:
        """(id, raw envelope, who handed it here) of those stored here whose
        effect has not been applied yet, oldest first; only those ``sender``
        handed here, if given."""
        where, params = _queued(sender)
        sql = f"SELECT id, raw, received_from FROM envelopes WHERE {where} ORDER BY n LIMIT ?"
        return [(r[0], r[1], r[2]) for r in self.conn.execute(sql, [*params, limit])]

    def has_queued_effects(self, sender: str | None = None) -> bool:
        where, params = _queued(sender)
        row = self.conn.execute(f"SELECT 1 FROM envelopes WHERE {where} LIMIT 1", params).fetchone()
        return row is not None

    def enqueue_many(self, rows: list[tuple[str, str, str]], at: str) -> None:
        """Queue many (envelope id, hop, direction) at once."""
        self.conn.executemany(
            "INSERT OR IGNORE INTO outbox (envelope_id, hop, direction, queued_at) VALUES (?, ?, ?, ?)",
            [(i, hop, direction, at) for i, hop, direction in rows],
        )

    def envelope_at(self, origin: str, seq: int) -> str | None:
        row = self.conn.execute(
            "SELECT id FROM envelopes WHERE origin = ? AND seq = ?", [origin, seq]
        ).fetchone()
        return row[0] if row else None

    def raw_envelopes(self, tracking: str) -> list[str]:
        return [
            r[0]
            for r in self.conn.execute("SELECT raw FROM envelopes WHERE tracking = ? ORDER BY n", [tracking])
        ]

    def set_effect(self, envelope_id: str, effect: str, note: str | None = None) -> None:
        self.conn.execute(
            "UPDATE envelopes SET effect = ?, effect_note = ? WHERE id = ?", [effect, note, envelope_id]
        )

    def set_effects(self, envelope_ids: Sequence[str], effect: str) -> None:
        """set_effect for many envelopes at once."""
        self.conn.executemany(
            "UPDATE envelopes SET effect = ?, effect_note = NULL WHERE id = ?",
            [(effect, i) for i in envelope_ids],
        )

    def trackings_waiting(self, trackings: Sequence[str]) -> list[str]:
        """Which of these applications have an event pending or a receipt
        waiting here (journal.retry_pending has work for them), in the
        order given."""
        found: set[str] = set()
        for start in range(0, len(trackings), 500):
            part = json.dumps(list(trackings[start : start + 500]))
            found.update(
                r[0]
                for r in self.conn.execute(
                    "SELECT value FROM json_each(?1) j WHERE EXISTS (SELECT 1 FROM envelopes "
                    "WHERE tracking = j.value AND effect = 'pending') OR EXISTS "
                    "(SELECT 1 FROM receipts_waiting WHERE tracking = j.value)",
                    [part],
                )
            )
        return [t for t in trackings if t in found]

    def pending_effects_from(self, tracking: str) -> list[tuple[str, str]]:
        """(raw envelope, who handed it here) of an application's events
        waiting for an earlier one, in arrival order."""
        return [
            (r[0], r[1])
            for r in self.conn.execute(
                "SELECT raw, received_from FROM envelopes "
                "WHERE effect = 'pending' AND tracking = ? ORDER BY n",
                [tracking],
            )
        ]

    def high_water(self, origins: list[str]) -> dict[str, int]:
        """Per origin, the highest sequence number held with none missing
        below it. Numbers are unique per origin and start at 1, so those in
        (a, b] are all held exactly when b - a of them are: one count answers
        for an origin without a gap (every push asks, and an origin's
        envelopes only grow), and a bisection on that test finds the first
        gap otherwise, each step counting only the range it asks about (all
        the steps together count about twice the origin's envelopes) —
        counted by SQLite, never read row by row."""
        out = {}
        for origin in origins:
            held, top = self.conn.execute(
                "SELECT count(*), coalesce(max(seq), 0) FROM envelopes WHERE origin = ?", [origin]
            ).fetchone()
            if held != top:
                # 1..low are all held; 1..high + 1 are not (held < high + 1 numbers).
                low, high = 0, held
                while low < high:
                    mid = (low + high + 1) // 2
                    (n,) = self.conn.execute(
                        "SELECT count(*) FROM envelopes WHERE origin = ? AND seq > ? AND seq <= ?",
                        [origin, low, mid],
                    ).fetchone()
                    if n == mid - low:
                        low = mid
                    else:
                        high = mid - 1
                top = low
            out[origin] = top
        return out

    def events_without_envelope(self) -> list[Event]:
        rows = self._query(
            # Only events with a personal part can wait for their envelope
            # (a receipt folded from a `receipts` envelope has none of its own).
            "SELECT e.* FROM events e JOIN personal p ON p.event_id = e.id "
            "LEFT JOIN envelopes v ON v.id = e.id WHERE v.id IS NULL ORDER BY e.rowid"
        )
        return [Event.from_row(r) for r in rows]

    def change_office(self, old: str, new: str) -> None:
        """A division code changed (node/codechanges.py): applications of the
        old office are the new office's, and statistics held for them count
        under the new code, below anything the new office publishes."""
        moved = [r[0] for r in self.conn.execute("SELECT tracking FROM applications WHERE office = ?", [old])]
        self.conn.execute("UPDATE applications SET office = ? WHERE office = ?", [new, old])
        if new == self.setting("code"):
            self._note_changed(moved)
        self.conn.execute("UPDATE stats SET office = ?, version = 0 WHERE office = ?", [new, old])

    def office_envelopes(self, office: str) -> list[str]:
        """Ids of every envelope held of the applications of ``office``: their
        events (and the office's receipts in bulk) first, then their filings,
        each in the order they came."""
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT id FROM (SELECT e.id, e.kind, e.n FROM envelopes e "
                "JOIN applications a ON a.tracking = e.tracking WHERE a.office = ? "
                "UNION SELECT id, kind, n FROM envelopes WHERE origin = ? AND kind = 'receipts') "
                "ORDER BY kind = 'filed', n",
                [office, office],
            )
        ]

    def enqueue(self, envelope_id: str, hop: str, direction: str, at: str) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO outbox (envelope_id, hop, direction, queued_at) VALUES (?, ?, ?, ?)",
            [envelope_id, hop, direction, at],
        )

    def outbox(self, hop: str, *, after: int = 0, limit: int = 500) -> list[OutboxRow]:
        """Envelopes waiting for ``hop``, oldest first."""
        return [
            OutboxRow(*r)
            for r in self.conn.execute(
                "SELECT o.n, v.raw, v.id, v.origin, v.seq FROM outbox o "
                "JOIN envelopes v ON v.id = o.envelope_id "
                "WHERE o.hop = ? AND o.n > ? ORDER BY o.n LIMIT ?",
                [hop, after, limit],
            )
        ]

    def receipts_after(self, hop: str, after: int) -> bool:
        """Whether a `receipts` envelope waits for ``hop`` past outbox number ``after``."""
        row = self.conn.execute(
            "SELECT 1 FROM outbox o JOIN envelopes v ON v.id = o.envelope_id "
            "WHERE o.hop = ? AND o.n > ? AND v.kind = 'receipts' LIMIT 1",
            [hop, after],
        ).fetchone()
        return row is not None

    def outbox_count(self, hop: str | None = None) -> int:
        if hop is None:
            return int(self.conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        return int(self.conn.execute("SELECT COUNT(*) FROM outbox WHERE hop = ?", [hop]).fetchone()[0])

    def awaiting_receipt(self, office: str) -> int:
        """How many applications held here, filed to ``office``, have no
        receipt from it yet."""
        return int(
            self.conn.execute(
                "SELECT COUNT(*) FROM applications WHERE office = ? AND status = 'submitted'", [office]
            ).fetchone()[0]
        )

    def outbox_counts(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT hop, COUNT(*) FROM outbox GROUP BY hop").fetchall())

    # -- operations: metrics and stale children --------------------------------

    def outbox_kinds(self, hop: str, after: int, through: int) -> dict[str, int]:
        """Kinds of the envelopes queued for ``hop`` with outbox numbers in
        (after, through]: what one pull handed out."""
        if through <= after:
            return {}
        return dict(
            self.conn.execute(
                "SELECT v.kind, COUNT(*) FROM outbox o JOIN envelopes v ON v.id = o.envelope_id "
                "WHERE o.hop = ? AND o.n > ? AND o.n <= ? GROUP BY v.kind",
                [hop, after, through],
            ).fetchall()
        )

    def children_sync(self, *, include_moved: bool = False) -> list[dict[str, Any]]:
        """Every enrolled child: its name, when it last synced and was last
        seen, when it enrolled, and how many envelopes wait for it; with
        ``include_moved``, also those that moved to another parent (with
        ``moved_to`` and ``moved_at``) and those revoked (``revoked``)."""
        relations = "('child', 'moved', 'revoked')" if include_moved else "('child')"
        return list(
            self._query(
                "SELECT p.code, COALESCE(e.name, '') AS name, p.last_sync_at, p.last_seen_at, "
                "e.used_at AS enrolled_at, p.moved_to, p.moved_at, p.relation = 'revoked' AS revoked, "
                "(SELECT COUNT(*) FROM outbox o WHERE o.hop = p.code) AS queued, "
                "(SELECT COUNT(*) FROM quarantine q WHERE q.sender = p.code AND q.held = 0) AS quarantined "
                "FROM peers p LEFT JOIN enroll_codes e ON e.code = p.code "
                f"WHERE p.relation IN {relations} ORDER BY p.code"
            )
        )

    def release(self, hop: str, envelope_ids: list[str]) -> None:
        """Custody ends: the neighbour has durably stored these."""
        self.conn.executemany(
            "DELETE FROM outbox WHERE hop = ? AND envelope_id = ?", [(hop, i) for i in envelope_ids]
        )

    def release_through(self, hop: str, n: int) -> None:
        self.conn.execute("DELETE FROM outbox WHERE hop = ? AND n <= ?", [hop, n])

    def retarget(self, old: str, new: str) -> None:
        self.conn.execute("UPDATE OR IGNORE outbox SET hop = ? WHERE hop = ?", [new, old])

    def set_aside(self, envelope_id: str, hop: str, code: str, reason: str, at: str) -> None:
        """One of this node's envelopes that ``hop`` refused: out of the queue, with the reason."""
        self.conn.execute(
            "INSERT OR REPLACE INTO set_aside (envelope_id, hop, code, reason, at) VALUES (?, ?, ?, ?, ?)",
            [envelope_id, hop, code, reason, at],
        )
        self.conn.execute("DELETE FROM outbox WHERE hop = ? AND envelope_id = ?", [hop, envelope_id])
        self.conn.execute(
            "UPDATE applications SET sync_problem = ? WHERE tracking = "
            "(SELECT tracking FROM envelopes WHERE id = ?)",
            [reason, envelope_id],
        )

    def reoffer(self, hop: str, codes: Sequence[str], at: str) -> int:
        """Queue again for ``hop`` what it set aside with one of ``codes``
        (what an older build did not know, which it may take after an
        upgrade); returns how many."""
        marks = ", ".join("?" for _c in codes)
        ids = [
            str(r[0])
            for r in self.conn.execute(
                f"SELECT envelope_id FROM set_aside WHERE hop = ? AND code IN ({marks}) ORDER BY at",
                [hop, *codes],
            )
        ]
        direction = "up" if hop == "^" else "down"
        for envelope_id in ids:
            self.conn.execute("DELETE FROM set_aside WHERE envelope_id = ?", [envelope_id])
            self.enqueue(envelope_id, hop, direction, at)
        return len(ids)

    def set_aside_rows(self) -> list[dict[str, Any]]:
        return list(
            self._query(
                "SELECT q.*, v.tracking, v.kind FROM set_aside q JOIN envelopes v ON v.id = q.envelope_id "
                "ORDER BY q.at"
            )
        )

    # -- quarantine: what this node refused --------------------------------

    def put_quarantine(self, rows: Sequence[Mapping[str, Any]], at: str) -> None:
        """Keep refused envelopes (keys: envelope_id, digest, kind, origin,
        sender, code, reason, raw, and held: 1 for one waiting for an
        upgrade); the same one again only counts up."""
        self.conn.executemany(
            "INSERT INTO quarantine (envelope_id, digest, kind, origin, sender, code, reason, raw, "
            "first_at, at, held) VALUES (:envelope_id, :digest, :kind, :origin, :sender, :code, :reason, "
            ":raw, :at, :at, :held) ON CONFLICT (digest, sender, code) DO UPDATE SET count = count + 1, "
            "at = excluded.at",
            [{"held": 0, **r, "at": at} for r in rows],
        )

    def quarantine_rows(self, limit: int | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT id, envelope_id, kind, origin, sender, code, reason, first_at, at, count, held "
            "FROM quarantine ORDER BY id DESC"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [{**r, "held": bool(r["held"])} for r in self._query(sql)]

    def reexaminable(self, codes: Sequence[str]) -> list[int]:
        """The quarantine rows a newer build may admit: those held for an
        upgrade, and those an older build refused with one of ``codes``;
        oldest first."""
        marks = ", ".join("?" for _c in codes)
        sql = f"SELECT id FROM quarantine WHERE held = 1 OR code IN ({marks}) ORDER BY id"
        return [int(r[0]) for r in self.conn.execute(sql, list(codes))]

    def drop_quarantine(self, quarantine_id: int) -> None:
        self.conn.execute("DELETE FROM quarantine WHERE id = ?", [quarantine_id])

    def requarantine(self, quarantine_id: int, code: str, reason: str, held: bool, at: str) -> None:
        """A row examined again: its verdict as this build gives it. Should
        the same text from the same sender already be kept under that code,
        the two become one."""
        row = self.conn.execute(
            "SELECT q.id FROM quarantine q JOIN quarantine r ON r.digest = q.digest AND r.sender = q.sender "
            "WHERE r.id = ? AND q.code = ? AND q.id != r.id",
            [quarantine_id, code],
        ).fetchone()
        if row is not None:
            self.conn.execute(
                "UPDATE quarantine SET count = count + (SELECT count FROM quarantine WHERE id = ?), "
                "held = ?, reason = ?, at = ? WHERE id = ?",
                [quarantine_id, int(held), reason, at, row[0]],
            )
            self.drop_quarantine(quarantine_id)
            return
        self.conn.execute(
            "UPDATE quarantine SET code = ?, reason = ?, held = ? WHERE id = ?",
            [code, reason, int(held), quarantine_id],
        )

    def quarantine_row(self, quarantine_id: int) -> dict[str, Any] | None:
        rows = list(self._query("SELECT * FROM quarantine WHERE id = ?", [quarantine_id]))
        return rows[0] if rows else None

    def quarantine_counts(self) -> dict[str, int]:
        """How many envelopes each sender had refused here."""
        return {
            str(sender): int(n)
            for sender, n in self.conn.execute(
                "SELECT sender, COUNT(*) FROM quarantine WHERE held = 0 GROUP BY sender"
            )
        }

    def held_count(self) -> int:
        """How many envelopes wait here for an upgrade (not refusals)."""
        return int(self.conn.execute("SELECT COUNT(*) FROM quarantine WHERE held = 1").fetchone()[0])

    def record_conflict(self, envelope_id: str, digest: str, received_from: str, at: str) -> None:
        self.conn.execute(
            "INSERT INTO conflicts (envelope_id, digest, received_from, at) VALUES (?, ?, ?, ?)",
            [envelope_id, digest, received_from, at],
        )

    def conflict_count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM conflicts").fetchone()[0])

    # -- certificates, peers, enrollment -------------------------------------

    def put_cert(self, code: str, serial: str, chain: list[Any], relation: str, at: str) -> None:
        self.conn.execute(
            "INSERT INTO certs (code, serial, chain, relation, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (code) DO UPDATE SET serial = excluded.serial, chain = excluded.chain, "
            "relation = CASE WHEN certs.relation IN ('self', 'child') THEN certs.relation "
            "ELSE excluded.relation END, updated_at = excluded.updated_at",
            [code, serial, _dumps(chain), relation, at],
        )

    def cert_chain(self, code: str) -> list[Any] | None:
        row = self.conn.execute("SELECT chain FROM certs WHERE code = ?", [code]).fetchone()
        return json.loads(row[0]) if row else None

    def certs(self, relation: str | None = None) -> list[dict[str, Any]]:
        sql, params = "SELECT * FROM certs", []
        if relation:
            sql, params = sql + " WHERE relation = ?", [relation]
        return [{**r, "chain": json.loads(r["chain"])} for r in self._query(sql, params)]

    def revoke(self, serial: str, code: str, by: str, at: str) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO revocations (serial, code, by, at) VALUES (?, ?, ?, ?)",
            [serial, code, by, at],
        )

    def revoked(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT serial FROM revocations")}

    def keep_certs(self, serials: list[str], revoked: str, at: str) -> None:
        """Certificates issued under ``revoked`` that its revoker keeps."""
        self.conn.executemany(
            "INSERT OR IGNORE INTO kept_certs (serial, revoked, at) VALUES (?, ?, ?)",
            [(s, revoked, at) for s in serials],
        )

    def kept_certs(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT serial FROM kept_certs")}

    def revoked_by(self, serial: str) -> str | None:
        """The code of the node that revoked ``serial``, if it is revoked here."""
        row = self.conn.execute("SELECT by FROM revocations WHERE serial = ?", [serial]).fetchone()
        return str(row[0]) if row else None

    def revocation_raw(self, serial: str) -> str | None:
        """The text of the revocation envelope held here that revokes ``serial``."""
        sql = "SELECT raw FROM envelopes WHERE kind = 'revocation' ORDER BY n DESC"
        for (raw,) in self.conn.execute(sql):
            body = json.loads(raw).get("body")
            if isinstance(body, dict) and body.get("serial") == serial:
                return str(raw)
        return None

    def peer(self, code: str) -> dict[str, Any] | None:
        rows = list(self._query("SELECT * FROM peers WHERE code = ?", [code]))
        return rows[0] if rows else None

    def peers(self, relation: str) -> list[dict[str, Any]]:
        return list(self._query("SELECT * FROM peers WHERE relation = ? ORDER BY code", [relation]))

    def put_peer(self, code: str, relation: str) -> None:
        self.conn.execute(
            "INSERT INTO peers (code, relation) VALUES (?, ?) ON CONFLICT (code) DO NOTHING", [code, relation]
        )

    def update_peer(self, code: str, **values: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in values)
        self.conn.execute(f"UPDATE peers SET {sets} WHERE code = ?", [*values.values(), code])

    def set_relation(self, code: str, relation: str, **values: Any) -> None:
        """A neighbour becomes another kind of neighbour (a child that moved
        away, a parent left behind, one that came back), other columns too."""
        self.update_peer(code, relation=relation, **values)

    def moved_to(self, code: str) -> str | None:
        """Where a child that moved away went; None if it did not."""
        row = self.conn.execute(
            "SELECT moved_to FROM peers WHERE code = ? AND relation = 'moved'", [code]
        ).fetchone()
        return str(row[0]) if row and row[0] else None

    def set_cert_relation(self, code: str, relation: str) -> None:
        self.conn.execute("UPDATE certs SET relation = ? WHERE code = ?", [relation, code])

    def announced(self) -> list[tuple[str, list[Any]]]:
        """(code, chain) of the children enrolled here whose chain the parent
        has not acknowledged yet."""
        return [
            (r[0], json.loads(r[1]))
            for r in self.conn.execute(
                "SELECT p.code, c.chain FROM peers p JOIN certs c ON c.code = p.code "
                "WHERE p.relation = 'child' AND p.announce = 1 ORDER BY p.code"
            )
        ]

    def clear_announced(self, codes: Sequence[str]) -> None:
        self.conn.executemany("UPDATE peers SET announce = 0 WHERE code = ?", [(c,) for c in codes])

    def child_chains_under(self, prefix: str, limit: int) -> list[list[Any]]:
        """Chains of this node's children whose codes extend ``prefix`` (not
        ``prefix`` itself): children enrolled here inside another child's area."""
        return [
            json.loads(r[0])
            for r in self.conn.execute(
                "SELECT c.chain FROM peers p JOIN certs c ON c.code = p.code "
                "WHERE p.relation = 'child' AND length(p.code) > length(?) "
                "AND substr(p.code, 1, length(?)) = ? ORDER BY p.code LIMIT ?",
                [prefix, prefix, prefix, limit],
            )
        ]

    def queued_toward(self, prefix: str) -> list[tuple[str, str, str]]:
        """(envelope id, hop, destination) of every queued envelope addressed
        to ``prefix`` or below it, whatever hop it waits for."""
        return [
            (r[0], r[1], r[2])
            for r in self.conn.execute(
                "SELECT o.envelope_id, o.hop, v.dest FROM outbox o JOIN envelopes v ON v.id = o.envelope_id "
                "WHERE substr(v.dest, 1, length(?)) = ? ORDER BY o.n",
                [prefix, prefix],
            )
        ]

    def queued_for(self, hop: str) -> list[tuple[str, str]]:
        """(envelope id, destination) of everything queued for ``hop``."""
        return [
            (r[0], r[1])
            for r in self.conn.execute(
                "SELECT o.envelope_id, v.dest FROM outbox o JOIN envelopes v ON v.id = o.envelope_id "
                "WHERE o.hop = ? ORDER BY o.n",
                [hop],
            )
        ]

    def dests_of(self, envelope_ids: Sequence[str]) -> list[tuple[str, str]]:
        """(envelope id, destination) of stored envelopes, in one query."""
        if not envelope_ids:
            return []
        return [
            (r[0], r[1])
            for r in self.conn.execute(
                "SELECT id, dest FROM envelopes WHERE id IN (SELECT value FROM json_each(?))",
                [json.dumps(list(envelope_ids))],
            )
        ]

    def put_enroll_code(self, code: str, enroll_code: str, name: str, expires: str) -> None:
        self.conn.execute(
            "INSERT INTO enroll_codes (code, enroll_code, name, expires) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (code) DO UPDATE SET enroll_code = excluded.enroll_code, name = excluded.name, "
            "expires = excluded.expires, failures = 0, used_at = NULL",
            [code, enroll_code, name, expires],
        )

    def enroll_code(self, code: str) -> dict[str, Any] | None:
        rows = list(self._query("SELECT * FROM enroll_codes WHERE code = ?", [code]))
        return rows[0] if rows else None

    def update_enroll_code(self, code: str, **values: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in values)
        self.conn.execute(f"UPDATE enroll_codes SET {sets} WHERE code = ?", [*values.values(), code])

    def latest_manifest(self) -> str | None:
        row = self.conn.execute(
            "SELECT raw FROM envelopes WHERE kind = 'manifest' ORDER BY n DESC LIMIT 1"
        ).fetchone()
        return row[0] if row else None

    def origins_from(self, sender: str) -> list[str]:
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT DISTINCT origin FROM envelopes WHERE received_from = ?", [sender]
            )
        ]

    def add_bundle_refusal(self, child: str, envelope_id: str, code: str, reason: str, at: str) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO bundle_refusals (child, envelope_id, code, reason, at) "
            "VALUES (?, ?, ?, ?, ?)",
            [child, envelope_id, code, reason, at],
        )

    def reset_bundle_acks(self, child: str, ids: list[str]) -> None:
        """The child's latest bundle carried ``ids``: anything acknowledged
        before and not carried again has been let go by the child."""
        self.conn.execute("DELETE FROM bundle_acks WHERE child = ?", [child])
        self.conn.executemany(
            "INSERT OR IGNORE INTO bundle_acks (child, envelope_id) VALUES (?, ?)", [(child, i) for i in ids]
        )
        self.conn.execute(
            "DELETE FROM bundle_refusals WHERE child = ? AND envelope_id NOT IN "
            "(SELECT envelope_id FROM bundle_acks WHERE child = ?)",
            [child, child],
        )

    def bundle_acks(self, child: str) -> list[str]:
        return [
            r[0] for r in self.conn.execute("SELECT envelope_id FROM bundle_acks WHERE child = ?", [child])
        ]

    def bundle_refusals(self, child: str) -> list[dict[str, Any]]:
        return list(
            self._query(
                "SELECT envelope_id AS id, code, reason FROM bundle_refusals WHERE child = ?", [child]
            )
        )

    # -- agents (people who log in here) -------------------------------------

    def add_agent(self, name: str, pin_hash: str, at: str, by: str) -> None:
        """A new agent, or a removed one given a new PIN."""
        self.conn.execute(
            "INSERT INTO agents (name, pin_hash, created_at, created_by) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET pin_hash = excluded.pin_hash, "
            "created_at = excluded.created_at, created_by = excluded.created_by, failures = 0, "
            "locked_until = NULL, removed_at = NULL",
            [name, pin_hash, at, by],
        )

    def agent(self, name: str) -> dict[str, Any] | None:
        rows = list(self._query("SELECT * FROM agents WHERE name = ?", [name]))
        return rows[0] if rows else None

    def agents(self, *, include_removed: bool = False) -> list[dict[str, Any]]:
        where = "" if include_removed else " WHERE removed_at IS NULL"
        return list(self._query(f"SELECT * FROM agents{where} ORDER BY created_at, name"))

    def update_agent(self, name: str, **values: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in values)
        self.conn.execute(f"UPDATE agents SET {sets} WHERE name = ?", [*values.values(), name])

    # -- views for the terminal app ------------------------------------------

    def find_by_masked_name(self, node_code: str, name_masked: str, limit: int = 100) -> list[dict[str, Any]]:
        """Applications whose masked name matches (a village keeps only 王*兰)."""
        where, params = self._where(node_code, None, None)
        sql = f"SELECT * FROM applications WHERE {where} AND name_masked = ? ORDER BY rowid DESC LIMIT ?"
        return [_decode(r) for r in self._query(sql, [*params, name_masked, limit])]

    def find_by_digits(self, node_code: str, digits: str, limit: int = 100) -> list[dict[str, Any]]:
        """Applications whose tracking number holds these digits, or whose
        ID number ends in them as far as its masked form shows (the last 4)."""
        where, params = self._where(node_code, None, None)
        sql = (
            f"SELECT * FROM applications WHERE {where} AND (instr(tracking, ?) > 0 "
            "OR (length(?) <= 4 AND substr(id_masked, -length(?)) = ?)) ORDER BY rowid DESC LIMIT ?"
        )
        return [
            _decode(r) for r in self._query(sql, [*params, digits, digits, digits, digits.upper(), limit])
        ]

    def find_by_items(self, node_code: str, items: Sequence[str], limit: int = 100) -> list[dict[str, Any]]:
        """Applications of these items, newest first."""
        if not items:
            return []
        where, params = self._where(node_code, None, None)
        marks = ", ".join("?" for _ in items)
        sql = f"SELECT * FROM applications WHERE {where} AND item IN ({marks}) ORDER BY rowid DESC LIMIT ?"
        return [_decode(r) for r in self._query(sql, [*params, *items, limit])]

    def needing_attention(self, origin: str, today: str, limit: int = 50) -> list[dict[str, Any]]:
        """What a filing node must act on: returned for supplement, rejected
        and the resident not told yet, past its due date (``today``: ISO
        date), completed and not yet evaluated, refused by the parent."""
        sql = (
            "SELECT * FROM applications WHERE origin = ? AND (status = 'needs_supplement' "
            "OR (status = 'rejected' AND told_at IS NULL) "
            "OR (status = 'accepted' AND due IS NOT NULL AND due < ?) "
            "OR (status = 'completed' AND evaluation IS NULL) OR sync_problem IS NOT NULL) "
            "ORDER BY updated_at DESC LIMIT ?"
        )
        return [_decode(r) for r in self._query(sql, [origin, today, limit])]

    def set_told(self, tracking: str, at: str) -> None:
        self.conn.execute("UPDATE applications SET told_at = ? WHERE tracking = ?", [at, tracking])

    def inbox(self, office: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Open applications this office handles, by deadline: accepted ones by
        due date, then those awaiting a decision by arrival, oldest first."""
        sql = (
            "SELECT tracking, item, item_name, status, origin, region, due, due_state, received_at, "
            "filed_at, name_masked, owed, missing, sync_problem FROM applications "
            "WHERE office = ? AND status IN ('submitted', 'received', 'needs_supplement', 'accepted') "
            "ORDER BY due IS NULL, due, COALESCE(received_at, filed_at)"
        )
        params: list[Any] = [office]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        cur = self.conn.execute(sql, params)
        names = [c[0] for c in cur.description]
        return [_decode(dict(zip(names, r, strict=True))) for r in cur]

    def count_inbox(self, office: str) -> int:
        row = self.conn.execute(
            "SELECT COUNT(*) FROM applications WHERE office = ? "
            "AND status IN ('submitted', 'received', 'needs_supplement', 'accepted')",
            [office],
        ).fetchone()
        return int(row[0])

    def dashboard_rows(self, office: str) -> list[dict[str, Any]]:
        """What the office dashboard counts, per application it handles."""
        return list(
            self._query(
                "SELECT origin, region, status, filed_at, received_at, accepted_on, due, completed_at, "
                "evaluation FROM applications WHERE office = ?",
                [office],
            )
        )

    # -- statistics (no personal data) ----------------------------------------

    def stats_pending(self, limit: int) -> list[str]:
        """Applications this office changed since it last published their records."""
        return [
            r[0]
            for r in self.conn.execute("SELECT tracking FROM stats_pending ORDER BY rowid LIMIT ?", [limit])
        ]

    def clear_stats_pending(self, trackings: Sequence[str]) -> None:
        self.conn.executemany("DELETE FROM stats_pending WHERE tracking = ?", [(t,) for t in trackings])

    def applications_in(self, trackings: Sequence[str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for start in range(0, len(trackings), 500):
            chunk = list(trackings[start : start + 500])
            marks = ", ".join("?" * len(chunk))
            rows.extend(
                _decode(r)
                for r in self._query(f"SELECT * FROM applications WHERE tracking IN ({marks})", chunk)
            )
        return rows

    def parties_of(self, trackings: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Who filed and who handles each of these applications, with its
        status and evaluation: what the authorisation table asks, by tracking."""
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(trackings), 500):
            chunk = list(trackings[start : start + 500])
            marks = ", ".join("?" * len(chunk))
            cur = self.conn.execute(
                "SELECT tracking, origin, office, status, evaluation FROM applications "
                f"WHERE tracking IN ({marks})",
                chunk,
            )
            for tracking, origin, office, status, evaluation in cur:
                out[tracking] = {
                    "tracking": tracking,
                    "origin": origin,
                    "office": office,
                    "status": status,
                    "evaluation": evaluation,
                }
        return out

    def stats_records_in(self, trackings: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The records held for these applications, by tracking number."""
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(trackings), 500):
            chunk = list(trackings[start : start + 500])
            marks = ", ".join("?" * len(chunk))
            for row in self._query(f"SELECT {_STATS_COLUMNS} FROM stats WHERE tracking IN ({marks})", chunk):
                out[row["tracking"]] = _stats_record(row)
        return out

    def put_stats(self, records: Sequence[Mapping[str, Any]], *, version: int, taken_at: str) -> None:
        """Keep records carried at ``version``; one already held at a higher or
        equal version stays (latest wins, whatever order they come in)."""
        self.conn.executemany(
            _STATS_UPSERT,
            [
                {
                    **{
                        k: (int(r[k]) if k in STATS_BOOLEANS and r[k] is not None else r[k])
                        for k in STATS_FIELDS
                    },
                    "version": version,
                    "taken_at": taken_at,
                }
                for r in records
            ],
        )

    # Reports count in SQL (node/report.py), reading only the columns they
    # add up, over the records whose office is ``prefix`` or below it. Days
    # are ISO days (the envelope schema's pattern on arrival, node/stats.py
    # at home), so "received, completed or evaluated in [start, end]" is
    # each count's own condition; ``start`` and ``end`` may be open (None).

    @staticmethod
    def _stats_in(column: str, start: str | None, end: str | None) -> str:
        """SQL: ``column`` holds a day within [:start, :end]."""
        bounds = [f"{column} IS NOT NULL"]
        if start is not None:
            bounds.append(f"{column} >= :start")
        if end is not None:
            bounds.append(f"{column} <= :end")
        return "(" + " AND ".join(bounds) + ")"

    def stats_sums(
        self, prefix: str, start: str | None, end: str | None, group: str | int | None = None
    ) -> list[tuple[Any, ...]]:
        """Per group, what a report adds up (node/report.py ``SUMS``, in that
        order, after the group's key): ``group`` None for one row over all,
        "item" per item, or a number of digits per region code cut to that
        length (None for a region coarser than that). One scan; each row's
        conditions are worked out once, in a subquery SQLite keeps apart (its
        LIMIT), then summed."""
        params: dict[str, Any] = {"n": len(prefix), "prefix": prefix, "start": start, "end": end}
        if group is None:
            key = "NULL"
        elif group == "item":
            key = "item"
        else:
            key = "CASE WHEN length(region) >= :digits THEN substr(region, 1, :digits) END"
            params["digits"] = group
        rows = (
            f"SELECT {key} AS key, {self._stats_in(_FILED_DAY, start, end)} AS f, "
            f"status = 'completed' AND {self._stats_in('completed_on', start, end)} AS c, "
            f"evaluation IS NOT NULL AND {self._stats_in('evaluated_on', start, end)} AS e, "
            "proxy, on_time, CAST(working_days AS INTEGER) AS days, CAST(evaluation AS INTEGER) AS score "
            "FROM stats WHERE substr(office, 1, :n) = :prefix LIMIT -1"
        )
        sums = [
            "COUNT(*) FILTER (WHERE f)",
            "COUNT(*) FILTER (WHERE f AND proxy)",
            "COUNT(*) FILTER (WHERE c)",
            "COUNT(on_time) FILTER (WHERE c)",
            "COUNT(*) FILTER (WHERE c AND on_time)",
            "COALESCE(SUM(days) FILTER (WHERE c), 0)",
            "COUNT(days) FILTER (WHERE c)",
            "COUNT(*) FILTER (WHERE e)",
            "COALESCE(SUM(score) FILTER (WHERE e), 0)",
            *(f"COUNT(*) FILTER (WHERE e AND score = {s})" for s in (5, 4, 3, 2, 1)),
        ]
        sql = f"SELECT key, {', '.join(sums)} FROM ({rows}) GROUP BY key"
        return [tuple(row) for row in self.conn.execute(sql, params)]

    def stats_days(
        self, prefix: str, start: str | None, end: str | None
    ) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        """(day, count) of the applications filed, and of those completed,
        on each day within [start, end] (in index order: migration 0020)."""
        params = {"n": len(prefix), "prefix": prefix, "start": start, "end": end}
        office = "substr(office, 1, :n) = :prefix"
        conn = self.conn
        filed = conn.execute(
            f"SELECT {_FILED_DAY} AS day, COUNT(*) FROM stats "
            f"WHERE {self._stats_in(_FILED_DAY, start, end)} AND {office} GROUP BY day",
            params,
        ).fetchall()
        completed = conn.execute(
            "SELECT completed_on, COUNT(*) FROM stats WHERE status = 'completed' "
            f"AND {self._stats_in('completed_on', start, end)} AND {office} GROUP BY completed_on",
            params,
        ).fetchall()
        return filed, completed

    def stats_open(self, prefix: str) -> list[tuple[str, str | None, str | None, int]]:
        """(status, received_on, due, count) of the applications still to
        answer or decide: what makes one late (node/timeliness.py)."""
        return [
            (row[0], row[1], row[2], int(row[3]))
            for row in self.conn.execute(
                "SELECT status, received_on, due, COUNT(*) FROM stats "
                "WHERE status IN ('received', 'accepted') AND substr(office, 1, ?1) = ?2 "
                "GROUP BY status, received_on, due",
                [len(prefix), prefix],
            )
        ]

    def stats_count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM stats").fetchone()[0])

    # -- heartbeats: children's last syncs, reported up (no personal data) ------

    def put_heartbeats(
        self, parent: str, records: Sequence[Mapping[str, Any]], *, version: int, taken_at: str
    ) -> None:
        """Keep ``parent``'s heartbeats of its children carried at ``version``;
        one already held at a higher or equal version stays."""
        self.conn.executemany(
            "INSERT INTO child_heartbeats "
            "(parent, code, version, name, last_sync_at, enrolled_at, gone, taken_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (parent, code) DO UPDATE SET version = excluded.version, name = excluded.name, "
            "last_sync_at = excluded.last_sync_at, enrolled_at = excluded.enrolled_at, "
            "gone = excluded.gone, taken_at = excluded.taken_at "
            "WHERE excluded.version > child_heartbeats.version",
            [
                (
                    parent,
                    r["code"],
                    version,
                    r["name"],
                    r["last_sync_at"],
                    r["enrolled_at"],
                    int(bool(r["gone"])),
                    taken_at,
                )
                for r in records
            ],
        )

    def heartbeats_of(self, parent: str) -> dict[str, dict[str, Any]]:
        """The heartbeats held of ``parent``'s children, by child code, in
        the record's shape (what ``parent`` last published, at ``parent``)."""
        return {
            row[0]: {
                "code": row[0],
                "name": row[1],
                "last_sync_at": row[2],
                "enrolled_at": row[3],
                "gone": bool(row[4]),
            }
            for row in self.conn.execute(
                "SELECT code, name, last_sync_at, enrolled_at, gone FROM child_heartbeats "
                "WHERE parent = ? ORDER BY code",
                [parent],
            )
        }

    def heartbeats_below(self, code: str) -> list[dict[str, Any]]:
        """The nodes reported below ``code`` by parents other than ``code``
        itself, and not gone: each with its parent and when the report was
        taken here, by parent then code."""
        return list(
            self._query(
                "SELECT parent, code, name, last_sync_at, enrolled_at, taken_at AS reported_at "
                "FROM child_heartbeats WHERE gone = 0 AND parent != ?1 "
                "AND substr(parent, 1, length(?1)) = ?1 ORDER BY parent, code",
                [code],
            )
        )

    # -- backup and recovery (restored homes, replaced PCs) ------------------

    def put_retired_key(self, serial: str, code: str, sign: str, upto_seq: int, at: str) -> None:
        self.conn.execute(
            "INSERT INTO retired_keys (serial, code, sign, upto_seq, at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (serial) DO UPDATE SET upto_seq = MAX(upto_seq, excluded.upto_seq)",
            [serial, code, sign, upto_seq, at],
        )

    def retired_serials(self) -> dict[str, str]:
        """{serial: when it was retired} of every retired certificate known here."""
        return dict(self.conn.execute("SELECT serial, at FROM retired_keys").fetchall())

    def retired_keys(self, code: str) -> list[tuple[str, int]]:
        """(base64 signing key, highest sequence number it vouches for) of ``code``."""
        return [
            (r[0], int(r[1]))
            for r in self.conn.execute(
                "SELECT sign, upto_seq FROM retired_keys WHERE code = ? ORDER BY at", [code]
            )
        ]

    def recovery_page(self, child: str, after: int, limit: int) -> list[OutboxRow]:
        """At a parent, for a child restored from its backup (n: the arrival
        number): every envelope held here that the child made, or that is
        addressed to it, below it (it held them on their way) or to
        everyone, after ``after``, oldest first — the
        order they arrived here, which keeps each application's events in
        the order they happened."""
        return [
            OutboxRow(*r)
            for r in self.conn.execute(
                "SELECT n, raw, id, origin, seq FROM envelopes "
                "WHERE n > ?1 AND (origin = ?2 OR substr(dest, 1, length(?2)) = ?2 OR dest = '*') "
                "ORDER BY n LIMIT ?3",
                [after, child, limit],
            )
        ]

    def highest_own_tracking(self, code: str) -> str | None:
        row = self.conn.execute("SELECT MAX(tracking) FROM applications WHERE origin = ?", [code]).fetchone()
        return row[0] if row else None

    def unsent_sealed_to(self, code: str) -> int:
        """Events whose personal part is still sealed to ``code`` and that have no envelope yet."""
        return int(
            self.conn.execute(
                "SELECT COUNT(*) FROM events e JOIN personal p ON p.event_id = e.id "
                "LEFT JOIN envelopes v ON v.id = e.id WHERE v.id IS NULL AND p.sealed_to = ?",
                [code],
            ).fetchone()[0]
        )

    def application_count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM applications").fetchone()[0])

    def unindex_sealed_to(self, code: str) -> int:
        """Forget the ID-number hashes of the applications at office ``code``
        whose personal part is sealed to it (its keys were replaced: the old
        lookup key made those hashes); each is keyed again, or named as
        unopenable, at the next search."""
        return self.conn.execute(
            "UPDATE applications SET id_hash = '' WHERE office = ? AND id_hash != '' AND tracking IN "
            "(SELECT tracking FROM personal WHERE sealed_to = ?)",
            [code, code],
        ).rowcount

    # -- custody across a restore (node/custody.py) ----------------------------

    def keep(self, envelope_ids: Sequence[str], kind: str, here: str, at: str) -> None:
        """Keep the envelopes of ``kind`` among these until their office
        answers: not one addressed here, nor one its office has answered."""
        self.conn.execute(
            "INSERT OR IGNORE INTO kept (envelope_id, tracking, office, kept_at) "
            "SELECT v.id, v.tracking, v.dest, ? FROM envelopes v "
            "WHERE v.id IN (SELECT value FROM json_each(?)) AND v.kind = ? AND v.tracking IS NOT NULL "
            "AND v.dest != ? AND NOT EXISTS (SELECT 1 FROM envelopes o "
            "WHERE o.tracking = v.tracking AND o.origin = v.dest)",
            [at, json.dumps(list(envelope_ids)), kind, here],
        )

    def release_kept_many(self, answered: Sequence[tuple[str, str]]) -> None:
        """``release_kept`` for many (tracking, office) pairs at once."""
        pairs = json.dumps([list(p) for p in answered])
        for table in ("kept", "kept_personal"):
            self.conn.execute(
                f"DELETE FROM {table} WHERE rowid IN (SELECT t.rowid FROM json_each(?) j "
                f"JOIN {table} t ON t.tracking = json_extract(j.value, '$[0]') "
                "AND t.office = json_extract(j.value, '$[1]'))",
                [pairs],
            )

    def release_kept(self, tracking: str, office: str) -> None:
        self.conn.execute("DELETE FROM kept WHERE tracking = ? AND office = ?", [tracking, office])
        self.conn.execute("DELETE FROM kept_personal WHERE tracking = ? AND office = ?", [tracking, office])

    def keep_personal(self, event_id: str, tracking: str, office: str, sealed: str, enc: str) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO kept_personal (event_id, tracking, office, sealed, enc) "
            "VALUES (?, ?, ?, ?, ?)",
            [event_id, tracking, office, sealed, enc],
        )

    def kept_personal(self) -> list[dict[str, Any]]:
        return list(self._query("SELECT * FROM kept_personal ORDER BY rowid"))

    def kept_offices(self) -> list[str]:
        """The offices filings are kept for, sealed to (kept_personal)."""
        return [r[0] for r in self.conn.execute("SELECT DISTINCT office FROM kept_personal")]

    def kept_personal_not_sealed_to(self, office: str, enc: str) -> list[dict[str, Any]]:
        """Filings kept for ``office`` whose envelope was sealed to another key than ``enc``."""
        return list(
            self._query(
                "SELECT * FROM kept_personal WHERE office = ? AND enc != ? ORDER BY rowid", [office, enc]
            )
        )

    def resealed(self, event_id: str, old_id: str, enc: str) -> None:
        """A kept filing went sealed again (to its office's new key): the old
        envelope is neither queued nor kept any more."""
        self.conn.execute("UPDATE kept_personal SET enc = ? WHERE event_id = ?", [enc, event_id])
        self.conn.execute("DELETE FROM kept WHERE envelope_id = ?", [old_id])
        self.conn.execute("DELETE FROM outbox WHERE envelope_id = ?", [old_id])

    def raw_envelope(self, envelope_id: str) -> str | None:
        row = self.conn.execute("SELECT raw FROM envelopes WHERE id = ?", [envelope_id]).fetchone()
        return str(row[0]) if row else None

    def kept_ids(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT envelope_id FROM kept ORDER BY kept_at")]

    def kept_count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM kept").fetchone()[0])

    def origins_under(self, prefix: str, limit: int | None) -> list[str]:
        """Origins of the envelopes held here whose code extends ``prefix`` (itself included)."""
        rows = self.conn.execute(
            "SELECT DISTINCT origin FROM envelopes WHERE substr(origin, 1, length(?1)) = ?1 "
            "ORDER BY origin LIMIT ?2",
            [prefix, -1 if limit is None else limit],
        )
        return [r[0] for r in rows]

    def sent_up_above(self, origin: str, above: int, here: str) -> list[str]:
        """Ids of ``origin``'s envelopes numbered above ``above`` that went up
        from here (addressed outside this node's area, or to everyone)."""
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT id FROM envelopes v WHERE origin = ?1 AND seq > ?2 "
                "AND (dest = '*' OR substr(dest, 1, length(?3)) != ?3) "
                # not a filing since sealed again to its office's new key
                "AND NOT (kind = 'filed' AND EXISTS (SELECT 1 FROM envelopes w WHERE w.origin = v.origin "
                "AND w.kind = 'filed' AND w.tracking = v.tracking AND w.n > v.n)) ORDER BY n",
                [origin, above, here],
            )
        ]

    def origin_above(self, origin: str, above: int, after: int, limit: int) -> list[tuple[int, str]]:
        """(n, raw) of ``origin``'s envelopes numbered above ``above``, after arrival number ``after``."""
        return [
            (int(r[0]), r[1])
            for r in self.conn.execute(
                "SELECT n, raw FROM envelopes WHERE origin = ? AND seq > ? AND n > ? ORDER BY n LIMIT ?",
                [origin, above, after, limit],
            )
        ]

    def has_own_receipt(self, tracking: str, office: str) -> bool:
        """Whether the office's receipt for ``tracking`` is held here (taken
        back after a restore): alone in its envelope, folded from a
        `receipts` envelope, or waiting in one for its filing."""
        row = self.conn.execute(
            "SELECT 1 FROM envelopes WHERE tracking = ? AND origin = ? AND kind = 'received' "
            "UNION ALL SELECT 1 FROM events WHERE tracking = ? AND origin = ? AND kind = 'received' "
            # By the tracking number first (``+v.origin``: not through the
            # origin's index, which walks everything the office ever sent).
            "UNION ALL SELECT 1 FROM receipts_waiting w JOIN envelopes v ON v.id = w.envelope_id "
            "WHERE w.tracking = ? AND +v.origin = ? LIMIT 1",
            [tracking, office, tracking, office, tracking, office],
        ).fetchone()
        return row is not None

    def receipts_here(self, trackings: Sequence[str], office: str) -> bool:
        """has_own_receipt for any of these tracking numbers."""
        for start in range(0, len(trackings), 500):
            part = json.dumps(list(trackings[start : start + 500]))
            row = self.conn.execute(
                "SELECT 1 FROM json_each(?1) j WHERE EXISTS (SELECT 1 FROM envelopes "
                "WHERE tracking = j.value AND origin = ?2 AND kind = 'received') "
                "OR EXISTS (SELECT 1 FROM events WHERE tracking = j.value AND origin = ?2 "
                "AND kind = 'received') OR EXISTS (SELECT 1 FROM receipts_waiting w "
                "JOIN envelopes v ON v.id = w.envelope_id WHERE w.tracking = j.value AND +v.origin = ?2) "
                "LIMIT 1",
                [part, office],
            ).fetchone()
            if row is not None:
                return True
        return False

    # -- receipts in bulk that wait for their application (node/receipts.py) --

    def event_ids_among(self, ids: Sequence[str]) -> set[str]:
        """Which of these event ids are recorded here."""
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            part = list(ids[start : start + 500])
            marks = ", ".join("?" * len(part))
            found.update(
                r[0] for r in self.conn.execute(f"SELECT id FROM events WHERE id IN ({marks})", part)
            )
        return found

    def wait_receipts(self, envelope_id: str, trackings: Sequence[str]) -> None:
        """Receipts of a `receipts` envelope that cannot apply yet: its effect
        is pending until each has (receipt_applied)."""
        self.conn.executemany(
            "INSERT OR IGNORE INTO receipts_waiting (envelope_id, tracking) VALUES (?, ?)",
            [(envelope_id, t) for t in trackings],
        )
        self.set_effect(envelope_id, "pending")

    def waiting_receipts(self, tracking: str) -> list[tuple[str, str, str]]:
        """(envelope id, raw, sender) of `receipts` envelopes holding a
        receipt for ``tracking`` that waits, in arrival order."""
        return [
            (r[0], r[1], r[2])
            for r in self.conn.execute(
                "SELECT v.id, v.raw, v.received_from FROM receipts_waiting w "
                "JOIN envelopes v ON v.id = w.envelope_id WHERE w.tracking = ? ORDER BY v.n",
                [tracking],
            )
        ]

    def stop_waiting(self, envelope_id: str) -> None:
        self.conn.execute("DELETE FROM receipts_waiting WHERE envelope_id = ?", [envelope_id])

    def receipt_applied(self, envelope_id: str, tracking: str) -> None:
        """A waiting receipt has applied; its envelope's effect is applied
        once none of its receipts waits."""
        conn = self.conn
        conn.execute(
            "DELETE FROM receipts_waiting WHERE envelope_id = ? AND tracking = ?", [envelope_id, tracking]
        )
        if conn.execute(
            "SELECT 1 FROM receipts_waiting WHERE envelope_id = ? LIMIT 1", [envelope_id]
        ).fetchone():
            return
        self.set_effect(envelope_id, "applied")


@lru_cache(maxsize=32)
def _upsert_sql(columns: tuple[str, ...]) -> str:
    return (
        f"INSERT INTO applications ({', '.join(columns)}) "
        f"VALUES ({', '.join(':' + c for c in columns)}) "
        "ON CONFLICT (tracking) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in columns if c != "tracking")
    )


_STATS_COLUMNS = ", ".join(STATS_FIELDS)
# The day an application counts as filed: its office's receipt (node/report.py).
_FILED_DAY = "COALESCE(NULLIF(received_on, ''), filed_on)"
_STATS_UPSERT = (
    f"INSERT INTO stats ({_STATS_COLUMNS}, version, taken_at) "
    f"VALUES ({', '.join(':' + c for c in STATS_FIELDS)}, :version, :taken_at) "
    "ON CONFLICT (tracking) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in (*STATS_FIELDS[1:], "version", "taken_at"))
    + " WHERE excluded.version > stats.version"
)


def _stats_record(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (bool(row[k]) if k in STATS_BOOLEANS and row[k] is not None else row[k]) for k in STATS_FIELDS}


def _decode(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in JSON_COLUMNS:
        if out.get(key) is not None:
            out[key] = json.loads(out[key])
    return out
