"""The one interface every engine implements.

Engines are async and streaming. They render a request's segments themselves (through
``layout.py``) because each needs a different shape: raw ChatML text for llama.cpp, chat messages
for an OpenAI-compatible server. Parse-and-repair of structured output lives above the engines
(``structured.py``); an engine only *constrains* decoding when it can (``supports_json_schema``).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, ClassVar

from .types import GenerationRequest, GenerationResult, PromptSegments, StreamChunk


class Engine(abc.ABC):
    """Base class of all engines.

    Subclasses implement :meth:`stream`; :meth:`generate` collects it. A request with
    ``prefill_only=True`` computes (and caches) the prompt's state and returns an empty text with
    ``finish_reason="prefill"``.
    """

    name: ClassVar[str] = "engine"
    #: True when the engine enforces a JSON schema while decoding (grammar / guided decoding).
    supports_json_schema: ClassVar[bool] = False
    #: How many requests the engine can usefully run at once (1 for the embedded CPU engine).
    max_concurrency: int = 1
    #: True when :meth:`generate_batch` decodes a fork's branches together (the scheduler then
    #: hands it a fork as one unit); otherwise each branch is its own request.
    supports_batch: ClassVar[bool] = False

    @abc.abstractmethod
    def stream(self, request: GenerationRequest) -> AsyncIterator[StreamChunk]:
        """Yield text chunks; the final chunk carries the complete :class:`GenerationResult`."""

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        result: GenerationResult | None = None
        async for chunk in self.stream(request):
            if chunk.result is not None:
                result = chunk.result
        if result is None:  # pragma: no cover - an engine bug, not a user error
            raise RuntimeError(f"engine {self.name} ended a stream without a result")
        return result

    async def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """A fork's branches (one session, usually one shared prompt), results in request order.

        This default runs them one after another; engines that set ``supports_batch`` override it.
        """
        return [await self.generate(r) for r in requests]

    def prompt_token_ids(self, segments: PromptSegments) -> list[Any] | None:
        """The tokens this engine would compute for ``segments`` (None when it cannot say): lets a
        benchmark count a workload's distinct tokens, the least any KV reuse must compute."""
        return None

    def token_counter(self) -> Callable[[str], int] | None:
        """Counts the tokens of plain text as this engine's model does, for budgets set in tokens
        (``agents.schema_token_budget``); None when the engine has no tokenizer at hand (an HTTP
        server's is on the server; the scripted engine has none): callers then estimate."""
        return None

    def holds_prefix(self, session_id: str, prefix: PromptSegments) -> bool:
        """True when a warm-up of ``prefix`` (header + schema) for this session would compute
        nothing: the engine still holds its state from an earlier warm-up or call. Called on the
        event loop thread, so it must not block; False (warm again) when the engine cannot tell."""
        return False

    async def warm(self, request: GenerationRequest) -> GenerationResult:
        """Prefill a shared prefix so the next calls of its session reuse it."""
        return await self.generate(request.model_copy(update={"prefill_only": True, "max_tokens": 0}))

    def end_session(self, session_id: str) -> None:  # noqa: B027 - optional hook
        """Forget any cached state of a session (optional)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (threads, HTTP clients, model memory)."""
