"""Daiban (代办): an offline-first sync node for grassroots government services."""

from __future__ import annotations

from daiban._version import VERSION as __version__

__all__ = ["__version__"]
