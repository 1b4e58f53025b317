"""A node's applications: filing (one, or a whole ledger), review at the office,
supplements, withdrawal, evaluation, and the views the CLI and TUI show.

Each operation checks its input, then writes its event and the summary it
changes in one transaction. Personal data goes only to the store's personal
table; the summary keeps masked values and a keyed hash of the ID number."""

from __future__ import annotations

import builtins
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daiban.errors import (
    Conflict,
    DaibanError,
    LedgerRefused,
    NotFound,
    Problem,
    ValidationFailed,
)
from daiban.i18n import _, join
from daiban.node import (
    codechanges,
    conditions,
    lifecycle,
    masking,
    postal,
    projection,
    routing,
    timeliness,
    tracking,
    validation,
)
from daiban.node.catalog import Item, alias_initials_of, initials_of, item_digest, level_label
from daiban.node.clock import Clock, stamp, system_clock
from daiban.node.codechanges import Change
from daiban.node.divisions import city_of, is_within
from daiban.node.lifecycle import Kind, Status
from daiban.node.store import Store
from daiban.node.workdays import WorkCalendar

if TYPE_CHECKING:
    from daiban.trust import envelope
    from daiban.trust.crypto import NodeKeys

REVIEW_ACTIONS = ("accept", "supplement", "reject", "complete")
# Why an application is withdrawn (the office reads it in the note).
WITHDRAW_REASONS = ("resident", "duplicate", "typo", "other")


def withdraw_reason_label(reason: str) -> str:
    return {
        "resident": _("at the resident's request"),
        "duplicate": _("filed twice"),
        "typo": _("typed wrongly"),
        "other": _("other"),
    }[reason]


POOR_SCORE = 2  # 不满意 and below: a reason is required


class PersonalUnavailable(DaibanError):
    """Personal data this node holds, sealed to it, that it cannot open: sealed
    to its previous key (the keys were lost with the old PC), or not verifying."""

    code = "personal_unavailable"


@dataclass
class Filing:
    """What an agent typed for one application."""

    item: str
    name: str
    id_number: str
    phone: str
    region: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    missing: Sequence[str] = ()
    allow_unchecked_uscc: bool = False
    guardian: Mapping[str, str] | None = None
    """The guardian applying for the resident: name, id_number, relation."""
    delivery: str = "pickup"
    """How the result reaches the resident: pickup, or post (to ``address``)."""
    address: str = ""


@dataclass
class Filed:
    """A filed application: the tracking number, and the receipt's content,
    personal values included, held in memory only (for printing)."""

    tracking: str
    item: Item
    office: str
    status: str
    owed: list[str]
    received: list[str]
    applicant: dict[str, str]
    fields: dict[str, Any]
    filed_at: str
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tracking": self.tracking,
            "item": self.item.code,
            "item_name": self.item.name,
            "office": self.office,
            "status": self.status,
            "owed": self.owed,
            "warnings": self.warnings,
        }


@dataclass
class _Prepared:
    filing: Filing
    item: Item
    region: str
    office: str
    id_hash: str
    applicant: dict[str, str]
    fields: dict[str, Any]
    owed: list[str]
    warnings: list[str]
    guardian: dict[str, str] | None = None
    address: str = ""

    def personal(self) -> dict[str, Any]:
        """What is sealed to the office: the applicant, the form, and the
        guardian and delivery address when given."""
        out: dict[str, Any] = {**self.applicant, "fields": self.fields}
        if self.guardian:
            out["guardian"] = dict(self.guardian)
        if self.address:
            out["address"] = self.address
        return out


