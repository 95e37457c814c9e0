"""A scripted engine for unit tests of logic: replies come from a list or a function.

It is a test double, never a stand-in for a real engine in user-facing paths. It still counts
tokens (whitespace-split words) and prefix reuse against the previous prompt of the same session
(none with ``session_cache=False``), so scheduler and layout logic can be tested with exact numbers.

>>> import asyncio
>>> from autotqa.serving.types import GenerationRequest, PromptSegments
>>> eng = ScriptedEngine(["SELECT 1"])
>>> r = asyncio.run(eng.generate(GenerationRequest(segments=PromptSegments(header="h"))))
>>> r.text
'SELECT 1'
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, ClassVar

from ..engine import Engine
from ..layout import render_chatml, shared_prefix_text
from ..types import GenerationRequest, GenerationResult, PromptSegments, StreamChunk, Timings, Usage

Reply = str | Callable[[GenerationRequest], str]


def _tokens(text: str) -> list[str]:
    return text.split()


class ScriptedEngine(Engine):
    """Replies from ``replies`` (consumed in order) or from ``fn(request)``.

    Every request seen is kept in ``self.requests`` (with its rendered ``self.prompts``) for assertions.
    """

    name: ClassVar[str] = "scripted"

    def __init__(self, replies: Iterable[Reply] | None = None, *,
                 fn: Callable[[GenerationRequest], str] | None = None,
                 supports_json_schema: bool = False, max_concurrency: int = 1,
                 stream_words: bool = False, batch: bool = False, session_cache: bool = True) -> None:
        self._replies = list(replies or [])
        self._fn = fn
        self.requests: list[GenerationRequest] = []
        self.prompts: list[str] = []
        self._last_prompt: dict[str, list[str]] = {}
        self.supports_json_schema = supports_json_schema  # type: ignore[misc]
        self.max_concurrency = max_concurrency
        #: Stream a reply word by word (like a real engine) instead of as one chunk.
        self.stream_words = stream_words
        #: Take forks as one unit (``generate_batch``); each fork's request ids land in ``batches``.
        self.supports_batch = batch  # type: ignore[misc]
        self.batches: list[list[str]] = []
        #: Off: no prompt token counts as reused (an engine without KV reuse, the ablation's naive row).
        self.session_cache = session_cache

    def _reply_for(self, request: GenerationRequest) -> str:
        if request.prefill_only:
            return ""
        if self._replies:
            nxt = self._replies.pop(0)
            return nxt(request) if callable(nxt) else nxt
        if self._fn is not None:
            return self._fn(request)
        raise AssertionError(f"ScriptedEngine ran out of replies at request {request.agent}/{request.step_id}")

    def prompt_token_ids(self, segments: PromptSegments) -> list[Any]:
        return _tokens(render_chatml(segments))

    def holds_prefix(self, session_id: str, prefix: PromptSegments) -> bool:
        """Its one cached prompt per session (what reuse is counted against) starts with the prefix."""
        want = _tokens(shared_prefix_text(prefix))
        return self.session_cache and self._last_prompt.get(session_id, [])[: len(want)] == want

    async def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self.batches.append([r.request_id for r in requests])
        return [await self.generate(r) for r in requests]

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamChunk]:
        t0 = time.perf_counter()
        prompt = render_chatml(request.segments)
        self.requests.append(request)
        self.prompts.append(prompt)
        toks = _tokens(prompt)
        prev = self._last_prompt.get(request.session_id, [])
        reused = 0
        for a, b in zip(prev if self.session_cache else [], toks):
            if a != b:
                break
            reused += 1
        self._last_prompt[request.session_id] = toks
        text = self._reply_for(request)
        finish = "prefill" if request.prefill_only else "stop"
        for s in request.stop:
            idx = text.find(s)
            if idx >= 0:
                text = text[:idx]
        pieces = re.findall(r"\s*\S+\s*?(?=\s|$)|\s+$", text) if self.stream_words else [text]
        for piece in pieces:
            if piece:
                yield StreamChunk(text=piece)
        usage = Usage(prompt_tokens=len(toks), reused_tokens=reused, completion_tokens=len(_tokens(text)))
        elapsed = time.perf_counter() - t0
        yield StreamChunk(result=GenerationResult(
            request_id=request.request_id, text=text, finish_reason=finish, usage=usage,
            timings=Timings(ttft_s=elapsed, total_s=elapsed), agent=request.agent,
            program_id=request.program_id, session_id=request.session_id))
