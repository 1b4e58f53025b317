"""A node's applications: filing (one, or a whole ledger), review at the office,
supplements, withdrawal, evaluation, and the views the CLI and TUI show.

Each operation checks its input, then writes its event and the summary it
changes in one transaction. Personal data goes only to the store's personal
table; the summary keeps masked values and a keyed hash of the ID number."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daiban.errors import (
    Conflict,
    DaibanError,
    LedgerRefused,
    NotFound,
    Problem,
    ValidationFailed,
)
from daiban.i18n import _, join
from daiban.node import lifecycle, masking, tracking, validation
from daiban.node.catalog import Item, initials_of, level_label
from daiban.node.clock import Clock, stamp, system_clock
from daiban.node.divisions import city_of, is_within, office_for
from daiban.node.lifecycle import AppState, Kind, Status
from daiban.node.store import Event, Store
from daiban.node.workdays import WorkCalendar

REVIEW_ACTIONS = ("accept", "supplement", "reject", "complete")


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
            self.store.set_setting("catalog_version", str(doc["version"]))
            self.store.set_setting("catalog_title", doc.get("title", ""))
            self.store.set_setting("catalog_published", doc.get("published", ""))
            self.store.set_setting("catalog_source", source)
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
        if self._items is None:
            self._items = {
                r["code"]: Item.from_doc(r["doc"], r["initials"]) for r in self.store.catalog_rows()
            }
        return list(self._items.values())

    def item(self, code: str) -> Item:
        self.items()
        assert self._items is not None
        found = self._items.get(code.strip().upper())
        if found is None:
            raise NotFound(
                _("Item {code} is not in the catalog; find it with `daiban catalog list WORD`.").format(
                    code=code
                ),
                code="unknown_item",
            )
        return found

    def calendar(self) -> WorkCalendar:
        if self._calendar is None:
            self._calendar = WorkCalendar.from_catalog(self.store.calendar())
        return self._calendar

    def catalog_info(self) -> dict[str, Any]:
        s = self.store.settings()
        return {
            "version": int(s.get("catalog_version", "0")),
            "title": s.get("catalog_title", ""),
            "published": s.get("catalog_published", ""),
            "source": s.get("catalog_source", ""),
        }

    # -- helpers -----------------------------------------------------------

    def today(self) -> dt.date:
        return self.clock().date()

    def id_hash(self, id_number: str) -> str:
        if self._lookup_key is None:
            from daiban.node.home import LOOKUP_KEY

            self._lookup_key = (self.home / LOOKUP_KEY).read_bytes()
        return hmac.new(self._lookup_key, id_number.encode(), hashlib.sha256).hexdigest()[:32]

    def _take_seq(self) -> int:
        if self._batch is None:
            return self.store.next_seq(self.code)
        self._batch["seq"] += 1
        return self._batch["seq"]

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
            "seq": self.store.next_seq(self.code) - 1,
            "counter": int(self.store.setting("tracking_counter", "0") or 0),
        }
        try:
            yield
            self.store.set_setting("tracking_counter", str(self._batch["counter"]))
        finally:
            self._batch = None

    def _event(self, tracking_no: str, kind: str, body: Mapping[str, Any], now: str) -> Event:
        return Event(
            id=uuid.uuid4().hex,
            origin=self.code,
            seq=self._take_seq(),
            tracking=tracking_no,
            kind=kind,
            actor=self.actor,
            at=now,
            recorded_at=now,
            body=dict(body),
        )

    # -- filing ------------------------------------------------------------

    def prepare(self, filing: Filing, *, today: dt.date | None = None) -> _Prepared:
        """Check one filing completely; every problem is reported at once."""
        today = today or self.today()
        item = self.item(filing.item)
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

        region = (filing.region or self.code).strip()
        office: str | None = None
        if not (region.isascii() and region.isdigit() and len(region) in (4, 6, 9, 12)):
            problems.append(
                Problem("region", _("applicant's division"), _("must be a 6-, 9- or 12-digit division code"))
            )
        elif not is_within(region, city_of(self.code)):
            problems.append(
                Problem(
                    "region",
                    _("applicant's division"),
                    _("{region} is outside this city ({city})").format(
                        region=region, city=city_of(self.code)
                    ),
                )
            )
        else:
            office = office_for(region, item.level)
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
        if problems:
            raise ValidationFailed(problems)
        assert office is not None
        return _Prepared(
            filing,
            item,
            region,
            office,
            self.id_hash(applicant["id_number"]),
            applicant,
            field_values,
            owed,
            warnings,
        )

    def _check_not_duplicate(self, prepared: _Prepared) -> None:
        existing = self.store.open_application_for(prepared.id_hash, prepared.item.code)
        if existing is not None:
            raise Conflict(
                _(
                    "This resident already has an application for this item in progress: "
                    "{tracking} ({status})."
                ).format(tracking=existing["tracking"], status=lifecycle.status_label(existing["status"]))
            )

    def _store_filing(self, prepared: _Prepared, now: str) -> Filed:
        item = prepared.item
        number = tracking.make(self.code, self._take_counter())
        received = [m for m in item.material_names if m not in prepared.owed]
        masked = {
            "name": masking.mask_name(prepared.applicant["name"]),
            "id_number": masking.mask_id_number(prepared.applicant["id_number"]),
            "phone": masking.mask_phone(prepared.applicant["phone"]),
        }
        body = {
            "item": item.code,
            "item_name": item.name,
            "level": item.level,
            "region": prepared.region,
            "office": prepared.office,
            "materials": received,
            "owed": prepared.owed,
            "applicant": masked,
        }
        personal = {**prepared.applicant, "fields": prepared.fields}
        event = self._event(number, Kind.FILED, body, now)
        self.store.insert_event(event, personal)
        state = lifecycle.apply(None, Kind.FILED, body)
        row = {
            "tracking": number,
            "item": item.code,
            "item_name": item.name,
            "level": item.level,
            "office": prepared.office,
            "region": prepared.region,
            "origin": self.code,
            "status": state.status.value,
            "owed": list(state.owed),
            "missing": [],
            "materials": received,
            "evaluation": None,
            "filed_at": now,
            "received_at": None,
            "time_limit_days": item.time_limit_days,
            "due_state": "pending",
            "name_masked": masked["name"],
            "id_masked": masked["id_number"],
            "phone_masked": masked["phone"],
            "id_hash": prepared.id_hash,
            "updated_at": now,
        }
        if prepared.office == self.code:
            # Filed at the office that handles it: it is received here at once.
            received_event = self._event(number, Kind.RECEIVED, {"office": self.code}, now)
            self.store.insert_event(received_event)
            state = lifecycle.apply(state, Kind.RECEIVED, received_event.body)
            row.update(status=state.status.value, received_at=now)
        self.store.save_application(row)
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
        today = self.today()
        prepared: list[_Prepared] = []
        refused: list[dict[str, Any]] = []
        seen: dict[tuple[str, str], int] = {}
        total = 0
        for line, filing in rows:
            total += 1
            try:
                p = self.prepare(filing, today=today)
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
                return [self._store_filing(p, now) for p in prepared]

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
        body: Mapping[str, Any],
        check: Callable[[Mapping[str, Any]], None],
        project: Callable[[dict[str, Any], AppState, str], None] | None = None,
    ) -> dict[str, Any]:
        with self.store.transaction():
            row = self._application(tracking_text)
            check(row)
            state = AppState(
                Status(row["status"]), tuple(row["owed"]), tuple(row["missing"]), row["evaluation"]
            )
            new = lifecycle.apply(state, kind, body)
            now = stamp(self.clock())
            self.store.insert_event(self._event(row["tracking"], kind, body, now))
            row.update(
                status=new.status.value,
                owed=list(new.owed),
                missing=list(new.missing),
                evaluation=new.evaluation,
                updated_at=now,
            )
            if project is not None:
                project(row, new, now)
            self.store.save_application(row)
            return row

    def _store_due(self, tracking_no: str, cal: WorkCalendar, accepted: dt.date, days: int) -> None:
        due = cal.add_working_days(accepted, days)
        if due is None:
            self.store.set_due(tracking_no, None, "unknown", cal.missing_year(accepted, days))
        else:
            self.store.set_due(tracking_no, due.isoformat(), "known", None)

    def review(
        self,
        tracking_text: str,
        action: str,
        *,
        note: str = "",
        missing: Sequence[str] = (),
        delivery: str = "pickup",
        post_tracking: str = "",
    ) -> dict[str, Any]:
        """Record the office's decision: accept (容缺 with ``missing``), ask for a
        supplement listing everything missing, reject with a reason, or complete
        with the delivery."""
        note = validation.text(note, label=_("note"), key="note", required=(action == "reject"))
        missing = [
            validation.text(m, label=_("material"), key="missing", max_length=100)
            for m in missing
            if m.strip()
        ]
        if action == "accept":
            today = self.today()
            item_cache: dict[str, Item] = {}

            def check(row: Mapping[str, Any]) -> None:
                self._require_office(row)
                item_cache["item"] = self.item(row["item"])
                problems = _owable_problems(item_cache["item"], missing)
                if problems:
                    raise ValidationFailed(problems)

            def project(row: dict[str, Any], state: AppState, now: str) -> None:
                item = item_cache["item"]
                due = self.calendar().add_working_days(today, item.time_limit_days)
                row.update(
                    accepted_on=today.isoformat(),
                    decided_at=now,
                    time_limit_days=item.time_limit_days,
                    due=due.isoformat() if due else None,
                    due_state="known" if due else "unknown",
                    due_missing_year=None
                    if due
                    else self.calendar().missing_year(today, item.time_limit_days),
                )

            body: dict[str, Any] = {"note": note, "accepted_on": today.isoformat()}
            if missing:
                body["owed"] = missing
            return self._record(tracking_text, Kind.ACCEPTED, body, check, project)
        if action == "supplement":
            return self._record(
                tracking_text,
                Kind.SUPPLEMENT_REQUESTED,
                {"missing": missing, "note": note},
                self._require_office,
            )
        if action == "reject":
            return self._record(
                tracking_text,
                Kind.REJECTED,
                {"reason": note},
                self._require_office,
                lambda row, state, now: row.update(decided_at=now),
            )
        if action == "complete":
            post = validation.text(
                post_tracking, label=_("postal tracking number"), key="post_tracking", max_length=40
            )
            delivery_body = {"method": delivery, "post_tracking": post or None}
            return self._record(
                tracking_text,
                Kind.COMPLETED,
                {"delivery": delivery_body, "result": note},
                self._require_office,
                lambda row, state, now: row.update(completed_at=now, delivery=delivery_body),
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

    def withdraw(self, tracking_text: str, *, note: str = "") -> dict[str, Any]:
        note = validation.text(note, label=_("note"), key="note")
        return self._record(tracking_text, Kind.WITHDRAWN, {"note": note}, self._require_party)

    def evaluate(self, tracking_text: str, score: int, *, comment: str = "") -> dict[str, Any]:
        comment = validation.text(comment, label=_("comment"), key="comment")
        return self._record(
            tracking_text, Kind.EVALUATED, {"score": score, "comment": comment}, self._require_party
        )

    # -- views -------------------------------------------------------------

    def find_by_id_number(self, id_number: str) -> str:
        checked = validation.id_number(id_number, today=self.today())
        return self.id_hash(checked.value)

    def list(
        self, *, status: str | None = None, limit: int | None = None, id_number: str | None = None
    ) -> list[dict[str, Any]]:
        id_hash = self.find_by_id_number(id_number) if id_number else None
        rows = self.store.list_applications(self.code, status=status, id_hash=id_hash, limit=limit)
        return [public_view(r) for r in rows]

    def count(self, *, status: str | None = None, id_number: str | None = None) -> int:
        id_hash = self.find_by_id_number(id_number) if id_number else None
        return self.store.count_applications(self.code, status=status, id_hash=id_hash)

    def show(self, tracking_text: str) -> dict[str, Any]:
        row = self._application(tracking_text)
        view = public_view(row)
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
            personal = self.store.personal_for(row["tracking"])
            if personal:
                view["personal"] = personal[0]
        return view


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


def public_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """An application as ``list --json`` and ``show --json`` report it (stable keys)."""
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
        "due_missing_year": row["due_missing_year"],
        "filed_at": row["filed_at"],
        "accepted_on": row["accepted_on"],
        "completed_at": row["completed_at"],
        "owed": row["owed"],
        "missing": row["missing"],
        "materials": row["materials"],
        "delivery": row["delivery"],
        "evaluation": row["evaluation"],
        "applicant": {
            "name": row["name_masked"],
            "id_number": row["id_masked"],
            "phone": row["phone_masked"],
        },
    }


def _default_actor() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name on some Windows service accounts
        return "agent"


__all__ = ["REVIEW_ACTIONS", "Filed", "Filing", "Node", "join", "public_view"]
