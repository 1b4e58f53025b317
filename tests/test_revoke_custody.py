"""A town revoked without losing its villages' work, on a real network of
``daiban serve`` processes (tests/sync_net.py): two villages under the town,
filings queued at the villages, filings in the town's custody (pushed, not
forwarded), decisions the town had pulled for its villages. The district
revokes the town; the town learns it from its next sync, its villages from
theirs (with the signed revocation, which they check themselves); the
town's bundle carries out what others signed; the villages enroll at the
district with fresh codes. At the end every application is at its office
exactly once, every status at its village, nothing waits in any queue,
nothing is quarantined, and every database passes ``PRAGMA integrity_check``.

Beside it, the attacks: a certificate the revoked town mints afterwards,
backdated to before the revocation, counts nowhere; the revoked town's
pushes are refused (403) and what it forges in a bundle is quarantined; a
parent that claims to be revoked without a revocation that verifies makes
its child do nothing."""

from __future__ import annotations

import contextlib
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from stdnum.cn import ric

from daiban.node import journal
from daiban.node.home import open_node
from daiban.node.routing import Hop, next_hop
from daiban.sync import revoked
from daiban.trust import certs as certs_mod
from daiban.trust import envelope
from daiban.trust.crypto import NodeKeys, b64, canonical, random_id
from tests.attacker import Attacker
from tests.sync_net import NODES, Network, network_at

C, D, T, V, V2 = "city", "district", "town", "village", "village2"
LIVE = (C, D, V, V2)  # the nodes still in the tree at the end
OFFICE = {"SB001": D, "GJ001": C}
FIELDS = {
    "SB001": {"contribution_grade": "500"},
    "GJ001": {"retire_date": "2020-01-01", "bank_name": "工商银行", "bank_account": "6222021234567890"},
}
BACKDATED = "2020-01-01T08:00:00+08:00"


@dataclass(frozen=True)
class Filing:
    village: str
    item: str
    tracking: str

    @property
    def office(self) -> str:
        return OFFICE[self.item]


def id_number(n: int) -> str:
    body = f"370303197105{10 + n:02d}{200 + n:03d}"
    return body + ric.calc_check_digit(body + "0")


def file(net: Network, village: str, item: str, n: int) -> Filing:
    name = "撤销" + "一二三四五六七八九十"[n - 1]  # names hold no digits
    args = ["apply", "--item", item, "--name", name, "--id-number", id_number(n)]
    args += ["--phone", f"139054{n:05d}", "--json"]
    for key, value in FIELDS[item].items():
        args += ["--field", f"{key}={value}"]
    filed = net.run(village, *args).ok().json()
    assert filed["office"] == NODES[OFFICE[item]].code
    return Filing(village, item, str(filed["tracking"]))


def status(net: Network, node: str, tracking: str) -> str:
    return str(net.run(node, "show", tracking, "--json").ok().json()["status"])


