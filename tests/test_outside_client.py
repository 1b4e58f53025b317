"""A client written from the documents alone (tests/wire_client.py) against
a real ``daiban serve``: it enrolls with a code from the real
``daiban enroll-code --json``, pushes a sealed ``filed`` envelope it built
itself, pulls the office's receipt, and verifies every answer's signature
with the parent's certified key. Neither file imports anything from
``daiban``: the network is made with the real console script."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator, Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT7, DRAFT202012

from tests import wire_client
from tests.wire_client import Client, WireError

ROOT = Path(__file__).resolve().parent.parent
DAIBAN = str(Path(sys.executable).with_name("daiban"))
SERVING = re.compile(r"^Serving (http://\S+) ")
CITY, DISTRICT, TOWN = "3703", "370303", "370303101"
OUTSIDER = "370303101209"  # a village of the town that only the outside client plays
RESIDENT = {"name": "赵秀英", "id_number": "370303198001010012", "phone": "13805331234"}
OPENAPI_URI = "https://daiban.example/docs/openapi.json"


def run(home: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAIBAN_")}
    env.update({"DAIBAN_HOME": str(home), "DAIBAN_LANG": "en", "DAIBAN_AGENT": "外部测试员"})
    proc = subprocess.run([DAIBAN, *args], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, f"daiban {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


class Servers:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, home: Path) -> tuple[subprocess.Popen[bytes], str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAIBAN_")}
        env.update({"DAIBAN_HOME": str(home), "DAIBAN_LANG": "en"})
        out = home / "serve.out"
        with out.open("wb") as stdout, (home / "serve.err").open("wb") as stderr:
            proc = subprocess.Popen(
                [DAIBAN, "serve", "--host", "127.0.0.1", "--port", "0"],
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        self.procs.append(proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            lines = out.read_text(encoding="utf-8", errors="replace").split("\n", 1)
            if len(lines) == 2:
                match = SERVING.match(lines[0])
                assert match, lines[0]
                return proc, match.group(1)
            assert proc.poll() is None, (home / "serve.err").read_text()
            time.sleep(0.05)
        raise AssertionError("serve did not print its URL")

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)
        if proc in self.procs:
            self.procs.remove(proc)


@pytest.fixture
def town(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """City, district and town homes made and enrolled with the real CLI; the
    town serving. Yields the town's home and URL."""
    homes = {CITY: tmp_path / "city", DISTRICT: tmp_path / "district", TOWN: tmp_path / "town"}
    roles = {CITY: "city", DISTRICT: "district", TOWN: "town"}
    names = {CITY: "淄博市", DISTRICT: "张店区", TOWN: "南定镇"}
    for code, home in homes.items():
        run(home, "init", "--role", roles[code], "--code", code, "--name", names[code])
    servers = Servers()
    try:
        for parent, child in ((CITY, DISTRICT), (DISTRICT, TOWN)):
            proc, url = servers.start(homes[parent])
            issued = json.loads(
                run(homes[parent], "enroll-code", "--code", child, "--name", names[child], "--json")
            )
            run(homes[child], "enroll", url, issued["code"])
            servers.stop(proc)
        _proc, url = servers.start(homes[TOWN])
        yield homes[TOWN], url
    finally:
        for proc in list(servers.procs):
            servers.stop(proc)


def openapi(name: str) -> Draft202012Validator:
    doc = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    schema = json.loads((ROOT / "daiban" / "schemas" / "envelope.schema.json").read_text(encoding="utf-8"))
    registry = Registry().with_resources(
        [
            (OPENAPI_URI, DRAFT202012.create_resource(doc)),
            (
                "https://daiban.example/daiban/schemas/envelope.schema.json",
                DRAFT202012.create_resource(schema),
            ),
        ]
    )
    return Draft202012Validator({"$ref": f"{OPENAPI_URI}#/components/schemas/{name}"}, registry=registry)


def body_schema(kind: str) -> Draft7Validator:
    """A kind's body schema (daiban/schemas/bodies/), its references to the
    envelope schema resolved from the files."""
    schemas = ROOT / "daiban" / "schemas"
    envelope = json.loads((schemas / "envelope.schema.json").read_text(encoding="utf-8"))
    body = json.loads((schemas / "bodies" / f"{kind}.schema.json").read_text(encoding="utf-8"))
    registry: Registry = Registry().with_resources(
        [
            ("https://daiban.example/schemas/envelope.schema.json", DRAFT202012.create_resource(envelope)),
            (body["$id"], DRAFT7.create_resource(body)),
        ]
    )
    return Draft7Validator(body, registry=registry)


