"""Every message the code can show has a Chinese translation, the compiled
catalog matches its source, and placeholders survive translation."""

from __future__ import annotations

import io
import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from daiban import i18n

ROOT = Path(__file__).resolve().parent.parent
PO = ROOT / "daiban/locale/zh_CN/LC_MESSAGES/daiban.po"
MO = PO.with_suffix(".mo")
PLACEHOLDER = re.compile(r"\{[^}]*\}|%\([a-z_]+\)[sr]|%[sr]")
CJK = re.compile(r"[\u4e00-\u9fff]")


def _code_messages() -> set[str]:
    found = set()
    keywords = {"_": None, "N_": None, "ngettext": (1, 2)}
    for _file, _line, message, _comments, _ctx in extract_from_dir(
        str(ROOT / "daiban"), keywords=keywords, method_map=[("**.py", "python")]
    ):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def test_every_message_is_translated() -> None:
    catalog = read_po(PO.open("rb"))
    translated = {m.id if isinstance(m.id, str) else m.id[0]: m.string for m in catalog if m.id}
    missing = sorted(m for m in _code_messages() if not translated.get(m))
    assert not missing, f"untranslated (run scripts/i18n, then translate): {missing[:10]}"


def test_placeholders_survive_translation() -> None:
    for message in read_po(PO.open("rb")):
        if not message.id or not message.string:
            continue
        source = message.id if isinstance(message.id, str) else message.id[-1]
        target = message.string if isinstance(message.string, str) else message.string[0]
        assert sorted(PLACEHOLDER.findall(source)) == sorted(PLACEHOLDER.findall(target)), source


def test_compiled_catalog_matches_source() -> None:
    po = {m.id: m.string for m in read_po(PO.open("rb")) if m.id and m.string}
    mo = {m.id: m.string for m in read_mo(io.BytesIO(MO.read_bytes())) if m.id}
    assert po == mo, "daiban.mo is stale: run scripts/i18n compile"


def test_chinese_is_the_default_and_english_on_request(monkeypatch) -> None:
    monkeypatch.delenv("DAIBAN_LANG", raising=False)
    assert i18n.resolve_language(None) == "zh"
    assert i18n.resolve_language("en") == "en"
    monkeypatch.setenv("DAIBAN_LANG", "en_US.UTF-8")
    assert i18n.resolve_language(None) == "en"
    i18n.set_language("zh")
    assert CJK.search(i18n._("No applications at {node}."))
    i18n.set_language("en")
    assert i18n._("No applications at {node}.") == "No applications at {node}."
