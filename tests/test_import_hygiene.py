"""The UI stays out of the core: node/ and sync/ never import textual, and
`daiban --help` imports neither textual nor aiohttp (which keeps it fast);
`daiban report` loads no network, UI or signing code nor sqlite-utils,
`daiban sync` no UI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DAIBAN
from tests.sync_net import network_at


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


@pytest.mark.parametrize(
    "module",
    [
        "daiban.node.applications",
        "daiban.node.home",
        "daiban.node.ledger",
        "daiban.node.store",
        "daiban.sync",
        "daiban.cli",
        "daiban.render",
    ],
)
def test_core_does_not_import_ui(module: str) -> None:
    loaded = _loaded_after(f"import {module}")
    assert module in loaded
    assert "textual" not in loaded
    assert "aiohttp" not in loaded


def test_help_imports_no_heavy_modules() -> None:
    code = (
        "import sys, io, contextlib\n"
        "from daiban import cli\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    try:\n"
        "        cli.main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
    )
    loaded = _loaded_after(code)
    for heavy in ("textual", "aiohttp", "sqlite_utils", "jsonschema", "pypinyin", "openpyxl", "rich"):
        assert heavy not in loaded, heavy


def test_help_runs() -> None:
    proc = subprocess.run([DAIBAN, "--help"], capture_output=True, text=True, check=True)
    assert "apply" in proc.stdout


def test_reading_commands_do_not_load_cryptography() -> None:
    # `daiban list` and `show` must start fast on old PCs: the node layer
    # imports the cryptography library only when it seals, signs or opens.
    loaded = _loaded_after("import daiban.node.home, daiban.node.applications, daiban.render")
    assert "cryptography" not in loaded
    assert "daiban.trust.crypto" not in loaded


def _command_loads(args: list[str], env: dict[str, str]) -> set[str]:
    """The modules a real ``daiban ARGS`` process has loaded when it is done
    (the command itself, run in a child interpreter; its exit code checked)."""
    code = (
        "import sys, io, contextlib\n"
        "from daiban import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    rc = cli.main({args!r})\n"
        "print(rc)\n"
        "print('\\n'.join(sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    first, *loaded = proc.stdout.split()
    assert first == "0", proc.stdout + proc.stderr
    return set(loaded)


def test_report_loads_no_network_ui_or_signing(tmp_path: Path) -> None:
    # `daiban report` at a city with nothing of its own to publish reads
    # counts: no HTTP, no UI, no cryptography (node/statistics.py loads the
    # journal and the signing library only when it publishes), and no
    # sqlite-utils (the store reads with sqlite3; node/migrations.py loads it
    # only when a migration is pending, as at `init` here).
    home = tmp_path / "city"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAIBAN_")}
    env.update({"DAIBAN_HOME": str(home), "DAIBAN_LANG": "en"})
    subprocess.run(
        [DAIBAN, "init", "--role", "city", "--code", "3703", "--name", "淄博市"],
        env=env,
        check=True,
        capture_output=True,
    )
    loaded = _command_loads(["report", "--json", "--by", "item"], env)
    assert "daiban.node.report" in loaded
    heavies = ("aiohttp", "textual", "rich", "cryptography", "daiban.trust.crypto", "daiban.node.journal")
    for heavy in (*heavies, "sqlite_utils"):
        assert heavy not in loaded, heavy


def test_sync_loads_no_ui(tmp_path: Path) -> None:
    # A real sync, district to its city's real server: what it needs, and
    # none of the UI or the spreadsheet and pinyin libraries.
    with network_at(tmp_path / "net") as net:
        net.build(("city", "district"))
        loaded = _command_loads(["sync", "--json"], net.env(net.home("district")))
    assert "daiban.sync.client" in loaded
    assert "aiohttp" in loaded
    for heavy in ("textual", "rich", "openpyxl", "pypinyin"):
        assert heavy not in loaded, heavy
