"""End to end, over real HTTP: a city, a district, a town and two villages as
real ``daiban`` homes, the three parents as real ``daiban serve`` processes on
127.0.0.1 (tests/sync_net.py). Applications filed at a village reach their
office (town, district or city) exactly once; the offices' decisions come back
down; the city's catalog goes down to every node; relays and villages keep no
personal data in the clear; and the HTTP surface refuses what it must, with
the one JSON error shape and nothing stored.

One network serves the whole module (building one takes seconds); the steps
of the journey are module fixtures that record what each node showed at the
time, so each test checks a snapshot, not whatever later steps changed. The
revocation test changes the network for good and comes last."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from daiban.sync import protocol
from daiban.trust import certs, envelope
from daiban.trust.crypto import NodeKeys, b64, canonical, random_id
from tests.sync_net import NODES, Network, Resident, network_at

C, D, T, V, V2 = "city", "district", "town", "village", "village2"
OFFICES = (C, D, T)
ALL = (C, D, T, V, V2)
DEMO_CATALOG = Path(__file__).resolve().parents[1] / "daiban" / "data" / "demo_catalog.json"


# One resident per application, so a find in a scan names its application.
MZ_RES = Resident("赵春燕", "19620415", "021", "13905331001")
SB_RES = Resident("钱建国", "19700823", "033", "13905331002")
GJ_RES = Resident("孙丽娟", "19580101", "046", "13905331003")
V2_RES = Resident("李志强", "19750630", "057", "13905331004")
GJ_BANK_ACCOUNT = "6222021234567890"

MZ_FIELDS = {"family_size": "3", "monthly_income": "420"}
SB_FIELDS = {"contribution_grade": "500"}
GJ_FIELDS = {"retire_date": "2020-01-01", "bank_name": "工商银行", "bank_account": GJ_BANK_ACCOUNT}
SUPPLEMENT_MISSING = ["户口簿", "居民身份证"]
POST_TRACKING = "EA123456785CN"
ADDRESS = "山东省淄博市张店区南定镇大张村幸福路12号"

# Which office handles each application, by key.
OFFICE_OF = {"MZ001": T, "SB001": D, "GJ001": C, "V2-MZ001": T}
FILER_OF = {"MZ001": V, "SB001": V, "GJ001": V, "V2-MZ001": V2}


# -- helpers --------------------------------------------------------------------------------


def file_application(
    net: Network, node: str, item: str, resident: Resident, fields: dict[str, str] | None = None
) -> str:
    args = ["apply", "--item", item, "--name", resident.name, "--id-number", resident.id_number]
    args += ["--phone", resident.phone, "--json"]
    for key, value in (fields or {}).items():
        args += ["--field", f"{key}={value}"]
    filed = net.run(node, *args).ok().json()
    assert filed["office"] == NODES[OFFICE_OF.get(item, T)].code
    tracking: str = filed["tracking"]
    return tracking


def listing(net: Network, node: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = net.run(node, "list", "--json").ok().json()
    return rows


def show(net: Network, node: str, tracking: str) -> dict[str, Any]:
    view: dict[str, Any] = net.run(node, "show", tracking, "--json").ok().json()
    return view


def kinds(view: dict[str, Any]) -> Counter[str]:
    return Counter(event["kind"] for event in view["history"])


def rows_for(rows: list[dict[str, Any]], tracking: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["tracking"] == tracking]


# -- the network and the journey ---------------------------------------------------------------


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with network_at(tmp_path_factory.mktemp("tiers") / "net") as network:
        network.build()
        yield network


@dataclass
class Filed:
    trackings: dict[str, str]
    city_sync: Any
    lists: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def filed(net: Network) -> Filed:
    """File four applications (three at the village, one at village2) and sync
    them up: village, village2, town, district; then the city."""
    trackings = {
        "MZ001": file_application(net, V, "MZ001", MZ_RES, MZ_FIELDS),
        "SB001": file_application(net, V, "SB001", SB_RES, SB_FIELDS),
        "GJ001": file_application(net, V, "GJ001", GJ_RES, GJ_FIELDS),
        "V2-MZ001": file_application(net, V2, "MZ001", V2_RES, MZ_FIELDS),
    }
    net.sync_all(V, V2, T, D)
    city_sync = net.run(C, "sync")
    result = Filed(trackings, city_sync)
    views = net.run_many(*((name, "list", "--json") for name in ALL))
    result.lists = {name: view.ok().json() for name, view in zip(ALL, views, strict=True)}
    return result


@pytest.fixture(scope="module")
def decided(net: Network, filed: Filed) -> dict[str, dict[str, Any]]:
    """The offices decide, and the decisions travel down (twice round, to
    show repeats change nothing). Returns what the filers then show."""
    t = filed.trackings
    # Three offices, three databases: their first decisions side by side.
    for result in net.run_many(
        (T, "review", t["MZ001"], "accept"),
        (D, "review", t["SB001"], "supplement", "--missing", "户口簿", "--missing", "居民身份证"),
        (C, "review", t["GJ001"], "accept"),
    ):
        result.ok()
    net.run(
        C,
        "review",
        t["GJ001"],
        "complete",
        "--delivery",
        "post",
        "--post-tracking",
        POST_TRACKING,
        "--address",
        ADDRESS,
    ).ok()
    net.run(T, "review", t["V2-MZ001"], "accept").ok()
    for _round in range(2):
        net.sync_all(D, T, V, V2)
    views = net.run_many(*((FILER_OF[key], "show", number, "--json") for key, number in t.items()))
    return {key: view.ok().json() for key, view in zip(t, views, strict=True)}


@pytest.fixture(scope="module")
def supplemented(net: Network, filed: Filed, decided: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The village hands in everything the district asked for; the district
    sees it and accepts; the acceptance comes back to the village."""
    number = filed.trackings["SB001"]
    out = {"village_supplement": net.run(V, "supplement", number, "--json").ok().json()}
    net.sync_all(V, T)
    out["district_after_supplement"] = show(net, D, number)
    out["district_accept"] = net.run(D, "review", number, "accept", "--json").ok().json()
    net.sync_all(T, V)
    out["village_after_accept"] = show(net, V, number)
    return out


