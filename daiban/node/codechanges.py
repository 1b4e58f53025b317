"""A division code that changes: towns merge, a 镇 becomes a 街道 with a new
code. The rules, as pure functions (plain values in, plain values out).

The city publishes each change in its signed manifest (member
``divisions``, every change so far): the old office code, the new one, the
new name, the legal effective day, and ``at``, the moment the city signed
it. From then on:

- **Where a code sits** (:func:`resolve`): the longest old code that is a
  prefix of a code gives way to its new code. Villages keep their own codes:
  370303001201 under a town 370303001 that became 370303100 sits at
  370303100201, below the new town, whose node enrolls it (the trust layer's
  name constraint asks the same question) and handles its residents' items.
  A resident's division code is never rewritten: the office for it is the
  resolved prefix at the item's level (:func:`office_for`), so the new
  office handles applicants under both the old prefix and the new one.
- **Who decides** (:func:`may_decide`): the office of an application is its
  resolved office. The old office's decisions signed before ``at`` stand
  (they were its to make); from ``at`` on only the new office decides.
- **Routing** (routing.next_hop): an envelope for the old office, or for a
  village below it, goes where the resolved code leads; a node whose own code
  was changed away keeps nothing for that code and hands it up.

A change is refused at publish (:func:`check_change`, one sentence each)
unless both codes are offices of the same level under the same parent, the
old one is known and not changed already, and the new one is not in use by
another node nor a code changed away (which would make a cycle). Several
old codes may change to one new code (towns merge)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from daiban.errors import DaibanError
from daiban.i18n import _
from daiban.node.divisions import LEVEL_LENGTHS, check_code, role_name
from daiban.trust import codes as trust_codes
from daiban.trust.codes import role_of

SETTING = "division_changes"
"""The node setting that holds the changes in force here (JSON, as the manifest carries them)."""
CHANGEABLE = ("district", "town")
"""The levels whose code may change: an office below the city. (A village is
a leaf: a new village code is a new node, enrolled afresh.)"""


@dataclass(frozen=True)
class Change:
    """One change of a division code, as the city's manifest carries it."""

    old: str
    new: str
    name: str
    effective: str
    """The legal effective day (ISO date), for the record and the operator."""
    at: str
    """When the city signed the change (ISO date-time): from then on only the
    new office decides, and the old office's decisions signed later are refused."""

    def as_dict(self) -> dict[str, str]:
        return {
            "old": self.old,
            "new": self.new,
            "name": self.name,
            "effective": self.effective,
            "at": self.at,
        }


def from_body(items: Any) -> tuple[Change, ...]:
    """The changes of a manifest body's ``divisions`` member (checked by its
    schema first); anything not of that shape is left out."""
    if not isinstance(items, list):
        return ()
    out: list[Change] = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        values = [item.get(k) for k in ("old", "new", "name", "effective", "at")]
        if all(isinstance(v, str) for v in values):
            out.append(Change(*[str(v) for v in values]))
    return tuple(out)


def renamed(changes: Iterable[Change]) -> dict[str, str]:
    """old -> new, the form the trust layer's name constraint takes."""
    return {c.old: c.new for c in changes}


def resolve(code: str, changes: Sequence[Change]) -> str:
    """Where ``code`` sits now (see the module docstring)."""
    return trust_codes.resolve(code, renamed(changes)) if changes else code


def changed_away(code: str, changes: Sequence[Change]) -> bool:
    """Whether ``code`` is an office code the city has changed (its node is
    the old office, no longer an office)."""
    return any(c.old == code for c in changes)


def addressed_here(to: str, code: str, changes: Sequence[Change]) -> bool:
    """Whether an envelope addressed to ``to`` is for the node ``code``: its
    own code (unless changed away), or an old code of it."""
    if not changes:
        return to == code
    return not changed_away(code, changes) and (to == code or resolve(to, changes) == code)


def succeeds(code: str, origin: str, changes: Sequence[Change]) -> bool:
    """Whether the node ``code`` is the successor of the office ``origin``
    (an old code of it): the old office's events are its history."""
    return origin != code and changed_away(origin, changes) and resolve(origin, changes) == code


def same_office(a: str, b: str, changes: Sequence[Change]) -> bool:
    """Whether two office codes name one office now (the old code and the new)."""
    return a == b or resolve(a, changes) == resolve(b, changes)


