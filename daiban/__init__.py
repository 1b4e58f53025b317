"""Daiban (代办): an offline-first sync node for grassroots government services."""

from __future__ import annotations


def _version() -> str:
    """The package's version from its installed metadata; from pyproject.toml
    when run from a source tree that is not installed."""
    from importlib import metadata

    try:
        return metadata.version("daiban")
    except metadata.PackageNotFoundError:
        pass
    import tomllib
    from pathlib import Path

    try:
        with (Path(__file__).resolve().parent.parent / "pyproject.toml").open("rb") as f:
            return str(tomllib.load(f)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "0+unknown"


_cached: list[str] = []


def __getattr__(name: str) -> str:
    # Read on first use: importlib.metadata costs more than `daiban --help` does.
    if name == "__version__":
        if not _cached:
            _cached.append(_version())
        return _cached[0]
    raise AttributeError(f"module 'daiban' has no attribute {name!r}")
