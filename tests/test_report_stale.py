"""Stale children in ``daiban report`` at a district and the city, over real
``daiban serve`` processes (tests/sync_net.py) and a real USB-stick bundle.

On 1 June village2 syncs with the district over HTTP and the district with
the city; the town stays silent until 4 June, when its bundle is taken in at
the district. On 5 June (every command's clock moved with DAIBAN_CLOCK) the
district's report lists village2 as stale (four days silent) and not the
town (one day); the city's lists the district. --stale-after moves the line;
a bad one is one line and exit 2, with nothing stored changed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len

from tests.sync_net import Network, Result

C, D, T, V2 = "city", "district", "town", "village2"
DAY0 = "2026-06-01T09:00:00"  # the servers' clock, and village2's and the district's last sync
TOWN_SYNC = "2026-06-04T09:00:00"  # the town's bundle reaches the district
REPORT_DAY = "2026-06-05T09:00:00"
DAY = 86400


class ClockedNetwork(Network):
    """Every command (and server, from its start) on one frozen clock."""

    clock: str = DAY0
    lang: str = "en"

    def env(self, home: Path) -> dict[str, str]:
        return {**super().env(home), "DAIBAN_CLOCK": self.clock, "DAIBAN_LANG": self.lang}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClockedNetwork]:
    root = tmp_path_factory.mktemp("report-stale") / "net"
    root.mkdir()
    net = ClockedNetwork(root)
    try:  # every server it started is stopped, by PID, whatever happens
        net.build((C, D, T, V2))
        net.sync_all(V2, D)  # on day 0, over HTTP
        net.clock = TOWN_SYNC
        bundle = root / "town-usb.json"
        net.run(T, "bundle", "export", str(bundle), "--json").ok()
        net.run(D, "bundle", "import", str(bundle), "--json").ok()
        net.clock = REPORT_DAY
        yield net
    finally:
        net.close()


def report(net: ClockedNetwork, node: str, *args: str) -> dict[str, Any]:
    got: dict[str, Any] = net.run(node, "report", "--json", *args).ok().json()
    return got


def codes(got: dict[str, Any]) -> list[str]:
    return [c["code"] for c in got["stale_children"]]


def test_the_district_lists_only_the_child_silent_past_48h(net: ClockedNetwork) -> None:
    got = report(net, D)
    assert got["stale_after"] == 2 * DAY and got["children_enrolled"] == 2
    assert got["stale_children"] == [
        {
            "code": net.code(V2),
            "name": "小张村",
            "last_sync_at": "2026-06-01T09:00:00+08:00",
            "enrolled_at": got["stale_children"][0]["enrolled_at"],
            "queued": got["stale_children"][0]["queued"],
            "silent_seconds": 4 * DAY,
            "stale": True,
            "quarantined": 0,
        }
    ]
    assert got["stale_children"][0]["enrolled_at"].startswith("2026-06-01")
    # The district's own view of its children agrees (the same rule).
    listed = net.run(D, "children", "--stale", "--json").ok().json()
    assert [c["code"] for c in listed] == codes(got)


def test_stale_after_moves_the_line(net: ClockedNetwork) -> None:
    # Both past 12 hours, the longest silent first; neither past 5 days.
    got = report(net, D, "--stale-after", "12h")
    assert got["stale_after"] == 12 * 3600
    assert codes(got) == [net.code(V2), net.code(T)]
    assert [c["silent_seconds"] for c in got["stale_children"]] == [4 * DAY, DAY]
    assert codes(report(net, D, "--stale-after", "5d")) == []
    # A bare number is hours: 72 h puts village2 past it, the town not.
    assert codes(report(net, D, "--stale-after", "72")) == [net.code(V2)]


def test_the_city_lists_its_district(net: ClockedNetwork) -> None:
    got = report(net, C)
    assert got["children_enrolled"] == 1
    assert codes(got) == [net.code(D)]
    assert got["stale_children"][0]["silent_seconds"] == 4 * DAY
    assert codes(report(net, C, "--stale-after", "4d1h")) == []
    # The period and grouping do not change who is stale.
    assert codes(report(net, C, "--from", "2026-06-01", "--to", "2026-06-30", "--by", "district")) == [
        net.code(D)
    ]


def section(text: str) -> list[str]:
    """The stale-children block of a text report: from its heading to the blank line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if "not synced" in line or "未同步" in line)
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


def test_the_text_report_names_the_stale_child(net: ClockedNetwork) -> None:
    text = net.run(D, "report").ok().stdout
    block = section(text)
    assert block[0] == "Children not synced for more than 2d: 1 of 2"  # 48h, as `daiban children` says it
    rows = [line.split() for line in block if line.split() and line.split()[0].isdigit()]
    assert rows == [[net.code(V2), "小张村", "2026-06-01", "09:00", "4", "days"]]
    assert "None" not in text and max(cell_len(line) for line in block) <= 80

    quiet = net.run(D, "report", "--stale-after", "5d").ok().stdout
    assert "All 2 children have synced within 5d." in quiet.splitlines()


def test_the_text_report_is_chinese_by_default(net: ClockedNetwork) -> None:
    net.lang = "zh"
    try:
        text = net.run(D, "report", "--stale-after", "12h").ok().stdout
        quiet = net.run(C, "report", "--stale-after", "5d").ok().stdout
    finally:
        net.lang = "en"
    block = section(text)
    assert block[0] == "超过 12h 未同步的下级节点：2 个中有 2 个"
    rows = [line.split() for line in block if line.split() and line.split()[0].isdigit()]
    assert [r[0] for r in rows] == [net.code(V2), net.code(T)]
    assert rows[1][1] == "南定镇" and rows[1][2:4] == ["2026-06-04", "09:00"]
    assert max(cell_len(line) for line in text.splitlines()) <= 80
    assert "全部 1 个下级节点均在 5d 内同步过。" in quiet.splitlines()


def test_the_csv_is_unchanged_by_stale_children(net: ClockedNetwork) -> None:
    out = net.run(D, "report", "--csv", "--stale-after", "12h").ok().stdout
    assert out.splitlines()[0].startswith("key,name,filed,")
    assert [line.split(",")[0] for line in out.splitlines()[1:]] == ["total"]


@pytest.mark.parametrize("value", ["soon", "0", "2x", "48h later"])
def test_a_bad_stale_after_is_one_line_and_exit_2(net: ClockedNetwork, value: str) -> None:
    before = net.query(D, "SELECT code, last_sync_at FROM peers ORDER BY code")
    result: Result = net.run(D, "report", "--stale-after", value)
    assert result.returncode == 2 and result.stdout == ""
    last = result.stderr.splitlines()[-1]
    assert last == (
        f"daiban report: error: argument --stale-after: expected a time such as 48h, 2d or 90m; got {value!r}"
    )
    assert [line for line in result.stderr.splitlines() if "error" in line] == [last]
    assert "Traceback" not in result.stderr
    after = net.query(D, "SELECT code, last_sync_at FROM peers ORDER BY code")
    assert [tuple(r) for r in after] == [tuple(r) for r in before]
