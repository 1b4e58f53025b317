"""The UI stays out of the core: node/ and sync/ never import textual, and
`daiban --help` imports neither textual nor aiohttp (which keeps it fast)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import DAIBAN


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
