"""An unexpected error's log (CLI and TUI alike) never keeps an ID number or a phone."""

from __future__ import annotations

from pathlib import Path

from daiban.logs import write_crash_log


def test_the_crash_log_is_scrubbed_and_kept_in_the_home(tmp_path: Path) -> None:
    try:
        raise ValueError("row 3: 370303195603120020 13805331234 did not fit")
    except ValueError as exc:
        path = write_crash_log(tmp_path, exc, "tui")
    assert Path(path) == tmp_path / "logs" / "daiban-error.log"
    text = Path(path).read_text(encoding="utf-8")
    assert "ValueError" in text and "did not fit" in text and " tui" in text
    assert "370303195603120020" not in text and "13805331234" not in text


def test_an_unwritable_home_falls_back_to_the_temp_folder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("not a folder")  # logs/ cannot be made under a file
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        path = write_crash_log(home, exc)
    assert path != "-" and not path.startswith(str(home))
    assert "boom" in Path(path).read_text(encoding="utf-8")