@pytest.fixture(scope="module")
def published(
    net: Network, filed: Filed, decided: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The city publishes a changed catalog (a renamed item and a 2027
    calendar); it goes down district → town → village, and to village2."""
    doc = json.loads(DEMO_CATALOG.read_text(encoding="utf-8"))
    doc["version"] = int(doc["version"]) + 1
    doc["published"] = "2026-12-01"
    renamed = "老年人优待证办理（同步测试版）"
    for item in doc["items"]:
        if item["code"] == "LL001":
            item["name"] = renamed
    doc["calendar"] = {
        "2027": {
            "holidays": [
                "2027-01-01",
                "2027-02-08",
                "2027-02-09",
                "2027-02-10",
                "2027-02-11",
                "2027-02-12",
                "2027-10-01",
                "2027-10-04",
                "2027-10-05",
                "2027-10-06",
                "2027-10-07",
            ],
            "workdays": ["2027-02-20", "2027-10-09"],
        }
    }
    path = tmp_path_factory.mktemp("catalog") / "catalog-2027.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    mz = filed.trackings["MZ001"]
    before = {
        "village_mz": show(net, V, mz),
        "village_list": net.run(V, "catalog", "list", "--json").ok().json(),
    }
    publish = net.run(C, "catalog", "publish", str(path), "--json").ok().json()
    net.sync_all(D, T, V, V2)
    views = [
        r.ok().json()
        for r in net.run_many(
            *((name, "catalog", "list", "--json") for name in ALL),
            (V, "catalog", "show", "LL001", "--json"),
            (V, "show", mz, "--json"),
            (T, "show", mz, "--json"),
        )
    ]
    return {
        "renamed": renamed,
        "publish": publish,
        "before": before,
        "lists": dict(zip(ALL, views[: len(ALL)], strict=True)),
        "village_show": views[len(ALL)],
        "village_years": [r[0] for r in net.query(V, "SELECT year FROM calendar_years")],
        "village_mz": views[len(ALL) + 1],
        "town_mz": views[len(ALL) + 2],
    }


# -- the journey -----------------------------------------------------------------------------


def test_city_sync_without_parent_exits_0(filed: Filed) -> None:
    assert filed.city_sync.returncode == 0, filed.city_sync.stderr


@pytest.mark.parametrize("key", ["MZ001", "SB001", "GJ001", "V2-MZ001"])
def test_application_reaches_its_office_exactly_once(filed: Filed, key: str) -> None:
    number = filed.trackings[key]
    office = OFFICE_OF[key]
    found = rows_for(filed.lists[office], number)
    assert len(found) == 1, found
    assert found[0]["status"] == "received"
    assert found[0]["office"] == NODES[office].code
    assert found[0]["origin"] == NODES[FILER_OF[key]].code
    for other in OFFICES:
        if other != office:
            assert rows_for(filed.lists[other], number) == [], f"{key} listed at {other}"
    # The filer lists it once, under its office.
    mine = rows_for(filed.lists[FILER_OF[key]], number)
    assert [r["office"] for r in mine] == [NODES[office].code]


def test_relays_hold_no_application_row(net: Network, filed: Filed) -> None:
    for key, number in filed.trackings.items():
        holders = [
            name
            for name in OFFICES
            if net.query(
                name,
                "SELECT 1 FROM applications WHERE tracking = ? AND office = ?",
                (number, NODES[name].code),
            )
        ]
        assert holders == [OFFICE_OF[key]], key


def test_town_decision_comes_back_to_village(decided: dict[str, dict[str, Any]]) -> None:
    view = decided["MZ001"]
    assert view["status"] == "accepted"
    counts = kinds(view)
    assert counts["filed"] == 1 and counts["received"] == 1 and counts["accepted"] == 1, counts


def test_district_supplement_request_comes_back_once_with_everything_missing(
    decided: dict[str, dict[str, Any]],
) -> None:
    view = decided["SB001"]
    assert view["status"] == "needs_supplement"
    assert sorted(view["missing"]) == sorted(SUPPLEMENT_MISSING)
    counts = kinds(view)
    assert counts["supplement_requested"] == 1 and counts["received"] == 1, counts


def test_city_completion_comes_back_once_with_postal_delivery(decided: dict[str, dict[str, Any]]) -> None:
    view = decided["GJ001"]
    assert view["status"] == "completed"
    assert view["delivery"] == {
        "method": "post",
        "post_tracking": POST_TRACKING,
        "address": "山东省淄博市张店区南定镇****",
    }
    counts = kinds(view)
    assert counts["received"] == 1 and counts["accepted"] == 1 and counts["completed"] == 1, counts


def test_supplement_reaches_the_district_and_its_acceptance_comes_back(
    supplemented: dict[str, dict[str, Any]],
) -> None:
    assert supplemented["village_supplement"]["status"] == "received"
    district = supplemented["district_after_supplement"]
    assert district["status"] == "received"
    assert district["missing"] == []
    done = [e for e in district["history"] if e["kind"] == "supplemented"]
    assert len(done) == 1
    assert sorted(done[0]["body"]["materials"]) == sorted(SUPPLEMENT_MISSING)
    assert supplemented["district_accept"]["status"] == "accepted"
    village = supplemented["village_after_accept"]
    assert village["status"] == "accepted"
    counts = kinds(village)
    assert counts["supplement_requested"] == 1 and counts["supplemented"] == 1, counts
    assert counts["accepted"] == 1, counts


def test_published_catalog_reaches_every_node(published: dict[str, Any]) -> None:
    renamed = published["renamed"]
    before = {i["code"]: i["name"] for i in published["before"]["village_list"]}
    assert before["LL001"] != renamed
    for name in ALL:
        names = {i["code"]: i["name"] for i in published["lists"][name]}
        assert names["LL001"] == renamed, name
    assert published["village_show"]["name"] == renamed
    assert 2027 in published["village_years"]


def test_published_calendar_gives_the_same_due_date_at_office_and_village(published: dict[str, Any]) -> None:
    village, town = published["village_mz"], published["town_mz"]
    assert town["due_state"] == "known" and town["due"]
    assert village["due_state"] == "known"
    assert village["due"] == town["due"]


def test_second_village_files_a_town_item_through_the_district(filed: Filed) -> None:
    number = filed.trackings["V2-MZ001"]
    assert [r["status"] for r in rows_for(filed.lists[T], number)] == ["received"]
    assert rows_for(filed.lists[D], number) == []
    assert rows_for(filed.lists[V], number) == []


def test_town_decision_comes_back_to_the_village_enrolled_at_the_district(
    decided: dict[str, dict[str, Any]],
) -> None:
    view = decided["V2-MZ001"]
    assert view["status"] == "accepted", view["status"]
    counts = kinds(view)
    assert counts["received"] == 1 and counts["accepted"] == 1, counts


def _find(files: dict[Path, bytes], needle: bytes) -> list[str]:
    return [str(path) for path, data in files.items() if needle in data]


def test_no_personal_data_in_clear_at_relays_and_villages(
    net: Network,
    filed: Filed,
    decided: dict[str, Any],
    supplemented: dict[str, Any],
    published: dict[str, Any],
) -> None:
    # What each node may hold only sealed: relayed applications, and a
    # village's own filings.
    never: dict[str, list[tuple[str, bytes]]] = {
        T: [*SB_RES.secrets().items(), *GJ_RES.secrets().items(), ("bank", GJ_BANK_ACCOUNT.encode())],
        D: [*GJ_RES.secrets().items(), *V2_RES.secrets().items(), ("bank", GJ_BANK_ACCOUNT.encode())],
        V: [
            *MZ_RES.secrets().items(),
            *SB_RES.secrets().items(),
            *GJ_RES.secrets().items(),
            ("bank", GJ_BANK_ACCOUNT.encode()),
        ],
        V2: list(V2_RES.secrets().items()),
    }
    found = {}
    for name, needles in never.items():
        files = net.home_bytes(name)
        assert any(p.name == "daiban.db" for p in files), name
        for label, needle in needles:
            hits = _find(files, needle)
            if hits:
                found[(name, label, needle.decode())] = hits
    assert found == {}
    # The scan can find what is there: the masked summary the village keeps
    # is plain UTF-8 in its database files.
    village_files = net.home_bytes(V)
    for view in (decided["MZ001"], decided["GJ001"]):
        masked = view["applicant"]
        assert "*" in masked["name"] and "*" in masked["phone"]
        assert _find(village_files, masked["name"].encode()), masked
        assert _find(village_files, masked["phone"].encode()), masked
    # And the sealed data is really there, for the office to open in memory.
    town_view = show(net, T, filed.trackings["MZ001"])
    assert town_view["personal"]["id_number"] == MZ_RES.id_number


# -- the HTTP surface ----------------------------------------------------------------------


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, Any]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            status, ctype, raw = resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as exc:
        status, ctype, raw = exc.code, exc.headers.get("Content-Type", ""), exc.read()
    return status, ctype, protocol.decode(raw)


def server_counter(net: Network, server: str, child: str) -> int:
    rows = net.query(server, "SELECT counter FROM peers WHERE code = ?", (NODES[child].code,))
    return int(rows[0][0]) if rows else 0


def signed(
    net: Network,
    path: str,
    value: Any,
    *,
    node_code: str,
    keys: NodeKeys,
    server: str = T,
    counter: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    body = protocol.encode(value)
    if counter is None:
        known = net.query(server, "SELECT counter FROM peers WHERE code = ?", (node_code,))
        counter = (int(known[0][0]) if known else 0) + 1
    message = protocol.request_message("POST", path, body, counter, node_code, NODES[server].code)
    headers = {
        protocol.H_NODE: node_code,
        protocol.H_COUNTER: str(counter),
        protocol.H_SIG: b64(keys.signature(message)),
        "Content-Type": protocol.CONTENT_TYPE,
    }
    return body, headers


def signed_raw(net: Network, path: str, body: bytes, keys: NodeKeys) -> dict[str, str]:
    """Headers signing any body bytes at all as the village, for the town."""
    known = net.query(T, "SELECT counter FROM peers WHERE code = ?", (NODES[V].code,))
    counter = (int(known[0][0]) if known else 0) + 1
    message = protocol.request_message("POST", path, body, counter, NODES[V].code, NODES[T].code)
    return {
        protocol.H_NODE: NODES[V].code,
        protocol.H_COUNTER: str(counter),
        protocol.H_SIG: b64(keys.signature(message)),
        "Content-Type": protocol.CONTENT_TYPE,
    }


def stored(net: Network, name: str) -> dict[str, int]:
    counts = {
        table: net.count(name, table)
        for table in ("envelopes", "applications", "events", "personal", "outbox", "conflicts")
    }
    counts["counter"] = server_counter(net, name, V)
    return counts


def assert_error(status: int, ctype: str, data: Any, want_status: int, want_code: str) -> None:
    assert status == want_status, data
    assert ctype.startswith(protocol.CONTENT_TYPE)
    assert isinstance(data, dict)
    assert data["ok"] is False
    assert data["status"] == want_status
    assert data["code"] == want_code
    assert isinstance(data["error"], str) and data["error"]


def village_keys(net: Network) -> NodeKeys:
    return NodeKeys.load(net.home(V))


def pending_raw(net: Network, resident: Resident) -> str:
    """File an application at the village without syncing it; its raw filing
    envelope as it waits in the village's outbox."""
    number = file_application(net, V, "SF002", resident)
    rows = net.query(
        V,
        "SELECT e.raw FROM outbox o JOIN envelopes e ON e.id = o.envelope_id "
        "WHERE o.hop = '^' AND e.tracking = ? AND e.kind = 'filed'",
        (number,),
    )
    assert len(rows) == 1
    raw: str = rows[0][0]
    return raw


def test_tampered_envelope_is_refused_and_nothing_stored(net: Network, filed: Filed) -> None:
    raw = pending_raw(net, Resident("周文华", "19660909", "068", "13905331005"))
    data = json.loads(raw)
    at = data["at"]
    flipped = at[:-7] + ("1" if at[-7] != "1" else "2") + at[-6:]  # a digit of the seconds
    assert flipped != at
    data["at"] = flipped
    tampered = canonical(data).decode()
    assert envelope.parse(tampered).sig == envelope.parse(raw).sig
    before = stored(net, T)
    body, headers = signed(
        net,
        protocol.PUSH,
        {"certs": [], "envelopes": [tampered]},
        node_code=NODES[V].code,
        keys=village_keys(net),
    )
    status, ctype, answer = _post(net.url(T) + protocol.PUSH, body, headers)
    assert_error(status, ctype, answer, 422, "refused")
    assert [r["code"] for r in answer["refused"]] == ["bad_signature"]
    assert stored(net, T) == before


def test_forged_origin_is_refused_and_nothing_stored(net: Network, filed: Filed) -> None:
    raw = pending_raw(net, Resident("吴海燕", "19811111", "079", "13905331006"))
    real = envelope.parse(raw)
    forged = envelope.make(
        village_keys(net),  # the village's key, not 370303101202's
        id=random_id(),
        origin=NODES[V2].code,
        seq=real.seq,
        kind=real.kind,
        to=real.to,
        tracking=real.tracking,
        actor=real.actor,
        at=real.at,
        body=real.body,
        sealed=real.sealed,
        sealed_to=real.sealed_to,
    )
    before = stored(net, T)
    body, headers = signed(
        net,
        protocol.PUSH,
        {"certs": [], "envelopes": [forged.raw]},
        node_code=NODES[V].code,
        keys=village_keys(net),
    )
    status, ctype, answer = _post(net.url(T) + protocol.PUSH, body, headers)
    assert_error(status, ctype, answer, 422, "refused")
    assert [r["code"] for r in answer["refused"]] == ["forged_origin"]
    assert stored(net, T) == before


def test_replayed_request_is_refused_and_the_village_still_syncs(net: Network, filed: Filed) -> None:
    raw = pending_raw(net, Resident("郑晓东", "19690305", "081", "13905331007"))
    body, headers = signed(
        net, protocol.PUSH, {"certs": [], "envelopes": [raw]}, node_code=NODES[V].code, keys=village_keys(net)
    )
    status, _ctype, answer = _post(net.url(T) + protocol.PUSH, body, headers)
    assert status == 200, answer
    assert [r["status"] for r in answer["results"]] == ["stored"]
    before = stored(net, T)
    status, ctype, answer = _post(net.url(T) + protocol.PUSH, body, headers)
    assert_error(status, ctype, answer, 409, "replayed")
    assert stored(net, T) == before
    # The village's own counter is now behind the town's: its sync catches up,
    # and the envelope the test pushed for it counts as already there.
    report = net.sync(V)
    assert report["left"] == 0 and report["duplicates"] >= 1, report


def test_unknown_and_badly_signed_nodes_are_refused(net: Network, filed: Filed) -> None:
    before = stored(net, T)
    stranger = "370303101299"
    body, headers = signed(
        net, protocol.PUSH, {"certs": [], "envelopes": []}, node_code=stranger, keys=NodeKeys.generate()
    )
    assert_error(*_post(net.url(T) + protocol.PUSH, body, headers), 401, "unknown_node")
    # The village's code, but another key.
    body, headers = signed(
        net, protocol.PULL, {"cursor": 0, "limit": 0}, node_code=NODES[V].code, keys=NodeKeys.generate()
    )
    assert_error(*_post(net.url(T) + protocol.PULL, body, headers), 401, "bad_signature")
    # No signature at all.
    headers = {"Content-Type": protocol.CONTENT_TYPE}
    body = protocol.encode({"certs": [], "envelopes": []})
    assert_error(*_post(net.url(T) + protocol.PUSH, body, headers), 401, "unauthenticated")
    assert stored(net, T) == before


def test_bad_bodies_are_refused_and_nothing_stored(net: Network, filed: Filed) -> None:
    url = net.url(T) + protocol.PUSH
    keys = village_keys(net)
    before = stored(net, T)
    # Over the size limit, as read from the socket.
    huge = b"\0" * (protocol.MAX_BODY + 1)
    _body, headers = signed(net, protocol.PUSH, {}, node_code=NODES[V].code, keys=keys)
    assert_error(*_post(url, huge, headers), 413, "too_large")
    # Small on the wire, too large once decompressed: unsigned, it is refused
    # before it is inflated; signed, once inflated past the limit.
    bomb = zlib.compress(b" " * (protocol.MAX_DECOMPRESSED + 1024), 9)
    assert len(bomb) < protocol.MAX_BODY
    assert_error(*_post(url, bomb, {"Content-Type": protocol.CONTENT_TYPE}), 401, "unauthenticated")
    assert_error(*_post(url, bomb, signed_raw(net, protocol.PUSH, bomb, keys)), 413, "too_large")
    # Not zlib; zlib but not JSON (signed: an unsigned body is never read).
    for raw in (b"plain text", zlib.compress(b"{not json")):
        assert_error(*_post(url, raw, {"Content-Type": protocol.CONTENT_TYPE}), 401, "unauthenticated")
        assert_error(*_post(url, raw, signed_raw(net, protocol.PUSH, raw, keys)), 400, "malformed")
    # A signed push whose envelopes are not a list.
    body, headers = signed(net, protocol.PUSH, {"envelopes": "x"}, node_code=NODES[V].code, keys=keys)
    assert_error(*_post(url, body, headers), 400, "malformed")
    # Wrong content type, to push and to enroll.
    good = protocol.encode({"certs": [], "envelopes": []})
    assert_error(*_post(url, good, {"Content-Type": "application/json"}), 415, "unsupported")
    assert_error(
        *_post(net.url(T) + protocol.ENROLL, b"{}", {"Content-Type": "application/json"}), 415, "unsupported"
    )
    assert stored(net, T) == before


def test_a_town_cannot_certify_outside_its_prefix(net: Network, filed: Filed) -> None:
    town_keys = NodeKeys.load(net.home(T))
    chain_rows = net.query(T, "SELECT chain FROM certs WHERE code = ?", (NODES[T].code,))
    chain = json.loads(chain_rows[0][0])
    root = net.query(T, "SELECT value FROM node WHERE key = 'root_fingerprint'")[0][0]
    assert certs.verify_chain(chain, root).code == NODES[T].code  # the real chain is good
    other = NodeKeys.generate()
    outside = "370304101201"
    with pytest.raises(certs.CertError) as refused:
        certs.issue(
            issuer_code=NODES[T].code,
            issuer_sign=town_keys.sign,
            code=outside,
            name="外区村",
            sign=other.sign_public,
            enc=other.enc_public,
            serial=random_id(),
            issued_at="2026-11-27T10:00:00+08:00",
        )
    assert refused.value.code == "name_constraint"
    # The same certificate made by hand, signed with the town's real key.
    draft = certs.Cert(
        outside,
        "外区村",
        "village",
        other.sign_public,
        other.enc_public,
        NODES[T].code,
        random_id(),
        "2026-11-27T10:00:00+08:00",
        b"",
    )
    forged = certs.Cert(**{**draft.__dict__, "sig": town_keys.sign.sign(canonical(draft.unsigned()))})
    with pytest.raises(certs.CertError) as refused:
        certs.verify_chain([*chain, forged.as_dict()], root)
    assert refused.value.code == "name_constraint"
    # Over the command line: the town will not issue an enrollment code for it.
    codes_before = net.count(T, "enroll_codes")
    result = net.run(T, "enroll-code", "--code", outside, "--name", "外区村", "--json")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "370304101201" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert net.count(T, "enroll_codes") == codes_before


def test_revoked_village_is_refused(net: Network, filed: Filed) -> None:
    """Last: the village stays revoked for the rest of the module."""
    revoked = net.run(T, "revoke", NODES[V].code, "--json").ok().json()
    assert revoked["code"] == NODES[V].code
    # Something left to push, so the refusal cannot hide behind an empty outbox.
    file_application(net, V, "SF002", Resident("冯玉梅", "19720214", "092", "13905331008"))
    before = stored(net, T)
    result = net.run(V, "sync")
    assert result.returncode == 1
    assert "revoked" in result.stderr.lower()
    body, headers = signed(
        net, protocol.PULL, {"cursor": 0, "limit": 0}, node_code=NODES[V].code, keys=village_keys(net)
    )
    assert_error(*_post(net.url(T) + protocol.PULL, body, headers), 403, "revoked")
    body, headers = signed(
        net, protocol.PUSH, {"certs": [], "envelopes": []}, node_code=NODES[V].code, keys=village_keys(net)
    )
    assert_error(*_post(net.url(T) + protocol.PUSH, body, headers), 403, "revoked")
    assert stored(net, T) == before


def test_network_processes_are_stopped(tmp_path: Path) -> None:
    """The helper stops what it started, by PID, on the way out."""
    with network_at(tmp_path / "net") as network:
        network.init(C)
        (url,) = network.start(C)
        with urllib.request.urlopen(url + protocol.HEALTH, timeout=10) as resp:
            assert json.loads(resp.read())["code"] == "3703"
        proc = network.servers[C].proc
    deadline = time.monotonic() + 15
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.returncode is not None
    with pytest.raises(OSError):
        urllib.request.urlopen(url + protocol.HEALTH, timeout=2)
