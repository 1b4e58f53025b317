"""A town restored from a snapshot taken before it acknowledged, forwarded,
decided and pulled more work, on a real network of ``daiban serve``
processes (tests/sync_net.py): with its keys, with its keys brought back by
the recovery passphrase, and with its keys truly lost. Its village keeps the
filings it handed up until their office answered (node/custody.py), sees the
town's new incarnation at its next sync, sends again what the town may have
lost and hands back the town's own envelopes that only went down to it. At the
end every application is at its office exactly once, every status at the
village, nothing waits in any queue, nothing is quarantined, no sequence
number was issued twice, and every database passes ``PRAGMA
integrity_check``. Every process started here is stopped by its PID; every
wait is bounded."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import subprocess
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daiban.sync import answers, protocol
from daiban.trust.crypto import b64, canonical, random_id
from tests.attacker import Attacker
from tests.fault_net import set_parent_url
from tests.sync_net import CMD_TIMEOUT, DAIBAN, NODES, Network, Result, network_at
from tests.test_backup import apply, resident_id
from tests.test_rogue_parent import Rogue, zjson

C, D, T, V = "city", "district", "town", "village"
ALL = (C, D, T, V)
TOWN, VILLAGE = NODES[T].code, NODES[V].code
PASSPHRASE = "大张村 南定镇 红色 拖拉机 2026"
TOWN_ITEM, DISTRICT_ITEM = "YB001", "SB001"  # offices: the town, the district


def run_with_stdin(net: Network, name: str, stdin: str, *args: str) -> Result:
    proc = subprocess.run(
        [DAIBAN, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=net.env(net.home(name)),
        timeout=CMD_TIMEOUT,
    )
    return Result(tuple(args), proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    """Snapshots (no Litestream), as on a town's Windows PC."""
    with network_at(tmp_path / "net") as net:
        original = net.env
        net.env = lambda h: {**original(h), "DAIBAN_LITESTREAM": "none"}  # type: ignore[method-assign]
        yield net


def build(net: Network, *, passphrase: bool = False) -> None:
    """City, district, town (its recovery passphrase set at init when asked),
    village; the three parents serving."""
    net.init(C, D, V)
    spec = NODES[T]
    init = ["init", "--role", spec.role, "--code", spec.code, "--name", spec.name]
    if passphrase:
        made = run_with_stdin(net, T, PASSPHRASE + "\n", *init, "--passphrase-stdin").ok()
        assert "Recovery passphrase set" in made.stdout
    else:
        net.run(T, *init).ok()
    net.start(C, D, T)
    for name in (D, T, V):
        net.enroll(name)


def status_of(net: Network, name: str) -> dict[str, str]:
    return {r[0]: r[1] for r in net.query(name, "SELECT tracking, status FROM applications")}


def decide(net: Network, name: str, tracking: str) -> None:
    net.run(name, "review", tracking, "accept").ok()


@contextlib.contextmanager
def town_lost(net: Network, tmp_path: Path) -> Iterator[str]:
    """The town's server stopped and its database gone (the disk, or the PC);
    yields its URL, to serve again at once restored."""
    url = net.url(T)
    net.stop(T)
    yield url
    net.serve_again(T, url)


def own_numbers(net: Network, name: str, origin: str) -> dict[int, str]:
    """{seq: envelope id} of ``origin``'s envelopes held at a node."""
    rows = net.query(name, "SELECT seq, id FROM envelopes WHERE origin = ?", (origin,))
    return {int(r[0]): str(r[1]) for r in rows}


def settle(net: Network) -> None:
    """Sync everything everywhere a few rounds: the village, the town, the
    district (with the city)."""
    for _round in range(3):
        net.sync(V)
        net.sync(T)
        net.sync(D)
    net.sync(V)


