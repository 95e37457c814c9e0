"""The answer contract shared by the Python API, the CLI (``--json``) and the evaluation harness."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from .executors.base import ExecutionResult, Language

if TYPE_CHECKING:
    import pandas as pd


class Provenance(BaseModel):
    """Where answer values came from: the code as run and the rows it returned."""

    step_id: str
    language: Language
    code: str
    columns: list[str] = Field(default_factory=list)
    rows: list[list[Any]] = Field(default_factory=list)
    n_rows: int = 0


class LLMCall(BaseModel):
    """One LLM call of the run, as a trace shows it after the fact.

    ``started_at`` is wall-clock time (Unix seconds) when the call was submitted; ``queued_s`` is
    the wait for the engine, ``ttft_s`` the time to the first token, ``total_s`` the engine's run
    time. ``cached_tokens`` are prompt tokens whose KV state was reused. ``prompt`` (the chat
    messages as sent, role -> text) and ``reply`` are kept only when prompts are traced
    (``agents.trace_prompts``; ``--trace-prompts``).
    """

    request_id: str
    agent: str
    step_id: str = ""
    started_at: float = 0.0
    queued_s: float = 0.0
    ttft_s: float = 0.0
    total_s: float = 0.0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    prompt: list[dict[str, str]] | None = None
    reply: str | None = None


class Answer(BaseModel):
    """The final answer to one question.

    ``values`` are the answer values (numbers as numbers); ``sql`` is the final query or code;
    ``verified`` is False when the loop ran out of budget and returned its best supported result,
    or the question could not be answered from the tables (then ``unanswerable`` is True).
    ``metrics`` holds token and time figures (prompt/reused/completion tokens, reuse_ratio,
    llm_s, non_llm_s, llm_calls, per-agent breakdown). ``trace`` is the blackboard as JSON;
    ``calls`` are the LLM calls in the order they were made.
    ``result`` holds the final query's rows up to the executor's row cap (``executor.row_cap``;
    ``result.truncated`` says when the query returned more): :meth:`to_pandas` gives them as a table.
    """

    question: str
    answer: str
    values: list[Any] = Field(default_factory=list)
    sql: str | None = None
    language: Language = "sql"
    verified: bool = False
    unanswerable: bool = False
    plan: list[str] = Field(default_factory=list)
    result: ExecutionResult | None = None
    provenance: list[Provenance] = Field(default_factory=list)
    trace: list[dict[str, Any]] = Field(default_factory=list)
    metrics: dict[str, Any] = Field(default_factory=dict)
    calls: list[LLMCall] = Field(default_factory=list)
    elapsed_s: float = 0.0

    def to_pandas(self) -> pd.DataFrame:
        """The final result as a DataFrame (empty, without columns, when there is no result).

        >>> from autotqa.executors.base import ExecutionResult
        >>> a = Answer(question="q", answer="a", result=ExecutionResult(ok=True, columns=["city", "n"],
        ...            rows=[["Oslo", 3], ["Rome", 5]], n_rows=2))
        >>> a.to_pandas().to_dict("list")
        {'city': ['Oslo', 'Rome'], 'n': [3, 5]}
        """
        import pandas as pd

        result = self.result
        if result is None or not result.ok:
            return pd.DataFrame()
        return pd.DataFrame.from_records([tuple(r) for r in result.rows], columns=list(result.columns))
