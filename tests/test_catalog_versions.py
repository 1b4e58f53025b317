"""Catalog versions only go up, and an application keeps its item as it was
when filed — over real ``daiban serve`` processes (tests/sync_net.py): a city,
a district, a town and a village.

The city publishes catalog version 2, which withdraws SF002 (人民调解申请, a
town item) and changes MZ003 (临时救助: a longer time limit, and its evidence
no longer owable); applications filed for both before that are still
accepted with the time limit and the materials they were filed under,
supplemented, completed and evaluated, and every status reaches the village.
An older or equal catalog published at the city is refused with one line and
changes nothing at any node. One network serves the module; the fixtures
record what each step showed."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from jsonschema import ValidationError
from stdnum.cn import ric

from daiban.node import manifest
from daiban.node.applications import Node
from daiban.node.catalog import bundled_path
from daiban.sync import protocol
from tests.sync_net import NODES, Network, network_at
from tests.test_wire_docs import component

C, D, T, V = "city", "district", "town", "village"
ALL = (C, D, T, V)
EVIDENCE = "纠纷有关证据材料"  # SF002's owable material
HARDSHIP = "困难情况证明材料"  # MZ003's, owable in version 1 only
MakeNode = Callable[..., Node]


def id_number(birth: str, seq: str) -> str:
    body = "370303" + birth + seq
    return body + ric.calc_check_digit(body + "0")


BASE = json.loads(bundled_path().read_text(encoding="utf-8"))["version"] - 1
"""Versions here count from the bundled catalog's: ``catalog_v(1)`` is it."""


def catalog_v(version: int) -> dict[str, Any]:
    """The bundled catalog at ``version`` (its own version plus ``version`` - 1);
    from 2 on, SF002 withdrawn and MZ003 changed (15 working days, its
    evidence no longer owable)."""
    doc: dict[str, Any] = json.loads(bundled_path().read_text(encoding="utf-8"))
    doc["version"] = BASE + version
    if version >= 2:
        doc["items"] = [i for i in doc["items"] if i["code"] != "SF002"]
        for item in doc["items"]:
            if item["code"] == "MZ003":
                item["time_limit_days"] = 15
                item["materials"] = [{**m, "owable": False} for m in item["materials"]]
    return doc


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def show(net: Network, node: str, tracking: str) -> dict[str, Any]:
    view: dict[str, Any] = net.run(node, "show", tracking, "--json").ok().json()
    return view


def status(net: Network, node: str, *extra: str) -> dict[str, Any]:
    info: dict[str, Any] = net.run(node, "status", "--json", *extra).ok().json()
    return info


def state(net: Network, node: str) -> dict[str, Any]:
    """What a catalog publication could change at a node."""
    info = status(net, node)
    return {
        "catalog": net.run(node, "catalog", "list", "--json").ok().json(),
        "catalog_version": info["catalog_version"],
        "manifest_version": info["manifest_version"],
        "manifests": net.query(node, "SELECT COUNT(*) FROM envelopes WHERE kind = 'manifest'")[0][0],
        "items_kept": net.count(node, "item_docs"),
    }


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with network_at(tmp_path_factory.mktemp("catalog") / "net") as network:
        network.build(ALL)
        yield network


@pytest.fixture(scope="module")
def filed(net: Network) -> dict[str, str]:
    """Three town applications filed at the village under catalog version 1
    and synced up to the town: SF002 twice (one owing its evidence), MZ003."""
    trackings = {}
    for key, item, birth, extra in (
        ("A", "SF002", "19620415", ["--field", "dispute_type=邻里"]),
        ("B", "SF002", "19700823", ["--field", "dispute_type=合同", "--missing", EVIDENCE]),
        (
            "C",
            "MZ003",
            "19580101",
            ["--field", "assistance_kind=急难型", "--field", "hardship_reason=房屋失火"],
        ),
    ):
        result = net.run(
            V,
            "apply",
            "--item",
            item,
            "--name",
            "王秀兰",
            "--id-number",
            id_number(birth, "021"),
            "--phone",
            "13905331001",
            *extra,
            "--json",
        ).ok()
        assert result.json()["office"] == NODES[T].code
        trackings[key] = result.json()["tracking"]
    net.sync_all(V, T, D, V)
    for tracking in trackings.values():
        assert show(net, T, tracking)["status"] == "received"
    return trackings