def assert_whole(net: Network, offices: dict[str, str]) -> None:
    """Every application at its office exactly once and the same status at
    the village; nothing queued, kept, pending, quarantined or in conflict;
    no sequence number of any origin held with two ids; integrity ok."""
    village = status_of(net, V)
    assert set(village) == set(offices)
    for tracking, office in offices.items():
        held = net.query(
            office,
            "SELECT COUNT(*) FROM envelopes WHERE tracking = ? AND kind = 'filed'",
            (tracking,),
        )[0][0]
        assert held == 1, (tracking, office)
        at_office = net.query(office, "SELECT status FROM applications WHERE tracking = ?", (tracking,))
        assert len(at_office) == 1 and at_office[0][0] == village[tracking], (tracking, office)
    for name in ALL:
        assert net.count(name, "outbox") == 0, name
        assert net.count(name, "kept") == net.count(name, "kept_personal") == 0, name
        assert net.count(name, "quarantine") == 0, name
        assert net.count(name, "conflicts") == 0, name
        assert net.count(name, "set_aside") == 0, name
        waiting = net.query(name, "SELECT COUNT(*) FROM envelopes WHERE effect IN ('pending', 'queued')")
        assert waiting[0][0] == 0, name
        with contextlib.closing(sqlite3.connect(net.home(name) / "daiban.db")) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok", name
    for origin in (TOWN, VILLAGE, NODES[D].code):
        seen: dict[int, str] = {}
        for name in ALL:
            for seq, envelope_id in own_numbers(net, name, origin).items():
                assert seen.setdefault(seq, envelope_id) == envelope_id, (origin, seq, name)


def work_after_the_snapshot(net: Network) -> dict[str, Any]:
    """What the town acknowledged, forwarded, decided and pulled after its
    snapshot: filings from the village (for the town and for the district),
    the town's decisions, the district's decisions pulled down through the
    town (one of them not yet pulled by the village)."""
    a1, b1 = apply(net, V, 11, TOWN_ITEM), apply(net, V, 12, DISTRICT_ITEM)
    assert net.sync(V)["left"] == 0  # acknowledged by the town; its receipt for a1 comes back
    assert status_of(net, V)[a1] == "received"
    net.sync(T)  # b1 forwarded to the district
    net.sync(T)  # the district's receipt for b1 pulled down
    decide(net, T, a1)
    net.sync(V)  # the village has the town's decision on a1, the district's receipt for b1
    decide(net, D, b1)
    net.sync(T)  # the district's decision on b1 waits at the town for the village
    a2 = apply(net, V, 13, TOWN_ITEM)
    assert net.sync(V)["left"] == 0  # a2 received by the town; b1's acceptance pulled too
    return {"a1": a1, "b1": b1, "a2": a2}


def pulled_by_the_town_only(net: Network, b0: str) -> None:
    """The district decides b0; the town pulls it down, the village not yet."""
    decide(net, D, b0)
    net.sync(T)
    sql = "SELECT COUNT(*) FROM outbox o JOIN envelopes v ON v.id = o.envelope_id WHERE v.tracking = ?"
    assert net.query(T, sql, (b0,))[0][0] == 1


@pytest.mark.parametrize("keys", ["kept", "passphrase"])
def test_a_town_restored_from_a_snapshot(network: Network, tmp_path: Path, keys: str) -> None:
    """With its keys still on the PC (the database lost), and on a new PC
    with the keys brought back by the recovery passphrase set at init."""
    net, replica = network, tmp_path / "usb"
    build(net, passphrase=keys == "passphrase")
    a0, b0 = apply(net, V, 1, TOWN_ITEM), apply(net, V, 2, DISTRICT_ITEM)
    settle(net)
    before = net.run(T, "status", "--json").ok().json()
    assert before["incarnation"] and before["kept"] == 0
    net.run(T, "backup", "--replica", str(replica), "--once").ok()

    later = work_after_the_snapshot(net)
    decide(net, T, a0)  # decided at the town, not yet pulled by the village
    pulled_by_the_town_only(net, b0)
    village_before = status_of(net, V)
    town_numbers = {**own_numbers(net, V, TOWN), **own_numbers(net, D, TOWN)}
    assert set(own_numbers(net, V, TOWN)) - set(own_numbers(net, D, TOWN))  # some went only down

    with town_lost(net, tmp_path):
        if keys == "kept":
            for suffix in ("", "-wal", "-shm"):
                (net.home(T) / f"daiban.db{suffix}").unlink(missing_ok=True)
            restored = net.run(T, "restore", "--replica", str(replica), "--json").ok().json()
        else:
            shutil.move(net.home(T), tmp_path / "old-town-pc")
            again = ("restore", "--replica", str(replica), "--passphrase-stdin", "--json")
            restored = run_with_stdin(net, T, PASSPHRASE + "\n", *again).ok().json()
            assert restored["keys_restored"] and not restored["new_keys"]
        assert restored["mode"] == "snapshot" and not restored["must_enroll"]
        assert later["a1"] not in status_of(net, T)
        if keys == "kept":
            net.sync(T)  # catch up with the district first
    if keys == "passphrase":
        # Served again before it caught up: the village's sync comes first.
        # What it sends again waits, stored, until the town has caught up.
        net.sync(V)
        assert later["a1"] not in status_of(net, T) and net.count(T, "quarantine") == 0
        net.sync(T)
    after = net.run(T, "status", "--json").ok().json()
    assert after["incarnation"] != before["incarnation"]

    net.sync(V)  # the village sees the new incarnation: sends again, hands back
    net.sync(V)  # (the town applies what came before it answers a pull)
    town = status_of(net, T)
    for key in ("a1", "a2"):
        assert town[later[key]] == village_before[later[key]], key
    assert town[later["a1"]] == "accepted"  # its decision came back from the village
    # Its decision on a0 reached nobody before the loss: gone, made again.
    assert town[a0] == village_before[a0] == "received"
    decide(net, T, a0)
    decide(net, T, later["a2"])
    settle(net)
    offices = {a0: T, b0: D, later["a1"]: T, later["b1"]: D, later["a2"]: T}
    assert_whole(net, offices)
    assert status_of(net, V)[later["a2"]] == status_of(net, V)[a0] == status_of(net, V)[b0] == "accepted"
    # The offices' receipts went in bulk, the restored town's among them.
    sent = "SELECT COUNT(*) FROM envelopes WHERE origin = ? AND kind = ?"
    for office in (TOWN, NODES[D].code):
        assert net.query(V, sent, (office, "received"))[0][0] == 0
        assert net.query(V, sent, (office, "receipts"))[0][0] > 0
    # The restored town numbered its new envelopes above the gap: none reused.
    new = [s for s in own_numbers(net, T, TOWN) if s > max(town_numbers)]
    assert new and min(new) > 2**32


