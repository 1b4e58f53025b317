"""The people who work at a node — village agents, town and district staff —
each with a name and a PIN kept only as an Argon2 hash. Several per node, so a
B agent can carry on an A agent's case (AB角); the logged-in name is the actor
recorded on every event.

A PIN is 6 to 12 digits (what a bank card taught everyone), not all one digit
and not a run like 123456. Five wrong PINs in a row lock the name for five
minutes; an unknown name costs the same time as a wrong PIN, so trying names
tells nothing."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import TYPE_CHECKING, Any

from daiban.errors import DaibanError, Problem, ValidationFailed
from daiban.i18n import _
from daiban.node import validation
from daiban.node.clock import stamp

if TYPE_CHECKING:
    from argon2 import PasswordHasher

    from daiban.node.applications import Node

MIN_PIN, MAX_PIN = 6, 12
MAX_FAILURES = 5
LOCK = dt.timedelta(minutes=5)
_hasher: PasswordHasher | None = None
_dummy: str | None = None


def hasher() -> PasswordHasher:
    """Argon2id with OWASP's minimum (19 MiB, 2 passes): about 50 ms on an old
    PC, and memory a 2 GB village PC can spare at a login."""
    global _hasher
    if _hasher is None:
        from argon2 import PasswordHasher

        _hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
    return _hasher


def check_pin(pin: str) -> str:
    """A PIN's rules, as a pure check: the PIN, or ValidationFailed with why."""
    label = _("PIN")
    if not pin.isascii() or not pin.isdigit():
        raise ValidationFailed([Problem("pin", label, _("must be digits only"))])
    if not MIN_PIN <= len(pin) <= MAX_PIN:
        raise ValidationFailed(
            [Problem("pin", label, _("must have {low} to {high} digits").format(low=MIN_PIN, high=MAX_PIN))]
        )
    steps = {int(b) - int(a) for a, b in itertools.pairwise(pin)}
    if steps in ({0}, {1}, {-1}):
        raise ValidationFailed(
            [Problem("pin", label, _("is too easy to guess (one digit repeated, or a run like 123456)"))]
        )
    return pin


def check_name(name: str) -> str:
    return str(validation.person_name(validation.strip_controls(name or ""), label=_("agent name")).value)


def has_agents(node: Node) -> bool:
    return bool(node.store.agents())


def add(node: Node, name: str, pin: str, *, by: str | None = None) -> dict[str, Any]:
    """A new agent at this node. Refuses a name already in use."""
    name, pin = _checked(name, pin)
    pin_hash = hasher().hash(pin)
    with node.store.transaction():
        existing = node.store.agent(name)
        if existing is not None and existing["removed_at"] is None:
            raise DaibanError(
                _("There is already an agent called {name} here; choose another name.").format(name=name),
                code="duplicate",
            )
        node.store.add_agent(name, pin_hash, stamp(node.clock()), by or node.actor)
    return summary(node.store.agent(name) or {})


def _checked(name: str, pin: str) -> tuple[str, str]:
    problems = []
    try:
        name = check_name(name)
    except ValidationFailed as exc:
        problems.extend(exc.problems)
    try:
        pin = check_pin(pin)
    except ValidationFailed as exc:
        problems.extend(exc.problems)
    if problems:
        raise ValidationFailed(problems)
    return name, pin


def set_pin(node: Node, name: str, pin: str) -> None:
    """A new PIN for an agent (forgotten, or locked out); clears the lock."""
    name, pin = _checked(name, pin)
    pin_hash = hasher().hash(pin)
    with node.store.transaction():
        _existing(node, name)
        node.store.update_agent(name, pin_hash=pin_hash, failures=0, locked_until=None)


def remove(node: Node, name: str) -> None:
    """The agent can no longer log in; events keep naming them."""
    with node.store.transaction():
        _existing(node, name)
        node.store.update_agent(name, removed_at=stamp(node.clock()))


def _existing(node: Node, name: str) -> dict[str, Any]:
    row = node.store.agent(" ".join(name.split()))
    if row is None or row["removed_at"] is not None:
        raise DaibanError(
            _("No agent called {name} at this node; `daiban agent list` shows who is.").format(name=name),
            code="not_found",
        )
    return row


def listing(node: Node) -> list[dict[str, Any]]:
    return [summary(r) for r in node.store.agents()]


def summary(row: dict[str, Any]) -> dict[str, Any]:
    """An agent as listed: never the hash."""
    return {
        "name": row.get("name"),
        "created_at": row.get("created_at"),
        "created_by": row.get("created_by"),
        "last_login_at": row.get("last_login_at"),
        "locked_until": row.get("locked_until"),
    }


def login(node: Node, name: str, pin: str) -> str:
    """Check a name and PIN; the agent's name, or DaibanError saying why not."""
    from argon2.exceptions import InvalidHashError, VerificationError

    name = " ".join(validation.strip_controls(name or "").split())
    now = node.clock()
    row = node.store.agent(name) if name else None
    wrong = DaibanError(_("Wrong name or PIN; try again."), code="login_failed")
    if row is None or row["removed_at"] is not None:
        _burn(pin)
        raise wrong
    if row["locked_until"] and dt.datetime.fromisoformat(row["locked_until"]) > now:
        raise DaibanError(
            _(
                "Too many wrong PINs for {name}: locked until {time}. Another agent can set a "
                "new PIN with `daiban agent pin {name}`."
            ).format(name=name, time=row["locked_until"][11:16]),
            code="locked",
        )
    try:
        hasher().verify(row["pin_hash"], pin)
    except (VerificationError, InvalidHashError):
        failures = int(row["failures"]) + 1
        with node.store.transaction():
            if failures >= MAX_FAILURES:
                node.store.update_agent(name, failures=0, locked_until=stamp(now + LOCK))
            else:
                node.store.update_agent(name, failures=failures)
        raise wrong from None
    with node.store.transaction():
        values: dict[str, Any] = {"failures": 0, "locked_until": None, "last_login_at": stamp(now)}
        if hasher().check_needs_rehash(row["pin_hash"]):
            values["pin_hash"] = hasher().hash(pin)
        node.store.update_agent(name, **values)
    return str(row["name"])


def _burn(pin: str) -> None:
    """Spend the time a real check takes, so an unknown name is not told apart."""
    from argon2.exceptions import VerificationError

    global _dummy
    if _dummy is None:
        _dummy = hasher().hash("0" * MIN_PIN + "x")
    try:
        hasher().verify(_dummy, pin)
    except VerificationError:
        pass
