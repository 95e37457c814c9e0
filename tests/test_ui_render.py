"""What the rich renderings show, read back as plain text from a fixed-width console."""

from __future__ import annotations

from rich.console import Console

from autotqa.agents.events import (AgentFinished, AgentStarted, CodeWritten, ModelMistake, PlanMade,
                                   QuestionPosted, StepResult, VerdictGiven)
from autotqa.answer import Answer
from autotqa.executors.base import ExecutionResult
from autotqa.ui.live import ProgressView
from autotqa.ui.render import metrics_table, render_answer, result_table, trace_table


def text_of(*renderables: object, width: int = 100) -> str:
    console = Console(width=width, no_color=True, highlight=False)
    with console.capture() as cap:
        for r in renderables:
            console.print(r)
    return cap.get()


def _answer(**update: object) -> Answer:
    result = ExecutionResult(ok=True, columns=["country", "n"], rows=[["Germany", 33], ["France", 20]], n_rows=2)
    base = Answer(question="Customers per country?", answer="Germany has the most customers (33).",
                  values=["Germany", 33], sql="SELECT country, count(*) AS n FROM customers GROUP BY 1",
                  verified=True, plan=["s1: count customers per country"], result=result, elapsed_s=2.5,
                  metrics={"prompt_tokens": 1200, "reused_tokens": 900, "reuse_ratio": 0.75,
                           "completion_tokens": 30, "llm_calls": 3, "llm_s": 2.0})
    return base.model_copy(update=update)


def test_full_answer_view() -> None:
    lines = [ln.rstrip() for ln in text_of(render_answer(_answer())).splitlines()]
    assert lines[0].startswith("╭─ Answer ─") and "unverified" not in lines[0]
    assert "Germany has the most customers (33)." in lines[1]
    assert "values: Germany, 33" in lines[2]
    assert "Plan" in lines and "  1. s1: count customers per country" in lines
    assert "SELECT country, count(*) AS n FROM customers GROUP BY 1" in lines
    assert [ln.split() for ln in lines if ln.startswith((" Germany", " France", "Germany", "France"))] == [
        ["Germany", "33"], ["France", "20"]]
    assert "2 rows" in [ln.strip() for ln in lines]
    assert lines[-1] == ("2.50 s (LLM 2.00 s) · 1,200 prompt tokens, 75% reused · 30 generated · 3 LLM calls")


def test_badges_for_unverified_and_unanswerable() -> None:
    assert "╭─ Answer  unverified  ─" in text_of(render_answer(_answer(verified=False)))
    unanswerable = _answer(verified=False, unanswerable=True, values=[], sql=None, result=None, plan=[])
    out = text_of(render_answer(unanswerable))
    assert "unanswerable" in out.splitlines()[0] and "unverified" not in out
    assert "values:" not in out and "Plan" not in out


def test_result_table_caps_rows_and_says_how_many() -> None:
    result = ExecutionResult(ok=True, columns=["i"], rows=[[i] for i in range(50)], n_rows=1234, truncated=True)
    lines = [ln.strip() for ln in text_of(result_table(result, max_rows=5)).splitlines()]
    assert lines[-1] == "5 of 1,234 rows"
    assert [ln for ln in lines if ln.isdigit()] == ["0", "1", "2", "3", "4"]
    nulls = ExecutionResult(ok=True, columns=["x"], rows=[[None], [0.5]], n_rows=2)
    assert [ln.strip() for ln in text_of(result_table(nulls)).splitlines()][2:4] == ["NULL", "0.5"]


def test_metrics_table_rows_per_agent_and_total() -> None:
    metrics = {"llm_calls": 2, "prompt_tokens": 300, "reused_tokens": 200, "completion_tokens": 20,
               "llm_s": 1.5, "ttft_median_s": 0.25, "reuse_ratio": 0.6667, "session_warmup_tokens": 1234,
               "session_warmup_s": 9.5,
               "by_agent": {"planner": {"calls": 1, "prompt_tokens": 100, "reused_tokens": 50,
                                        "completion_tokens": 12, "llm_s": 0.5, "ttft_median_s": 0.125}}}
    rows = {ln.split()[0]: ln.split()[1:] for ln in text_of(metrics_table(metrics)).splitlines()
            if ln.strip().startswith(("planner", "total"))}
    assert rows == {"planner": ["1", "100", "50", "12", "0.50", "0.12"],
                    "total": ["2", "300", "200", "20", "1.50", "0.25"]}
    caption = " ".join(text_of(metrics_table(metrics)).split())
    assert "67% of prompt tokens reused; session warm-up 1,234 tokens in 9.50 s" in caption


def test_trace_table_shortens_long_entries() -> None:
    trace = [{"kind": "code", "role": "engineer", "content": "\n".join(f"line{i}" for i in range(10)),
              "round": 1, "step": "s1", "data": {}}]
    out = text_of(trace_table(trace))
    assert "code s1" in out and "line3" in out and "line4" not in out and "… (6 more lines)" in out


def test_progress_view_lines() -> None:
    console = Console(width=100, no_color=True, highlight=False)
    view = ProgressView(console, spinner=False)
    events = [AgentStarted(agent="user", round=1), QuestionPosted(question="How many orders?"),
              AgentFinished(agent="user", round=1, elapsed_s=0.01),
              PlanMade(round=1, steps=["s1: a", "s2: b"]),
              CodeWritten(round=1, step="s1", language="sql", code="SELECT\n  count(*)\nFROM orders"),
              StepResult(round=1, step="s1", ok=False, preview="", error="Binder Error: no column x"),
              ModelMistake(round=1, agent="planner", message="no JSON"),
              ModelMistake(round=1, agent="system", message="budget spent (900 tokens, 180.2 s)"),
              VerdictGiven(round=1, step="s1", verdict="revise", note="wrong table")]
    with console.capture() as cap:
        for e in events:
            view(e)
    assert cap.get().splitlines() == [
        "  user      question: How many orders?",
        "  planner   plan (2 steps):",
        "            s1: a",
        "            s2: b",
        "  engineer  s1 SQL: SELECT count(*) FROM orders",
        "  executor  s1 failed: Binder Error: no column x",
        "  planner   unusable reply: no JSON",
        "  system    budget spent (900 tokens, 180.2 s)",
        "  critic    revise: wrong table",
    ]
    verbose = ProgressView(console, verbose=True, spinner=False)
    with console.capture() as cap:
        verbose(AgentFinished(agent="critic", round=2, step="s1", elapsed_s=1.25))
        verbose(StepResult(round=1, step="s1", ok=True, preview="n\n7\n(1 row)", n_rows=1))
    assert [ln.rstrip() for ln in cap.get().splitlines()] == ["  critic    done s1 in 1.25 s", "  executor  s1 ok, 1 row",
                                      "            n", "            7", "            (1 row)"]