def kept_by_a_crash(net: Network, tracking: str) -> None:
    """The village's sync is killed (kill -9, by PID) once the town has
    acknowledged ``tracking`` and before the village stored the town's
    receipt: the filing stays kept at the village."""
    net.kill_at(V, "pull-answered", "sync")
    assert (
        net.query(
            V,
            "SELECT COUNT(*) FROM kept k JOIN envelopes v ON v.id = k.envelope_id WHERE v.tracking = ?",
            (tracking,),
        )[0][0]
        == 1
    )
    assert status_of(net, V)[tracking] == "submitted"


def test_a_town_restored_with_its_keys_truly_lost(network: Network, tmp_path: Path) -> None:
    """Restored without its keys (new ones), enrolled again at the district:
    what was sealed to its old key is named, one line each; the filing its
    village still kept goes again sealed to its new key, and opens there."""
    net, replica = network, tmp_path / "usb"
    build(net)
    a0, b0 = apply(net, V, 1, TOWN_ITEM), apply(net, V, 2, DISTRICT_ITEM)
    settle(net)
    net.run(T, "backup", "--replica", str(replica), "--once").ok()
    later = work_after_the_snapshot(net)
    a3 = apply(net, V, 14, TOWN_ITEM)
    kept_by_a_crash(net, a3)

    with town_lost(net, tmp_path):
        shutil.move(net.home(T), tmp_path / "old-town-pc")
        lost = net.run(T, "restore", "--replica", str(replica), "--without-keys", "--json").ok().json()
        assert lost["new_keys"] and lost["must_enroll"] and not lost["keys_restored"]
        net.enroll(T)  # a fresh code at the district, the same division code
        assert net.sync(T)["left"] == 0
    net.sync(V)  # the town's new chain, its new incarnation: a3 sealed again to its new key
    settle(net)

    # What was sealed to the lost key: named in one line each, never an internal error.
    unopenable = {a0: 1, later["a1"]: 11, later["a2"]: 13}
    for tracking, n in unopenable.items():
        shown = net.run(T, "show", tracking).ok()
        problem = [line for line in shown.stdout.splitlines() if "previous key" in line]
        assert len(problem) == 1 and problem[0].startswith(f"{tracking}: "), shown.stdout
        assert "internal error" not in shown.stdout + shown.stderr
        listed = net.run(T, "list", "--id-number", resident_id(n), "--json").ok()
        notes = listed.stderr.strip().splitlines()
        assert listed.json() == [] and f"note: {problem[0]}" in notes and len(notes) == len(unopenable)
    # The filing its village still kept went again, sealed to the new key: it opens.
    view = net.run(T, "show", a3, "--json").ok().json()
    assert view["personal"]["id_number"] == resident_id(14) and "personal_problem" not in view
    found = net.run(T, "list", "--id-number", resident_id(14), "--json").ok()
    assert [r["tracking"] for r in found.json()] == [a3] and a3 not in found.stderr

    # The city has never seen the village: its chain runs through the town's
    # retired certificate, which certified it honestly before it was retired.
    args = ["apply", "--item", "GJ001", "--name", "王秀兰", "--id-number", resident_id(15)]
    args += ["--phone", "13805330015", "--json", "--field", "retire_date=2020-01-01"]
    args += ["--field", "bank_name=工商银行", "--field", "bank_account=6222021234567890"]
    c1 = str(net.run(V, *args).ok().json()["tracking"])
    assert net.count(C, "certs") and not net.query(C, "SELECT 1 FROM certs WHERE code = ?", (VILLAGE,))
    for tracking in (a0, later["a2"], a3):
        if status_of(net, T)[tracking] == "received":
            decide(net, T, tracking)
    settle(net)
    assert status_of(net, V)[c1] == "received"
    offices = {a0: T, b0: D, later["a1"]: T, later["b1"]: D, later["a2"]: T, a3: T, c1: C}
    assert_whole(net, offices)
    assert status_of(net, V)[a3] == "accepted"


