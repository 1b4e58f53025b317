"""An enrolled node turned attacker, for the adversarial tests on a real
network (tests/sync_net.py): it reads its own keys from its home, as the
node's own software would, signs envelopes of its own making with its own
certified key, and pushes them to its real parent's ``/v1/push`` in a
request signed the way the sync client signs one. Nothing is stolen and
nothing is forged but the envelopes' content: that is the threat the
journal's authorisation and validation stand against.

Also here: residents with valid ID numbers, filing and syncing through the
real CLI, and snapshots of what every node shows, to prove an attack changed
nothing."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daiban.sync import protocol
from daiban.trust import envelope
from daiban.trust.crypto import NodeKeys, b64, canonical, random_id
from tests.sync_net import NODES, Network, Resident

C, D, T, V, V2 = "city", "district", "town", "village", "village2"
ALL = (C, D, T, V, V2)
AT = "2026-11-27T10:00:00+08:00"


# -- residents and the genuine side, through the real CLI -------------------------------


def file_app(
    net: Network,
    node: str | Any,
    item: str,
    resident: Resident,
    *,
    office: str,
    fields: Mapping[str, str] | None = None,
) -> str:
    """File an application through ``daiban apply``; its tracking number.
    ``office``: the code the catalog must route it to (a check on the test)."""
    args = ["apply", "--item", item, "--name", resident.name, "--id-number", resident.id_number]
    args += ["--phone", resident.phone, "--json"]
    for key, value in (fields or {}).items():
        args += ["--field", f"{key}={value}"]
    filed = net.run(node, *args).ok().json()
    assert filed["office"] == office, filed
    number: str = filed["tracking"]
    return number


def settle(net: Network) -> None:
    """Sync every node until what is in flight has arrived: up the tree
    (villages, town, district to the city), then back down."""
    for result in net.run_many((V, "sync", "--json"), (V2, "sync", "--json")):
        result.ok()
    net.sync_all(T, D, T, V, V2)


def show(net: Network, node: str, tracking: str) -> dict[str, Any]:
    view: dict[str, Any] = net.run(node, "show", tracking, "--json").ok().json()
    return view


def snapshot(net: Network, trackings: Iterable[str] = ()) -> dict[str, Any]:
    """What every node shows: its list, the detail of each given application
    at each node that lists it, and the revocations it knows."""
    names = list(ALL)
    lists = {
        name: r.ok().json()
        for name, r in zip(names, net.run_many(*((n, "list", "--json") for n in names)), strict=True)
    }
    numbers = set(trackings)
    held = [(name, row["tracking"]) for name in names for row in lists[name] if row["tracking"] in numbers]
    views = net.run_many(*((name, "show", number, "--json") for name, number in held)) if held else []
    shows = {pair: view.ok().json() for pair, view in zip(held, views, strict=True)}
    revoked = {
        name: sorted(tuple(r) for r in net.query(name, "SELECT serial, code FROM revocations"))
        for name in names
    }
    return {"lists": lists, "shows": shows, "revoked": revoked}


def assert_unchanged(before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
    """Node by node, so a failure names the node the attack reached."""
    for part in ("lists", "shows", "revoked"):
        for key in before[part]:
            assert after[part][key] == before[part][key], f"{part} at {key} changed by the attack"


# -- the attacker's side ----------------------------------------------------------------


@dataclass
class Pushed:
    """A push and the parent's answer."""

    status: int
    answer: Any

    def verdicts(self) -> list[dict[str, Any]]:
        """Every per-envelope verdict in the answer, however it is filed:
        stored and duplicates under "results", refusals under "results" or
        under "refused" (a whole-batch refusal)."""
        assert isinstance(self.answer, dict), self.answer
        out: list[dict[str, Any]] = []
        for key in ("results", "refused"):
            value = self.answer.get(key) or []
            assert isinstance(value, list), self.answer
            out.extend(value)
        return out

    def verdict(self, envelope_id: str) -> dict[str, Any]:
        found = [v for v in self.verdicts() if v.get("id") == envelope_id]
        assert len(found) == 1, f"no single verdict for {envelope_id} in {self.status}: {self.answer}"
        return found[0]

    def assert_refused(self, envelope_id: str, codes: Iterable[str]) -> dict[str, Any]:
        assert self.status < 500, f"the parent failed on the push: {self.status} {self.answer}"
        verdict = self.verdict(envelope_id)
        assert verdict.get("status") == "refused", f"not refused: {verdict} ({self.status} {self.answer})"
        wanted = set(codes)
        assert verdict.get("code") in wanted, f"refused as {verdict.get('code')!r}, want one of {wanted}"
        assert isinstance(verdict.get("reason"), str) and verdict["reason"], verdict
        return verdict


