"""The Executor agent: not an LLM. Runs a step's code and posts the result on the board.

It picks the executor for the step's language (falling back to SQL when no pandas executor is
configured) and posts either the result preview (capped, so prompts stay short) or the error,
which the Engineer reads to repair.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..executors.base import ExecutionResult, Executor, Language
from .base import RunContext
from .planner import Step


class ExecutorAgent:
    role = "executor"

    def __init__(self, executors: Mapping[Language, Executor], preview_rows: int = 8) -> None:
        if "sql" not in executors:
            raise ValueError("an SQL executor is required")
        self.executors = dict(executors)
        self.preview_rows = preview_rows

    @property
    def languages(self) -> list[Language]:
        return list(self.executors)

    def run(self, ctx: RunContext, step: Step, code: str) -> ExecutionResult:
        """Execute and post. Model mistakes come back as ``ok=False`` results, never exceptions."""
        executor = self.executors.get(step.language) or self.executors["sql"]
        result = executor.run(code)
        data = {"result": result.model_dump(mode="json")}
        if result.ok:
            ctx.board.add("result", "executor", result.preview(max_rows=self.preview_rows),
                          round=ctx.round, step=step.id, data=data)
        else:
            ctx.board.add("error", "executor", f"{result.error_type}: {result.error}",
                          round=ctx.round, step=step.id, data=data)
        return result
