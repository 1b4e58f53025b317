"""Logs of the long-running processes (``daiban serve``, ``daiban sync
--watch``): one JSON object a line (python-json-logger), to stderr and to a
rotating file in the node home's ``logs/`` folder.

Nothing personal is ever logged on purpose: envelopes are sealed, requests are
logged by route, status and the sending node's division code only. As a
second line of defence every line is scrubbed of anything shaped like a
resident ID number, a mobile phone or a landline before it is written, so an
exception message that quotes a value cannot carry one into a log file."""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
from pathlib import Path
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

LOG_DIR = "logs"
MAX_BYTES = 5 * 1024 * 1024
BACKUPS = 5
# Bounded by anything alphanumeric on both sides, so that tracking numbers
# (20 digits), division codes and hex envelope ids are left alone.
_EDGE_L, _EDGE_R = r"(?<![0-9A-Za-z])", r"(?![0-9A-Za-z])"
PERSONAL_PATTERNS = (
    re.compile(_EDGE_L + r"\d{17}[\dXx]" + _EDGE_R),  # resident ID number (18)
    re.compile(_EDGE_L + r"\d{15}" + _EDGE_R),  # old 15-digit ID number
    re.compile(_EDGE_L + r"(?:\+?86[- ]?)?1[3-9]\d{9}" + _EDGE_R),  # mobile
    re.compile(_EDGE_L + r"0\d{2,3}-\d{7,8}" + _EDGE_R),  # landline with area code
)
REDACTED = "[redacted]"
# The four as one pass over the text, each place first asked whether it
# starts with a digit or "+" (every pattern does) before the slower look
# behind: a server scrubs every request's line, 8 µs against 39 µs for four
# passes. What it leaves, none of the four matches (tests/test_logs.py).
_ANY_PERSONAL = re.compile(
    r"(?=[\d+])"
    + _EDGE_L
    + "(?:"
    + "|".join(p.pattern[len(_EDGE_L) : -len(_EDGE_R)] for p in PERSONAL_PATTERNS)
    + ")"
    + _EDGE_R
)


def redact(text: str) -> str:
    """``text`` with anything shaped like an ID number or a phone replaced."""
    return _ANY_PERSONAL.sub(REDACTED, text)


def write_crash_log(home: Path, error: BaseException, label: str = "") -> str:
    """Append an unexpected error's traceback, scrubbed by ``redact`` (its
    message may quote what was typed), to logs/daiban-error.log in the node
    home, or in the temp folder if the home cannot be written; returns the
    path, for the one line the user sees instead of the traceback."""
    import datetime
    import tempfile
    import traceback

    from daiban import __version__

    trace = "".join(traceback.format_exception(error))
    text = redact(f"{datetime.datetime.now().isoformat()} daiban {__version__} {label}\n{trace}\n")
    for folder in (log_dir(home), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / "daiban-error.log"
            with path.open("a", encoding="utf-8") as fh:
                fh.write(text)
            return str(path)
        except OSError:
            continue
    return "-"


class Formatter(JsonFormatter):
    """One JSON object a line: level, logger, message, time, any extras;
    Chinese kept readable; the finished line scrubbed by ``redact``.

    One record is asked for three times (the rotating file's size check,
    the file, stderr: logging caches no formatted line), so the last line
    made is kept with its record and given again: a server logs every
    request, and under load logging held the interpreter lock for over a
    quarter of the event loop's share (docs/BENCHMARKS.md)."""

    def __init__(self, **static: Any) -> None:
        super().__init__(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            static_fields=static or None,
            timestamp="time",  # ISO 8601 in UTC: comparable across machines
            json_ensure_ascii=False,
        )
        self._last: tuple[logging.LogRecord | None, str] = (None, "")

    def format(self, record: logging.LogRecord) -> str:
        last, line = self._last  # one read: another thread may replace it
        if last is record:
            return line
        line = redact(super().format(record))
        self._last = (record, line)
        return line


def log_dir(home: Path) -> Path:
    return home / LOG_DIR


def setup(
    home: Path,
    process: str,
    *,
    stream: TextIO | None = sys.stderr,
    level: int = logging.INFO,
    max_bytes: int = MAX_BYTES,
    backups: int = BACKUPS,
) -> Path:
    """Send the ``daiban`` loggers to ``logs/daiban-<process>.log`` (rotated
    at ``max_bytes``, ``backups`` old files kept) and to ``stream``, as JSON
    lines. Each process kind has its own file: two processes never rotate
    the same file. Returns the log file's path."""
    folder = log_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"daiban-{process}.log"
    formatter = Formatter(component=process)
    logger = logging.getLogger("daiban")
    for old in [h for h in logger.handlers if getattr(h, "daiban_setup", False)]:
        logger.removeHandler(old)
        old.close()
    handlers: list[logging.Handler] = [
        logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    ]
    if stream is not None:
        handlers.append(logging.StreamHandler(stream))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.daiban_setup = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level)
    # aiohttp's own loggers (e.g. a bad request line) go to the same place.
    for name in ("aiohttp.server", "aiohttp.web"):
        other = logging.getLogger(name)
        other.handlers = [h for h in other.handlers if not getattr(h, "daiban_setup", False)]
        for handler in handlers:
            other.addHandler(handler)
        other.setLevel(logging.WARNING)
        other.propagate = False
    return path
