"""The service templates in scripts/ stay true to the command line: the
systemd units scripts/install-systemd writes, and the command lines of the
Windows Task Scheduler script, parse with daiban's own argument parser and
mean what they say (watch, once, serve with the nightly window)."""

from __future__ import annotations

import configparser
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from daiban import cli
from daiban.sync.schedule import Window

ROOT = Path(__file__).resolve().parent.parent
INSTALL = ROOT / "scripts" / "install-systemd"
PS1 = ROOT / "scripts" / "windows" / "install-task.ps1"
DAIBAN = "/opt/daiban/bin/daiban"


def install(dest: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(INSTALL), *args, "--dest", str(dest), "--home", "/srv/daiban", "--user", "daiban",
         "--daiban", DAIBAN],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser


def exec_args(path: Path) -> list[str]:
    argv = shlex.split(unit(path)["Service"]["ExecStart"])
    assert argv[0] == DAIBAN
    return argv[1:]


@pytest.mark.parametrize(
    ("role", "extra", "files"),
    [
        ("village", (), ["daiban-watch.service"]),
        ("village", ("--timer",), ["daiban-sync.service", "daiban-sync.timer"]),
        ("district", ("--window", "02:00-04:30"), ["daiban-serve.service"]),
    ],
)
def test_systemd_units_run_real_commands(
    role: str, extra: tuple[str, ...], files: list[str], tmp_path: Path
) -> None:
    proc = install(tmp_path, role, *extra)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(files)
    for path in tmp_path.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"@[A-Z]+@", text), path.name  # every placeholder filled
        if path.suffix == ".timer":
            assert unit(path)["Timer"]["OnUnitActiveSec"] == "10min"
            continue
        assert unit(path)["Service"]["User"] == "daiban"
        args = cli.build_parser().parse_args(exec_args(path))
        assert args.home == "/srv/daiban"
        if path.name == "daiban-watch.service":
            assert args.command == "sync" and args.watch
            assert unit(path)["Service"]["Restart"] == "on-failure"
        elif path.name == "daiban-sync.service":
            assert args.command == "sync" and args.once and not args.watch
        else:
            assert args.command == "serve" and args.port == 8720 and args.host == "0.0.0.0"
            assert args.forward_window == Window(120, 270)


def test_install_systemd_refuses_bad_usage(tmp_path: Path) -> None:
    assert install(tmp_path, "mars").returncode == 2
    assert install(tmp_path, "village", "--bogus").returncode == 2
    assert not list(tmp_path.iterdir())


def _ps1_list(text: str, name: str, values: dict[str, str]) -> list[str]:
    match = re.search(rf"^\${name} = @\((.*)\)$", text, re.M)
    assert match, name
    items = []
    for item in re.findall(r"'[^']*'|\"[^\"]*\"|\$\w+", match.group(1)):
        item = item.strip("'\"")
        items.append(values.get(item.lstrip("$"), item) if item.startswith("$") else item)
    return items


def test_the_windows_task_runs_real_commands() -> None:
    text = PS1.read_text(encoding="utf-8")
    defaults = dict(re.findall(r"\[(?:string|int)\]\$(\w+) = \"?([^\",\s]*)\"?", text))
    assert defaults["ServeHost"] == "0.0.0.0" and defaults["Port"] == "8720"
    watch = cli.build_parser().parse_args(["--home", r"D:\daiban", *_ps1_list(text, "WatchArgs", defaults)])
    assert watch.command == "sync" and watch.watch
    serve = cli.build_parser().parse_args(["--home", r"D:\daiban", *_ps1_list(text, "ServeArgs", defaults)])
    assert serve.command == "serve" and serve.port == 8720 and serve.forward_window == Window(60, 300)
    # Restarted when it stops, never cut off by a time limit, started on its own.
    for needle in ("-RestartCount", "ExecutionTimeLimit ([TimeSpan]::Zero)", "-AtLogOn", "-AtStartup"):
        assert needle in text, needle
