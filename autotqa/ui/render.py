"""Rich renderings of an :class:`~autotqa.answer.Answer` and its parts, shared by ``ask`` and ``chat``.

Every function returns a renderable (or a list of them) instead of printing, so the same pieces
compose into the one-shot output of ``autotqa ask``, the chat's replies and its slash commands, and
tests can render them into a fixed-width console and assert on the text.

>>> from rich.console import Console
>>> from autotqa.answer import Answer
>>> console = Console(width=100, no_color=True)
>>> with console.capture() as cap:
...     console.print(metrics_line(Answer(question="q", answer="a", elapsed_s=1.5,
...         metrics={"prompt_tokens": 1000, "reused_tokens": 800, "completion_tokens": 40, "llm_calls": 3})))
>>> cap.get().strip()
'1.50 s · 1,000 prompt tokens, 80% reused · 40 generated · 3 LLM calls'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from ..answer import Answer
from ..executors.base import ExecutionResult

DEFAULT_MAX_ROWS = 20
_MAX_CELL = 60


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        text = f"{value:,.6g}" if abs(value) >= 1e6 or value != round(value, 4) else f"{value:g}"
    else:
        text = str(value)
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"


def format_value(value: Any) -> str:
    """One answer value as a person reads it (``1234.5`` → ``1,234.5``; text unchanged).

    >>> format_value(1234.5), format_value(3), format_value("Oslo"), format_value(None)
    ('1,234.5', '3', 'Oslo', 'NULL')
    """
    if isinstance(value, bool) or value is None or not isinstance(value, int | float):
        return _cell(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    return f"{value:,.10g}"


def answer_panel(answer: Answer) -> Panel:
    """The answer sentence and its values, with a badge when the loop could not verify it."""
    body = Text(answer.answer or "(no answer)", style="bold")
    if answer.values:
        body.append("\n")
        body.append("values: ", style="dim")
        body.append(", ".join(format_value(v) for v in answer.values))
    title = Text("Answer", style="bold")
    if answer.unanswerable:
        title.append(" ").append(" unanswerable ", style="black on red")
    elif not answer.verified:
        title.append(" ").append(" unverified ", style="black on yellow")
    border = "green" if answer.verified and not answer.unanswerable else "yellow"
    return Panel(body, title=title, title_align="left", border_style=border, box=box.ROUNDED)


def plan_view(plan: Sequence[str]) -> Text:
    """The Planner's steps, numbered."""
    text = Text("Plan\n", style="bold")
    for i, step in enumerate(plan, 1):
        text.append(f"  {i}. ", style="dim")
        text.append(f"{step}\n")
    text.rstrip()
    return text


def code_view(code: str, language: str = "sql") -> Syntax:
    """SQL (or pandas code) with syntax highlighting; no theme background, so it reads in any terminal."""
    lexer = "python" if language == "pandas" else "sql"
    return Syntax(code.strip(), lexer, theme="ansi_dark", background_color="default", word_wrap=True)


def result_table(result: ExecutionResult, max_rows: int = DEFAULT_MAX_ROWS) -> Group:
    """The result rows, capped at ``max_rows``, and a line ``N of M rows`` when not all are shown.

    The count is a line of its own rather than the table's caption, which would wrap to the width
    of a narrow table.
    """
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for col in result.columns:
        table.add_column(str(col), overflow="fold")
    shown = result.rows[:max_rows]
    for row in shown:
        table.add_row(*(_cell(v) for v in row))
    total = max(result.n_rows, len(result.rows))
    if len(shown) < total:
        count = f"{len(shown)} of {total:,} rows"
    else:
        count = f"{total:,} row" + ("" if total == 1 else "s")
    return Group(table, Text(count, style="dim"))


def metrics_line(answer: Answer) -> Text:
    """``time (LLM share) · prompt tokens, share reused · generated · calls``: where the seconds went."""
    m = answer.metrics
    head = f"{answer.elapsed_s:.2f} s"
    if m.get("llm_s") is not None:
        head += f" (LLM {float(m['llm_s']):.2f} s)"
    parts = [head]
    prompt = int(m.get("prompt_tokens") or 0)
    if prompt:
        ratio = m.get("reuse_ratio")
        if ratio is None:
            ratio = (m.get("reused_tokens") or 0) / prompt
        parts.append(f"{prompt:,} prompt tokens, {float(ratio):.0%} reused")
    if m.get("completion_tokens") is not None:
        parts.append(f"{int(m['completion_tokens']):,} generated")
    if m.get("llm_calls") is not None:
        calls = int(m["llm_calls"])
        parts.append(f"{calls} LLM call" + ("" if calls == 1 else "s"))
    return Text(" · ".join(parts), style="dim")


def render_answer(answer: Answer, *, max_rows: int = DEFAULT_MAX_ROWS, show_plan: bool = True) -> Group:
    """Everything ``autotqa ask`` shows: answer panel, plan, code, result table, metrics line."""
    parts: list[RenderableType] = [answer_panel(answer)]
    if show_plan and answer.plan:
        parts.append(plan_view(answer.plan))
    if answer.sql:
        parts.append(code_view(answer.sql, answer.language))
    if answer.result is not None and answer.result.ok and answer.result.columns:
        parts.append(result_table(answer.result, max_rows))
    parts.append(metrics_line(answer))
    return Group(*parts)


def metrics_table(metrics: Mapping[str, Any]) -> Table:
    """Per-agent token and time figures (``/metrics`` in chat), with a total row."""
    table = Table(box=box.SIMPLE_HEAD, title="LLM use", title_justify="left")
    cols = ("llm_calls", "prompt_tokens", "reused_tokens", "completion_tokens", "llm_s", "ttft_median_s")
    table.add_column("agent")
    for header in ("calls", "prompt", "reused", "generated", "LLM s", "TTFT s"):
        table.add_column(header, justify="right")
    by_agent = metrics.get("by_agent") or {}
    for agent, figures in by_agent.items():
        if isinstance(figures, Mapping):
            calls = figures.get("llm_calls", figures.get("calls"))
            table.add_row(str(agent), _num(calls), *(_num(figures.get(c)) for c in cols[1:]))
    table.add_row(Text("total", style="bold"), *(_num(metrics.get(c)) for c in cols))
    ratio = metrics.get("reuse_ratio")
    notes = [f"{float(ratio):.0%} of prompt tokens reused"] if ratio is not None else []
    if metrics.get("session_warmup_tokens"):  # computed when the session opened, before the question
        notes.append(f"session warm-up {int(metrics['session_warmup_tokens']):,} tokens in "
                     f"{float(metrics.get('session_warmup_s') or 0):.2f} s")
    if notes:
        table.caption = "; ".join(notes) + " (TTFT: median time to first token)"
        table.caption_justify = "left"
    return table


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def trace_table(trace: Sequence[Mapping[str, Any]], width: int = 90) -> Table:
    """The blackboard, one entry a row (round, agent, kind, first lines of content): ``/trace``."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("round", justify="right")
    table.add_column("agent")
    table.add_column("entry")
    table.add_column("content", overflow="fold")
    for i, entry in enumerate(trace, 1):
        content = str(entry.get("content", "")).strip()
        lines = content.splitlines()
        if len(lines) > 4:
            content = "\n".join(lines[:4]) + f"\n… ({len(lines) - 4} more lines)"
        label = str(entry.get("kind", ""))
        if entry.get("step"):
            label += f" {entry['step']}"
        table.add_row(str(i), str(entry.get("round", "")), str(entry.get("role", "")), label,
                      content[: width * 4])
    return table
