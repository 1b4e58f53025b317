"""Fixtures that build real nodes: real SQLite files in temp homes, and the
real ``daiban`` command run in a subprocess."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from daiban import i18n
from daiban.node.applications import Filing, Node
from daiban.node.clock import CST
from daiban.node.home import init_home

DATA = Path(__file__).parent / "data"
# Real resident ID numbers from REFERENCE.md (check characters verified there).
ZIBO_ID = "370303198001010012"
BEIJING_ID = "11010519491231002X"
GUANGDONG_ID = "440524188001010014"  # 1880: before 1900, refused
# The installed console script, as an agent runs it.
DAIBAN = str(Path(sys.executable).with_name("daiban"))

# Tests never assert on their own speed, and the suite runs two at a time
# (scripts/test) on machines busy with other work: no property test has a
# deadline or fails for being slow (a test's own @settings inherits this
# unless it names these settings itself).
settings.register_profile("daiban", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("daiban")


@pytest.fixture(autouse=True)
def _language() -> Iterator[None]:
    """Library tests run in English unless they set another language."""
    i18n.set_language("en")
    yield
    i18n.set_language("en")


class FrozenClock:
    """A clock tests can set and move; China Standard Time."""

    def __init__(self, moment: dt.datetime) -> None:
        self.moment = moment

    def __call__(self) -> dt.datetime:
        return self.moment

    def set(self, text: str) -> None:
        self.moment = dt.datetime.fromisoformat(text).replace(tzinfo=CST)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(dt.datetime(2026, 11, 27, 10, 0, tzinfo=CST))


@pytest.fixture
def make_node(tmp_path: Path, clock: FrozenClock) -> Iterator[Callable[..., Node]]:
    """Make a real node home; returns the open Node (closed after the test)."""
    nodes: list[Node] = []

    def make(
        role: str = "village",
        code: str = "370303101201",
        name: str = "大张村代办点",
        catalog: Path | None = None,
    ) -> Node:
        node = init_home(
            tmp_path / f"home-{code}", role=role, code=code, name=name, catalog_path=catalog, clock=clock
        )
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.close()


def filing(**overrides: object) -> Filing:
    values: dict[str, object] = {
        "item": "SB001",
        "name": "王秀兰",
        "id_number": ZIBO_ID,
        "phone": "13805331234",
        "fields": {"contribution_grade": "500"},
    }
    values.update(overrides)
    return Filing(**values)  # type: ignore[arg-type]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> object:
        return json.loads(self.stdout)


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., Result]:
    """Run the real ``daiban`` command in a subprocess, on a temp home by default."""
    default_home = tmp_path / "cli-home"

    def run(
        *args: str,
        home: Path | None = None,
        lang: str = "en",
        env: dict[str, str] | None = None,
        stdin: str | None = None,
    ) -> Result:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("DAIBAN_")}
        full_env.update(
            {"DAIBAN_HOME": str(home or default_home), "DAIBAN_LANG": lang, "DAIBAN_AGENT": "测试代办员"}
        )
        full_env.update(env or {})
        proc = subprocess.run(
            [DAIBAN, *args],
            capture_output=True,
            text=True,
            env=full_env,
            input=stdin,
            timeout=120,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run
