"""The answer contract shared by the Python API, the CLI (``--json``) and the evaluation harness."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from .executors.base import ExecutionResult, Language


class Provenance(BaseModel):
    """Where answer values came from: the code as run and the rows it returned."""

    step_id: str
    language: Language
    code: str
    columns: list[str] = Field(default_factory=list)
    rows: list[list[Any]] = Field(default_factory=list)
    n_rows: int = 0


class Answer(BaseModel):
    """The final answer to one question.

    ``values`` are the answer values (numbers as numbers); ``sql`` is the final query or code;
    ``verified`` is False when the loop ran out of budget and returned its best supported result,
    or the question could not be answered from the tables (then ``unanswerable`` is True).
    ``metrics`` holds token and time figures (prompt/reused/completion tokens, reuse_ratio,
    llm_s, non_llm_s, llm_calls, per-agent breakdown). ``trace`` is the blackboard as JSON.
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
    elapsed_s: float = 0.0
