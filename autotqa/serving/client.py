"""What agents see of the serving layer: programs, not loose requests.

``LLMClient.begin_program(session, shared_prefix)`` opens a program (one question) and, unless
disabled, submits a low-priority prefill-only warm-up of the shared prefix at once, so the schema is
computed while the question is still being prepared. A warm-up that would compute nothing is not
sent: one for the same session and prefix is still queued or running (the session-open one), or
the engine says it still holds the prefix (``Engine.holds_prefix``; an HTTP server's cache until it
has been idle ``engine.rewarm_after_s``). The program's ``generate`` / ``fork`` /
``stream`` calls are tagged with the program and session and go through the app-aware
:class:`~autotqa.serving.scheduler.Scheduler` (session locality, critical path first, branches
batched); every call is recorded in ``client.metrics``. ``end`` closes the program.

>>> import asyncio
>>> from autotqa.serving.engines.scripted import ScriptedEngine
>>> from autotqa.serving.types import GenerationRequest, PromptSegments
>>> async def main():
...     client = LLMClient(ScriptedEngine(["SELECT 1"]))
...     async with client.begin_program("s1", PromptSegments(header="H", schema_block="S")) as prog:
...         r = await prog.generate(GenerationRequest(segments=PromptSegments(header="H", tail="go")))
...     return r.text, client.metrics.summary(prog.program_id)["llm_calls"]
>>> asyncio.run(main())
('SELECT 1', 1)
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Any

from pydantic import BaseModel

from ..errors import OutputParseError
from .engine import Engine
from .layout import role_first
from .metrics import MetricsRecorder
from .options import ServingOptions
from .scheduler import Policy, Scheduler
from .structured import parse_output, repair_instruction
from .types import GenerationRequest, GenerationResult, PromptSegments, StreamChunk, new_request_id


class Program:
    """One question's worth of LLM calls against one session's shared prefix."""

    def __init__(self, client: LLMClient, session_id: str, shared_prefix: PromptSegments,
                 program_id: str) -> None:
        self.client = client
        self.session_id = session_id
        self.shared_prefix = shared_prefix
        self.program_id = program_id
        self.results: list[GenerationResult] = []
        #: request id -> (wall-clock submit time, the request): what a trace shows of each call.
        self.sent: dict[str, tuple[float, GenerationRequest]] = {}
        #: The warm-up's future: None when warm-up is off, the engine still held the prefix, or
        #: outside a running loop until the first call submits it.
        self.warmup: asyncio.Future[GenerationResult] | None = None
        self._warm_pending = False
        self._ended = False

    def _tag(self, request: GenerationRequest) -> GenerationRequest:
        return request.model_copy(update={"program_id": self.program_id, "session_id": self.session_id})

    def _laid_out(self, request: GenerationRequest) -> GenerationRequest:
        """The request as the engine gets it: the ablation's naive layout moves the role text first
        (done at sending, so a parse-repair round still extends the agent's own tail)."""
        if self.client.options.layout == "stable":
            return request
        return request.model_copy(update={"segments": role_first(request.segments)})

    def _submit_deferred_warmup(self) -> None:
        """begin_program outside a running loop cannot submit; the first call does it instead."""
        if self._warm_pending:
            self._warm_pending = False
            self.warmup = self.client._submit_warmup(self)

    async def _run(self, request: GenerationRequest) -> GenerationResult:
        self._submit_deferred_warmup()
        request = self._laid_out(request)
        self.sent[request.request_id] = (time.time(), request)
        result = await self.client.scheduler.submit(request)
        self.results.append(result)
        return result

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """Run one request; with ``output_model`` set, parse (one repair round) into ``result.parsed``."""
        req = self._tag(request)
        result = await self._run(req)
        model: type[BaseModel] | None = req.output_model
        if model is None:
            return result
        try:
            result.parsed = parse_output(model, result.text)
            return result
        except OutputParseError as err:
            seg = req.segments
            repair = req.model_copy(update={
                "request_id": new_request_id(),
                "depends_on": [req.request_id],
                "segments": seg.model_copy(update={"tail": f"{seg.tail}\n\n{repair_instruction(model, err)}"}),
                "step_id": f"{req.step_id}:repair"})
            fixed = await self._run(repair)
            fixed.parsed = parse_output(model, fixed.text)  # raises OutputParseError with the raw reply
            return fixed

    async def fork(self, requests: Sequence[GenerationRequest] | GenerationRequest,
                   n: int | None = None) -> list[GenerationResult]:
        """Independent branches, submitted together: one unit for an engine that decodes branches
        together (``Engine.supports_batch``), else each its own request (run side by side when the
        engine has several slots).

        Either a list of requests, or one request and ``n`` (n-way sampling: copies with step ids
        ``<step>#0`` .. ``<step>#n-1``). Results come back in request order.
        """
        if isinstance(requests, GenerationRequest):
            base = requests
            requests = [base.model_copy(update={"request_id": new_request_id(), "step_id": f"{base.step_id}#{i}"})
                        for i in range(n if n is not None else 1)]
        elif n is not None:
            raise ValueError("fork(n=...) takes one request, not a list")
        tagged = [self._tag(r) for r in requests]
        if not self._batchable(tagged):
            return list(await asyncio.gather(*(self.generate(r) for r in requests)))
        self._submit_deferred_warmup()
        tagged = [self._laid_out(r) for r in tagged]
        sent_at = time.time()
        for r in tagged:
            self.sent[r.request_id] = (sent_at, r)
        results = await self.client.scheduler.submit_batch(tagged)
        self.results.extend(results)
        return results

    def _batchable(self, requests: list[GenerationRequest]) -> bool:
        """One unit for the engine: it decodes branches together, and no branch needs another's
        result or a parse-and-repair round (structured output goes request by request)."""
        ids = {r.request_id for r in requests}
        return (self.client.engine.supports_batch and len(requests) > 1
                and not any(r.output_model is not None or r.json_schema is not None
                            or ids.intersection(r.depends_on) for r in requests))

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamChunk]:
        """Stream text chunks through the scheduler's slot; the last chunk carries the result.

        Stop early with ``contextlib.aclosing``/``break`` + ``aclose()``: the engine stream is closed
        and the slot freed. (Stopping at a complete code block is done by the engine via ``stop``.)
        """
        self._submit_deferred_warmup()
        request = self._laid_out(self._tag(request))
        self.sent[request.request_id] = (time.time(), request)
        inner = self.client.scheduler.stream(request)
        try:
            async for chunk in inner:
                if chunk.result is not None:
                    self.results.append(chunk.result)
                yield chunk
        finally:
            await inner.aclose()  # type: ignore[attr-defined]

    async def end(self) -> None:
        if not self._ended:
            self._ended = True
            self.client.scheduler.end_program(self.program_id)

    async def __aenter__(self) -> Program:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.end()


