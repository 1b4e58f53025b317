"""The layers hold: cli and tui above sync (transport) above node (journal,
store, domain) above trust (crypto, certificates, envelopes), pinned by the
import-linter contract in pyproject.toml; and no module reads or sets
another package's private names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "daiban"


def test_import_linter_contract_is_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "1 kept, 0 broken" in run.stdout


def test_node_never_imports_sync() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in (PACKAGE / "node").rglob("*.py")
        if "daiban.sync" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []


def _package_of(path: Path) -> str:
    """daiban/node/store.py -> daiban.node; daiban/cli.py -> daiban.cli."""
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts
    return ".".join(parts[:2]) if len(parts) > 2 else ".".join(parts)


def _private(name: str) -> bool:
    # `_` is gettext's conventional name, public by convention.
    return name.startswith("_") and not name.startswith("__") and name != "_"


def private_uses(path: Path, home: str | None = None) -> list[str]:
    """Private names of another package this module reads or sets: imported
    by name, or read as an attribute of anything but ``self``/``cls``."""
    home = home or _package_of(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("daiban"):
            theirs = ".".join(node.module.split(".")[:2])
            for alias in node.names:
                if _private(alias.name) and theirs != home:
                    found.append(f"{path.name}:{node.lineno} imports {node.module}.{alias.name}")
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            # Inside a package its modules share their privates; from outside,
            # an object of ours is reached only through its public names.
            if home in ("daiban.node", "daiban.trust"):
                continue
            found.append(f"{path.name}:{node.lineno} reads {ast.unparse(node)}")
    return found


def test_no_module_touches_another_packages_private_names() -> None:
    offenders = [use for path in sorted(PACKAGE.rglob("*.py")) for use in private_uses(path)]
    assert offenders == []


def test_the_private_name_check_catches_what_it_should(tmp_path: Path) -> None:
    sample = tmp_path / "probe.py"
    sample.write_text(
        "from daiban.node.journal import _secret\n"
        "def f(node):\n    node._take_seq()\n    self._fine = 1\n",
        encoding="utf-8",
    )
    found = private_uses(sample, home="daiban.sync")
    assert len(found) == 2
    assert "_secret" in found[0] and "node._take_seq" in found[1]