# -- attacks --------------------------------------------------------------------------------


class Returner(Attacker):
    """The village turned attacker: it hands its parent "back" what it likes."""

    def push_back(self, returned: list[str]) -> Any:
        body = protocol.encode({"certs": [], "envelopes": [], "returned": returned})
        counter = self._counter()
        message = protocol.request_message("POST", protocol.PUSH, body, counter, self.code, TOWN)
        headers = {
            protocol.H_NODE: self.code,
            protocol.H_COUNTER: str(counter),
            protocol.H_SIG: b64(self.keys.signature(message)),
            "Content-Type": protocol.CONTENT_TYPE,
        }
        request = urllib.request.Request(
            self.net.url(T) + protocol.PUSH, data=body, headers=headers, method="POST"
        )
        with urllib.request.urlopen(request, timeout=60) as resp:
            assert resp.status == 200
            return protocol.decode(resp.read())


def town_view(net: Network) -> dict[str, Any]:
    return {
        "apps": status_of(net, T),
        "own": own_numbers(net, T, TOWN),
        "events": net.count(T, "events"),
    }


def test_a_child_cannot_hand_back_what_its_parent_never_signed(network: Network) -> None:
    net = network
    build(net)
    a0 = apply(net, V, 21, TOWN_ITEM)
    settle(net)
    before = town_view(net)
    att = Returner(net, V)
    (receipt,) = net.query(V, "SELECT raw FROM envelopes WHERE origin = ? AND kind = 'receipts'", (TOWN,))
    own = att.envelope("accepted", to=VILLAGE, tracking=a0, body={"note": "自己批的"}).raw
    claimed = att.fields("received", to=VILLAGE, tracking=a0, body={"office": TOWN}, seq=10**6)
    claimed["origin"] = TOWN  # the town's origin, signed with the village's key
    forged = att.craft(claimed)
    tampered = json.loads(receipt[0])
    tampered.update(id=random_id(), seq=10**6 + 1)  # the town's signature, other content
    changed = canonical(tampered).decode()

    answer = att.push_back([own, forged, changed, receipt[0]])
    verdicts = {r["id"]: r for r in answer["returned"]}
    assert verdicts[json.loads(own)["id"]]["code"] == "forged_origin"
    assert verdicts[claimed["id"]]["code"] == "bad_signature"
    assert verdicts[tampered["id"]]["code"] == "bad_signature"
    assert verdicts[json.loads(receipt[0])["id"]]["status"] == "duplicate"
    assert town_view(net) == before  # nothing taken in
    quarantined = {r["envelope_id"]: r for r in net.run(T, "quarantine", "list", "--json").ok().json()}
    assert set(quarantined) == {json.loads(own)["id"], claimed["id"], tampered["id"]}
    assert all(r["sender"] == VILLAGE for r in quarantined.values())

    # What it sends again goes through the push's gate like anything else:
    # a decision it may not make is refused, as before any restore.
    refused = att.push([att.envelope("accepted", to=VILLAGE, tracking=a0, body={"note": "x"}).raw])
    assert refused.status == 422 and town_view(net) == before


