"""Charts of an answer's result: a bar chart for category x number, a line for dates or ordered
numbers x number. The chart's data is chosen once (:func:`chart_data`) and drawn either with
matplotlib (:func:`figure`, :func:`save_plot`: PNG or SVG) or as a unicode bar chart in the
terminal (:func:`terminal_chart`), so both show the same thing.

>>> from autotqa.answer import Answer
>>> from autotqa.executors.base import ExecutionResult
>>> a = Answer(question="Sales by city?", answer="", result=ExecutionResult(ok=True,
...            columns=["city", "total"], rows=[["Oslo", 3.0], ["Rome", 5.0]], n_rows=2))
>>> d = chart_data(a)
>>> d.kind, d.x_label, d.y_label, d.labels, d.ys
('bar', 'city', 'total', ['Oslo', 'Rome'], [3.0, 5.0])
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rich.table import Table
from rich.text import Text

from ..answer import Answer
from ..errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PLOT_FORMATS = (".png", ".svg")
MAX_CATEGORIES = 40
MATPLOTLIB_HINT = "pip install 'autotqa[plot]' (matplotlib) to draw charts"


class PlotError(ConfigError):
    """The result cannot be drawn (no rows, no numbers, too many categories), or matplotlib is missing."""


@dataclass(frozen=True)
class ChartData:
    """What a chart shows: ``ys`` against ``xs`` (``labels`` are the x values as text)."""

    kind: Literal["bar", "line"]
    title: str
    x_label: str
    y_label: str
    xs: list[Any]
    labels: list[str]
    ys: list[float]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _date(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or len(value) < 7:
        return None
    try:
        return dt.datetime.fromisoformat(value if len(value) > 7 else value + "-01")
    except ValueError:
        return None


def chart_data(answer: Answer) -> ChartData:
    """Pick x and y from the result's columns: y is the first number column, x the first other one
    (text: bars; dates or numbers: a line in x order). A single number column is drawn as bars
    by row number."""
    result = answer.result
    if result is None or not result.ok or not result.rows:
        raise PlotError("this answer has no result rows to plot")
    cols = list(result.columns)
    kinds = []
    for i in range(len(cols)):
        values = [row[i] for row in result.rows if row[i] is not None]
        kinds.append("number" if values and all(_number(v) for v in values) else
                     "date" if values and all(_date(v) for v in values) else "text")
    numbers = [i for i, k in enumerate(kinds) if k == "number"]
    if not numbers:
        raise PlotError("the result has no number column to plot", hint="ask for a count, sum or average")
    others = [i for i, k in enumerate(kinds) if k != "number"]
    if len(cols) == 1:
        x = y = numbers[0]
    elif others:
        x, y = others[0], numbers[0]
    else:  # all numbers: the first is the ordered x (a year, a rank)
        x, y = numbers[0], numbers[1]
    rows = [r for r in result.rows if r[y] is not None and r[x] is not None]
    if len(rows) < 2 and (len(cols) == 1 or kinds[x] != "text"):
        raise PlotError("a single value is not a chart; the answer is the value itself")
    kind: Literal["bar", "line"] = "bar" if kinds[x] == "text" or len(cols) == 1 else "line"
    if kind == "line":
        rows.sort(key=lambda r: _date(r[x]) or dt.datetime.min if kinds[x] == "date" else r[x])
    if kind == "bar" and len(rows) > MAX_CATEGORIES:
        raise PlotError(f"{len(rows)} bars are too many for a chart (at most {MAX_CATEGORIES})",
                        hint="ask for the top 10, or save the rows with --save")
    if len(cols) == 1:
        xs: list[Any] = list(range(1, len(rows) + 1))
        x_label = "row"
    else:
        xs = [_date(r[x]) if kinds[x] == "date" else r[x] for r in rows]
        x_label = str(cols[x])
    return ChartData(kind=kind, title=answer.question, x_label=x_label, y_label=str(cols[y]), xs=xs,
                     labels=[str(r[x]) for r in rows] if len(cols) > 1 else [str(v) for v in xs],
                     ys=[float(r[y]) for r in rows])


def figure(answer: Answer) -> Figure:
    """The chart as a matplotlib Figure (no pyplot: no global state, no display needed)."""
    data = chart_data(answer)
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotError("matplotlib is not installed", hint=MATPLOTLIB_HINT) from None
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.add_subplot()
    if data.kind == "bar":
        ax.bar(data.labels, data.ys, color="#4C72B0")
        if len(data.labels) > 6:
            ax.tick_params(axis="x", labelrotation=45)
    else:
        ax.plot(data.xs, data.ys, marker="o", color="#4C72B0")
    ax.set_xlabel(data.x_label)
    ax.set_ylabel(data.y_label)
    ax.set_title(data.title, wrap=True)
    ax.grid(axis="y", alpha=0.3)
    return fig


def check_plot_path(path: Path) -> None:
    if path.suffix.lower() not in PLOT_FORMATS:
        raise ConfigError(f"cannot draw a chart as {path.suffix or 'a file without a suffix'!r}: {path}",
                          hint=f"name the file with one of: {', '.join(PLOT_FORMATS)}")


def save_plot(answer: Answer, path: str | Path) -> Path:
    """Draw the answer's chart into ``path`` (.png or .svg; an SVG keeps its text as text)."""
    path = Path(path)
    check_plot_path(path)
    fig = figure(answer)
    import matplotlib

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with matplotlib.rc_context({"svg.fonttype": "none"}):
            fig.savefig(path, dpi=120)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}", hint="choose a writable path") from None
    return path


def terminal_chart(answer: Answer, width: int = 80) -> Table:
    """The same chart as unicode bars, one row per x value, for a terminal without images."""
    data = chart_data(answer)
    table = Table(title=data.title, title_justify="left", box=None, show_header=True, pad_edge=False)
    table.add_column(data.x_label, overflow="ellipsis", max_width=max(8, width // 4))
    table.add_column(data.y_label, justify="right")
    table.add_column("", no_wrap=True)
    top = max(abs(y) for y in data.ys) or 1.0
    room = max(10, width - width // 4 - 20)
    for label, y in zip(data.labels, data.ys):
        eighths = round(abs(y) / top * room * 8)
        bar = "█" * (eighths // 8) + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[eighths % 8]
        table.add_row(label, f"{y:,.6g}", Text(bar, style="red" if y < 0 else "cyan"))
    return table
