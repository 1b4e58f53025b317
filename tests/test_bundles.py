"""Sync on a USB stick ("bundles"), end to end with the real ``daiban`` command
and real SQLite homes (tests/sync_net.py): a city, a district, a town and a
village enroll over real HTTP, then every server is stopped and what follows
travels by bundle files only — applications up, decisions and the catalog
down — through the same checks as the network.

One tree serves the module (building it takes seconds). Each test files its
own applications and compares before/after snapshots, so it does not depend
on what earlier tests left behind. The mixed bundle-and-network test starts
the town's server again, on the port the village enrolled with, and stops it
by PID. The revocation test changes the tree for good and comes last."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from daiban.node import routing
from daiban.trust.crypto import canonical
from tests.sync_net import DAIBAN, NODES, Network, Resident, Result, network_at

C, D, T, V = "city", "district", "town", "village"
TREE = (C, D, T, V)
TOWN, VILLAGE, DISTRICT = NODES[T].code, NODES[V].code, NODES[D].code
DEMO_CATALOG = Path(__file__).resolve().parents[1] / "daiban" / "data" / "demo_catalog.json"
MZ_FIELDS = {"family_size": "3", "monthly_income": "420"}
SB_FIELDS = {"contribution_grade": "500"}
# What a node stores; a refused bundle must leave every one of these as it was.
TABLES = (
    "envelopes",
    "applications",
    "events",
    "personal",
    "outbox",
    "quarantine",
    "conflicts",
    "bundle_refusals",
    "certs",
    "revocations",
    "catalog_items",
)
SERVING = re.compile(r"^Serving (http://[^\s]+) \(Ctrl-C stops\)\.\s*$")


@dataclass
class Tree:
    net: Network
    sticks: Path  # where the bundle files go
    town_port: int  # the port the village enrolled with (its parent_url)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tree]:
    root = tmp_path_factory.mktemp("bundles")
    with network_at(root / "net") as net:
        net.build(TREE)
        port = urlsplit(net.url(T)).port
        assert port
        for name in (C, D, T):  # enrollment done: no network from here on
            net.stop(name)
        sticks = root / "sticks"
        sticks.mkdir()
        yield Tree(net, sticks, port)


# -- helpers ----------------------------------------------------------------------------------


def apply(
    net: Network,
    node: str,
    item: str,
    who: Resident,
    fields: dict[str, str] | None = None,
    office: str = TOWN,
) -> str:
    args = ["apply", "--item", item, "--name", who.name, "--id-number", who.id_number, "--phone", who.phone]
    for key, value in (fields or {}).items():
        args += ["--field", f"{key}={value}"]
    filed = net.run(node, *args, "--json").ok().json()
    assert filed["office"] == office, filed
    number: str = filed["tracking"]
    return number


def export(net: Network, node: str, path: Path, child: str | None = None) -> dict[str, Any]:
    extra = ("--for", child) if child else ()
    out: dict[str, Any] = net.run(node, "bundle", "export", str(path), *extra, "--json").ok().json()
    assert path.is_file()
    assert out["to"] == (child or NODES[_parent(node)].code), out
    return out


def _parent(node: str) -> str:
    parent = NODES[node].parent
    assert parent is not None
    return parent


def imported(net: Network, node: str, path: Path) -> dict[str, Any]:
    out: dict[str, Any] = net.run(node, "bundle", "import", str(path), "--json").ok().json()
    return out


def read_bundle(path: Path) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(zlib.decompress(path.read_bytes()))
    return payload


def write_bundle(path: Path, payload: dict[str, Any]) -> Path:
    path.write_bytes(zlib.compress(canonical(payload), 6))
    return path


def assert_refused(result: Result, *words: str) -> None:
    """Exit 1, nothing on stdout, one line on stderr naming the reason."""
    assert result.returncode == 1, f"{result.args}: exit {result.returncode}\n{result.stdout}{result.stderr}"
    assert result.stdout == "", result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:"), lines[0]
    assert "internal error" not in lines[0], lines[0]
    for word in words:
        assert word.lower() in lines[0].lower(), (word, lines[0])


def snapshot(net: Network, node: str) -> dict[str, list[str]]:
    """Every row of what the node stores, plus its neighbours' cursors."""
    out = {t: sorted(repr(tuple(r)) for r in net.query(node, f"SELECT * FROM {t}")) for t in TABLES}
    out["peers"] = sorted(repr(tuple(r)) for r in net.query(node, "SELECT code, relation, cursor FROM peers"))
    out["manifest_version"] = [setting(net, node, "manifest_version")]
    return out