def receipted(envelope: dict[str, Any], tracking: str) -> bool:
    """Whether an envelope is the office's receipt of ``tracking``: a lone
    `received`, or one of the receipts of a `receipts` envelope."""
    if envelope["kind"] == "received":
        return bool(envelope["tracking"] == tracking)
    if envelope["kind"] == "receipts":
        return any(r["tracking"] == tracking for r in envelope["body"]["receipts"])
    return False


def item_from(client: Client, town_home: Path, code: str) -> dict[str, Any]:
    """A catalog item: from the city manifest the parent handed over at
    enrollment if it held one (none has been published here), else as the
    office's own `daiban catalog show --json` prints it."""
    if client.manifest is not None:
        items = client.manifest["body"]["catalog"]["items"]
        return dict(next(i for i in items if i["code"] == code))
    item: dict[str, Any] = json.loads(run(town_home, "catalog", "show", code, "--json"))
    return item


def test_a_client_from_the_documents_alone_enrolls_pushes_pulls_and_verifies(town: tuple[Path, str]) -> None:
    town_home, url = town
    issued = json.loads(run(town_home, "enroll-code", "--code", OUTSIDER, "--name", "外部代办点", "--json"))
    openapi("EnrollCodeOutput").validate(issued)
    client = Client(url, OUTSIDER, "外部代办点")
    enrolled = client.enroll(issued["code"])
    assert enrolled.status == 200, enrolled.data
    openapi("EnrollResponse").validate(enrolled.data)
    assert client.parent == TOWN and client.verified == 1
    assert TOWN in client.offices

    item = item_from(client, town_home, "MZ001")
    tracking, text = client.filed(item, RESIDENT, {"family_size": 3, "monthly_income": 420})
    pushed = client.push([text])
    assert pushed.status == 200, pushed.data
    openapi("PushResponse").validate(pushed.data)
    assert [(r["id"], r["status"]) for r in pushed.data["results"]] == [(json.loads(text)["id"], "stored")]

    statuses: list[dict[str, Any]] = []
    for _round in range(20):  # the office applies what came in when it is idle: a few pulls at most
        pulled = client.pull()
        assert pulled.status == 200, pulled.data
        openapi("PullResponse").validate(pulled.data)
        statuses += [client.check_envelope(raw) for raw in pulled.data["envelopes"]]
        if any(receipted(e, tracking) for e in statuses):
            break
        time.sleep(0.2)
    # The office's receipt: in bulk (`receipts`, bodies/receipts.schema.json).
    receipt = next(e for e in statuses if receipted(e, tracking))
    assert receipt["kind"] == "receipts" and receipt["tracking"] is None
    assert receipt["origin"] == TOWN and receipt["to"] == OUTSIDER and receipt["body"]["office"] == TOWN
    body_schema(receipt["kind"]).validate(receipt["body"])
    Draft202012Validator(
        json.loads((ROOT / "daiban" / "schemas" / "envelope.schema.json").read_text(encoding="utf-8"))
    ).validate(receipt)
    acked = client.pull(limit=0)  # custody of what we stored ends at the town
    assert acked.status == 200 and acked.data["envelopes"] == []

    # The office opens what the outside client sealed: the resident is there.
    shown = json.loads(run(town_home, "show", tracking, "--json"))
    assert RESIDENT["name"] in json.dumps(shown, ensure_ascii=False)

    # A counter that fell behind: the verified 409 moves it, within bounds.
    before = client.counter
    client.counter = 0
    again = client.pull(limit=0)
    assert again.status == 200 and client.counter == before + 1

    # An error answer is signed and verified like any other.
    refused = client.push(["not an envelope"])
    assert refused.status == 422 and refused.data["code"] == "refused"
    assert client.verified >= 6


def test_an_altered_answer_does_not_verify(town: tuple[Path, str]) -> None:
    town_home, url = town
    issued = json.loads(run(town_home, "enroll-code", "--code", OUTSIDER, "--name", "外部代办点", "--json"))
    client = Client(url, OUTSIDER, "外部代办点")
    client.enroll(issued["code"])
    answer = client.pull(limit=0)
    assert answer.signature is not None
    binding = "A" * 86  # not the signature of the request this answered
    with pytest.raises(WireError):
        wire_client.check_answer(client.parent_sign, answer.signature, 200, answer.body, binding, TOWN)
    with pytest.raises(WireError):
        wire_client.check_answer(client.parent_sign, answer.signature, 200, answer.body + b"x", binding, TOWN)


def test_the_outside_client_imports_nothing_from_daiban() -> None:
    for path in (ROOT / "tests" / "wire_client.py", Path(__file__)):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n == "daiban" or n.startswith("daiban.") for n in names), (path.name, names)
    probe = (
        "import sys, tests.wire_client; print(sorted(m for m in sys.modules if m.split('.')[0] == 'daiban'))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