class LLMClient:
    """Entry point of the serving layer for agents: one engine behind one scheduler.

    ``policy="fifo"`` with ``warm_on_begin=False`` gives the naive baseline (used by the benchmark).
    ``anticipate_s``/``aging_skips``/``max_concurrency``/``clock`` are passed to the scheduler.
    ``options`` (the ablation's switches, ``options.py``) replaces ``policy`` and ``warm_on_begin``
    when given; its ``kv_reuse`` belongs to the engine (``factory.engine_options``).
    """

    def __init__(self, engine: Engine, *, policy: Policy = "app_aware", max_concurrency: int | None = None,
                 anticipate_s: float = 0.05, aging_skips: int = 32,
                 clock: Callable[[], float] = time.monotonic, metrics: MetricsRecorder | None = None,
                 warm_on_begin: bool = True, warmup_priority: int = 10,
                 options: ServingOptions | None = None) -> None:
        if options is not None:
            policy, warm_on_begin = options.policy, options.warm_up
        self.options = options or ServingOptions()
        self.engine = engine
        self.metrics = metrics if metrics is not None else MetricsRecorder(clock=clock)
        self.scheduler = Scheduler(engine, policy=policy, max_concurrency=max_concurrency, clock=clock,
                                   metrics=self.metrics, anticipate_s=anticipate_s, aging_skips=aging_skips,
                                   locality=self.options.locality, priority=self.options.priority)
        self.warm_on_begin = warm_on_begin
        self.warmup_priority = warmup_priority
        #: (session, shared prefix) -> its warm-up while queued or running: a second one is redundant.
        self._warming: dict[tuple[str, PromptSegments], asyncio.Future[GenerationResult]] = {}
        self._program_ids = itertools.count(1)

    def begin_program(self, session_id: str, shared_prefix: PromptSegments, *,
                      warm: bool | None = None) -> Program:
        """Open a program; warm its shared prefix now (``warm`` overrides ``warm_on_begin``)."""
        program = Program(self, session_id, shared_prefix, f"{session_id}/p{next(self._program_ids)}")
        self.scheduler.begin_program(program.program_id, session_id)
        if self.warm_on_begin if warm is None else warm:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                program._warm_pending = True
            else:
                program.warmup = self._submit_warmup(program)
        return program

    def _warmup_request(self, session_id: str, shared_prefix: PromptSegments, program_id: str) -> GenerationRequest:
        return GenerationRequest(segments=shared_prefix, session_id=session_id, program_id=program_id,
                                 agent="warmup", step_id="warmup", prefill_only=True, max_tokens=0,
                                 priority=self.warmup_priority)

    def _queue_warmup(self, session_id: str, shared_prefix: PromptSegments,
                      program_id: str) -> asyncio.Future[GenerationResult]:
        fut = self.scheduler.submit(self._warmup_request(session_id, shared_prefix, program_id), warmup=True)
        key = (session_id, shared_prefix)
        self._warming[key] = fut
        fut.add_done_callback(lambda f: self._warming.pop(key) if self._warming.get(key) is f else None)
        return fut

    def _submit_warmup(self, program: Program) -> asyncio.Future[GenerationResult] | None:
        """A question's warm-up, unless one is on its way or the engine still holds the prefix."""
        pending = self._warming.get((program.session_id, program.shared_prefix))
        if pending is not None:
            return pending  # the scheduler runs it before this session's calls anyway
        if self.engine.holds_prefix(program.session_id, program.shared_prefix):
            return None
        fut = self._queue_warmup(program.session_id, program.shared_prefix, program.program_id)
        fut.add_done_callback(lambda f: None if f.cancelled() else f.exception())
        return fut

    async def warm(self, session_id: str, shared_prefix: PromptSegments) -> GenerationResult:
        """Prefill a session's shared prefix (header + schema) before its first question; always
        sent (a new session's prefix is not warm, and this is the warm-up the questions skip)."""
        return await self._queue_warmup(session_id, shared_prefix, f"{session_id}/warm")

    def summary(self, key: str | None = None) -> dict[str, Any]:
        """Metrics of a program or session (the dict that goes into ``Answer.metrics``)."""
        return self.metrics.summary(key)

    def end_session(self, session_id: str) -> None:
        """Let the engine drop a session's cached state (chat closed)."""
        self.engine.end_session(session_id)

    async def close(self) -> None:
        await self.engine.close()