@pytest.fixture(scope="module")
def published(
    net: Network, filed: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The city tries an equal version (refused), publishes version 2 and
    syncs it down; then tries 2 again and 1 (both refused)."""
    folder = tmp_path_factory.mktemp("catalogs")
    # Filed under version 1 and still queued at the village when version 2
    # reaches the town: it arrives at its office after its item is withdrawn.
    in_transit = net.run(
        V, "apply", "--item", "SF002", "--name", "周明", "--id-number", id_number("19660606", "044"),
        "--phone", "13905331005", "--field", "dispute_type=土地承包", "--json",
    ).ok().json()["tracking"]  # fmt: skip
    before = {name: state(net, name) for name in ALL}
    city_rows = net.count(C, "envelopes"), net.count(C, "events")
    equal = net.run(C, "catalog", "publish", str(write(folder / "v1.json", catalog_v(1))))
    after_equal = {name: state(net, name) for name in ALL}
    v2 = net.run(C, "catalog", "publish", str(write(folder / "v2.json", catalog_v(2))), "--json").ok().json()
    net.sync_all(D, T, V)
    in_force = {name: state(net, name) for name in ALL}
    city_in_force = net.count(C, "envelopes"), net.count(C, "events")
    again = net.run(C, "catalog", "publish", str(folder / "v2.json"))
    older = net.run(C, "--lang", "zh", "catalog", "publish", str(folder / "v1.json"))
    city_after = net.count(C, "envelopes"), net.count(C, "events")
    net.sync_all(D, T, V)
    return {
        "in_transit": in_transit,
        "city_rows": (city_rows, city_in_force, city_after),
        "before": before,
        "equal": equal,
        "after_equal": after_equal,
        "v2": v2,
        "in_force": in_force,
        "again": again,
        "older": older,
        "after": {name: state(net, name) for name in ALL},
        "withdrawn_filing": net.run(
            V,
            "apply",
            "--item",
            "SF002",
            "--name",
            "李志强",
            "--id-number",
            id_number("19750630", "057"),
            "--phone",
            "13905331004",
        ),
    }


@pytest.fixture(scope="module")
def decided(net: Network, filed: dict[str, str], published: dict[str, Any]) -> dict[str, Any]:
    """The town decides all three under catalog version 2, the village
    supplements what is owed, the town completes, the village evaluates."""
    filed = {**filed, "D": published["in_transit"]}
    a, b, c, d = filed["A"], filed["B"], filed["C"], filed["D"]
    assert show(net, T, d)["status"] == "received"
    net.run(T, "review", d, "accept").ok()
    net.run(T, "review", a, "accept").ok()
    net.run(T, "review", b, "accept").ok()
    # 容缺 at acceptance: owable as MZ003 was filed, though no longer.
    net.run(T, "review", c, "accept", "--missing", HARDSHIP).ok()
    town_holding = status(net, T)
    net.sync(V)
    accepted = {key: show(net, V, number) for key, number in filed.items()}
    net.run(V, "supplement", b).ok()  # everything owed, as filed
    net.run(V, "supplement", c, "--material", HARDSHIP).ok()
    net.sync(V)
    for number in (a, b, c, d):
        net.run(T, "review", number, "complete", "--note", "已办结").ok()
    net.sync(V)
    for number, score in ((a, "5"), (b, "4"), (c, "3"), (d, "2")):
        net.run(V, "evaluate", number, score, "--comment", "等候太久").ok()
    for _round in range(2):
        net.sync_all(V, T, D)
    return {
        "town_holding": town_holding,
        "accepted": accepted,
        "village": {key: show(net, V, number) for key, number in filed.items()},
        "town": {key: show(net, T, number) for key, number in filed.items()},
        "status": {name: status(net, name) for name in ALL},
    }


# -- catalog versions only go up -----------------------------------------------------


def test_an_equal_or_older_catalog_is_refused_with_one_line(published: dict[str, Any]) -> None:
    for key in ("equal", "again", "older"):
        result = published[key]
        assert result.returncode == 1, result
        assert result.stdout == ""
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
    assert f"is not above the version in force ({BASE + 1})" in published["equal"].stderr
    assert f"is not above the version in force ({BASE + 2})" in published["again"].stderr
    # In the user's language (the sentence itself once the lead has translated it).
    assert published["older"].stderr.startswith("错误：")


def test_a_refused_catalog_changes_nothing_at_any_node(published: dict[str, Any]) -> None:
    assert published["after_equal"] == published["before"]
    assert published["after"] == published["in_force"]
    city_before, city_in_force, city_after = published["city_rows"]
    assert city_after == city_in_force and city_in_force[0] > city_before[0]
    assert published["v2"] == {"version": 1}  # the first manifest the city signed
    for name in ALL:
        assert published["in_force"][name]["catalog_version"] == BASE + 2
        assert published["in_force"][name]["manifest_version"] == 1
        codes = {i["code"] for i in published["in_force"][name]["catalog"]}
        assert "SF002" not in codes and "MZ003" in codes


def test_a_withdrawn_item_takes_no_new_filing(published: dict[str, Any]) -> None:
    result = published["withdrawn_filing"]
    assert result.returncode == 1
    assert "SF002" in result.stderr and "Traceback" not in result.stderr


def test_a_manifest_with_an_older_catalog_leaves_the_catalog_alone(make_node: MakeNode) -> None:
    """The install side of the rule, at one node: a newer manifest carrying an
    older catalog still brings its revocations and version, not its catalog."""
    node = make_node(role="town", code="370303101", name="南定镇")
    manifest.install(
        node,
        SimpleNamespace(body={"version": 1, "catalog": {**catalog_v(1), "version": BASE + 3}}, origin="3703"),
        "x",
    )
    assert node.catalog_info()["version"] == BASE + 3
    older = {"version": 2, "catalog": catalog_v(2), "revoked": ["0" * 32]}
    manifest.install(node, SimpleNamespace(body=older, origin="3703"), "x")
    assert node.catalog_info()["version"] == BASE + 3
    assert node.store.setting("manifest_version") == "2"
    assert "0" * 32 in node.store.revoked()
    assert "SF002" in {i.code for i in node.items()}  # version 3's items, not version 2's
    # A catalog this node started with gives way to the city's, whatever its number.
    fresh = make_node(role="village", code="370303101201", name="大张村")
    manifest.install(fresh, SimpleNamespace(body={"version": 1, "catalog": catalog_v(1)}, origin="3703"), "x")
    assert fresh.catalog_info()["source"] == "manifest v1"


# -- an application keeps its item as filed -------------------------------------------


def test_applications_for_a_withdrawn_or_changed_item_are_decided_as_filed(
    filed: dict[str, str], decided: dict[str, Any]
) -> None:
    accepted = decided["accepted"]
    for key in (*filed, "D"):
        assert accepted[key]["status"] == "accepted", accepted[key]
        assert accepted[key]["due"], accepted[key]
    limits = {
        key: next(e["body"]["time_limit_days"] for e in view["history"] if e["kind"] == "accepted")
        for key, view in decided["town"].items()
    }
    assert limits == {"A": 20, "B": 20, "C": 5, "D": 20}  # as filed, not MZ003's new 15
    assert accepted["B"]["owed"] == [EVIDENCE]
    assert accepted["C"]["owed"] == [HARDSHIP]


def test_every_status_reaches_the_village_and_the_evaluation_the_town(
    filed: dict[str, str], decided: dict[str, Any]
) -> None:
    for key, score in (("A", 5), ("B", 4), ("C", 3), ("D", 2)):
        village, town = decided["village"][key], decided["town"][key]
        assert village["status"] == town["status"] == "completed"
        assert village["owed"] == [] and village["evaluation"] == town["evaluation"] == score
        kinds = [e["kind"] for e in town["history"]]
        assert kinds.count("filed") == 1 and kinds.count("evaluated") == 1
    for name in ALL:
        info = decided["status"][name]
        assert info["quarantined"] == 0, name
        assert info["queued_up"] == 0, name
        assert info["held_for_children"] == {}, name


# -- versions and status --------------------------------------------------------------


def test_version_is_the_package_metadata(net: Network) -> None:
    result = net.run(V, "--version").ok()
    assert result.stdout.strip() == f"daiban {metadata.version('daiban')} (protocol {protocol.PROTOCOL})"


def test_healthz_shows_the_protocol(net: Network) -> None:
    import urllib.request

    with urllib.request.urlopen(net.url(T) + protocol.HEALTH, timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["protocol"] == protocol.PROTOCOL
    assert body["version"] == metadata.version("daiban")
    component("Health").validate(body)  # as docs/openapi.json says
    with pytest.raises(ValidationError):
        component("Health").validate({k: v for k, v in body.items() if k != "protocol"})
    assert body["code"] == NODES[T].code


def test_status_shows_one_node_at_a_glance(net: Network, decided: dict[str, Any]) -> None:
    holding = decided["town_holding"]
    assert holding["held_for_children"] == {NODES[V].code: 4}
    info = decided["status"][V]
    assert set(info) == {
        "code", "role", "name", "enrolled", "revoked", "parent", "version", "protocol",
        "catalog_version", "manifest_version", "queued_up", "held_for_children",
        "held_unenrolled", "quarantined", "held_for_upgrade", "last_sync_at", "incarnation", "kept",
    }  # fmt: skip
    assert info["code"] == NODES[V].code and info["role"] == "village" and info["enrolled"]
    assert info["revoked"] is False
    assert info["version"] == metadata.version("daiban") and info["protocol"] == protocol.PROTOCOL
    assert info["catalog_version"] == BASE + 2 and info["manifest_version"] == 1
    parent = info["parent"]
    assert parent["code"] == NODES[T].code and parent["url"] == net.url(T)
    assert parent["reachable"] is True and parent["revoked"] is False and parent["checked"] is None
    assert parent["refusal"] is None
    assert parent["last_sync_at"] == info["last_sync_at"] is not None
    city = decided["status"][C]
    assert city["parent"] is None and city["last_sync_at"] is None and city["enrolled"]
    checked = status(net, V, "--check")["parent"]["checked"]
    assert checked == {
        "reachable": True, "error": None, "code": NODES[T].code,
        "version": metadata.version("daiban"), "protocol": protocol.PROTOCOL,
    }  # fmt: skip


def test_status_text_fits_80_columns_in_both_languages(net: Network, decided: dict[str, Any]) -> None:
    from rich.cells import cell_len

    for lang in ("zh", "en"):
        for name in ALL:
            text = net.run(name, "--lang", lang, "status").ok().stdout
            assert text.strip()
            for line in text.splitlines():
                assert cell_len(line) <= 80, (lang, name, line)
    english = net.run(V, "--lang", "en", "status", "--check").ok().stdout
    assert f"Parent: {NODES[T].code}" in english
    assert "it answered" in english and "Checked now: it answers" in english


class _Recorder(BaseHTTPRequestHandler):
    """Answers every request 503 in the one error shape, and records it."""

    seen: ClassVar[list[tuple[str, str, str | None]]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.seen.append((self.command, self.path, self.headers.get(protocol.H_PROTOCOL)))
        body = protocol.encode(protocol.error_body(503, "timeout", "busy"))
        self.send_response(503)
        self.send_header("Content-Type", protocol.CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *_args: Any) -> None:
        pass


def test_every_request_carries_the_protocol_version(net: Network, decided: dict[str, Any]) -> None:
    """Sync, status --check and enroll, each against a server that records
    what it is sent (a copy of the village, pointed at that server)."""
    from stdnum import damm

    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        copy = net.root / "village-copy"
        shutil.copytree(net.home(V), copy)
        with contextlib.closing(sqlite3.connect(copy / "daiban.db")) as db, db:
            db.execute("UPDATE node SET value = ? WHERE key = 'parent_url'", [url])
        resident = id_number("19650505", "033")
        net.run(copy, "apply", "--item", "MZ003", "--name", "赵春燕", "--id-number", resident,
                "--phone", "13905331009", "--field", "assistance_kind=急难型",
                "--field", "hardship_reason=火灾").ok()  # fmt: skip
        refused = net.run(copy, "sync")
        # The recorder's answers are not signed by the parent's key: refused as such.
        assert refused.returncode == 1 and "not signed" in refused.stderr, refused
        assert status(net, copy)["parent"]["reachable"] is True  # it answered, and refused
        checked = status(net, copy, "--check")["parent"]["checked"]
        assert checked["reachable"] is True and checked["error"] == "HTTP 503"
        code = "1234567890" + damm.calc_check_digit("1234567890")
        assert net.run(copy, "enroll", url, code).returncode == 1
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    paths = {(method, path) for method, path, _v in _Recorder.seen}
    assert {("POST", protocol.PUSH), ("GET", protocol.HEALTH), ("POST", protocol.ENROLL)} <= paths
    assert {v for _m, _p, v in _Recorder.seen} == {str(protocol.PROTOCOL)}


def test_status_says_when_this_node_is_revoked(net: Network, decided: dict[str, Any]) -> None:
    """The town revokes the village: its next sync is refused, and status
    says the node is revoked (it cannot pull the revocation itself)."""
    net.run(T, "revoke", NODES[V].code).ok()
    refused = net.run(V, "sync")
    assert refused.returncode == 1 and "revoked" in refused.stderr
    info = status(net, V)
    assert info["revoked"] is True
    assert info["parent"]["reachable"] is True and info["parent"]["refusal"] == "revoked"
    text = net.run(V, "--lang", "en", "status").ok().stdout
    assert "This node's certificate is revoked" in text and "It refused this node (revoked)." in text


def test_status_records_a_parent_that_did_not_answer(net: Network, decided: dict[str, Any]) -> None:
    """Last: the town's server stops; the village's sync cannot reach it, and
    status says so, from the database and with --check."""
    net.stop(T)
    assert net.run(V, "sync").returncode == 1
    parent = status(net, V, "--check")["parent"]
    assert parent["reachable"] is False
    assert parent["checked"]["reachable"] is False and parent["checked"]["error"]
    assert parent["last_attempt_at"] >= parent["last_sync_at"]
    assert parent["refusal"] == "revoked"  # the last answer it had stands
