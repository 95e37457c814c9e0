"""vLLM in-process: ``AsyncLLM`` (vLLM v1) with prefix caching and priority scheduling.

For a GPU box that runs autotqa itself (no separate server). What the engine maps from a
:class:`GenerationRequest` onto vLLM:

- **Prompt.** ``layout.to_messages`` rendered by the model's own chat template through vLLM's
  renderer (``render_chat_async``: the same path ``vllm serve`` takes), so in-process and HTTP
  deployments produce identical token ids and share prefix-cache hits.
- **Priority.** ``request.priority`` goes to ``generate(priority=...)``; the engine is built with
  ``scheduling_policy="priority"`` (lower value is scheduled first, vLLM's convention and ours).
- **Reuse.** ``RequestOutput.num_cached_tokens`` is vLLM's exact count of prompt tokens served from
  its prefix cache (whole KV blocks, hashed from the first token: DESIGN.md's prefix-stable layout
  is what makes it large). Engine-wide hit counters are kept in :attr:`VLLMEngine.stats`.
- **Structured output.** ``StructuredOutputsParams(json=schema)``: the grammar backend (xgrammar by
  default) masks the logits, so the reply is exactly one schema-valid JSON value. Whitespace
  between tokens is disabled by default because outputs must stay short (DESIGN.md point 5).
- **Prefill only.** One token is generated and discarded: vLLM has no prompt-only request, and one
  decode step is what it costs to leave the prompt's KV blocks in the prefix cache.

Why a private event-loop thread: ``AsyncLLM`` starts its output-handler task on the loop it is
built in (or else on the loop of the first request) and keeps using it; autotqa (its CLI
commands, tests, the benchmark) builds engines inside and outside loops and runs several
``asyncio.run`` calls per process. So ``AsyncLLM`` is built and driven on one loop owned by this
engine, and :meth:`VLLMEngine.stream` relays outputs to whichever loop the caller is on.

vLLM is imported lazily: this module is importable (and its docs testable) without vLLM.
Environment: install it with ``scripts/setup-vllm-venv.sh`` (a separate venv, ``.venv-vllm``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ClassVar

from ...config import EngineConfig
from ...errors import EngineError
from ..engine import Engine
from ..layout import to_messages
from ..types import FinishReason, GenerationRequest, GenerationResult, StreamChunk, Timings, Usage

_END = object()
_FINISH: dict[str | None, FinishReason] = {"stop": "stop", "length": "length", "abort": "cancelled",
                                           "error": "error", None: "stop"}
SETUP_HINT = "install vLLM in its own venv: bash scripts/setup-vllm-venv.sh, then use .venv-vllm/bin/python"


def _prefix_stats_logger() -> tuple[type, dict[str, int]]:
    """A vLLM stat logger class that adds up prefix-cache queries/hits (tokens) into a dict.

    ``SchedulerStats.prefix_cache_stats`` is vLLM's own per-step account of how many prompt tokens
    were looked up in the prefix cache and how many were found; summed, it is the engine-wide hit
    rate that ``vllm serve`` exports as ``vllm:prefix_cache_{queries,hits}``.
    """
    from vllm.v1.metrics.loggers import StatLoggerBase

    totals = {"prefix_cache_queries": 0, "prefix_cache_hits": 0, "prefix_cache_requests": 0}

    class PrefixCacheCounter(StatLoggerBase):
        def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
            self.totals = totals

        def record(self, scheduler_stats: Any, iteration_stats: Any, mm_cache_stats: Any = None,
                   engine_idx: int = 0) -> None:
            pcs = getattr(scheduler_stats, "prefix_cache_stats", None)
            if pcs is not None and not pcs.reset:
                totals["prefix_cache_queries"] += int(pcs.queries)
                totals["prefix_cache_hits"] += int(pcs.hits)
                totals["prefix_cache_requests"] += int(pcs.requests)

        def log_engine_initialized(self) -> None:
            pass

    return PrefixCacheCounter, totals


class VLLMEngine(Engine):
    """vLLM's ``AsyncLLM`` in this process (continuous batching: ``max_concurrency`` = ``max_num_seqs``).

    ``engine_args`` are passed to ``vllm.AsyncEngineArgs`` over these defaults: ``model`` and
    ``seed`` from ``config``, ``max_model_len=config.n_ctx``, ``enable_prefix_caching=True``,
    ``scheduling_policy="priority"``, stats collected but not logged, and (``compact_json=True``)
    the xgrammar backend with whitespace disabled in structured replies. ``chat_template_kwargs``
    go to the chat template (e.g. ``{"enable_thinking": False}`` for Qwen3).
    """

    name: ClassVar[str] = "vllm"
    supports_json_schema: ClassVar[bool] = True

    def __init__(self, config: EngineConfig, *, compact_json: bool = True,
                 chat_template_kwargs: dict[str, Any] | None = None, **engine_args: Any) -> None:
        try:
            from vllm.engine.arg_utils import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as exc:
            raise EngineError(f"vLLM is not installed in this Python environment ({exc})",
                              hint=SETUP_HINT) from exc
        if not config.model:
            raise EngineError("the vllm engine needs a model: a local Hugging Face model directory or name",
                              hint="pass --model /path/to/model (the directory with config.json)")
        local = Path(config.model).expanduser()
        if config.model.startswith(("/", ".", "~")) and not (local / "config.json").is_file():
            # Caught here: vLLM would otherwise try the hub with the path as a repo id, and fail late.
            raise EngineError(f"no model directory (with config.json) at {config.model}",
                              hint="pass a local Hugging Face model directory")
        args: dict[str, Any] = dict(model=config.model, seed=config.seed, max_model_len=config.n_ctx,
                                    enable_prefix_caching=True, scheduling_policy="priority",
                                    disable_log_stats=True)
        if compact_json:
            # An engine-wide switch in vLLM (not per request), supported by xgrammar and guidance.
            from vllm.config import StructuredOutputsConfig

            args["structured_outputs_config"] = StructuredOutputsConfig(backend="xgrammar",
                                                                        disable_any_whitespace=True)
        args.update(engine_args)
        self.engine_args = args
        # What `vllm serve` passes for a chat request by default (without it the template would
        # end at the user turn and the model would continue the question).
        self.chat_template_kwargs = {"add_generation_prompt": True, **(chat_template_kwargs or {})}
        logger_cls, self.stats = _prefix_stats_logger()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vllm-engine-loop", daemon=True)
        self._thread.start()

        async def start() -> Any:
            # Built on the engine loop: AsyncLLM starts its output handler on the running loop
            # it is constructed in, if any (a factory called inside asyncio.run would bind it
            # to the caller's loop, and outputs would never reach requests on this one).
            return AsyncLLM.from_engine_args(AsyncEngineArgs(**args), stat_loggers=[logger_cls])

        try:
            self.llm = asyncio.run_coroutine_threadsafe(start(), self._loop).result()
        except BaseException as exc:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if isinstance(exc, (ValueError, OSError, RuntimeError, TypeError)):
                raise EngineError(f"vLLM could not start with model {config.model}: {exc}",
                                  hint="check the model path and the engine arguments") from exc
            raise
        self.max_concurrency = int(self.llm.vllm_config.scheduler_config.max_num_seqs)
        self.stats.update(completed_requests=0, prompt_tokens=0, reused_tokens=0)
        self._closed = False

    @classmethod
    def from_config(cls, cfg: EngineConfig, *, session_cache: bool = True, **engine_args: Any) -> VLLMEngine:
        """Factory entry point; ``session_cache=False`` turns vLLM's prefix cache off (naive baseline)."""
        if not session_cache:
            engine_args.setdefault("enable_prefix_caching", False)
        return cls(cfg, **engine_args)

    # -- request mapping (engine loop) ----------------------------------------------------------

    def _sampling_params(self, request: GenerationRequest) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        schema = None if request.prefill_only else request.schema_dict()
        structured = StructuredOutputsParams(json=schema) if schema is not None else None
        return SamplingParams(
            max_tokens=1 if request.prefill_only else max(1, request.max_tokens),
            temperature=request.temperature,
            stop=None if request.prefill_only else (list(request.stop) or None),
            structured_outputs=structured,
            output_kind=RequestOutputKind.DELTA)

    def token_counter(self) -> Callable[[str], int]:
        """The model's tokenizer as vLLM loaded it (no special tokens added), for token budgets."""
        tokenizer = self.llm.get_tokenizer()
        return lambda text: len(tokenizer.encode(text, add_special_tokens=False))

    async def _render(self, request: GenerationRequest) -> Any:
        """The chat-templated prompt as vLLM's engine input (token ids), via vLLM's renderer."""
        from vllm.renderers.params import ChatParams

        messages = [m.model_dump() for m in to_messages(request.segments)]
        params = ChatParams(chat_template_kwargs=dict(self.chat_template_kwargs))
        _, (engine_input,) = await self.llm.renderer.render_chat_async([messages], params)
        return engine_input

    async def _pump(self, request: GenerationRequest, emit: Any) -> None:
        """Run one request on the engine loop; hand each RequestOutput (then ``_END``) to ``emit``."""
        try:
            engine_input = await self._render(request)
            # vLLM 0.32 tags requests with a session id (its KV-cache events carry it); 0.26, the
            # last release built for torch 2.11 (what GPU images often carry), has no such argument.
            takes_session = "session_id" in inspect.signature(self.llm.generate).parameters
            extra = {"session_id": request.session_id} if takes_session else {}
            async for out in self.llm.generate(engine_input, self._sampling_params(request),
                                               request.request_id, priority=request.priority, **extra):
                emit(out)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - relayed to the caller's loop, re-raised there
            emit(exc)
        finally:
            emit(_END)

    # -- Engine API ----------------------------------------------------------------------------

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamChunk]:
        if self._closed:
            raise EngineError("the vllm engine is closed")
        caller = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        t0 = time.perf_counter()

        def emit(item: Any) -> None:
            caller.call_soon_threadsafe(queue.put_nowait, item)

        fut = asyncio.run_coroutine_threadsafe(self._pump(request, emit), self._loop)
        parts: list[str] = []
        prompt_tokens = reused = completion = 0
        reason: str | None = None
        ttft = queued = 0.0
        try:
            while (item := await queue.get()) is not _END:
                if isinstance(item, BaseException):
                    raise self._engine_error(item) from item
                if item.prompt_token_ids is not None:
                    prompt_tokens = len(item.prompt_token_ids)
                if item.num_cached_tokens is not None:
                    reused = int(item.num_cached_tokens)
                metrics = getattr(item, "metrics", None)
                if metrics is not None and getattr(metrics, "scheduled_ts", 0.0):
                    queued = max(0.0, metrics.scheduled_ts - metrics.queued_ts)
                for comp in item.outputs:
                    completion += len(comp.token_ids)
                    reason = comp.finish_reason or reason
                    if comp.token_ids and not ttft:
                        ttft = time.perf_counter() - t0
                    if comp.text and not request.prefill_only:
                        parts.append(comp.text)
                        yield StreamChunk(text=comp.text)
        finally:
            if not fut.done():  # the caller stopped early (cancelled, or closed the stream)
                fut.cancel()
        total = time.perf_counter() - t0
        finish: FinishReason = "prefill" if request.prefill_only else _FINISH.get(reason, "stop")
        self.stats["completed_requests"] += 1
        self.stats["prompt_tokens"] += prompt_tokens
        self.stats["reused_tokens"] += reused
        yield StreamChunk(result=GenerationResult(
            request_id=request.request_id, text="".join(parts), finish_reason=finish,
            usage=Usage(prompt_tokens=prompt_tokens, reused_tokens=reused,
                        completion_tokens=0 if request.prefill_only else completion),
            timings=Timings(queued_s=queued, ttft_s=ttft or total, total_s=total), agent=request.agent,
            program_id=request.program_id, session_id=request.session_id))

    @staticmethod
    def _engine_error(exc: BaseException) -> EngineError:
        if isinstance(exc, EngineError):
            return exc
        kind = type(exc).__name__
        if kind == "EngineDeadError":
            return EngineError(f"the vLLM engine process died: {exc}", hint="see the log above; restart autotqa")
        return EngineError(f"vLLM refused or failed the request ({kind}): {exc}")

    def close_sync(self) -> None:
        """Shut vLLM's engine-core process down and stop the private loop (idempotent, blocking)."""
        if self._closed:
            return
        self._closed = True
        self.llm.shutdown()  # also cancels vLLM's output-handler task (thread-safely)
        handler = getattr(self.llm, "output_handler", None)
        if handler is not None:
            async def drain() -> None:
                await asyncio.gather(handler, return_exceptions=True)

            try:  # let the cancellation finish on its loop, or asyncio warns "Task was destroyed"
                asyncio.run_coroutine_threadsafe(drain(), self._loop).result(timeout=10)
            except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
                pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()
        # Let the AsyncLLM go now: kept until interpreter exit, its __del__ runs shutdown() again
        # while modules are being torn down and prints "TypeError: 'NoneType' object is not callable".
        self.llm = None

    async def close(self) -> None:
        """:meth:`close_sync` off the caller's loop."""
        await asyncio.to_thread(self.close_sync)
