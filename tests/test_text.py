"""Untrusted text made safe (node/text.py): what clean_tree removes, and
the shortcut that skips it for an envelope whose text shows nothing to
remove."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from daiban.node.text import clean_text, clean_tree, json_is_clean
from daiban.trust.crypto import canonical

# Strings drawn from every plane, the characters clean_text removes among them.
_TEXT = st.text(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from("\x00\x1b\x7f\x85\u200b\u200e\u202e\u2066\u2028\u2029\ufeff\n\t\u3000\\\""),
    ),
    max_size=12,
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)


@given(_JSON)
def test_json_text_that_reads_clean_holds_nothing_clean_tree_would_change(value: Any) -> None:
    text = canonical({"body": value}).decode()
    if json_is_clean(text):
        assert clean_tree(value) == value


def test_what_clean_tree_removes_makes_the_text_read_unclean() -> None:
    for bad in ("\x1b[31m", "a\u202eb", "zero\u200bwidth", "line\u2028sep", "tab\tand\nnewline"):
        body = {"name": bad}
        text = canonical({"body": body}).decode()
        assert not json_is_clean(text)  # an escape, or a character that is not printable
    assert json_is_clean(canonical({"body": {"name": "王秀兰", "note": "材料齐全"}}).decode())
    assert clean_text("a\u202eb") == "ab" and clean_text("tab\tkeeps") == "tab\tkeeps"
