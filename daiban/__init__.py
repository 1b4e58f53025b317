"""Daiban (代办): an offline-first sync node for grassroots government services."""

__version__ = "0.1.0"