class Node:
    def __init__(
        self, home: Path, store: Store, *, clock: Clock = system_clock, actor: str | None = None
    ) -> None:
        self.home = home
        self.store = store
        self.clock = clock
        self.actor = validation.strip_controls(actor or "").strip() or _default_actor()
        settings = store.settings()
        self.code = settings["code"]
        self.role = settings["role"]
        self.name = settings["name"]
        self._items: dict[str, Item] | None = None
        self._calendar: WorkCalendar | None = None
        self._lookup_key: bytes | None = None
        self._batch: dict[str, int] | None = None
        self._keys: NodeKeys | None = None
        self._children: list[str] | None = None
        self._moved: list[str] | None = None
        self._revoked: list[str] | None = None
        self._root: str | None = None
        self._changes: tuple[Change, ...] | None = None
        self._changes_text = ""
        self._premade: dict[str, tuple[bytes, str, envelope.Envelope | None]] = {}
        self._prefilled: dict[str, tuple[str, Mapping[str, Any]]] = {}
        # Restored from a backup and not yet caught up with the parent: no new
        # sequence number until then, so none is taken twice (sync/recovery.py).
        self._rejoin_pending = settings.get("rejoin_pending") == "1"

    def close(self) -> None:
        self.store.close()

    # -- catalog -----------------------------------------------------------

    def install_catalog(self, doc: Mapping[str, Any], *, source: str) -> None:
        """Put a (checked) catalog document in force, with its calendar, and
        count the due dates that a newly covered year now makes known."""
        rows = [
            {
                "code": item["code"],
                "name": item["name"],
                "initials": initials_of(item["name"]),
                "alias_initials": json.dumps(alias_initials_of(item), ensure_ascii=False),
                "level": item["level"],
                "department": item.get("department", ""),
                "time_limit_days": item["time_limit_days"],
                "trips": item.get("trips", 0),
                "fee": item.get("fee", 0),
                "doc": item,
            }
            for item in doc["items"]
        ]
        with self.store.transaction():
            self.store.replace_catalog(rows, doc.get("calendar"))
            self.store.keep_item_docs([(item_digest(item), item["code"], item) for item in doc["items"]])
            self.store.set_setting("catalog_version", str(doc["version"]))
            self.store.set_setting("catalog_title", doc.get("title", ""))
            self.store.set_setting("catalog_published", doc.get("published", ""))
            self.store.set_setting("catalog_source", source)
            offices = json.dumps(doc.get("offices") or {}, ensure_ascii=False)
            self.store.set_setting("catalog_offices", offices)
            self._items = None
            self._calendar = None
            cal = self.calendar()
            for row in self.store.unknown_dues():
                self._store_due(
                    row["tracking"],
                    cal,
                    dt.date.fromisoformat(row["accepted_on"]),
                    int(row["time_limit_days"]),
                )

    def items(self) -> list[Item]:
        return list(self._in_force().values())

    def _in_force(self) -> dict[str, Item]:
        """The catalog's items in force by code, read once (until it changes)."""
        if self._items is None:
            self._items = {
                r["code"]: Item.from_doc(
                    r["doc"], r["initials"], alias_initials=json.loads(r["alias_initials"])
                )
                for r in self.store.catalog_rows()
            }
        return self._items

    def item(self, code: str) -> Item:
        return find_item(self._in_force(), code)

    def known_item(self, code: str) -> Item | None:
        """An item by code: the one in force, else the latest version this
        node had in force before the city withdrew it; None if neither."""
        current = self._in_force().get(code)
        if current is not None:
            return current
        doc = self.store.item_doc(None, code)
        return Item.from_doc(doc) if doc is not None else None

    def filed_item(self, application: str | Mapping[str, Any]) -> Item:
        """The item an application was filed under (a tracking number or its
        summary row): the version it was filed (or received) under, kept
        when the catalog changed; else the item in force; else what its
        summary row tells (the time limit, the materials). So an application
        goes on after the city withdraws or changes its item."""
        row = self._application(application) if isinstance(application, str) else application
        digest = row.get("item_digest")
        items = self._in_force()
        current = items.get(row["item"])
        if current is not None and (not digest or current.digest == digest):
            return current
        doc = self.store.item_doc(digest, row["item"])
        if doc is not None:
            return Item.from_doc(doc)
        if current is not None:
            return current
        if row.get("time_limit_days") is None:
            return find_item(items, row["item"])  # NotFound: known nowhere here
        materials = [*row.get("materials", []), *row.get("owed", [])]
        return Item(
            code=row["item"],
            name=row["item_name"],
            level=row.get("level", ""),
            department="",
            time_limit_days=int(row.get("time_limit_days") or 0),
            trips=0,
            fee=0.0,
            materials=tuple({"name": m} for m in dict.fromkeys(materials)),
            fields={"type": "object", "properties": {}},
        )

    def calendar(self) -> WorkCalendar:
        if self._calendar is None:
            self._calendar = WorkCalendar.from_catalog(self.store.calendar())
        return self._calendar

    def office_contact(self, code: str) -> dict[str, str]:
        """How residents reach the office or agency point ``code``, as the
        catalog in force publishes it (``offices``); else the name of a child
        enrolled here; empty when neither says."""
        offices = json.loads(self.store.setting("catalog_offices", "{}") or "{}")
        found = {str(k): str(v) for k, v in (offices.get(code) or {}).items()}
        if not found.get("name"):  # a point enrolled here: the name it was enrolled under
            named = [r["name"] for r in self.store.children_sync(include_moved=True) if r["code"] == code]
            if named and named[0]:
                found["name"] = str(named[0])
        return found

    def catalog_info(self) -> dict[str, Any]:
        s = self.store.settings()
        return {
            "version": int(s.get("catalog_version", "0")),
            "title": s.get("catalog_title", ""),
            "published": s.get("catalog_published", ""),
            "source": s.get("catalog_source", ""),
        }

    # -- identity ----------------------------------------------------------

    @property
    def keys(self) -> NodeKeys:
        from daiban.trust.crypto import NodeKeys

        if self._keys is None:
            self._keys = NodeKeys.load(self.home)
        return self._keys

    def children(self) -> list[str]:
        if self._children is None:
            self._children = [p["code"] for p in self.store.peers("child")]
        return self._children

    def root_code(self) -> str:
        """The city root's code (known once enrolled; the city's own before)."""
        if self._root is None:
            root = self.store.setting("root_code")
            if not root:
                return self.code[:4]
            self._root = root  # set at enrollment, never changed after
        return self._root

    def moved_children(self) -> list[str]:
        """Children that enrolled with another parent since (node/moving.py)."""
        if self._moved is None:
            self._moved = [p["code"] for p in self.store.peers("moved")]
        return self._moved

    def revoked_children(self) -> list[str]:
        """Children whose certificate was revoked (node/revocation.py)."""
        if self._revoked is None:
            self._revoked = [p["code"] for p in self.store.peers("revoked")]
        return self._revoked

    def division_changes(self) -> tuple[Change, ...]:
        """The city's code changes this node holds (node/codechanges.py).
        Read each time (one row by key; parsed again only when it changed):
        a server's node sees a manifest another process installed."""
        text = self.store.setting(codechanges.SETTING, "") or ""
        if self._changes is None or text != self._changes_text:
            self._changes = codechanges.from_body(json.loads(text or "[]"))
            self._changes_text = text
        return self._changes

    def changes_installed(self) -> None:
        """The manifest brought code changes: read them again when next asked."""
        self._changes = None
        self.children_changed()

    def children_changed(self) -> None:
        """A child enrolled, moved or left: read the children again when next asked."""
        self._children = None
        self._moved = None
        self._revoked = None

    def rejoined(self) -> None:
        """A restored node has caught up with its parent: it may number events again."""
        self._rejoin_pending = False

    def parent(self) -> str | None:
        peers = self.store.peers("parent")
        return peers[0]["code"] if peers else None

    # -- helpers -----------------------------------------------------------

    def today(self) -> dt.date:
        return self.clock().date()

    def id_hash(self, id_number: str) -> str:
        if self._lookup_key is None:
            from daiban.node.home import LOOKUP_KEY

            self._lookup_key = (self.home / LOOKUP_KEY).read_bytes()
        return keyed_hash(self._lookup_key, id_number)

    def take_seq(self) -> int:
        """The next sequence number of this node's events (refused while a restored node catches up)."""
        if self._rejoin_pending:
            # Another process (`daiban sync` beside `daiban serve`) may have caught up since.
            self._rejoin_pending = self.store.setting("rejoin_pending") == "1"
        if self._rejoin_pending:
            raise DaibanError(
                _(
                    "This node was restored from a backup and has not caught up with its parent "
                    "yet: run `daiban sync` first (on a new PC, enroll again before that)."
                ),
                code="rejoin_pending",
            )
        if self._batch is None:
            return self._next_seq()
        self._batch["seq"] += 1
        return self._batch["seq"]

    def _next_seq(self) -> int:
        """Above every number held here, and above the floor a restore set
        (node/custody.py: numbers that may have gone only to children)."""
        from daiban.node import custody

        return max(self.store.next_seq(self.code), custody.seq_floor(self.store) + 1)

    def _take_counter(self) -> int:
        if self._batch is None:
            return self.store.next_counter("tracking_counter")
        self._batch["counter"] += 1
        return self._batch["counter"]

    @contextmanager
    def _batched(self) -> Iterator[None]:
        """Inside one transaction: hand out sequence numbers and tracking
        counters from memory, and write the counter back once at the end."""
        self._batch = {
            "seq": self._next_seq() - 1,
            "counter": int(self.store.setting("tracking_counter", "0") or 0),
        }
        try:
            yield
            self.store.set_setting("tracking_counter", str(self._batch["counter"]))
        finally:
            self._batch = None

    @contextmanager
    def seqs_in_memory(self) -> Iterator[None]:
        """Inside one transaction, with nothing else numbering meanwhile:
        sequence numbers handed out from memory (the journal receiving a
        run of filings, each with its receipt)."""
        if self._batch is not None:
            yield
            return
        self._batch = {"seq": self._next_seq() - 1, "counter": 0}
        try:
            yield
        finally:
            self._batch = None

    def route(self, envelope_id: str, dest: str, now: str, came_from: str | None = None) -> str:
        """Queue an envelope for its next hop; returns what happened to it."""
        hop = self._hop(dest, self._from_parent(came_from))
        self.store.enqueue_many(_queue_rows(envelope_id, hop), now)
        return hop.action

    def route_many(self, pairs: list[tuple[str, str]], now: str, came_from: str | None = None) -> None:
        """route() for many (envelope id, destination) pairs, queued in one statement."""
        if pairs:
            from_parent = self._from_parent(came_from)
            changes = self.division_changes()
            rows = [row for i, dest in pairs for row in _queue_rows(i, self._hop(dest, from_parent, changes))]
            self.store.enqueue_many(rows, now)

    def _from_parent(self, came_from: str | None) -> bool:
        return came_from is not None and came_from == self.parent()

    def _hop(self, dest: str, from_parent: bool, changes: tuple[Change, ...] | None = None) -> routing.Hop:
        return routing.next_hop(
            self.code,
            dest,
            self.children(),
            from_parent=from_parent,
            moved=self.moved_children(),
            revoked=self.revoked_children(),
            changes=self.division_changes() if changes is None else changes,
        )

    def reseal_pending(self) -> int:
        """Seal to their office the personal parts held sealed to this node
        (filed before the office's key was known), and make their envelopes."""
        from daiban.node import identity, journal
        from daiban.trust import envelope
        from daiban.trust.crypto import b64, unb64

        made = 0
        with self.store.transaction():
            for event in self.store.events_without_envelope():
                row = self.store.application(event.tracking)
                if row is None:
                    continue
                enc = identity.enc_key_for(self, row["office"])
                if enc is None:
                    continue
                held = self.store.personal_sealed(event.id)
                if held is None:
                    continue
                try:
                    personal = envelope.open_blob(
                        unb64(held["data"]),
                        event.id,
                        event.kind,
                        event.tracking,
                        self.keys,
                        self.keys.sign_public,
                    )
                except envelope.EnvelopeError:
                    # Sealed to the key of a PC since replaced (restored from
                    # its backup): nobody can open it; `daiban restore` said so.
                    continue
                sealed = journal.seal(self, event, personal, enc)
                self.store.update_personal(event.id, b64(sealed), row["office"])
                dest = routing.destination(event.kind, event.origin, row["origin"], row["office"])
                journal.send(self, event, dest, sealed, row["office"], stamp(self.clock()))
                if event.kind == "filed":  # kept sealed to this node until the office answers
                    self.store.keep_personal(event.id, event.tracking, row["office"], held["data"], b64(enc))
                made += 1
        return made

    def personal(self, tracking_text: str) -> dict[str, Any] | None:
        """Open an application's personal data, in memory, where this node holds
        the key it is sealed to (the office; a filer that could not yet seal to
        its office). Nobody else can. Corrections (``corrected`` events) are
        laid over the filing's values, in order."""
        merged, _corrections = self._personal_parts(tracking_text)
        return merged

    def _personal_parts(
        self, tracking_text: str
    ) -> tuple[dict[str, Any] | None, builtins.list[dict[str, Any]]]:
        """The personal data as corrected, and each correction with what it
        changed (old and new values), both opened in memory."""
        number = tracking.parse(tracking_text)
        merged: dict[str, Any] | None = None
        corrections: builtins.list[dict[str, Any]] = []
        for held in self.store.personal_for(number):
            if held["sealed_to"] != self.code:
                continue
            part = self._open_part(number, held)
            if merged is None:
                merged = {**part, "fields": dict(part.get("fields") or {})}
                continue
            changed: dict[str, dict[str, Any]] = {}
            for key, value in part.items():
                if key == "fields":
                    for name, field_value in (value or {}).items():
                        changed[f"fields.{name}"] = {"from": merged["fields"].get(name), "to": field_value}
                        merged["fields"][name] = field_value
                    continue
                # A later part stands over the filing's: a correction, or what
                # the office kept of a later event (a delivery address given
                # at completion).
                changed[key] = {"from": merged.get(key), "to": value}
                merged[key] = value
            if held["kind"] == "corrected":
                corrections.append({"event_id": held["event_id"], "changed": changed})
        return merged, corrections

    def _open_part(self, number: str, held: Mapping[str, Any]) -> dict[str, Any]:
        from daiban.node import identity, retired
        from daiban.trust import envelope
        from daiban.trust.crypto import unb64

        origin = held["origin"]
        sign = identity.sign_key_for(self, origin) if origin != self.code else self.keys.sign_public
        # A replaced PC signed its earlier filings with its retired key.
        candidates = retired.signing_keys(self, origin, sign)
        for n, key in enumerate(candidates, start=1):
            try:
                opened: dict[str, Any] = envelope.open_blob(
                    unb64(held["data"]), held["event_id"], held["kind"], number, self.keys, key
                )
                return opened
            except envelope.EnvelopeError as exc:
                if n == len(candidates):
                    raise self._unavailable(number, held) from exc
        raise self._unavailable(number, held)

    def _unavailable(self, number: str, held: Mapping[str, Any]) -> PersonalUnavailable:
        """Why a personal part sealed to this node does not open, in one line."""
        from daiban.trust import envelope
        from daiban.trust.crypto import CryptoError, unb64

        try:
            self.keys.open(unb64(held["data"]), envelope.seal_info(held["event_id"], held["kind"]))
        except CryptoError:
            return PersonalUnavailable(
                _(
                    "{tracking}: sealed to this node's previous key; its personal data cannot be "
                    "opened here until its filing point sends it again, sealed to this node's new key."
                ).format(tracking=number),
                code="sealed_to_previous_key",
            )
        return PersonalUnavailable(
            _(
                "{tracking}: its personal data does not verify against its filing point's key, so it "
                "is not shown."
            ).format(tracking=number),
            code="personal_unverified",
        )

    def unopenable(self) -> list[PersonalUnavailable]:
        """The applications at this office whose personal part this node holds
        and cannot open (so cannot key for a search by ID number), each with
        its one-line reason. Call after index_personal: only those it could not
        key are tried again."""
        found = []
        for tracking_no in self.store.unindexed(self.code):
            try:
                self.personal(tracking_no)
            except PersonalUnavailable as exc:
                found.append(exc)
        return found

    # -- filing ------------------------------------------------------------

    def filing_context(self, today: dt.date | None = None) -> FilingContext:
        from daiban.i18n import language

        items = self._in_force()
        if self._lookup_key is None:
            self.id_hash("0")
        assert self._lookup_key is not None
        return FilingContext(
            self.code,
            dict(items),
            self._lookup_key,
            today or self.today(),
            language(),
            self.division_changes(),
        )

    def prepare(self, filing: Filing, *, today: dt.date | None = None) -> _Prepared:
        """Check one filing completely; every problem is reported at once."""
        return check_filing(self.filing_context(today), filing)

    def _check_not_duplicate(self, prepared: _Prepared) -> None:
        existing = self.store.open_application_for(prepared.id_hash, prepared.item.code)
        if existing is not None:
            raise Conflict(
                _(
                    "This resident already has an application for this item in progress: "
                    "{tracking} ({status})."
                ).format(tracking=existing["tracking"], status=lifecycle.status_label(existing["status"]))
            )

    def _store_filing(self, prepared: _Prepared, now: str, event_id: str | None = None) -> Filed:
        from daiban.node import journal

        item = prepared.item
        counter = self._take_counter()
        prefilled = self._prefilled.pop(event_id, None) if event_id else None
        if prefilled is not None:
            number, body = prefilled  # made by _preseal for this very counter
        else:
            number, body = tracking.make(self.code, counter), filing_body(prepared)
        received = body["materials"]
        personal = prepared.personal()
        event = journal.new_event(self, number, Kind.FILED, body, now, event_id)
        state, row = projection.filed_row(
            tracking=number,
            origin=self.code,
            body=body,
            filed_at=now,
            now=now,
            item_name=item.name,
            time_limit_days=item.time_limit_days,
            id_hash=prepared.id_hash,
            item_digest=item.digest,
        )
        premade = self._premade.pop(event.id, None)
        state = journal.record_filing(self, event, state, row, personal, premade)
        return Filed(
            number,
            item,
            prepared.office,
            state.status.value,
            list(state.owed),
            received,
            dict(prepared.applicant),
            dict(prepared.fields),
            now,
            prepared.warnings,
        )

    def file(self, filing: Filing) -> Filed:
        """File one application; returns its tracking number and receipt."""
        prepared = self.prepare(filing)
        with self.store.transaction():
            self._check_not_duplicate(prepared)
            return self._store_filing(prepared, stamp(self.clock()))

    def file_ledger(self, rows: Iterable[tuple[int, Filing]], *, digest: str, filename: str) -> list[Filed]:
        """File every row of a ledger, or none: all rows are checked first, and
        any refused row refuses the whole ledger with a report of every refused
        row, so fixing the ledger and importing it again never files a row twice."""
        previous = self.store.ledger_import(digest)
        if previous is not None:
            raise Conflict(
                _("This ledger was already imported at {at} ({rows} rows); nothing was filed again.").format(
                    at=previous["imported_at"], rows=previous["rows"]
                )
            )
        prepared: list[_Prepared] = []
        refused: list[dict[str, Any]] = []
        seen: dict[tuple[str, str], int] = {}
        total = 0
        for line, checked in check_many(self.filing_context(), list(rows)):
            total += 1
            if isinstance(checked, dict):
                refused.append({"row": line, **checked})
                continue
            try:
                p = checked
                key = (p.id_hash, p.item.code)
                if key in seen:
                    raise Conflict(_("same resident and item as row {row}").format(row=seen[key]))
                seen[key] = line
                self._check_not_duplicate(p)
            except DaibanError as exc:
                refused.append(
                    {
                        "row": line,
                        "reason": exc.message,
                        "problems": [q.as_dict() for q in getattr(exc, "problems", [])],
                    }
                )
                continue
            prepared.append(p)
        if total == 0:
            raise LedgerRefused(_("The ledger {name} has no rows to file.").format(name=filename), [])
        if refused:
            raise LedgerRefused(
                _("{n} of {total} rows refused; nothing was filed. Fix them and import again.").format(
                    n=len(refused), total=total
                ),
                refused,
            )
        now = stamp(self.clock())
        with self.store.transaction():
            self.store.record_ledger(digest, filename, total, now, self.actor)
            with self._batched():
                assert self._batch is not None
                made = self._preseal(prepared, self._batch["counter"], now)
                try:
                    out = []
                    for p in prepared:
                        event_id, premade = next(made)
                        self._premade[event_id] = premade
                        out.append(self._store_filing(p, now, event_id))
                    return out
                finally:
                    self._premade = {}
                    self._prefilled = {}

    def _preseal(
        self, prepared: Sequence[_Prepared], counter: int, now: str
    ) -> Iterator[tuple[str, tuple[bytes, str, envelope.Envelope | None]]]:
        """Seal and sign a ledger's filing envelopes in one go (in worker
        processes when there are many), for the tracking numbers, event ids
        and sequence numbers its rows are about to get in _store_filing."""
        from daiban.node import journal
        from daiban.trust.crypto import new_id
        from daiban.trust.sealing import Job, make_many

        assert self._batch is not None
        seq = self._batch["seq"]
        ids, jobs = [], []
        targets: dict[str, tuple[str, bytes]] = {}
        for n, p in enumerate(prepared, start=1):
            event_id = new_id()
            if p.office not in targets:
                targets[p.office] = journal.seal_target(self, p.office)
            target, enc = targets[p.office]
            seq += 1
            jobs.append(
                Job(
                    id=event_id,
                    origin=self.code,
                    seq=seq,
                    kind=Kind.FILED.value,
                    to=p.office,
                    tracking=tracking.make(self.code, counter + n),
                    actor=self.actor,
                    at=now,
                    body=filing_body(p),
                    personal=p.personal(),
                    enc_public=enc,
                    sealed_to=target,
                    make_envelope=target == p.office,
                )
            )
            ids.append(event_id)
            self._prefilled[event_id] = (jobs[-1].tracking, jobs[-1].body)
            if p.office == self.code:
                seq += 1  # its `received` event follows at once
        return zip(ids, make_many(self.keys, jobs), strict=True)

    # -- changes after filing ---------------------------------------------

    def _application(self, tracking_text: str) -> dict[str, Any]:
        number = tracking.parse(tracking_text)
        row = self.store.application(number)
        if row is None:
            raise NotFound(_("No application {tracking} at this node.").format(tracking=number))
        return row

    def _require_office(self, row: Mapping[str, Any]) -> None:
        if row["office"] != self.code:
            raise DaibanError(
                _(
                    "Only the office that handles it ({office}) can review {tracking}; this node is {code}."
                ).format(office=row["office"], tracking=row["tracking"], code=self.code),
                code="not_office",
            )

    def _require_filer(self, row: Mapping[str, Any]) -> None:
        if row["origin"] != self.code:
            raise DaibanError(
                _(
                    "Only the point that filed {tracking} ({origin}) can record this; this node is {code}."
                ).format(tracking=row["tracking"], origin=row["origin"], code=self.code),
                code="not_filer",
            )

    def _require_party(self, row: Mapping[str, Any]) -> None:
        if self.code not in (row["origin"], row["office"]):
            raise DaibanError(
                _("Only the node that filed {tracking} or its office can do this.").format(
                    tracking=row["tracking"]
                ),
                code="not_party",
            )

    def _record(
        self,
        tracking_text: str,
        kind: str,
        body: Mapping[str, Any] | Callable[[Mapping[str, Any]], Mapping[str, Any]],
        check: Callable[[Mapping[str, Any]], None],
        kept: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record one event this node makes about an application, in one
        transaction: check, apply the state machine, emit, project the summary.
        ``kept``: personal data of the event this node keeps, sealed to itself."""
        from daiban.node import journal

        with self.store.transaction():
            row = self._application(tracking_text)
            check(row)
            if callable(body):
                body = body(row)
            journal.record(self, row, kind, body, stamp(self.clock()), kept=kept)
            return row

    def _filed_address(self, row: Mapping[str, Any]) -> str:
        """The delivery address given at filing, where this node can open it."""
        try:
            personal = self.personal(row["tracking"])
        except PersonalUnavailable:
            return ""
        return str((personal or {}).get("address") or "")

    def _store_due(self, tracking_no: str, cal: WorkCalendar, accepted: dt.date, days: int) -> None:
        fields = projection.due_fields(cal, accepted.isoformat(), days)
        self.store.set_due(tracking_no, fields["due"], fields["due_state"], fields.get("due_missing_year"))

    def review(
        self,
        tracking_text: str,
        action: str,
        *,
        note: str = "",
        missing: Sequence[str] = (),
        delivery: str = "pickup",
        post_tracking: str = "",
        supplement_by: str = "",
        address: str = "",
    ) -> dict[str, Any]:
        """Record the office's decision: accept (容缺 with ``missing``), ask for a
        supplement listing everything missing (by the day ``supplement_by``,
        optional), reject with a reason, or complete with the delivery. By
        post: a China Post tracking number, and the address given here or at
        filing (sealed; the event carries it masked)."""
        note = validation.text(note, label=_("note"), key="note", required=(action == "reject"))
        missing = [
            validation.text(m, label=_("material"), key="missing", max_length=100)
            for m in missing
            if m.strip()
        ]
        if action == "accept":
            today = self.today()

            def check(row: Mapping[str, Any]) -> None:
                self._require_office(row)
                problems = _owable_problems(self.filed_item(row), missing)
                if problems:
                    raise ValidationFailed(problems)

            def accepted(row: Mapping[str, Any]) -> dict[str, Any]:
                # The due date is counted here, on the office's clock, and
                # travels in the event so the filer shows the same date.
                limit = row.get("time_limit_days")
                days = int(limit) if limit is not None else self.filed_item(row).time_limit_days
                due = self.calendar().add_working_days(today, days)
                body: dict[str, Any] = {
                    "note": note,
                    "accepted_on": today.isoformat(),
                    "time_limit_days": days,
                    "due": due.isoformat() if due else None,
                    "due_missing_year": None if due else self.calendar().missing_year(today, days),
                }
                if missing:
                    body["owed"] = missing
                return body

            return self._record(tracking_text, Kind.ACCEPTED, accepted, check)
        if action == "supplement":
            asked: dict[str, Any] = {"missing": missing, "note": note}
            if supplement_by.strip():
                asked["supplement_by"] = _supplement_by(supplement_by, self.today())
            return self._record(
                tracking_text,
                Kind.SUPPLEMENT_REQUESTED,
                asked,
                self._require_office,
            )
        if action == "reject":
            return self._record(tracking_text, Kind.REJECTED, {"reason": note}, self._require_office)
        if action == "complete":
            if delivery not in ("pickup", "post"):
                raise ValidationFailed([Problem("delivery", _("delivery"), _("must be pickup or post"))])
            if delivery == "pickup":
                if post_tracking.strip() or address.strip():
                    raise ValidationFailed(
                        [
                            Problem(
                                "delivery",
                                _("delivery"),
                                _("a tracking number or address needs --delivery post"),
                            )
                        ]
                    )
                return self._record(
                    tracking_text,
                    Kind.COMPLETED,
                    {"delivery": {"method": "pickup", "post_tracking": None}, "result": note},
                    self._require_office,
                )
            post = postal.tracking_number(post_tracking)
            typed = postal.address(address) if address.strip() else ""

            def completed(row: Mapping[str, Any]) -> dict[str, Any]:
                where = typed or self._filed_address(row)
                if not where:
                    raise ValidationFailed(
                        [
                            Problem(
                                "address",
                                _("delivery address"),
                                _("was not given at filing; give it with --address"),
                            )
                        ]
                    )
                return {
                    "delivery": {
                        "method": "post",
                        "post_tracking": post,
                        "address": postal.mask_address(where),
                    },
                    "result": note,
                }

            return self._record(
                tracking_text,
                Kind.COMPLETED,
                completed,
                self._require_office,
                kept={"address": typed} if typed else None,
            )
        raise DaibanError(
            _("Unknown review action {action!r}; use accept, supplement, reject or complete.").format(
                action=action
            ),
            code="usage",
        )

    def supplement(
        self, tracking_text: str, materials: Sequence[str] = (), *, note: str = ""
    ) -> dict[str, Any]:
        """Record materials handed in later: for a supplement request, or owed
        under 容缺受理. Without ``materials``, everything outstanding."""
        note = validation.text(note, label=_("note"), key="note")
        chosen = [m.strip() for m in materials if m.strip()]
        if not chosen:
            row = self._application(tracking_text)
            chosen = list(row["missing"] if row["status"] == Status.NEEDS_SUPPLEMENT else row["owed"])
        return self._record(
            tracking_text, Kind.SUPPLEMENTED, {"materials": chosen, "note": note}, self._require_party
        )

    def withdraw(self, tracking_text: str, *, reason: str = "resident", note: str = "") -> dict[str, Any]:
        """Withdraw before acceptance, at the filing point, saying why
        (WITHDRAW_REASONS); the office reads the reason in the note."""
        if reason not in WITHDRAW_REASONS:
            raise ValidationFailed(
                [
                    Problem(
                        "reason",
                        _("reason"),
                        _("must be one of: {choices}").format(choices=", ".join(WITHDRAW_REASONS)),
                    )
                ]
            )
        note = validation.text(note, label=_("note"), key="note", required=reason == "other")
        label = withdraw_reason_label(reason)
        text = _("{reason}: {note}").format(reason=label, note=note) if note else label
        return self._record(tracking_text, Kind.WITHDRAWN, {"note": text}, self._require_filer)

    def correct(self, tracking_text: str, changes: Mapping[str, Any], *, reason: str) -> dict[str, Any]:
        """Correct what was typed, before the office accepts: ``changes`` holds
        only what changes (name, id_number, phone, and fields: {key: value}),
        each checked as at filing. The new values travel sealed to the office
        in a ``corrected`` event that names what changed and why; the office
        reads the application with them from then on (Node.personal)."""
        reason = validation.text(reason, label=_("reason"), key="reason", required=True)
        today = self.today()
        problems: list[Problem] = []
        personal: dict[str, Any] = {}
        for key, check in (
            ("name", lambda v: validation.person_name(v)),
            ("id_number", lambda v: validation.id_number(v, today=today)),
            ("phone", lambda v: validation.phone(v)),
        ):
            value = changes.get(key)
            if value is None or not str(value).strip():
                continue
            try:
                personal[key] = check(str(value)).value
            except ValidationFailed as exc:
                problems.extend(exc.problems)
        unknown = sorted(set(changes) - {"name", "id_number", "phone", "fields"})
        if unknown:
            problems.append(
                Problem(unknown[0], unknown[0], _("cannot be corrected: withdraw and file again"))
            )
        with self.store.transaction():
            row = self._application(tracking_text)
            self._require_filer(row)
            raw_fields = {k: v for k, v in (changes.get("fields") or {}).items() if str(v).strip()}
            if raw_fields:
                schema = {k: v for k, v in self.filed_item(row).fields.items() if k != "required"}
                try:
                    personal["fields"] = validation.fields(schema, raw_fields, today=today).value
                except ValidationFailed as exc:
                    problems.extend(exc.problems)
            if problems:
                raise ValidationFailed(problems)
            changed: list[str] = [k for k in ("name", "id_number", "phone") if k in personal]
            changed += [f"fields.{k}" for k in personal.get("fields", {})]
            if not changed:
                raise ValidationFailed([Problem("changes", _("correction"), _("names nothing to change"))])
            from daiban.node import journal

            if "id_number" in personal:
                row["id_hash"] = self.id_hash(personal["id_number"])
            journal.record_correction(
                self, row, {"changed": changed, "reason": reason}, personal, stamp(self.clock())
            )
            return row

    def evaluate(self, tracking_text: str, score: int, *, comment: str = "") -> dict[str, Any]:
        """The resident's evaluation (好差评, GB/T 39734's five levels), once,
        recorded at the filing point only — never by the office evaluated. A
        不满意 or 非常不满意 needs the resident's reason."""
        if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
            raise ValidationFailed([Problem("score", _("evaluation"), _("must be one of the levels 1 to 5"))])
        # 不满意 and 非常不满意 need the resident's reason (GB/T 39734).
        comment = validation.text(comment, label=_("reason"), key="comment", required=score <= POOR_SCORE)
        return self._record(
            tracking_text, Kind.EVALUATED, {"score": score, "comment": comment}, self._require_filer
        )

    # -- views -------------------------------------------------------------

    def find_by_id_number(self, id_number: str) -> str:
        checked = validation.id_number(id_number, today=self.today())
        self.index_personal()
        return self.id_hash(checked.value)

    def index_personal(self) -> int:
        """Key the ID-number hash of applications that arrived sealed to this
        office, opening each in memory once. Receiving stays cheap; the first
        search by ID number pays."""
        done = 0
        with self.store.transaction():
            for tracking_no in self.store.unindexed(self.code):
                try:
                    personal = self.personal(tracking_no)
                except PersonalUnavailable:
                    continue  # named by unopenable(), left for a later key
                if personal is None:
                    continue
                self.store.set_resident(
                    tracking_no,
                    self.id_hash(personal["id_number"]),
                    masking.mask_name(personal["name"]),
                    masking.mask_id_number(personal["id_number"]),
                    masking.mask_phone(personal["phone"]),
                )
                done += 1
        return done

    def to_do(self, limit: int = 50) -> list[dict[str, Any]]:
        """What this filing node's agent must act on (store.needing_attention),
        each with what timeliness says of it today."""
        today, cal = self.today(), self.calendar()
        rows = self.store.needing_attention(self.code, today.isoformat(), limit)
        return [public_view(r, timeliness.of_row(r, today, cal)) for r in rows]

    def mark_told(self, tracking_text: str) -> dict[str, Any]:
        """The agent has told the resident of a rejection: it leaves the to-do
        list. Only at the filing node, only for a rejected application; a
        note of this PC's, not an event (nobody else needs it)."""
        with self.store.transaction():
            row = self._application(tracking_text)
            if row["origin"] != self.code:
                raise DaibanError(
                    _("{tracking} was filed at {origin}; only the filing point tells its resident.").format(
                        tracking=row["tracking"], origin=row["origin"]
                    ),
                    code="not_filer",
                )
            if row["status"] != "rejected":
                raise DaibanError(
                    _("{tracking} is not rejected: there is no rejection to tell.").format(
                        tracking=row["tracking"]
                    ),
                    code="not_rejected",
                )
            self.store.set_told(row["tracking"], stamp(self.clock()))
            return self._application(row["tracking"])

    def list(
        self, *, status: str | None = None, limit: int | None = None, id_number: str | None = None
    ) -> list[dict[str, Any]]:
        id_hash = self.find_by_id_number(id_number) if id_number else None
        rows = self.store.list_applications(self.code, status=status, id_hash=id_hash, limit=limit)
        today, cal = self.today(), self.calendar()
        return [public_view(r, timeliness.of_row(r, today, cal)) for r in rows]

    def count(self, *, status: str | None = None, id_number: str | None = None) -> int:
        id_hash = self.find_by_id_number(id_number) if id_number else None
        return self.store.count_applications(self.code, status=status, id_hash=id_hash)

    def show(self, tracking_text: str) -> dict[str, Any]:
        row = self._application(tracking_text)
        view = public_view(row, timeliness.of_row(row, self.today(), self.calendar()))
        view["history"] = [
            {
                "seq": e.seq,
                "origin": e.origin,
                "kind": e.kind,
                "actor": e.actor,
                "at": e.at,
                "recorded_at": e.recorded_at,
                "body": dict(e.body),
            }
            for e in self.store.events_for(row["tracking"])
        ]
        if row["office"] == self.code:
            try:
                personal, corrections = self._personal_parts(row["tracking"])
            except PersonalUnavailable as exc:
                view["personal_problem"] = exc.message
            else:
                if personal:
                    view["personal"] = personal
                if corrections:  # the office sees what changed
                    view["corrections"] = [c["changed"] for c in corrections]
        if row.get("sync_problem"):
            view["sync_problem"] = row["sync_problem"]
        return view


