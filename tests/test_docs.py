"""Every command has help text and appears in the README, and the README's
first lines give the two commands that work on a fresh clone."""

from __future__ import annotations

import argparse
from pathlib import Path

from daiban import cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                for inner in sub._actions:
                    if isinstance(inner, argparse._SubParsersAction):
                        for inner_name, inner_sub in inner.choices.items():
                            found[f"{name} {inner_name}"] = inner_sub
    return found


def test_every_command_has_help_and_is_documented() -> None:
    commands = _commands()
    assert {"init", "apply", "list", "show", "review", "evaluate", "catalog list", "catalog show"} <= set(
        commands
    )
    for name, sub in commands.items():
        assert sub.description, f"{name} has no help text"
        assert f"`{name}" in README or f"| `{name.split()[0]}" in README, f"{name} not in README"


def test_readme_starts_with_the_two_commands() -> None:
    head = README.splitlines()[:8]
    assert any(line.startswith("scripts/demo") for line in head)
    assert any(line.startswith("scripts/test") for line in head)
    for script in ("scripts/demo", "scripts/test", ".ci/run"):
        path = ROOT / script
        assert path.exists() and path.stat().st_mode & 0o111, script
    assert "scripts/test" in (ROOT / ".ci/run").read_text()


def test_the_architecture_page_holds_the_authorisation_table() -> None:
    from daiban.node import authority

    page = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert authority.table_markdown("en") in page
    for kind in authority.TABLE:
        assert f"| `{kind}` |" in page


def test_the_quarantine_command_is_in_the_readme() -> None:
    assert "`quarantine" in README
