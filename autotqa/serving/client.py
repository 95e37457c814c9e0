"""What agents see of the serving layer: programs, not loose requests.

``LLMClient.begin_program(session, shared_prefix)`` opens a program (one question); its
``generate`` / ``fork`` calls are tagged with the program and session so the scheduler can keep a
session together, run the critical path first and batch branches. ``end`` closes it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence

from pydantic import BaseModel

from ..errors import OutputParseError
from .engine import Engine
from .structured import parse_output, repair_instruction
from .types import GenerationRequest, GenerationResult, PromptSegments, StreamChunk

_program_ids = itertools.count(1)


class Program:
    """One question's worth of LLM calls against one session's shared prefix."""

    def __init__(self, client: LLMClient, session_id: str, shared_prefix: PromptSegments) -> None:
        self.client = client
        self.session_id = session_id
        self.shared_prefix = shared_prefix
        self.program_id = f"{session_id}/p{next(_program_ids)}"
        self.results: list[GenerationResult] = []

    def _tag(self, request: GenerationRequest) -> GenerationRequest:
        return request.model_copy(update={"program_id": self.program_id, "session_id": self.session_id})

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """Run one request; with ``output_model`` set, parse (one repair round) into ``result.parsed``."""
        req = self._tag(request)
        result = await self.client._run(req)
        self.results.append(result)
        model: type[BaseModel] | None = req.output_model
        if model is None:
            return result
        try:
            result.parsed = parse_output(model, result.text)
            return result
        except OutputParseError as err:
            seg = req.segments
            repair = req.model_copy(update={
                "segments": seg.model_copy(update={"tail": f"{seg.tail}\n\n{repair_instruction(model, err)}"}),
                "step_id": f"{req.step_id}:repair"})
            fixed = await self.client._run(repair)
            self.results.append(fixed)
            fixed.parsed = parse_output(model, fixed.text)  # raises OutputParseError with the raw reply
            return fixed

    async def fork(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Independent branches: submitted together, results in request order."""
        return list(await asyncio.gather(*(self.generate(r) for r in requests)))

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamChunk]:
        async for chunk in self.client.engine.stream(self._tag(request)):
            if chunk.result is not None:
                self.results.append(chunk.result)
            yield chunk

    async def end(self) -> None:
        self.client._end(self)


class LLMClient:
    """Entry point of the serving layer for agents. Wraps one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sem = asyncio.Semaphore(max(1, engine.max_concurrency))

    def begin_program(self, session_id: str, shared_prefix: PromptSegments) -> Program:
        return Program(self, session_id, shared_prefix)

    async def warm(self, session_id: str, shared_prefix: PromptSegments) -> GenerationResult:
        """Prefill a session's shared prefix (header + schema) before its first question."""
        req = GenerationRequest(segments=shared_prefix, session_id=session_id, agent="warmup",
                                prefill_only=True, max_tokens=0, priority=10)
        return await self._run(req)

    async def _run(self, request: GenerationRequest) -> GenerationResult:
        async with self._sem:
            return await self.engine.generate(request)

    def _end(self, program: Program) -> None:
        pass

    async def close(self) -> None:
        await self.engine.close()