@dataclass(frozen=True)
class FilingContext:
    """What checking a filing needs from its node, without the database."""

    code: str
    items: Mapping[str, Item]
    lookup_key: bytes
    today: dt.date
    language: str
    changes: tuple[Change, ...] = ()
    """The city's code changes: a resident's office is the resolved prefix."""

    def item(self, code: str) -> Item:
        return find_item(self.items, code)

    def id_hash(self, id_number: str) -> str:
        return keyed_hash(self.lookup_key, id_number)


def find_item(items: Mapping[str, Item], code: str) -> Item:
    found = items.get(code.strip().upper())
    if found is None:
        raise NotFound(
            _("Item {code} is not in the catalog; find it with `daiban catalog list WORD`.").format(
                code=code
            ),
            code="unknown_item",
        )
    return found


def keyed_hash(key: bytes, id_number: str) -> str:
    """The ID number's keyed hash: finds a resident's applications without
    keeping the number (the key stays in the node's keys/ folder)."""
    return hmac.new(key, id_number.encode(), hashlib.sha256).hexdigest()[:32]


def check_filing(ctx: FilingContext, filing: Filing) -> _Prepared:
    """Check one filing completely; every problem is reported at once. Needs
    no database, so a large ledger is checked in worker processes."""
    today = ctx.today
    item = ctx.item(filing.item)
    problems: list[Problem] = []
    warnings: list[str] = []
    applicant: dict[str, str] = {}
    for key, check in (
        ("name", lambda v: validation.person_name(v)),
        ("id_number", lambda v: validation.id_number(v, today=today)),
        ("phone", lambda v: validation.phone(v)),
    ):
        try:
            checked = check(getattr(filing, key))
        except ValidationFailed as exc:
            problems.extend(exc.problems)
            continue
        applicant[key] = checked.value
        warnings.extend(checked.warnings)

    region = (filing.region or ctx.code).strip()
    office: str | None = None
    if not (region.isascii() and region.isdigit() and len(region) in (4, 6, 9, 12)):
        problems.append(
            Problem("region", _("applicant's division"), _("must be a 6-, 9- or 12-digit division code"))
        )
    elif not is_within(region, city_of(ctx.code)):
        problems.append(
            Problem(
                "region",
                _("applicant's division"),
                _("{region} is outside this city ({city})").format(region=region, city=city_of(ctx.code)),
            )
        )
    elif not item.citywide and not codechanges.within(region, ctx.code, ctx.changes):
        # Only a 全城通办 item may be filed for a resident of another area:
        # every hop refuses such a filing otherwise (node/authority.py).
        problems.append(
            Problem(
                "region",
                _("applicant's division"),
                _(
                    "{region} is outside this point's area ({code}); {item} is not handled "
                    "anywhere in the city (全城通办), so file it where the resident lives"
                ).format(region=region, code=ctx.code, item=item.code),
            )
        )
    else:
        office = codechanges.office_for(region, item.level, ctx.changes)
        if office is None:
            problems.append(
                Problem(
                    "region",
                    _("applicant's division"),
                    _(
                        "{region} is too coarse for a {level}-level item; give the resident's "
                        "village or town code with --region"
                    ).format(region=region, level=level_label(item.level)),
                )
            )

    try:
        fields = validation.fields(
            item.fields, filing.fields, today=today, allow_unchecked_uscc=filing.allow_unchecked_uscc
        )
        warnings.extend(fields.warnings)
        field_values: dict[str, Any] = fields.value
    except ValidationFailed as exc:
        problems.extend(exc.problems)
        field_values = {}

    owed = list(dict.fromkeys(m.strip() for m in filing.missing if m.strip()))
    problems.extend(_owable_problems(item, owed))
    guardian: dict[str, str] | None = None
    if "id_number" in applicant:
        # The item's own conditions (age, guardian) on the filing date.
        found, guardian = conditions.check(
            item.conditions,
            item_name=item.name,
            id_number=applicant["id_number"],
            fields=field_values,
            guardian=filing.guardian,
            today=today,
        )
        problems.extend(found)
    address = ""
    if filing.delivery == "post" or (filing.address or "").strip():
        try:
            address = postal.address(filing.address)
        except ValidationFailed as exc:
            problems.extend(exc.problems)
    elif filing.delivery not in ("pickup", ""):
        problems.append(Problem("delivery", _("delivery"), _("must be pickup or post")))
    if problems:
        raise ValidationFailed(problems)
    assert office is not None
    return _Prepared(
        filing,
        item,
        region,
        office,
        ctx.id_hash(applicant["id_number"]),
        applicant,
        field_values,
        owed,
        warnings,
        guardian,
        address,
    )


