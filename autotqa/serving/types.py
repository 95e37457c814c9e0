"""Typed boundary of the serving layer: what a caller asks for and what comes back.

A request carries its place in the application (program, agent, step, dependencies) so the
scheduler can order and group work, and its prompt as ordered *segments* so every call of a
session shares a byte-identical prefix (see ``layout.py``).
"""

from __future__ import annotations

import itertools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "prefill", "cancelled", "error"]

_ids = itertools.count(1)


def new_request_id(prefix: str = "req") -> str:
    """Process-unique, deterministic-order request ids (no randomness, no clock)."""
    return f"{prefix}-{next(_ids)}"


class Message(BaseModel):
    model_config = ConfigDict(frozen=True)
    role: Role
    content: str


class PromptSegments(BaseModel):
    """The four ordered parts of every prompt.

    ``header`` and ``schema_block`` are identical for all calls of a session (the shared prefix);
    ``transcript`` only grows; ``tail`` is the short role-specific instruction and comes last.
    """

    model_config = ConfigDict(frozen=True)
    header: str
    schema_block: str = ""
    transcript: str = ""
    tail: str = ""


class GenerationRequest(BaseModel):
    """One LLM call, tagged with its place in the program."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    request_id: str = Field(default_factory=new_request_id)
    program_id: str = "default"
    session_id: str = "default"
    agent: str = "anonymous"
    step_id: str = ""
    depends_on: list[str] = Field(default_factory=list)
    segments: PromptSegments
    max_tokens: int = 256
    temperature: float = 0.0
    stop: list[str] = Field(default_factory=list)
    # Structured output: a pydantic model class (preferred) or a raw JSON schema.
    output_model: Any = Field(default=None, exclude=True)
    json_schema: dict[str, Any] | None = None
    priority: int = 0  # lower runs first (vLLM convention)
    # Prefill only: compute the prompt's KV state and generate nothing (prefix warm-up).
    prefill_only: bool = False

    def schema_dict(self) -> dict[str, Any] | None:
        if self.output_model is not None:
            return self.output_model.model_json_schema()
        return self.json_schema


class Usage(BaseModel):
    prompt_tokens: int = 0
    reused_tokens: int = 0  # prompt tokens whose KV state was reused, not recomputed
    completion_tokens: int = 0

    @property
    def computed_tokens(self) -> int:
        return self.prompt_tokens - self.reused_tokens


class Timings(BaseModel):
    queued_s: float = 0.0
    ttft_s: float = 0.0
    total_s: float = 0.0


class GenerationResult(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    request_id: str
    text: str
    parsed: Any = Field(default=None, exclude=True)  # instance of request.output_model, if any
    finish_reason: FinishReason = "stop"
    usage: Usage = Field(default_factory=Usage)
    timings: Timings = Field(default_factory=Timings)
    agent: str = ""
    program_id: str = ""
    session_id: str = ""


class StreamChunk(BaseModel):
    """A piece of streamed output. The last chunk of a stream has ``result`` set."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    text: str = ""
    result: GenerationResult | None = None
