"""Saving an answer's rows (CSV/Parquet/JSON/Excel) and charting them (matplotlib and the terminal)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from rich.console import Console

from autotqa.answer import Answer
from autotqa.errors import ConfigError
from autotqa.executors.base import ExecutionResult
from autotqa.ui.export import save_result
from autotqa.ui.plot import PlotError, chart_data, figure, save_plot, terminal_chart


def answer(columns: list[str], rows: list[list[Any]], n_rows: int | None = None,
           question: str = "Revenue by city?") -> Answer:
    n = len(rows) if n_rows is None else n_rows
    return Answer(question=question, answer="", result=ExecutionResult(
        ok=True, columns=columns, rows=rows, n_rows=n, truncated=n > len(rows)))


CITIES = answer(["city", "revenue"], [["Oslo", 120.5], ["Rome", 80.0], ["Lima", 200.25]])
MONTHS = answer(["month", "orders"], [["2024-03-01", 7], ["2024-01-01", 3], ["2024-02-01", 5]],
                question="Orders per month?")


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json", ".xlsx"])
def test_saved_file_holds_every_result_row(tmp_path: Path, suffix: str) -> None:
    rows = [[f"c{i}", i * 1.5] for i in range(250)]  # more than any display cap
    saved = save_result(answer(["city", "revenue"], rows), tmp_path / "sub" / f"out{suffix}")
    assert (saved.rows, saved.total, saved.capped) == (250, 250, False)
    assert saved.message() == f"saved 250 rows to {tmp_path / 'sub' / f'out{suffix}'}"
    path = saved.path
    back = {".csv": pd.read_csv, ".parquet": pd.read_parquet, ".xlsx": pd.read_excel,
            ".json": lambda p: pd.DataFrame(json.loads(Path(p).read_text()))}[suffix](path)
    assert list(back.columns) == ["city", "revenue"]
    assert back.values.tolist() == rows


def test_capped_result_says_so(tmp_path: Path) -> None:
    saved = save_result(answer(["n"], [[1], [2], [3]], n_rows=5000), tmp_path / "r.csv")
    assert saved.capped and saved.message() == (
        f"saved 3 of 5,000 rows to {tmp_path / 'r.csv'} (the executor's row cap; "
        "raise it with AUTOTQA_EXECUTOR__ROW_CAP)")


def test_duplicate_names_and_mixed_types_still_save(tmp_path: Path) -> None:
    a = answer(["x", "x"], [[1, "n/a"], [2, 5]])
    save_result(a, tmp_path / "r.parquet")
    back = pd.read_parquet(tmp_path / "r.parquet")
    assert list(back.columns) == ["x", "x_2"] and back["x_2"].tolist() == ["n/a", "5"]


def test_to_pandas_is_the_result_table() -> None:
    frame = CITIES.to_pandas()
    assert frame.to_dict("list") == {"city": ["Oslo", "Rome", "Lima"], "revenue": [120.5, 80.0, 200.25]}
    assert Answer(question="q", answer="none").to_pandas().empty


def test_save_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot save as '.txt'") as exc:
        save_result(CITIES, tmp_path / "r.txt")
    assert exc.value.hint == "name the file with one of: .csv, .parquet, .json, .xlsx"
    with pytest.raises(ConfigError, match="no result rows to save"):
        save_result(Answer(question="q", answer="No supported answer."), tmp_path / "r.csv")


def test_category_by_number_is_a_bar_chart_of_the_rows() -> None:
    fig = figure(CITIES)
    ax = fig.axes[0]
    assert [p.get_height() for p in ax.patches] == [120.5, 80.0, 200.25]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Oslo", "Rome", "Lima"]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("city", "revenue", "Revenue by city?")
    assert not ax.lines


def test_dates_by_number_is_a_line_in_date_order() -> None:
    data = chart_data(MONTHS)
    assert (data.kind, data.labels, data.ys) == ("line", ["2024-01-01", "2024-02-01", "2024-03-01"], [3, 5, 7])
    ax = figure(MONTHS).axes[0]
    assert list(ax.lines[0].get_ydata()) == [3, 5, 7] and not ax.patches
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("month", "orders", "Orders per month?")


def test_ordered_numbers_make_a_line_sorted_by_x() -> None:
    data = chart_data(answer(["year", "total"], [[2022, 5], [2020, 1], [2021, 3]]))
    assert (data.kind, data.xs, data.ys) == ("line", [2020, 2021, 2022], [1.0, 3.0, 5.0])


def test_png_and_svg_files_are_the_chart(tmp_path: Path) -> None:
    png = save_plot(CITIES, tmp_path / "c.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    svg = save_plot(CITIES, tmp_path / "c.svg").read_text(encoding="utf-8")
    assert "<svg" in svg
    for text in ("Oslo", "Rome", "Lima", "revenue", "city", "Revenue by city?"):
        assert f">{text}<" in svg, text


def test_terminal_chart_bars_are_proportional() -> None:
    console = Console(width=80, no_color=True, record=True)
    console.print(terminal_chart(CITIES, width=80))
    lines = {ln.split()[0]: ln for ln in console.export_text().splitlines() if ln.split()[:1]
             in (["Oslo"], ["Rome"], ["Lima"])}
    bars = {city: ln.count("█") for city, ln in lines.items()}
    assert bars["Lima"] > bars["Oslo"] > bars["Rome"] > 0
    assert abs(bars["Oslo"] / bars["Lima"] - 120.5 / 200.25) < 0.05
    assert "120.5" in lines["Oslo"] and "200.25" in lines["Lima"]


@pytest.mark.parametrize(("cols", "rows", "message"), [
    (["city"], [["Oslo"], ["Rome"]], "no number column"),
    (["n"], [[80]], "a single value is not a chart"),
    (["year", "n"], [[2020, 1]], "a single value is not a chart"),
    (["c", "n"], [[f"c{i}", i] for i in range(41)], "41 bars are too many"),
])
def test_results_that_are_no_chart_say_why(cols: list[str], rows: list[list[Any]], message: str) -> None:
    with pytest.raises(PlotError, match=message):
        chart_data(answer(cols, rows))


def test_missing_matplotlib_is_a_one_line_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(PlotError, match="matplotlib is not installed") as exc:
        save_plot(CITIES, tmp_path / "c.png")
    assert exc.value.hint == "pip install 'autotqa[plot]' (matplotlib) to draw charts"
    assert not (tmp_path / "c.png").exists()