def _check_chunk(ctx: FilingContext, rows: Sequence[tuple[int, Filing]]) -> list[tuple[int, Any]]:
    from daiban import i18n

    i18n.set_language(ctx.language)
    out: list[tuple[int, Any]] = []
    for line, filing in rows:
        try:
            prepared = check_filing(ctx, filing)
            # Send back the item's code, not the item (its whole form schema):
            # the caller has the catalog, and pickling it per row costs more
            # than checking the row.
            out.append((line, replace(prepared, item=prepared.item.code)))  # type: ignore[arg-type]
        except DaibanError as exc:
            out.append(
                (
                    line,
                    {"reason": exc.message, "problems": [q.as_dict() for q in getattr(exc, "problems", [])]},
                )
            )
    return out


def check_many(ctx: FilingContext, rows: Sequence[tuple[int, Filing]]) -> list[tuple[int, Any]]:
    """Check every row: (line, _Prepared) or (line, {"reason", "problems"}); in
    worker processes for a large ledger."""
    import os

    from daiban.trust.sealing import PARALLEL_FROM, worker_pool

    workers = min(4, os.cpu_count() or 1)
    if len(rows) < PARALLEL_FROM or workers < 2:
        return [
            (line, r if isinstance(r, dict) else replace(r, item=ctx.items[r.item]))
            for line, r in _check_chunk(ctx, rows)
        ]
    size = max(250, len(rows) // (workers * 4))
    chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
    with worker_pool(workers) as pool:  # its workers die with this process
        results = [r for chunk in pool.map(_check_chunk, [ctx] * len(chunks), chunks) for r in chunk]
    return [(line, r if isinstance(r, dict) else replace(r, item=ctx.items[r.item])) for line, r in results]


def filing_body(prepared: _Prepared) -> dict[str, Any]:
    """The non-personal body of a filing event: what travels in the clear."""
    item = prepared.item
    return {
        "item": item.code,
        "item_name": item.name,
        "level": item.level,
        "region": prepared.region,
        "office": prepared.office,
        "materials": [m for m in item.material_names if m not in prepared.owed],
        "owed": list(prepared.owed),
        "applicant": {
            "name": masking.mask_name(prepared.applicant["name"]),
            "id_number": masking.mask_id_number(prepared.applicant["id_number"]),
            "phone": masking.mask_phone(prepared.applicant["phone"]),
        },
    }


def _owable_problems(item: Item, owed: Sequence[str]) -> list[Problem]:
    problems = []
    for material in owed:
        if material not in item.material_names:
            problems.append(
                Problem(
                    "missing",
                    _("material"),
                    _("{item} has no material “{material}”; its materials: {materials}").format(
                        item=item.code, material=material, materials=_("、").join(item.material_names)
                    ),
                )
            )
        elif material not in item.owable:
            problems.append(
                Problem(
                    "missing",
                    _("material"),
                    _("“{material}” cannot be owed (容缺); owable: {owable}").format(
                        material=material, owable=_("、").join(item.owable) or _("(none)")
                    ),
                )
            )
    return problems


def public_view(row: Mapping[str, Any], late: timeliness.Late | None = None) -> dict[str, Any]:
    """An application as ``list --json`` and ``show --json`` report it (stable
    keys); ``late``: what timeliness.of_row says of it today."""
    return {
        "tracking": row["tracking"],
        "item": row["item"],
        "item_name": row["item_name"],
        "status": row["status"],
        "office": row["office"],
        "origin": row["origin"],
        "region": row["region"],
        "due": row["due"],
        "due_state": row["due_state"],
        "due_provisional": row["due_state"] == "provisional",
        "due_missing_year": row["due_missing_year"],
        "filed_at": row["filed_at"],
        "accepted_on": row["accepted_on"],
        "completed_at": row["completed_at"],
        "owed": row["owed"],
        "missing": row["missing"],
        "materials": row["materials"],
        "delivery": row["delivery"],
        "evaluation": row["evaluation"],
        "sync_problem": row.get("sync_problem"),
        "late": late.as_dict() if late is not None else None,
        "told_at": row.get("told_at"),
        "applicant": {
            "name": row["name_masked"],
            "id_number": row["id_masked"],
            "phone": row["phone_masked"],
        },
    }


def _supplement_by(text: str, today: dt.date) -> str:
    """The day by which a supplement is due, as the office sets it: an ISO
    date, not before today."""
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        day = None
    if day is None or day < today:
        raise ValidationFailed(
            [Problem("supplement_by", _("supplement by"), _("must be a date (YYYY-MM-DD), today or later"))]
        )
    return day.isoformat()


def _default_actor() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name on some Windows service accounts
        return "agent"


__all__ = ["REVIEW_ACTIONS", "Filed", "Filing", "Node", "join", "public_view"]


def _queue_rows(envelope_id: str, hop: routing.Hop) -> list[tuple[str, str, str]]:
    """The outbox row (envelope, hop, direction) for a routing decision; none
    when the envelope has arrived."""
    if hop.action == "down":
        assert hop.child is not None
        return [(envelope_id, hop.child, "down")]
    if hop.action == "up":
        return [(envelope_id, routing.UP, "up")]
    if hop.action == "hold":
        return [(envelope_id, routing.HELD, "down")]
    return []