# The last sequence number an Attacker used, by (network, node).
_LAST_SEQ: dict[tuple[Path, str], int] = {}


class Attacker:
    """A node of the network (by key in NODES) that signs what it likes with
    its own keys and pushes it to its own parent."""

    def __init__(self, net: Network, name: str) -> None:
        self.net = net
        self.name = name
        self.code = NODES[name].code
        parent = NODES[name].parent
        assert parent is not None, f"{name} has no parent to push to"
        self.parent = parent
        self.keys = NodeKeys.load(net.home(name))  # as the node itself reads them
        self._seq = self._first_seq()

    def _first_seq(self) -> int:
        """Its own next sequence number, as its database would hand it out —
        or past the last one an Attacker of this node used in this network:
        an envelope that got through (on a build without the checks) holds
        its slot, and the next attack must not fail as a mere conflict."""
        rows = self.net.query(
            self.name,
            "SELECT MAX(COALESCE((SELECT MAX(seq) FROM events WHERE origin = ?), 0), "
            "COALESCE((SELECT MAX(seq) FROM envelopes WHERE origin = ?), 0))",
            (self.code, self.code),
        )
        return max(int(rows[0][0]), _LAST_SEQ.get((self.net.root, self.code), 0)) + 1

    def next_seq(self) -> int:
        seq = self._seq
        self._seq += 1
        _LAST_SEQ[(self.net.root, self.code)] = seq
        return seq

    # -- what it can read in its own home -----------------------------------

    def cert_of(self, code: str) -> dict[str, Any]:
        """The certificate of a node whose chain this node holds (its parent,
        the offices it seals to), from its own database."""
        rows = self.net.query(self.name, "SELECT chain FROM certs WHERE code = ?", (code,))
        assert rows, f"{self.name} holds no certificate of {code}"
        leaf: dict[str, Any] = json.loads(rows[0][0])[-1]
        return leaf

    def enc_key_of(self, code: str) -> bytes:
        from daiban.trust.crypto import unb64

        return unb64(self.cert_of(code)["enc"])

    # -- envelopes ------------------------------------------------------------

    def envelope(
        self,
        kind: str,
        *,
        to: str,
        tracking: str | None,
        body: Mapping[str, Any],
        personal: Mapping[str, Any] | None = None,
        sealed_to: str | None = None,
        at: str = AT,
        actor: str = "攻击者",
    ) -> envelope.Envelope:
        """A well-formed envelope signed with this node's own key (its own
        origin, its own next sequence number), with an optional personal part
        sealed to ``sealed_to``'s encryption key as a filing's is."""
        env_id = random_id()
        sealed = None
        if personal is not None:
            assert sealed_to is not None
            sealed = envelope.seal_personal(
                self.keys,
                id=env_id,
                kind=kind,
                tracking=tracking,
                personal=personal,
                enc_public=self.enc_key_of(sealed_to),
            )
        return envelope.make(
            self.keys,
            id=env_id,
            origin=self.code,
            seq=self.next_seq(),
            kind=kind,
            to=to,
            tracking=tracking,
            actor=actor,
            at=at,
            body=body,
            sealed=sealed,
            sealed_to=sealed_to if sealed is not None else None,
        )

    def craft(self, fields: Mapping[str, Any], splice: Mapping[str, str] | None = None) -> str:
        """The canonical text of an envelope with any members at all (missing
        ones, extra ones, any values), signed over its canonical text without
        "sig" exactly as a genuine one is. ``splice`` replaces a placeholder
        string value by raw JSON text — for values the json module cannot
        write at the test's stack depth (deep nesting): the result is still
        the canonical form of what it parses to."""

        def render(value: Mapping[str, Any]) -> bytes:
            text = canonical(dict(value)).decode()
            for placeholder, raw in (splice or {}).items():
                quoted = json.dumps(placeholder)
                assert text.count(quoted) == 1, placeholder
                text = text.replace(quoted, raw)
            return text.encode()

        unsigned = {k: v for k, v in fields.items() if k != "sig"}
        sig = self.keys.signature(render(unsigned))
        return render({**unsigned, "sig": b64(sig)}).decode()

    def fields(
        self, kind: str, *, to: str, tracking: str | None, body: Any, at: str = AT, seq: int | None = None
    ) -> dict[str, Any]:
        """The members of an unsigned envelope of this node's, for craft()."""
        return {
            "v": envelope.VERSION,
            "id": random_id(),
            "origin": self.code,
            "seq": self.next_seq() if seq is None else seq,
            "kind": kind,
            "to": to,
            "tracking": tracking,
            "actor": "攻击者",
            "at": at,
            "body": body,
            "sealed": None,
            "sealed_to": None,
        }

    # -- the push ---------------------------------------------------------------

    def _counter(self) -> int:
        """One past the request counter both ends last used (the parent's is
        read from its database, read-only: the attacker may have raced its own
        node's sync)."""
        parent_code = NODES[self.parent].code
        mine = self.net.query(self.name, "SELECT counter FROM peers WHERE code = ?", (parent_code,))
        theirs = self.net.query(self.parent, "SELECT counter FROM peers WHERE code = ?", (self.code,))
        return max([0, *(int(r[0]) for r in mine), *(int(r[0]) for r in theirs)]) + 1

    def push(self, raws: Iterable[str], certs: Iterable[Any] = ()) -> Pushed:
        """POST a batch to the parent's /v1/push, signed over the body, the
        counter and the parent's code as the sync client signs it."""
        body = protocol.encode({"certs": list(certs), "envelopes": list(raws)})
        counter = self._counter()
        message = protocol.request_message(
            "POST", protocol.PUSH, body, counter, self.code, NODES[self.parent].code
        )
        headers = {
            protocol.H_NODE: self.code,
            protocol.H_COUNTER: str(counter),
            protocol.H_SIG: b64(self.keys.signature(message)),
            "Content-Type": protocol.CONTENT_TYPE,
        }
        request = urllib.request.Request(
            self.net.url(self.parent) + protocol.PUSH, data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        return Pushed(status, protocol.decode(raw))


# -- quarantine, through the real CLI ------------------------------------------------------


def quarantine(net: Network, node: str) -> list[dict[str, Any]]:
    result = net.run(node, "quarantine", "list", "--json")
    assert result.returncode == 0, (
        f"`daiban quarantine list --json` at {node}: {result.returncode} {result.stderr}"
    )
    rows: list[dict[str, Any]] = result.json()
    assert isinstance(rows, list), rows
    return rows


def assert_quarantined(
    net: Network, node: str, envelope_id: str, *, code: str | Iterable[str], origin: str, sender: str
) -> dict[str, Any]:
    """The envelope is in the node's quarantine, once, with its reason, origin
    and sender."""
    rows = [r for r in quarantine(net, node) if r.get("envelope_id") == envelope_id]
    assert len(rows) == 1, f"{envelope_id} in {node}'s quarantine: {rows}"
    row = rows[0]
    codes = {code} if isinstance(code, str) else set(code)
    assert row["code"] in codes, row
    assert row["origin"] == origin and row["sender"] == sender, row
    assert isinstance(row["reason"], str) and row["reason"], row
    assert isinstance(row["id"], int) and row["count"] >= 1, row
    return row