def office_for(region: str, level: str, changes: Sequence[Change]) -> str | None:
    """The office that handles an item of ``level`` for a resident of
    ``region`` now: the region's prefix at the level, resolved."""
    length = LEVEL_LENGTHS[level]
    if len(region) < length:
        return None
    return resolve(region[:length], changes)


def within(code: str, ancestor: str, changes: Sequence[Change]) -> bool:
    """``code`` is ``ancestor`` or lies below it, by its digits or where the
    changes put it."""
    return code.startswith(ancestor) or resolve(code, changes).startswith(ancestor)


def _moment(text: str) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else None


def in_force_at(changes: Sequence[Change], at: str | None) -> tuple[Change, ...]:
    """The changes signed by ``at`` (all of them when ``at`` is unknown or
    does not parse: the stricter answer)."""
    moment = _moment(at) if isinstance(at, str) else None
    if moment is None:
        return tuple(changes)
    return tuple(c for c in changes if (_moment(c.at) or moment) <= moment)


def may_decide(origin: str, office: str, at: str | None, changes: Sequence[Change]) -> bool:
    """Whether ``origin`` may record an office's event dated ``at`` on an
    application of ``office``: it is that office now, or an earlier code of
    it, and its own code had not changed away when it signed."""
    if not changes:
        return origin == office
    if resolve(origin, changes) != resolve(office, changes):
        return False
    return not changed_away(origin, in_force_at(changes, at))


def route_target(dest: str, changes: Sequence[Change]) -> tuple[str, int]:
    """Where ``dest`` sits now and how many of its leading digits the changes
    rewrote (0: none). Routing takes an office branch on those digits only:
    below the new office, a village's own code finds it."""
    if not changes:
        return dest, 0
    resolved = resolve(dest, changes)
    if resolved == dest:
        return dest, 0
    # The digits that came from a new code: the longest new code the
    # resolved code starts with, among the changes.
    rewritten = max((len(c.new) for c in changes if resolved.startswith(c.new)), default=0)
    return resolved, rewritten


def check_change(
    changes: Sequence[Change], old: str, new: str, name: str, in_use: Iterable[str]
) -> tuple[str, str, str]:
    """Check a change the city is about to publish against the changes so
    far and ``in_use`` (every node code the city holds a certificate for);
    returns (old, new, name) normalised, or raises DaibanError with one
    sentence."""
    old, new = check_code(old), check_code(new)
    name = " ".join(name.split())
    if not name:
        raise DaibanError(_("Give the new name with --name."), code="bad_change")
    role = role_of(old)
    if role not in CHANGEABLE:
        raise DaibanError(
            _("Only a district's or a town's code can change; {code} is a {role} code.").format(
                code=old, role=role_name(str(role))
            ),
            code="bad_change",
        )
    if len(new) != len(old):
        raise DaibanError(
            _("{old} and {new} are not codes of the same level.").format(old=old, new=new),
            code="bad_change",
        )
    if old == new:
        raise DaibanError(
            _("The old and the new code are the same ({code}).").format(code=old), code="bad_change"
        )
    parent = len(old) - (3 if role == "town" else 2)
    if resolve(old[:parent], changes) != resolve(new[:parent], changes):
        raise DaibanError(
            _("{new} is not under the same parent as {old}; a code change keeps the parent.").format(
                old=old, new=new
            ),
            code="bad_change",
        )
    targets = {c.new for c in changes}
    used = set(in_use)
    done = next((c for c in changes if c.old == old), None)
    if done is not None:
        raise DaibanError(
            _("{old} was changed to {new} already.").format(old=old, new=done.new), code="bad_change"
        )
    if old not in used and old not in targets:
        raise DaibanError(
            _("{old} is not an office this city knows; check the code with `daiban children`.").format(
                old=old
            ),
            code="unknown_code",
        )
    if changed_away(new, changes) or resolve(new, changes) != new:
        raise DaibanError(
            _(
                "{new} was itself changed away (or lies under a code that was); "
                "changing {old} to it would make a cycle."
            ).format(new=new, old=old),
            code="change_cycle",
        )
    if new not in targets and any(code == new or code.startswith(new) for code in used):
        raise DaibanError(
            _("{new} is in use by an enrolled node; choose a code not in use.").format(new=new),
            code="code_in_use",
        )
    return old, new, name
