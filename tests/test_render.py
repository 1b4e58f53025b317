"""The CLI's tables at 80 columns: only the item column gives up width."""

from __future__ import annotations

from rich.cells import cell_len

from daiban.render import _table


def test_a_long_item_name_is_cut_and_the_other_columns_stay_whole() -> None:
    rows = [
        ["37030310120100000037", "城乡居民基本医疗保险参保缴费（年度集中缴费期）", "赵*胜", "已办结",
         "2026-11-28"],
        ["37030310120100000021", "最低生活保障审核确认", "李*国", "已受理", "未知"],
    ]
    text = _table(["办件编号", "事项", "申请人", "状态", "办结期限"], rows)
    lines = text.splitlines()
    assert all(cell_len(line) <= 80 for line in lines)
    assert "2026-11-28" in lines[2] and "37030310120100000037" in lines[2]
    assert "…" in lines[2]  # the item name, and only it, was cut
    assert "最低生活保障审核确认" in lines[3]


def test_a_short_table_keeps_every_cell() -> None:
    text = _table(["code", "item"], [["SB001", "pension"]])
    assert "SB001" in text and "pension" in text and "…" not in text


def test_long_runs_of_figures_wrap_at_80_columns() -> None:
    from daiban.render import _fill

    parts = [f"very dissatisfied {n}" for n in range(10)]
    lines = _fill(parts)
    assert len(lines) > 1 and all(cell_len(line) <= 80 for line in lines)
    assert sum(line.count("very dissatisfied") for line in lines) == 10


def test_report_periods_read_as_words() -> None:
    from daiban import i18n
    from daiban.render import period_span, period_text

    i18n.set_language("zh")
    try:
        assert period_text("2026-W49") == "2026年第49周"
        assert period_text("2026-12") == "2026-12"
        assert period_span(None, None) == "全部时间"
        assert period_span("2026-01-01", None) == "自 2026-01-01 起"
        assert period_span(None, "2026-12-31") == "截至 2026-12-31"
    finally:
        i18n.set_language("en")
    assert period_text("2026-W05") == "2026 week 5"
    assert period_span("2026-01-01", "2026-12-31") == "2026-01-01 to 2026-12-31"