def one_line(result: Any) -> str:
    """The single line a refused command prints (exit 1, no traceback)."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return str(lines[0])


def queued(net: Network, node: str) -> int:
    return net.count(node, "outbox")


def _chain() -> tuple[list[certs_mod.Cert], str]:
    """City, district, town, village certificates, each issued by the one above."""
    out: list[certs_mod.Cert] = []
    issuer: NodeKeys | None = None
    for name in (C, D, T, V):
        keys = NodeKeys.generate()
        spec = NODES[name]
        cert = certs_mod.issue(
            issuer_code=out[-1].code if out else spec.code,
            issuer_sign=(issuer or keys).sign,
            code=spec.code,
            name=spec.name,
            sign=keys.sign_public,
            enc=keys.enc_public,
            serial=random_id(),
            issued_at=BACKDATED,
        )
        out.append(cert)
        issuer = keys
    return out, out[0].fingerprint


def test_a_chain_through_a_revoked_certificate_counts_only_for_what_was_kept() -> None:
    chain, root = _chain()
    city, district, town, village = chain
    assert certs_mod.verify_chain(chain, root).code == village.code
    with pytest.raises(certs_mod.CertError, match="revoked"):
        certs_mod.verify_chain(chain, root, {town.serial})
    # Kept by the revoker: the village the town enrolled before still verifies ...
    assert certs_mod.verify_chain(chain, root, {town.serial}, {village.serial}) == village
    # ... but not the town itself, nor a village revoked in its own right.
    with pytest.raises(certs_mod.CertError, match="revoked"):
        certs_mod.verify_chain(chain[:3], root, {town.serial}, {village.serial})
    with pytest.raises(certs_mod.CertError, match="revoked"):
        certs_mod.verify_chain(chain, root, {town.serial, village.serial}, {village.serial})
    # A district revoked, its town kept: the town's villages need no listing.
    assert certs_mod.verify_chain(chain, root, {district.serial}, {town.serial}) == village
    assert city.code == NODES[C].code


def test_what_comes_for_a_revoked_childs_branch_is_held() -> None:
    district, town, village = NODES[D].code, NODES[T].code, NODES[V].code
    assert next_hop(district, village, [], revoked=[town]) == Hop("hold")
    assert next_hop(district, village, [], from_parent=True, revoked=[town]) == Hop("hold")
    # Once the village enrolled at the district, it goes to it.
    assert next_hop(district, village, [village], revoked=[town]) == Hop("down", village)
    assert next_hop(district, NODES[C].code, [], revoked=[town]) == Hop("up")


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Network]:
    """City, district, town; both villages under the town."""
    with network_at(tmp_path / "net") as network:
        network.build((C, D, T, V))
        network.init(V2)
        network.enroll(V2, T)
        yield network


def test_a_revoked_town_loses_none_of_its_villages_work(net: Network, tmp_path: Path) -> None:
    district, town = NODES[D].code, NODES[T].code
    village = NODES[V].code

    # -- work under way through the town --------------------------------------------------
    a1, a2, b1 = file(net, V, "SB001", 1), file(net, V, "GJ001", 2), file(net, V2, "SB001", 3)
    net.sync_all(V, V2, T, D, C, D, T, V, V2)  # all at their offices; the district has seen both villages
    net.run(D, "review", a1.tracking, "accept").ok()
    net.run(C, "review", a2.tracking, "accept").ok()
    net.sync_all(D, T)  # the decisions wait at the town, for the village
    assert net.query(T, "SELECT COUNT(*) FROM outbox WHERE hop = ?", (village,))[0][0] == 2
    # Filings in the town's custody, not forwarded: the village's on a stick
    # (it keeps them until the town's answer comes back), village2's pushed.
    a3, a4, b2 = file(net, V, "SB001", 4), file(net, V, "GJ001", 5), file(net, V2, "GJ001", 6)
    stick = tmp_path / "village-up.bundle"
    net.run(V, "bundle", "export", str(stick)).ok()
    net.run(T, "bundle", "import", str(stick)).ok()
    net.sync(V2)
    assert net.query(T, "SELECT COUNT(*) FROM outbox WHERE hop = '^'")[0][0] == 3
    a5, b3 = file(net, V, "SB001", 7), file(net, V2, "SB001", 8)  # queued at the villages
    apps = [a1, a2, a3, a4, a5, b1, b2, b3]

    # -- the district revokes the town -----------------------------------------------------
    net.run(D, "revoke", town).ok()
    assert net.query(D, "SELECT COUNT(*) FROM outbox WHERE hop = ?", (town,))[0][0] == 0
    listed = {c["code"]: c for c in net.run(D, "children", "--json").ok().json()}
    assert listed[town]["revoked"] is True and listed[town]["stale"] is False
    assert f"{town} is revoked" in net.run(D, "children").ok().stdout
    kept = {r[0] for r in net.query(D, "SELECT serial FROM kept_certs")}
    for name in (V, V2):
        serial = json.loads(net.query(D, "SELECT chain FROM certs WHERE code = ?", (NODES[name].code,))[0][0])
        assert serial[-1]["serial"] in kept, name
    # The town learns it at its next sync, from the signed revocation that comes with the 403.
    line = one_line(net.run(T, "sync"))
    assert "revoked" in line
    assert net.run(T, "status", "--json").ok().json()["revoked"] is True
    # Its villages learn it at theirs: one line, where to enroll; the queue stays.
    before = queued(net, V)
    line = one_line(net.run(V, "sync"))
    assert town in line and district in line and "revoked" in line
    assert queued(net, V) == before == 3  # a3 and a4 (on the stick), a5
    info = net.run(V, "status", "--json").ok().json()
    assert info["parent"]["revoked"] is True and info["parent"]["revoked_by"] == district
    assert info["parent"]["refusal"] == "parent_revoked" and info["queued_up"] == 3
    assert f"revoked (by {district})" in net.run(V, "status").ok().stdout
    # Once it knows, it does not ask the revoked town again: the same line.
    assert one_line(net.run(V, "sync")) == line
    assert one_line(net.run(V2, "sync")).startswith(f"error: The parent {town} is revoked (by {district})")

    # -- what the town held is carried out; the villages enroll at the district ----------
    stick = tmp_path / "town-out.bundle"
    made = net.run(T, "bundle", "export", str(stick), "--json").ok().json()
    assert made["to"] == district and made["envelopes"] >= 5  # 3 filings up, decisions held
    taken = net.run(D, "bundle", "import", str(stick), "--json").ok().json()
    assert taken["from"] == town and taken["refused"] == 0 and taken["stored"] >= 2  # a3, b2 (a4 up)
    again = net.run(D, "bundle", "import", str(stick), "--json").ok().json()
    assert again["stored"] == 0 and again["refused"] == 0
    # What was for the villages is held at the district until they enroll here.
    assert net.query(D, "SELECT COUNT(*) FROM outbox WHERE hop = '?'")[0][0] >= 2
    net.enroll(V, D)
    net.enroll(V2, D)
    assert net.query(D, "SELECT COUNT(*) FROM outbox WHERE hop = '?'")[0][0] == 0
    for _round in range(2):
        net.sync_all(V, V2, D, C, D, V, V2)
    for app in apps:
        reviewer = app.office
        assert status(net, reviewer, app.tracking) in ("received", "accepted"), app
        if status(net, reviewer, app.tracking) == "received":
            net.run(reviewer, "review", app.tracking, "accept").ok()
    net.run(D, "review", a1.tracking, "complete").ok()
    for _round in range(2):
        net.sync_all(V, V2, D, C, D, V, V2)

    # -- the end state ---------------------------------------------------------------------
    for app in apps:
        filed = net.query(
            app.office, "SELECT COUNT(*) FROM events WHERE tracking = ? AND kind = 'filed'", (app.tracking,)
        )[0][0]
        assert filed == 1, app
        holders = [
            name
            for name in (C, D)
            if net.query(name, "SELECT 1 FROM applications WHERE tracking = ? AND office = ?",
                         (app.tracking, NODES[name].code))
        ]  # fmt: skip
        assert holders == [app.office], app
        assert status(net, app.village, app.tracking) == status(net, app.office, app.tracking), app
        events = net.query(app.village, "SELECT kind, COUNT(*) FROM events WHERE tracking = ? GROUP BY kind",
                           (app.tracking,))  # fmt: skip
        assert all(n == 1 for _kind, n in events), (app, [tuple(e) for e in events])
    assert status(net, V, a1.tracking) == "completed"
    assert {status(net, a.village, a.tracking) for a in apps if a != a1} == {"accepted"}
    for name in LIVE:
        for table in ("outbox", "quarantine", "set_aside", "conflicts"):
            assert net.count(name, table) == 0, (name, table, net.query(name, f"SELECT * FROM {table}"))
        assert net.run(name, "status", "--json").ok().json()["revoked"] is False, name
    for name in (*LIVE, T):
        assert net.query(name, "PRAGMA integrity_check")[0][0] == "ok", name
    info = net.run(V, "status", "--json").ok().json()
    assert info["parent"]["code"] == district and info["parent"]["refusal"] is None


# -- the attacks ---------------------------------------------------------------------------


def _bundle_from_town(net: Network, path: Path, up: list[str], certs: list[Any]) -> None:
    """A bundle the revoked town makes of what it likes, signed with its own key."""
    keys = NodeKeys.load(net.home(T))
    chain = json.loads(net.query(T, "SELECT chain FROM certs WHERE code = ?", (NODES[T].code,))[0][0])
    payload: dict[str, Any] = {
        "v": 1,
        "type": "daiban-bundle",
        "from": NODES[T].code,
        "made_at": "2026-12-01T09:00:00+08:00",
        "chain": chain,
        "to": NODES[D].code,
        "up": {"envelopes": up, "certs": certs},
        "held": {"envelopes": [], "certs": []},
        "cursor_ack": 0,
    }
    payload["sig"] = b64(keys.signature(canonical(payload)))
    path.write_bytes(zlib.compress(canonical(payload), 6))


def test_a_revoked_town_can_mint_nothing_push_nothing_forge_nothing(net: Network, tmp_path: Path) -> None:
    town, district, village = NODES[T].code, NODES[D].code, NODES[V].code
    a1 = file(net, V, "SB001", 1)
    net.sync_all(V, T, D)
    net.run(D, "revoke", town).ok()
    one_line(net.run(T, "sync"))  # the town now holds its own revocation
    town_keys = NodeKeys.load(net.home(T))
    town_chain = json.loads(net.query(T, "SELECT chain FROM certs WHERE code = ?", (town,))[0][0])

    def minted(code: str, keys: NodeKeys) -> list[Any]:
        """A certificate the revoked key issues now, dated years before the revocation."""
        cert = certs_mod.issue(
            issuer_code=town,
            issuer_sign=town_keys.sign,
            code=code,
            name="伪造村",
            sign=keys.sign_public,
            enc=keys.enc_public,
            serial=random_id(),
            issued_at=BACKDATED,
        )
        return [*town_chain, cert.as_dict()]

    def signed(keys: NodeKeys, origin: str, seq: int) -> str:
        return envelope.make(
            keys,
            id=random_id(),
            origin=origin,
            seq=seq,
            kind="withdrawn",
            to=district,
            tracking=a1.tracking,
            actor="攻击者",
            at=BACKDATED,
            body={"note": ""},
        ).raw

    # A new village the town "enrolled" before the revocation, and a new key for a real one.
    ghost_keys, stolen_keys = NodeKeys.generate(), NodeKeys.generate()
    ghost = town + "209"
    ghost_chain, stolen_chain = minted(ghost, ghost_keys), minted(village, stolen_keys)
    # Nowhere does the minted chain verify against what the district keeps.
    with contextlib.closing(open_node(net.home(D), actor="test")) as node:
        assert journal.verify_chains(node, [ghost_chain, stolen_chain]) == {}
    attacker = Attacker(net, T)
    forged_ghost = signed(ghost_keys, ghost, 1)
    forged_village = signed(stolen_keys, village, 99)
    forged_own = signed(town_keys, town, attacker.next_seq())
    before_list = net.run(D, "show", a1.tracking, "--json").ok().json()
    before_events = net.count(D, "events")

    # Pushed: refused for good, before anything is read (403, with the revocation).
    pushed = attacker.push([forged_ghost, forged_village, forged_own], [ghost_chain, stolen_chain])
    assert pushed.status == 403 and pushed.answer["code"] == "revoked"
    assert isinstance(pushed.answer.get("revocation"), str)
    assert net.count(D, "quarantine") == 0

    # In a bundle: each refused on its own, quarantined; nothing else changes.
    stick = tmp_path / "forged.bundle"
    _bundle_from_town(net, stick, [forged_ghost, forged_village, forged_own], [ghost_chain, stolen_chain])
    taken = net.run(D, "bundle", "import", str(stick), "--json").ok().json()
    assert (taken["stored"], taken["duplicates"], taken["refused"]) == (0, 0, 3)
    codes = {r["origin"]: r["code"] for r in net.run(D, "quarantine", "list", "--json").ok().json()}
    assert codes == {ghost: "unknown_origin", village: "bad_signature", town: "revoked"}
    assert net.run(D, "show", a1.tracking, "--json").ok().json() == before_list
    assert net.count(D, "events") == before_events
    assert net.query(D, "SELECT COUNT(*) FROM certs WHERE code = ?", (ghost,))[0][0] == 0

    # A revoked town's bundle is no bundle at the city, nor from another sender name.
    refused = net.run(C, "bundle", "import", str(stick))
    assert "Traceback" not in refused.stderr and refused.returncode == 1


def test_a_child_believes_only_a_revocation_that_verifies(net: Network) -> None:
    """A parent that says ``parent_revoked`` with no revocation, with
    something that is not one, or with one it signed itself makes the child
    do nothing but fail that sync."""
    town = NODES[T].code
    with contextlib.closing(open_node(net.home(V), actor="test")) as node:
        chain = node.store.cert_chain(node.code) or []
        town_cert = chain[-2]
        town_keys = NodeKeys.load(net.home(T))
        own = envelope.make(
            town_keys,
            id=random_id(),
            origin=town,
            seq=999,
            kind="revocation",
            to="*",
            tracking=None,
            actor="攻击者",
            at=BACKDATED,
            body={"code": town, "serial": town_cert["serial"], "chain": chain[:-1]},
        ).raw
        before = sorted(node.store.revoked())
        for data in (
            {"code": "parent_revoked"},
            {"code": "parent_revoked", "revocation": "not an envelope"},
            {"code": "parent_revoked", "revocation": own, "certs": [chain[:-1]]},  # by itself
        ):
            failed = revoked.refusal(node, town, "parent_revoked", data)
            assert failed.code == "bad_answer", data
            assert sorted(node.store.revoked()) == before
    assert net.count(V, "quarantine") == 0
    assert net.run(V, "status", "--json").ok().json()["parent"]["revoked"] is False
    net.sync(V)  # the parent is not revoked: the village goes on as before
