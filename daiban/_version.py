"""The package's version: the one place it is written (pyproject.toml reads
it from here), so the version costs no importlib.metadata at run time."""

VERSION = "0.1.0"
