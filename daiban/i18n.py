"""Translations through gettext. Message ids are English; the Chinese catalog
in locale/zh_CN is the default language, English (``--lang en``) uses the ids.

Core code calls ``_()`` when it raises or renders, so the language must be set
(``set_language``) before work starts; the CLI and the TUI do that first."""

from __future__ import annotations

import contextlib
import gettext
import os
from collections.abc import Iterator
from pathlib import Path

DOMAIN = "daiban"
LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"

_translation: gettext.NullTranslations = gettext.NullTranslations()
_language = "en"


def normalize_language(value: str | None) -> str | None:
    """Map ``zh``, ``zh_CN``, ``zh-Hans``, ``en_US`` … to ``zh`` or ``en``; None if unknown."""
    if not value:
        return None
    head = value.strip().lower().replace("-", "_").split("_")[0].split(".")[0]
    return head if head in LANGUAGES else None


def resolve_language(flag: str | None) -> str:
    """The language to use: the flag, else ``DAIBAN_LANG``, else Chinese."""
    return normalize_language(flag) or normalize_language(os.environ.get("DAIBAN_LANG")) or DEFAULT_LANGUAGE


def set_language(lang: str) -> None:
    global _translation, _language
    lang = normalize_language(lang) or DEFAULT_LANGUAGE
    if lang == "zh":
        # fallback=False: a missing catalog is a packaging bug, not a reason to
        # quietly show English to an agent who reads only Chinese.
        _translation = gettext.translation(DOMAIN, LOCALE_DIR, languages=["zh_CN"])
    else:
        _translation = gettext.NullTranslations()
    _language = lang


def language() -> str:
    return _language


def _(message: str) -> str:
    """Translate ``message`` into the active language."""
    return _translation.gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _translation.ngettext(singular, plural, n)


def join(parts: list[str]) -> str:
    """Join reasons into one line, with the language's own separator."""
    return _("; ").join(parts)


@contextlib.contextmanager
def speaking(lang: str) -> Iterator[None]:
    """Translate into ``lang`` inside the block, then as before (to read a
    word the user may type in either language)."""
    before = _language
    set_language(lang)
    try:
        yield
    finally:
        set_language(before)