def setting(net: Network, node: str, key: str) -> str:
    rows = net.query(node, "SELECT value FROM node WHERE key = ?", (key,))
    return str(rows[0][0]) if rows else ""


def listing(net: Network, node: str, number: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = net.run(node, "list", "--json").ok().json()
    return [r for r in rows if r["tracking"] == number]


def show(net: Network, node: str, number: str) -> dict[str, Any]:
    view: dict[str, Any] = net.run(node, "show", number, "--json").ok().json()
    return view


def kinds(view: dict[str, Any]) -> Counter[str]:
    return Counter(event["kind"] for event in view["history"])


def envelope_ids(payload: dict[str, Any]) -> list[str]:
    part = payload.get("up") or payload.get("down") or {}
    return [json.loads(raw)["id"] for raw in part["envelopes"]]


def up_outbox(net: Network, node: str) -> int:
    return int(net.query(node, "SELECT COUNT(*) FROM outbox WHERE hop = ?", (routing.UP,))[0][0])


@contextlib.contextmanager
def serving(net: Network, name: str, port: int) -> Iterator[str]:
    """``daiban serve`` for a node on a given port; stopped by its PID on leaving."""
    out = net.root / f"{name}.again.out"
    with out.open("wb") as stdout, (net.root / f"{name}.again.log").open("wb") as stderr:
        proc = subprocess.Popen(
            [DAIBAN, "serve", "--host", "127.0.0.1", "--port", str(port)],
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            env=net.env(net.home(name)),
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            first = out.read_text(encoding="utf-8", errors="replace").split("\n", 1)
            if len(first) == 2:
                match = SERVING.match(first[0])
                assert match, first[0]
                break
            assert proc.poll() is None, f"serve exited {proc.returncode} before serving"
            assert time.monotonic() < deadline, "serve did not print its URL in 20 s"
            time.sleep(0.02)
        yield match.group(1)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def catalog_doc(version: int, names: dict[str, str]) -> dict[str, Any]:
    """The demo catalog at ``version`` counted from its own (1 is it), renamed."""
    doc: dict[str, Any] = json.loads(DEMO_CATALOG.read_text(encoding="utf-8"))
    doc["version"] += version - 1
    doc["published"] = f"2026-12-{version:02d}"
    for item in doc["items"]:
        if item["code"] in names:
            item["name"] = names[item["code"]]
    assert {i["code"] for i in doc["items"]} >= set(names)
    return doc


def carry_down(net: Network, sticks: Path, tag: str) -> dict[str, Path]:
    """The city's news down to the village, hop by hop, by bundle only."""
    paths = {}
    for parent, child in ((C, D), (D, T), (T, V)):
        path = sticks / f"{tag}-{parent}-{child}.bundle"
        export(net, parent, path, NODES[child].code)
        got = imported(net, child, path)
        assert got["refused"] == 0, got
        paths[child] = path
    return paths


# -- 1. the round trip ------------------------------------------------------------------------


def test_round_trip_by_bundles_only(tree: Tree) -> None:
    net, sticks = tree.net, tree.sticks
    assert net.servers == {}
    assert all(proc.poll() is not None for proc in net._started), "a server is still running"

    number = apply(net, V, "MZ001", Resident("赵春燕", "19620415", "021", "13905331001"), MZ_FIELDS)
    up = sticks / "rt-up.bundle"
    out = export(net, V, up)
    payload = read_bundle(up)
    assert payload["from"] == VILLAGE and payload["to"] == TOWN
    assert out["envelopes"] == len(payload["up"]["envelopes"]) >= 1
    filings = [json.loads(r) for r in payload["up"]["envelopes"]]
    assert [e["kind"] for e in filings if e.get("tracking") == number] == ["filed"]

    first = imported(net, T, up)
    assert first["from"] == VILLAGE and first["refused"] == 0 and first["stored"] >= 1, first
    rows = listing(net, T, number)
    assert len(rows) == 1, rows
    assert rows[0]["status"] == "received" and rows[0]["office"] == TOWN and rows[0]["item"] == "MZ001"
    # The office can open what was sealed to it.
    assert show(net, T, number)["personal"]["fields"] == {"family_size": 3, "monthly_income": 420}

    before, listed = snapshot(net, T), net.run(T, "list", "--json").ok().stdout
    again = imported(net, T, up)
    assert again["stored"] == 0 and again["refused"] == 0, again
    assert again["duplicates"] == first["stored"] + first["duplicates"], again
    assert snapshot(net, T) == before
    assert net.run(T, "list", "--json").ok().stdout == listed

    net.run(T, "review", number, "accept").ok()
    down = sticks / "rt-down.bundle"
    out = export(net, T, down, VILLAGE)
    assert out["envelopes"] >= 2, out  # the receipt and the acceptance
    got = imported(net, V, down)
    assert got["from"] == TOWN and got["refused"] == 0 and got["stored"] == out["envelopes"], got
    view = show(net, V, number)
    assert view["status"] == "accepted"
    counts = kinds(view)
    assert counts["filed"] == 1 and counts["received"] == 1 and counts["accepted"] == 1, counts

    before = snapshot(net, V)
    again = imported(net, V, down)
    assert again["stored"] == 0 and again["duplicates"] == out["envelopes"], again
    assert snapshot(net, V) == before
    assert show(net, V, number) == view

    # The town's acknowledgement ended the village's custody of the filing.
    assert up_outbox(net, V) == 0
    nxt = sticks / "rt-up-2.bundle"
    assert export(net, V, nxt)["envelopes"] == 0
    assert read_bundle(nxt)["up"]["envelopes"] == []


# -- 2. an old stick --------------------------------------------------------------------------


def test_old_stick_cannot_roll_the_catalog_back(tree: Tree) -> None:
    net, sticks = tree.net, tree.sticks
    name_a = {"LL001": "老年人优待证办理（目录A）"}
    name_b = {"LL001": "老年人优待证办理（目录B）", "MZ003": "临时救助（目录B）"}
    path_a = write_bundle_doc(sticks / "catalog-a.json", catalog_doc(2, name_a))
    path_b = write_bundle_doc(sticks / "catalog-b.json", catalog_doc(3, name_b))

    version_a = net.run(C, "catalog", "publish", str(path_a), "--json").ok().json()["version"]
    old = carry_down(net, sticks, "a")
    for node in (D, T, V):
        assert setting(net, node, "manifest_version") == str(version_a), node
    assert net.run(V, "catalog", "show", "LL001", "--json").ok().json()["name"] == name_a["LL001"]

    version_b = net.run(C, "catalog", "publish", str(path_b), "--json").ok().json()["version"]
    assert version_b > version_a
    carry_down(net, sticks, "b")
    catalog_b = net.run(V, "catalog", "list", "--json").ok().json()
    names = {i["code"]: i["name"] for i in catalog_b}
    assert names["LL001"] == name_b["LL001"] and names["MZ003"] == name_b["MZ003"]

    # Each old stick really carries catalog A (else the check below proves nothing).
    for node, path in old.items():
        manifests = [json.loads(r) for r in read_bundle(path)["down"]["envelopes"]]
        versions = [e["body"]["version"] for e in manifests if e["kind"] == "manifest"]
        assert versions == [version_a], (node, versions)

    before = {node: snapshot(net, node) for node in (D, T, V)}
    # The old sticks again, each at the node it was made for.
    for node in (V, T, D):
        result = net.run(node, "bundle", "import", str(old[node]), "--json")
        if result.returncode == 0:
            assert result.json()["stored"] == 0, result.json()
        else:
            assert_refused(result)
    for node in (D, T, V):
        assert setting(net, node, "manifest_version") == str(version_b), node
        assert snapshot(net, node) == before[node], node
    assert net.run(V, "catalog", "list", "--json").ok().json() == catalog_b
    shown = net.run(V, "catalog", "show", "LL001", "--json").ok().json()
    assert shown["name"] == name_b["LL001"]


def write_bundle_doc(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


# -- 3. tampered and foreign bundles ----------------------------------------------------------


def test_tampered_or_foreign_bundles_are_refused_and_nothing_stored(tree: Tree) -> None:
    net, sticks = tree.net, tree.sticks
    number = apply(net, V, "SF002", Resident("孙丽娟", "19580101", "046", "13905331003"))
    good = sticks / "t3-good.bundle"
    export(net, V, good)
    payload = read_bundle(good)
    ids = envelope_ids(payload)
    assert ids

    # Bytes flipped in the middle of the file as it lies on the stick.
    data = good.read_bytes()
    mid = len(data) // 2
    flipped = sticks / "t3-flipped.bundle"
    flipped.write_bytes(data[:mid] + bytes([data[mid] ^ 0xFF, data[mid + 1] ^ 0x55]) + data[mid + 2 :])

    # One character of an envelope changed (a digit of the seconds of its time).
    changed = json.loads(json.dumps(payload))
    raws = changed["up"]["envelopes"]
    index = next(i for i, raw in enumerate(raws) if json.loads(raw).get("tracking") == number)
    at = json.loads(raws[index])["at"]
    digit = at[18]  # YYYY-MM-DDTHH:MM:S[S]
    assert digit.isdigit()
    new_at = at[:18] + ("1" if digit != "1" else "2") + at[19:]
    assert raws[index].count(at) == 1
    raws[index] = raws[index].replace(at, new_at)
    envelope_changed = write_bundle(sticks / "t3-envelope.bundle", changed)

    # The sender changed to a neighbour the town knows (its own parent).
    from_district = write_bundle(sticks / "t3-from.bundle", {**payload, "from": DISTRICT})

    # Readable but not bundles.
    text = sticks / "t3-text.bundle"
    text.write_text("daiban-bundle, honestly\n", encoding="utf-8")
    no_magic = write_bundle(sticks / "t3-nomagic.bundle", {k: v for k, v in payload.items() if k != "type"})
    empty = sticks / "t3-empty.bundle"
    empty.write_bytes(b"")
    cut = sticks / "t3-cut.bundle"
    cut.write_bytes(data[: len(data) // 2])

    town_before, district_before = snapshot(net, T), snapshot(net, D)
    cases: list[tuple[str, Path, tuple[str, ...]]] = [
        (T, flipped, ()),
        (T, envelope_changed, ("signature",)),
        (T, from_district, ("signature",)),
        (T, text, ("not a daiban bundle",)),
        (T, no_magic, ("not a daiban bundle",)),
        (T, empty, ("not a daiban bundle",)),
        (T, cut, ("not a daiban bundle",)),
        (T, sticks / "t3-missing.bundle", ("does not exist",)),
        # A bundle for another node: the village's bundle for the town, taken to the district.
        (D, good, (TOWN,)),
    ]
    for node, path, words in cases:
        assert_refused(net.run(node, "bundle", "import", str(path)), *words)
    assert snapshot(net, T) == town_before
    assert snapshot(net, D) == district_before
    stored = {r[0] for r in net.query(T, "SELECT id FROM envelopes")}
    assert stored.isdisjoint(ids)

    # The untouched bundle is good: every refusal above was the tampering's doing.
    got = imported(net, T, good)
    assert got["refused"] == 0 and got["stored"] + got["duplicates"] == len(ids), got
    assert len(listing(net, T, number)) == 1


# -- 5. bundle and network, mixed -------------------------------------------------------------


def test_bundle_then_network_delivers_each_once(tree: Tree) -> None:
    net, sticks = tree.net, tree.sticks
    numbers = [
        apply(net, V, "MZ001", Resident("钱建国", "19700823", "033", "13905331002"), MZ_FIELDS),
        apply(net, V, "SF002", Resident("李志强", "19750630", "057", "13905331004")),
        apply(net, V, "SF002", Resident("周文华", "19660909", "068", "13905331005")),
    ]
    stick = sticks / "mix-up.bundle"
    export(net, V, stick)
    payload = read_bundle(stick)
    carried = {json.loads(raw)["tracking"] for raw in payload["up"]["envelopes"]}
    assert carried >= set(numbers)
    town_ids = {r[0] for r in net.query(T, "SELECT id FROM envelopes")}
    new = [i for i in envelope_ids(payload) if i not in town_ids]
    got = imported(net, T, stick)
    assert got["stored"] == len(new) >= 3 and got["refused"] == 0, got
    for number in numbers:
        assert [r["status"] for r in listing(net, T, number)] == ["received"], number

    # Nothing came back down by stick: the village still holds them all.
    assert up_outbox(net, V) >= 3
    with serving(net, T, tree.town_port):
        result = net.run(V, "sync", "--json")
    result.ok()
    report = result.json()
    assert report["left"] == 0 and report["quarantined"] == [], report
    assert report["pushed"] == 0, report  # everything was already there
    assert report["duplicates"] >= 3, report
    assert up_outbox(net, V) == 0

    for number in numbers:
        rows = listing(net, T, number)
        assert [r["status"] for r in rows] == ["received"], (number, rows)
        filed = net.query(T, "SELECT id FROM envelopes WHERE tracking = ? AND kind = 'filed'", (number,))
        assert len(filed) == 1, number
        town_kinds = kinds(show(net, T, number))
        assert town_kinds["filed"] == 1 and town_kinds["received"] == 1, (number, town_kinds)
        view = show(net, V, number)
        assert view["status"] == "received", (number, view["status"])
        assert kinds(view)["received"] == 1, (number, kinds(view))


# -- 6. custody ends one tier up as well -----------------------------------------------------


def test_district_acknowledgement_ends_the_towns_custody(tree: Tree) -> None:
    """The town hands up, by stick, its own filing and one it relays for the
    village (both district items); once the district's stick comes back, the
    town holds neither any more — whatever else the town's and the village's
    sequence numbers were spent on (receipts and decisions that went down)."""
    net, sticks = tree.net, tree.sticks
    relayed = apply(
        net, V, "SB001", Resident("郑晓东", "19690305", "081", "13905331007"), SB_FIELDS, office=DISTRICT
    )
    village_stick = sticks / "c6-village.bundle"
    export(net, V, village_stick)
    assert imported(net, T, village_stick)["refused"] == 0
    own = apply(
        net, T, "SB001", Resident("王秀兰", "19800101", "012", "13805331234"), SB_FIELDS, office=DISTRICT
    )
    up = sticks / "c6-town-up.bundle"
    out = export(net, T, up)
    carried = {json.loads(raw)["tracking"] for raw in read_bundle(up)["up"]["envelopes"]}
    assert {relayed, own} <= carried, carried
    got = imported(net, D, up)
    assert got["refused"] == 0 and got["stored"] + got["duplicates"] == out["envelopes"], got
    for number in (relayed, own):
        assert [r["status"] for r in listing(net, D, number)] == ["received"], number

    down = sticks / "c6-district-down.bundle"
    export(net, D, down, TOWN)
    back = imported(net, T, down)
    assert back["refused"] == 0, back
    assert back["released"] >= 2, back
    assert up_outbox(net, T) == 0
    again = sticks / "c6-town-up-2.bundle"
    assert export(net, T, again)["envelopes"] == 0


# -- 4. revocation (last: the village stays revoked) ------------------------------------------


def test_revoked_village_bundles_are_refused(tree: Tree) -> None:
    net, sticks = tree.net, tree.sticks
    # One stick made before the revocation, one after; something on each.
    apply(net, V, "SF002", Resident("冯玉梅", "19720214", "092", "13905331008"))
    early = sticks / "rev-early.bundle"
    assert export(net, V, early)["envelopes"] >= 1
    revoked = net.run(T, "revoke", VILLAGE, "--json").ok().json()
    assert revoked["code"] == VILLAGE and revoked["serial"]
    apply(net, V, "SF002", Resident("吴海燕", "19811111", "079", "13905331006"))
    late = sticks / "rev-late.bundle"
    assert export(net, V, late)["envelopes"] >= 2
    held = {r[0] for r in net.query(T, "SELECT id FROM envelopes")}
    new = [i for i in envelope_ids(read_bundle(late)) if i not in held]
    assert len(new) >= 2  # the two filings above, at least

    before = snapshot(net, T)
    for path in (late, early):
        assert_refused(net.run(T, "bundle", "import", str(path)), "revoked")
    assert snapshot(net, T) == before
    assert {r[0] for r in net.query(T, "SELECT id FROM envelopes")} == held
