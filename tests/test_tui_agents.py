"""Agents and their PINs (Argon2 hashes only), the `daiban agent` command,
and the clean_text rule for untrusted text."""

from __future__ import annotations

import datetime as dt

import pytest

from daiban.errors import DaibanError, ValidationFailed
from daiban.node import agents
from daiban.node.text import clean_text, clean_tree, one_line
from tests.tui_helpers import EVIL, EVIL_SHOWN


def test_clean_text_removes_controls_but_keeps_newline_and_tab() -> None:
    assert clean_text(EVIL) == EVIL_SHOWN
    assert clean_text("a\u202eb\u2066c\u2069d\u200fe\x85f\x7fg\u2028h") == "abcdefgh"
    assert clean_text("第一行\n\t第二行") == "第一行\n\t第二行"
    assert one_line(" 王\n秀\t兰 ") == "王 秀 兰"
    assert clean_tree({"note\x1b": [EVIL, 3, {"k": "\x07x"}]}) == {"note": [EVIL_SHOWN, 3, {"k": "x"}]}


@pytest.mark.parametrize(
    ("pin", "reason"),
    [
        ("12345", "6 to 12"),
        ("1234567890123", "6 to 12"),
        ("12a456", "digits only"),
        ("111111", "too easy"),
        ("123456", "too easy"),
        ("987654", "too easy"),
    ],
)
def test_pin_rules(pin: str, reason: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        agents.check_pin(pin)
    assert reason in info.value.message
    assert agents.check_pin("135790") == "135790"


def test_pin_is_kept_only_as_argon2_hash(make_node) -> None:
    node = make_node()
    agents.add(node, "张代办", "135790")
    row = node.store.agent("张代办")
    assert row is not None
    assert row["pin_hash"].startswith("$argon2id$")
    assert "135790" not in row["pin_hash"]
    raw = (node.home / "daiban.db").read_bytes()
    assert b"135790" not in raw
    assert agents.login(node, "张代办", "135790") == "张代办"
    assert node.store.agent("张代办")["last_login_at"] == "2026-11-27T10:00:00+08:00"


def test_several_agents_and_duplicates_refused(make_node) -> None:
    node = make_node()
    agents.add(node, "张代办", "135790")
    agents.add(node, "李代办", "246813")
    assert [a["name"] for a in agents.listing(node)] == ["张代办", "李代办"]
    with pytest.raises(DaibanError, match="already an agent"):
        agents.add(node, "张代办", "975310")
    with pytest.raises(ValidationFailed, match="agent name"):
        agents.add(node, EVIL, "975310")
    assert len(agents.listing(node)) == 2


def test_wrong_pins_lock_the_name_for_a_while(make_node, clock) -> None:
    node = make_node()
    agents.add(node, "张代办", "135790")
    for _n in range(agents.MAX_FAILURES):
        with pytest.raises(DaibanError, match="Wrong name or PIN"):
            agents.login(node, "张代办", "000001")
    with pytest.raises(DaibanError, match="locked until 10:05"):
        agents.login(node, "张代办", "135790")  # even the right PIN, while locked
    clock.moment += dt.timedelta(minutes=6)
    assert agents.login(node, "张代办", "135790") == "张代办"
    with pytest.raises(DaibanError, match="Wrong name or PIN"):
        agents.login(node, "没有这人", "135790")


def test_removed_agent_cannot_log_in_and_pin_can_be_reset(make_node) -> None:
    node = make_node()
    agents.add(node, "张代办", "135790")
    agents.set_pin(node, "张代办", "246813")
    with pytest.raises(DaibanError):
        agents.login(node, "张代办", "135790")
    assert agents.login(node, "张代办", "246813") == "张代办"
    agents.remove(node, "张代办")
    with pytest.raises(DaibanError, match="Wrong name or PIN"):
        agents.login(node, "张代办", "246813")
    assert agents.listing(node) == []


def test_agent_cli(cli) -> None:
    assert cli("init", "--role", "village", "--code", "370303101201", "--name", "大张村").returncode == 0
    added = cli("agent", "add", "张代办", "--pin-stdin", "--json", stdin="135790\n")
    assert added.returncode == 0, added.stderr
    assert added.json()["name"] == "张代办"
    bad = cli("agent", "add", "李代办", "--pin-stdin", stdin="123456\n")
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: PIN: is too easy") and "Traceback" not in bad.stderr
    listed = cli("agent", "list", "--json")
    assert [a["name"] for a in listed.json()] == ["张代办"]
    assert "pin" not in listed.stdout.lower().replace("pin_", "")
    no_tty = cli("agent", "add", "王代办")
    assert no_tty.returncode == 2 and "--pin-stdin" in no_tty.stderr
    tui = cli("tui")
    assert tui.returncode == 1 and "terminal" in tui.stderr
    # The global --agent still names the actor on events recorded from the command line.
    filed = cli(
        "--agent",
        "王代办",
        "apply",
        "--item",
        "SB001",
        "--name",
        "王秀兰",
        "--id-number",
        "370303195603120020",
        "--phone",
        "13805331234",
        "--field",
        "contribution_grade=500",
        "--json",
    )
    assert filed.returncode == 0, filed.stderr
    shown = cli("show", filed.json()["tracking"], "--json").json()
    assert shown["history"][0]["actor"] == "王代办"
