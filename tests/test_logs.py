"""The logs of long-running processes (daiban/logs.py): JSON lines to a
rotating file and to stderr, scrubbed of anything personal."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pythonjsonlogger.json import JsonFormatter

from daiban import logs


@pytest.fixture
def logged(tmp_path: Path) -> Iterator[tuple[Path, io.StringIO]]:
    stream = io.StringIO()
    path = logs.setup(tmp_path, "test", stream=stream)
    yield path, stream
    logger = logging.getLogger("daiban")
    for handler in [h for h in logger.handlers if getattr(h, "daiban_setup", False)]:
        logger.removeHandler(handler)
        handler.close()


def test_each_record_is_formatted_once_for_both_places(
    logged: tuple[Path, io.StringIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, stream = logged
    made: list[str] = []
    original = JsonFormatter.format

    def counting(self: JsonFormatter, record: logging.LogRecord) -> str:
        made.append(record.getMessage())
        return original(self, record)

    monkeypatch.setattr(JsonFormatter, "format", counting)
    log = logging.getLogger("daiban.sync.server")
    log.info("request", extra={"route": "/v1/push", "status": 200})
    log.info("request", extra={"route": "/v1/pull", "status": 200})
    assert made == ["request", "request"]
    in_file = path.read_text("utf-8").splitlines()
    on_stderr = stream.getvalue().splitlines()
    assert in_file == on_stderr
    assert [json.loads(line)["route"] for line in in_file] == ["/v1/push", "/v1/pull"]


def test_what_looks_personal_is_scrubbed_everywhere(logged: tuple[Path, io.StringIO]) -> None:
    path, stream = logged
    logging.getLogger("daiban.sync.server").warning("bad value 370303198001010012 from 13805331234")
    for line in (path.read_text("utf-8"), stream.getvalue()):
        assert "370303198001010012" not in line and "13805331234" not in line
        assert json.loads(line)["message"] == "bad value [redacted] from [redacted]"


PIECES = st.one_of(
    st.text(alphabet="0123456789", min_size=1, max_size=20),
    st.sampled_from(["+86", "86", "+", "-", " ", "X", "x", "a", "[", "]", '"', ":", "，"]),
    st.sampled_from(
        ["13805331234", "370303198001010012", "370303800101001", "0533-1234567", "+86 13805331234"]
    ),
)


@settings(max_examples=500)
@given(st.lists(PIECES, max_size=10))
def test_nothing_shaped_like_an_id_or_a_phone_survives(pieces: list[str]) -> None:
    scrubbed = logs.redact("".join(pieces))
    assert all(pattern.search(scrubbed) is None for pattern in logs.PERSONAL_PATTERNS)


def test_codes_tracking_numbers_and_ids_are_left_alone() -> None:
    line = '{"node": "370303101201", "tracking": "37030310120100016010", "id": "01a2373c950e160d39dfba"}'
    assert logs.redact(line) == line
    said = "电话 13805331234，身份证 37030319800101001X。"
    assert logs.redact(said) == "电话 [redacted]，身份证 [redacted]。"
