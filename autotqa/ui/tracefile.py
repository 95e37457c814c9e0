"""The ``--trace`` file: one question's run, kept so it can be read back (``autotqa trace show``).

The file is one JSON object (:class:`TraceFile`): the question and answer, the blackboard entries
(question, plan, code, results, critiques, answer) and every LLM call with its prompt / cached /
completion tokens, queue time, time to first token, run time and wall-clock start; with
``--trace-prompts`` also each call's prompt messages and reply. A bare JSON list of blackboard
entries (the format ``--trace`` wrote before) is read too.

:func:`render_trace` replays the entries through the chat's progress view (verbose), so a saved
run reads like it did live, then shows the answer and a table of the calls.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich import box
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..agents.events import CodeWritten, ModelMistake, PlanMade, QuestionPosted, StepResult
from ..answer import Answer, LLMCall
from ..blackboard import Entry
from ..errors import ConfigError
from .live import ProgressView
from .render import answer_panel, metrics_line

FORMAT = "autotqa-trace"


class TraceFile(BaseModel):
    """Everything ``trace show`` needs, and nothing that needs the data or the model."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["autotqa-trace"]
    version: int = 1
    question: str = ""
    answer: str = ""
    values: list[Any] = Field(default_factory=list)
    verified: bool = False
    unanswerable: bool = False
    sql: str | None = None
    elapsed_s: float = 0.0
    metrics: dict[str, Any] = Field(default_factory=dict)
    entries: list[Entry] = Field(default_factory=list)
    calls: list[LLMCall] = Field(default_factory=list)

    @classmethod
    def from_answer(cls, answer: Answer) -> TraceFile:
        return cls(format=FORMAT, question=answer.question, answer=answer.answer, values=answer.values,
                   verified=answer.verified, unanswerable=answer.unanswerable, sql=answer.sql,
                   elapsed_s=answer.elapsed_s, metrics=answer.metrics,
                   entries=[Entry.model_validate(e) for e in answer.trace], calls=answer.calls)

    @property
    def has_prompts(self) -> bool:
        return any(c.prompt is not None for c in self.calls)


def write_trace(answer: Answer, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(TraceFile.from_answer(answer).model_dump_json(indent=1), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the trace to {path}: {exc.strerror or exc}",
                          hint="choose a writable --trace path") from None


def read_trace(path: Path) -> TraceFile:
    """Read a trace file; anything else is one clear error."""
    hint = "give a file written by `autotqa ask --trace FILE`"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file", hint=hint) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}", hint=hint) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not JSON (line {exc.lineno}, column {exc.colno})", hint=hint) from None
    try:
        if isinstance(raw, list):  # entries only (older --trace files)
            entries = [Entry.model_validate(e) for e in raw]
            question = next((e.content for e in entries if e.kind == "question"), "")
            final = next((e for e in reversed(entries) if e.kind == "answer"), None)
            return TraceFile(format=FORMAT, question=question, entries=entries, answer=final.content if final else "",
                             values=final.data.get("values", []) if final else [],
                             verified=bool(final.data.get("verified", final.role == "critic")) if final else False)
        return TraceFile.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "top level"
        raise ConfigError(f"{path}: not an autotqa trace ({where}: {err['msg'].lower()})", hint=hint) from None


def _clock(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%H:%M:%S.%f")[:-3] if ts else "-"


def calls_table(calls: list[LLMCall]) -> Table:
    """One row per LLM call: when, for whom, how long it waited / took, and its tokens."""
    table = Table(box=box.SIMPLE_HEAD, title="LLM calls", title_justify="left")
    for header, justify in (("#", "right"), ("agent", "left"), ("step", "left"), ("started", "left"),
                            ("queued s", "right"), ("TTFT s", "right"), ("total s", "right"),
                            ("prompt", "right"), ("cached", "right"), ("generated", "right"),
                            ("finish", "left")):
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for i, c in enumerate(calls, 1):
        table.add_row(str(i), c.agent, c.step_id, _clock(c.started_at), f"{c.queued_s:.2f}", f"{c.ttft_s:.2f}",
                      f"{c.total_s:.2f}", f"{c.prompt_tokens:,}", f"{c.cached_tokens:,}",
                      f"{c.completion_tokens:,}", c.finish_reason)
    if calls:
        table.add_row("", Text("total", style="bold"), "", "", f"{sum(c.queued_s for c in calls):.2f}", "",
                      f"{sum(c.total_s for c in calls):.2f}", f"{sum(c.prompt_tokens for c in calls):,}",
                      f"{sum(c.cached_tokens for c in calls):,}", f"{sum(c.completion_tokens for c in calls):,}", "")
    return table


def prompts_view(calls: list[LLMCall]) -> Group:
    """Each call's prompt messages and reply, as sent and received."""
    parts: list[RenderableType] = []
    for i, c in enumerate(calls, 1):
        if c.prompt is None:
            continue
        body = Text()
        for message in c.prompt:
            body.append(f"[{message.get('role', '?')}]\n", style="bold")
            body.append(message.get("content", "") + "\n\n")
        body.append("[reply]\n", style="bold green")
        body.append(c.reply or "")
        parts.append(Panel(body, title=f"call {i}: {c.agent} {c.step_id}".rstrip(), title_align="left",
                           box=box.SQUARE))
    return Group(*parts)


def _replay(view: ProgressView, entry: Entry) -> None:
    """One entry as the chat showed it live."""
    kind, data = entry.kind, entry.data
    if kind == "question":
        view(QuestionPosted(question=entry.content, answerable=bool(data.get("answerable", True))))
    elif kind == "plan":
        view(PlanMade(round=entry.round, steps=entry.content.splitlines()))
    elif kind == "code":
        view(CodeWritten(round=entry.round, step=entry.step, language=data.get("language", "sql"),
                         code=entry.content))
    elif kind == "result" or (kind == "error" and entry.role == "executor"):
        res = data.get("result", {})
        view(StepResult(round=entry.round, step=entry.step, ok=kind == "result", preview=entry.content,
                        n_rows=res.get("n_rows", 0), error=res.get("error")))
    elif kind == "error":
        view(ModelMistake(round=entry.round, step=entry.step, agent=entry.role, message=entry.content))
    elif kind == "critique":
        accepted = str(data.get("verdict", "")) == "accept"
        view.line("critic", entry.content, style="green" if accepted else "yellow")
    elif kind == "history":
        view.line("user", f"earlier: {entry.content}", style="dim")
    elif kind == "answer":  # the critic's acceptance lives on the answer entry, not a critique
        verified = bool(data.get("verified"))
        view.line(entry.role, f"{'accept: ' if verified else ''}{entry.content}",
                  style="green" if verified else "yellow")


def print_trace(trace: TraceFile, console: Console, *, prompts: bool = False) -> None:
    """The run as the chat showed it, the answer, the calls (and, with ``prompts``, what was sent)."""
    view = ProgressView(console, verbose=True, spinner=False)
    for entry in trace.entries:
        _replay(view, entry)
    answer = Answer(question=trace.question, answer=trace.answer, values=trace.values, verified=trace.verified,
                    unanswerable=trace.unanswerable, metrics=trace.metrics, elapsed_s=trace.elapsed_s)
    console.print(answer_panel(answer))
    if trace.metrics:
        console.print(metrics_line(answer))
    if trace.calls:
        console.print(calls_table(trace.calls))
    if prompts:
        if trace.has_prompts:
            console.print(prompts_view(trace.calls))
        else:
            console.print("this trace has no prompts: record them with `autotqa ask ... --trace FILE "
                          "--trace-prompts`", style="dim", highlight=False)
