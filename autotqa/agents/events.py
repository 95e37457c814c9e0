"""Typed events a run emits while it works, for a UI to stream and a test to assert on.

Every event is a pydantic model with a ``kind`` field, so a consumer can switch on ``event.kind``
or validate a JSON line back with ``EVENT_ADAPTER``. The last event of a run is ``AnswerReady``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter

from ..answer import Answer


class AgentStarted(BaseModel):
    kind: Literal["agent_started"] = "agent_started"
    agent: str
    round: int
    step: str = ""


class AgentFinished(BaseModel):
    kind: Literal["agent_finished"] = "agent_finished"
    agent: str
    round: int
    step: str = ""
    elapsed_s: float = 0.0


class QuestionPosted(BaseModel):
    kind: Literal["question"] = "question"
    question: str
    answerable: bool = True


class PlanMade(BaseModel):
    kind: Literal["plan"] = "plan"
    round: int
    steps: list[str]


class CodeWritten(BaseModel):
    kind: Literal["code"] = "code"
    round: int
    step: str
    language: str
    code: str


class StepResult(BaseModel):
    kind: Literal["result"] = "result"
    round: int
    step: str
    ok: bool
    preview: str
    n_rows: int = 0
    error: str | None = None


class ModelMistake(BaseModel):
    """A reply that could not be used (unparsable plan, no code): recorded and fed back."""

    kind: Literal["mistake"] = "mistake"
    round: int
    step: str = ""
    agent: str
    message: str


class VerdictGiven(BaseModel):
    kind: Literal["verdict"] = "verdict"
    round: int
    step: str
    verdict: Literal["accept", "revise", "replan"]
    note: str = ""
    deterministic: bool = False


class AnswerReady(BaseModel):
    kind: Literal["answer"] = "answer"
    answer: Answer


Event = Annotated[
    AgentStarted | AgentFinished | QuestionPosted | PlanMade | CodeWritten | StepResult | ModelMistake
    | VerdictGiven | AnswerReady,
    Field(discriminator="kind"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
