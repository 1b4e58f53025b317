"""Where a node keeps its files. One folder per node home: the database, its
keys and its settings. ``--home`` or ``DAIBAN_HOME`` point elsewhere (tests use
a temp home); the default is the platform's user data directory."""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "daiban"


def default_home() -> Path:
    from platformdirs import user_data_path

    return user_data_path(APP_NAME, appauthor=False)


def resolve_home(flag: str | None) -> Path:
    """The node home: the flag, else ``DAIBAN_HOME``, else the user data directory."""
    value = flag or os.environ.get("DAIBAN_HOME")
    return Path(value).expanduser() if value else default_home()