def test_a_forged_or_replayed_incarnation_changes_nothing(network: Network) -> None:
    net = network
    build(net)
    b0 = apply(net, V, 31, DISTRICT_ITEM)
    net.sync(V)  # handed to the town, not yet to its office: kept at the village
    assert net.count(V, "kept") == 1

    def village() -> dict[str, Any]:
        return {
            "peer": tuple(
                net.query(V, "SELECT counter, cursor, incarnation FROM peers WHERE code = ?", (TOWN,))[0]
            ),
            "queued": net.count(V, "outbox"),
            "kept": net.count(V, "kept"),
            "return": net.query(V, "SELECT COUNT(*) FROM node WHERE key LIKE 'return_above%'")[0][0],
        }

    async def new_incarnation(request: web.Request, body: bytes) -> web.Response | None:
        if request.path != protocol.PULL:
            return None
        genuine = await rogue.forward(request, body)
        data = json.loads(zlib.decompress(genuine.body))  # type: ignore[arg-type]
        data.update(incarnation="feedfacefeedface", holds={VILLAGE: 0, TOWN: 0})
        return zjson(data, headers={answers.H_ANSWER: genuine.headers[answers.H_ANSWER]})

    async def replayed(request: web.Request, body: bytes) -> web.Response | None:
        if request.path != protocol.PULL:
            return None
        _path, status, answer, signature = next(g for g in rogue.genuine if g[0] == protocol.PULL)
        return web.Response(
            body=answer,
            status=status,
            content_type=protocol.CONTENT_TYPE,
            headers={answers.H_ANSWER: signature},
        )

    rogue_key = Ed25519PrivateKey.generate()
    (town_chain,) = net.query(V, "SELECT chain FROM certs WHERE code = ?", (TOWN,))

    async def rekeyed(request: web.Request, body: bytes) -> web.Response | None:
        """As a parent that lost its keys would answer, but with the town's
        chain as the village holds it (not a later one) and another key."""
        if request.path != protocol.PULL:
            return None
        genuine = await rogue.forward(request, body)
        data = json.loads(zlib.decompress(genuine.body))  # type: ignore[arg-type]
        data.update(incarnation="feedfacefeedface", holds={}, chain=json.loads(town_chain[0]))
        forged = zlib.compress(json.dumps(data).encode())
        signature = answers.sign(rogue_key, 200, forged, request.headers[protocol.H_SIG], TOWN)
        return web.Response(
            body=forged, content_type=protocol.CONTENT_TYPE, headers={answers.H_ANSWER: signature}
        )

    with Rogue(net.url(T)) as rogue:
        set_parent_url(net.home(V), rogue.url)
        net.sync(V)  # relayed as it is: a genuine answer to replay later
        before = village()
        for forgery in (new_incarnation, replayed, rekeyed):
            rogue.forge = forgery
            result = net.run(V, "sync", "--json")
            assert result.returncode == 1 and "not signed by the parent" in result.stderr, result.stderr
            assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
            after = village()
            assert after["peer"][1:] == before["peer"][1:] and after["queued"] == after["return"] == 0
            assert after["kept"] == 1
            assert net.query(V, "SELECT chain FROM certs WHERE code = ?", (TOWN,))[0][0] == town_chain[0]
        set_parent_url(net.home(V), net.url(T))
    settle(net)
    assert_whole(net, {b0: D})


# -- bounds on the wire ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (protocol.PULL, {"cursor": 0, "incarnation": ""}),
        (protocol.PULL, {"cursor": 0, "incarnation": "x" * 65}),
        (protocol.PULL, {"cursor": 0, "incarnation": 7}),
        (protocol.PUSH, {"envelopes": [], "returned": "not a list"}),
        (protocol.PUSH, {"envelopes": [], "returned": [{"not": "text"}]}),
        (protocol.PUSH, {"envelopes": [], "returned": ["x"] * 1001}),
    ],
)
def test_a_request_out_of_bounds_is_malformed(path: str, body: dict[str, Any]) -> None:
    with pytest.raises(protocol.ProtocolError) as refused:
        protocol.check_request(path, body)
    assert refused.value.status == 400 and refused.value.code == "malformed"


@pytest.mark.parametrize(
    "answer",
    [
        {"incarnation": ""},
        {"incarnation": ["a"]},
        {"incarnation": "x" * 65},
        {"incarnation": "b", "holds": []},
        {"incarnation": "b", "holds": {VILLAGE: -1}},
        {"incarnation": "b", "holds": {VILLAGE: True}},
        {"incarnation": "b", "holds": {str(i): 1 for i in range(1002)}},
    ],
)
def test_an_answer_out_of_bounds_is_refused(answer: dict[str, Any]) -> None:
    from daiban.sync import client

    with pytest.raises(client.SyncFailed) as refused:
        if client.incarnation_of(answer, "http://town") == "b":
            client.holds_of(answer, "http://town")
    assert refused.value.code == "bad_answer"
