"""Untrusted text made safe to keep and to show: control characters removed
where data enters (typed by an agent, read from a ledger, or arrived over
sync). A terminal obeys escape sequences even where markup is off, and bidi
overrides make text read other than it is stored, so both go. Pure functions."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any

# Kept: newline and tab (notes have lines). Removed: every other C0 control,
# DEL, C1 (category Cc); format characters (Cf: bidi overrides and isolates,
# LRM/RLM, zero-width marks); the Unicode line and paragraph separators.
_KEEP = frozenset("\n\t")
_SEPARATORS = frozenset("\u2028\u2029")


def _unsafe(ch: str) -> bool:
    if ch in _KEEP:
        return False
    if ch in _SEPARATORS:
        return True
    return unicodedata.category(ch) in ("Cc", "Cf")


def clean_text(text: str) -> str:
    """``text`` without control characters (but newline and tab)."""
    if text.isprintable():  # the common case: nothing to remove, no copy
        return text
    return "".join(ch for ch in text if not _unsafe(ch))


def one_line(text: str) -> str:
    """Cleaned text on one line (for a table cell or a title)."""
    return " ".join(clean_text(text).split())


def json_is_clean(text: str) -> bool:
    """Whether every string in the JSON ``text`` (keys too) is already as
    clean_tree leaves it. A character clean_text removes is never printable,
    and JSON can only write one either as itself or as an escape: printable
    text with no backslash holds none."""
    return "\\" not in text and text.isprintable()


def clean_tree(value: Any) -> Any:
    """Every string in a JSON-like value cleaned (keys too)."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, Mapping):
        return {clean_text(str(k)): clean_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_tree(v) for v in value]
    return value
