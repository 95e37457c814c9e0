"""What every LLM agent shares: prompt files, the prefix-stable request shape, and the run context.

Why one place: the header and schema must be byte-identical in every call of a session (they are
the shared prefix the engine reuses); only the role's short tail differs. Building every request
here makes that a property of the code rather than a convention each agent has to remember.
"""

from __future__ import annotations

import functools
import importlib.resources
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2
from pydantic import BaseModel

from ..blackboard import Blackboard
from ..config import AgentConfig
from ..serving.client import Program
from ..serving.types import GenerationRequest, GenerationResult, PromptSegments


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    """Prompt templates ship as package data; StrictUndefined makes a missing variable an error."""
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(_load_template), undefined=jinja2.StrictUndefined,
        autoescape=False, keep_trailing_newline=False, trim_blocks=False)


def _load_template(name: str) -> str:
    return importlib.resources.files("autotqa.agents").joinpath("prompts", name).read_text("utf-8")


def render_prompt(name: str, **variables: Any) -> str:
    """Render ``prompts/<name>.j2``; raises ``jinja2.UndefinedError`` if a variable is missing.

    >>> render_prompt("critic", step_id="s1", question="How many?").startswith("CRITIC:")
    True
    """
    return _environment().get_template(f"{name}.j2").render(**variables).strip()


def common_header() -> str:
    """The system header shared by all roles (no variables: it must never change within a session)."""
    return render_prompt("header")


def shared_prefix(schema_text: str) -> PromptSegments:
    """Header + schema: the part of every prompt that is warmed once and then reused."""
    return PromptSegments(header=common_header(), schema_block=schema_text)


@dataclass
class RunContext:
    """One question's run: its program, its board and the limits it runs under.

    ``on_call`` lets the orchestrator observe each LLM result (budget accounting, events) without
    agents knowing about either.
    """

    program: Program
    board: Blackboard
    prefix: PromptSegments
    config: AgentConfig
    question: str = ""
    round: int = 1
    started: float = field(default_factory=time.perf_counter)
    on_call: Callable[[GenerationResult], None] | None = None
    #: A follow-up's earlier (question, SQL): the Engineer edits that query for the new question.
    followup: tuple[str, str] | None = None
    #: No word of the question names a table or column (the User agent had to be asked): the
    #: first attempt also tests whether the tables hold what the question is about.
    doubtful: bool = False

    def segments(self, tail: str) -> PromptSegments:
        return self.prefix.model_copy(update={"transcript": self.board.render(), "tail": tail})

    def request(self, agent: str, tail: str, *, output_model: type[BaseModel] | None = None,
                stop: Sequence[str] = (), max_tokens: int = 128, step_id: str = "",
                depends_on: Sequence[str] = (), priority: int = 0, temperature: float = 0.0) -> GenerationRequest:
        return GenerationRequest(
            agent=agent, step_id=step_id or f"r{self.round}", depends_on=list(depends_on),
            segments=self.segments(tail), output_model=output_model, stop=list(stop),
            max_tokens=max_tokens, priority=priority, temperature=temperature)

    def _observe(self, results: Sequence[GenerationResult]) -> None:
        if self.on_call is not None:
            for res in results:
                self.on_call(res)

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """One call; every result (including a parse-repair round) is reported to ``on_call``."""
        before = len(self.program.results)
        try:
            return await self.program.generate(request)
        finally:
            self._observe(self.program.results[before:])

    async def fork(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        before = len(self.program.results)
        try:
            return await self.program.fork(requests)
        finally:
            self._observe(self.program.results[before:])
