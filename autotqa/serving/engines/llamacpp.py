"""The embedded CPU engine: llama.cpp through llama-cpp-python, with a KV prefix cache per session.

One ``Llama`` object, driven from one worker thread (llama.cpp is synchronous and not thread-safe);
``stream`` bridges its tokens onto the event loop. Prompts are rendered with the model's own chat
template (``chat_template.py``: the GGUF's ``tokenizer.chat_template``; ChatML for Qwen) and tokenized here, so the engine knows exactly which tokens it reuses:

- **Live prefix.** Before decoding, the longest common token prefix of the live KV state and the new
  prompt is kept and only the rest is evaluated (at least one token, which yields fresh logits).
- **Session snapshots.** When a request of another session arrives, the live state is snapshotted
  (sequence 0's KV only, see ``llamacpp_kv.py``) into an LRU under ``kv_cache_bytes``; the state to
  continue from is the live one or the snapshot with the longest prefix match, so a new session on
  the same schema also starts warm.
- **Persisted prefix.** The header + schema part of a prompt (``template.shared_prefix``) is saved
  to disk keyed by model sha256 + exact token ids, and a later process loads it (~ms) instead of
  prefilling it (~10 s on these CPUs) — DESIGN.md point 5.

- **Forks decode together.** ``generate_batch`` evaluates the branches' shared prefix once and
  decodes every branch in one ``llama_decode`` per step, each in its own sequence
  (``llamacpp_batch.py``); the live state afterwards is the shared prefix in sequence 0.
- **Threads follow the machine.** Before each request (and between decode steps) the thread
  count is set to the cores other processes leave idle (``threads.py``), because llama.cpp's
  spinning threads collapse when a core they wait for is taken.

``Usage.reused_tokens`` is exact: the prompt tokens that were not evaluated for this request.
With ``session_cache=False`` nothing is reused at all (the naive baseline of the serving benchmark).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ...config import EngineConfig
from ...errors import EngineError
from ..engine import Engine
from ..chat_template import ChatMLTemplate, ChatTemplate, prefill_text, template_for
from ..model_store import ResolvedModel, default_cache_dir, model_sha256, resolve_model
from ..types import FinishReason, GenerationRequest, GenerationResult, PromptSegments, StreamChunk, Timings, Usage
from .llamacpp_batch import TOP_K, TOP_P, MIN_P, BranchSpec, StopScanner, decode_branches, ensure_sequences
from .llamacpp_kv import HeldPrefixes, PrefixStore, SnapshotLRU, capture, common_prefix, restore
from .threads import ThreadPolicy

_DONE = object()


def _model_template(llm: Any) -> ChatTemplate:
    """The loaded GGUF's own chat template, with its BOS/EOS texts (as llama-cpp-python passes them)."""
    def text(token: int) -> str:
        return llm._model.token_get_text(token) if token >= 0 else ""

    return template_for(getattr(llm, "metadata", None) or {}, bos_token=text(llm.token_bos()),
                        eos_token=text(llm.token_eos()))


class LlamaCppEngine(Engine):
    """llama.cpp in-process; ``max_concurrency`` is 1 (one context, one decode at a time)."""

    name: ClassVar[str] = "llamacpp"
    supports_json_schema: ClassVar[bool] = True
    supports_batch: ClassVar[bool] = True

    def __init__(self, llm: Any, *, model_sha: str, session_cache: bool = True,
                 kv_cache_bytes: int = 512 * 1024 * 1024, prefix_dir: Path | None = None,
                 persist_prefix: bool = True, persist_min_tokens: int = 64,
                 prefix_dir_max_bytes: int = 2 * 1024**3, seed: int = 0,
                 template: ChatTemplate | None = None, max_branches: int = 8, batch_forks: bool = True,
                 threads: ThreadPolicy | None = None) -> None:
        self.llm = llm
        self.template = template or ChatMLTemplate()
        self.model_sha = model_sha
        self.session_cache = session_cache
        self.snapshots = SnapshotLRU(kv_cache_bytes)
        self.warmed = HeldPrefixes()  # what holds_prefix reads on the event loop thread
        self.store = (PrefixStore(prefix_dir, model_sha, prefix_dir_max_bytes)
                      if persist_prefix and session_cache and prefix_dir is not None else None)
        self.persist_min_tokens = persist_min_tokens
        self.seed = seed
        self.max_concurrency = 1
        self._live_session: str | None = None
        self._live_dirty = False  # live state has tokens its session's snapshot lacks
        self._grammars: dict[str, Any] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp")
        #: Counters for benchmarks and tests: snapshot saves/restores, disk prefix loads/saves,
        #: ``llama_decode`` calls of forked branches and how many of them carried 2+ branches,
        #: forks decoded together / one after another, and the thread count last set.
        self.stats = {"snapshots_saved": 0, "snapshots_restored": 0, "disk_loads": 0, "disk_saves": 0,
                      "decode_calls": 0, "batched_steps": 0, "forks_batched": 0, "forks_serial": 0,
                      "threads": int(llm.context_params.n_threads)}
        # Branch k runs in sequence k (sequence 0 holds the shared prefix). With batch_forks off (an
        # ablation) or no session cache (the naive baseline reuses nothing) forks go one by one.
        self.max_branches = max_branches if max_branches > 1 and ensure_sequences(llm, max_branches + 1) else 1
        self.supports_batch = batch_forks and session_cache  # type: ignore[misc]
        self.threads = threads
        if threads is not None:
            threads.threads()  # the first look (a short sample) now, not in the first request

    @classmethod
    def from_config(cls, cfg: EngineConfig, *, session_cache: bool = True, **options: Any) -> LlamaCppEngine:
        """Resolve the model (model_store), load it, and wire the caches from ``cfg``."""
        try:
            import llama_cpp
        except ImportError as exc:
            raise EngineError(f"llama-cpp-python is not installed ({exc})",
                              hint="pip install 'autotqa[local]', or use --engine openai") from exc
        resolved = resolve_model(cfg.model)
        kwargs = dict(n_ctx=cfg.n_ctx, n_threads=cfg.n_threads, n_threads_batch=cfg.n_threads, n_batch=cfg.n_batch,
                      logits_all=False, verbose=False, seed=cfg.seed)
        try:
            if resolved.source == "huggingface":
                llm = llama_cpp.Llama.from_pretrained(resolved.repo_id, resolved.filename, **kwargs)
                resolved = ResolvedModel(source="path", path=Path(llm.model_path))
            else:
                llm = llama_cpp.Llama(model_path=str(resolved.path), **kwargs)
        except ImportError as exc:  # from_pretrained needs huggingface-hub
            raise EngineError(f"cannot download {resolved.display}: {exc}",
                              hint="pip install huggingface-hub, or pass a local .gguf path") from exc
        except (ValueError, RuntimeError, OSError) as exc:
            raise EngineError(f"llama.cpp could not load the model {resolved.display}: {exc}") from exc
        prefix_dir = Path(cfg.prefix_cache_dir) if cfg.prefix_cache_dir else default_cache_dir() / "prefix-kv"
        options.setdefault("threads", ThreadPolicy(cfg.n_threads, adaptive=cfg.thread_policy == "adaptive"))
        return cls(llm, model_sha=model_sha256(resolved), session_cache=session_cache,
                   kv_cache_bytes=cfg.kv_cache_bytes, prefix_dir=prefix_dir,
                   persist_prefix=cfg.persist_prefix, seed=cfg.seed, template=_model_template(llm), **options)

    # -- tokens and state (worker thread only) -------------------------------------------------

    def _tokenize(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode(), add_bos=False, special=True)

    def token_counter(self) -> Callable[[str], int]:
        """The model's own token count of ``text``, as a prompt holding it tokenizes it. Safe from
        any thread: llama_tokenize reads only the vocabulary (llama.cpp's server tokenizes in its
        HTTP threads while the main loop decodes)."""
        return lambda text: len(self._tokenize(text))

    def prompt_token_ids(self, segments: Any) -> list[int]:
        """Call only while the engine is idle (the tokenizer is the model's, used by the worker)."""
        return self._tokenize(self.template.render(segments))

    def _grammar(self, schema: dict[str, Any]) -> Any:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            from llama_cpp import LlamaGrammar

            self._grammars[key] = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
        return self._grammars[key]

    def _apply_threads(self) -> None:
        """Follow the thread policy (idle cores now); llama.cpp takes a new count between decodes."""
        if self.threads is None:
            return
        n = self.threads.threads()
        if n != self.stats["threads"]:
            import llama_cpp

            llama_cpp.llama_set_n_threads(self.llm.ctx, n, n)
            self.stats["threads"] = n

    def _live_tokens(self) -> list[int]:
        return self.llm.input_ids[: self.llm.n_tokens].tolist()

    def _stash_live(self) -> None:
        """Snapshot the live state under its session before another session overwrites it."""
        if self._live_session is not None and self._live_dirty and self.llm.n_tokens > 0:
            self.snapshots.put(self._live_session, capture(self.llm))
            self.stats["snapshots_saved"] += 1
        self._live_dirty = False

    def _disk_prefix(self, segments: Any, tokens: list[int]) -> list[int] | None:
        """The shared-prefix tokens of this prompt, when they are an exact prefix worth persisting."""
        if self.store is None:
            return None
        prefix = self._tokenize(self.template.shared_prefix(segments))
        if len(prefix) < self.persist_min_tokens or tokens[: len(prefix)] != prefix:
            return None
        return prefix

    def _prepare(self, session_id: str, tokens: list[int], segments: Any, min_eval: int) -> tuple[int, list[int] | None]:
        """Bring the best cached state into the context; return (tokens kept, prefix to persist)."""
        if not self.session_cache:
            self.llm.reset()
            return 0, None
        live = common_prefix(self._live_tokens(), tokens)
        key, snap_match = self.snapshots.best_match(tokens)
        if self._live_session != session_id:
            self._stash_live()
        snap = self.snapshots.get(key) if key is not None and snap_match > live else None
        if snap is not None:  # (None too when stashing the live state just evicted it)
            if restore(self.llm, snap):
                self.stats["snapshots_restored"] += 1
                live = snap_match
            else:
                live = 0
        to_persist = None
        prefix = self._disk_prefix(segments, tokens)
        if prefix is not None and live < len(prefix):
            disk = self.store.load(prefix)  # type: ignore[union-attr]
            if disk is not None and restore(self.llm, disk):
                self.stats["disk_loads"] += 1
                live = len(prefix)
            else:
                to_persist = prefix
        self._live_session = session_id
        return min(live, len(tokens) - min_eval), to_persist

    def _evaluate_prefix(self, tokens: list[int], keep: int, to_persist: list[int] | None,
                         min_eval: int) -> int:
        """Evaluate up to the shared prefix (saving it to disk) so generation starts after it."""
        self.llm.n_tokens = keep
        if to_persist is not None and keep < len(to_persist) <= len(tokens) - min_eval:
            self.llm.eval(tokens[keep: len(to_persist)])
            self.store.save(capture(self.llm))  # type: ignore[union-attr]
            self.stats["disk_saves"] += 1
            return len(to_persist)
        return keep

    # -- the two jobs ----------------------------------------------------------------------------

    def _prefill(self, request: GenerationRequest, t0: float) -> GenerationResult:
        tokens = self._tokenize(prefill_text(self.template, request.segments))
        keep, to_persist = self._prepare(request.session_id, tokens, request.segments, min_eval=0)
        done = self._evaluate_prefix(tokens, keep, to_persist, min_eval=0)
        if done < len(tokens):
            self.llm.eval(tokens[done:])
        if self.session_cache:
            self.snapshots.put(request.session_id, capture(self.llm))
            self.stats["snapshots_saved"] += 1
            self._live_dirty = False
            self.warmed.add(prefill_text(self.template, request.segments), tokens)
        elapsed = time.perf_counter() - t0
        return self._result(request, "", "prefill", Usage(prompt_tokens=len(tokens), reused_tokens=keep),
                            Timings(ttft_s=elapsed, total_s=elapsed))

    def _generate(self, request: GenerationRequest, t0: float, emit: Callable[[str], None],
                  cancel: threading.Event) -> GenerationResult:
        tokens = self._tokenize(self.template.render(request.segments))
        n_ctx = self.llm.n_ctx()
        if len(tokens) >= n_ctx:
            raise EngineError(f"the prompt has {len(tokens)} tokens; the context holds {n_ctx}",
                              hint="raise n_ctx or shorten the schema/transcript")
        keep, to_persist = self._prepare(request.session_id, tokens, request.segments, min_eval=1)
        start = self._evaluate_prefix(tokens, keep, to_persist, min_eval=1)
        self._live_dirty = True
        max_new = min(request.max_tokens, n_ctx - len(tokens))
        if max_new <= 0:
            self.llm.eval(tokens[start:])
            total = time.perf_counter() - t0
            return self._result(request, "", "length", Usage(prompt_tokens=len(tokens), reused_tokens=keep),
                                Timings(ttft_s=total, total_s=total))
        schema = request.schema_dict()
        gen = self.llm.generate(tokens[start:], temp=max(0.0, request.temperature), top_k=TOP_K, top_p=TOP_P,
                                min_p=MIN_P, repeat_penalty=1.0, reset=False,
                                grammar=self._grammar(schema) if schema is not None else None)
        scanner = StopScanner(self.llm, request.stop, max_new, emit)
        finish: FinishReason = "length"
        ttft = 0.0
        try:
            for token in gen:
                ttft = ttft or time.perf_counter() - t0
                done = scanner.feed(token)
                if done is not None:
                    finish = done
                    break
                if cancel.is_set():
                    finish = "cancelled"
                    break
                self._apply_threads()
        finally:
            gen.close()
        text = scanner.close()
        total = time.perf_counter() - t0
        return self._result(request, text, finish,
                            Usage(prompt_tokens=len(tokens), reused_tokens=keep,
                                  completion_tokens=scanner.n_out),
                            Timings(ttft_s=ttft or total, total_s=total))

    def _branch_plan(self, requests: list[GenerationRequest]) -> tuple[list[list[int]], int, list[int]] | None:
        """(prompts, shared prefix length, new tokens each) to decode together, or None: one by one.

        One by one: a single request, structured output (grammar), another session's request, more
        branches than sequences, or a context that cannot hold the prefix plus every branch.
        """
        if (not self.supports_batch or not 2 <= len(requests) <= self.max_branches
                or len({r.session_id for r in requests}) > 1
                or any(r.prefill_only or r.schema_dict() is not None for r in requests)):
            return None
        prompts = [self._tokenize(self.template.render(r.segments)) for r in requests]
        n_ctx = self.llm.n_ctx()
        # Each branch evaluates at least its last prompt token itself: its own first logits.
        shared = min(min(common_prefix(prompts[0], p) for p in prompts[1:]), min(map(len, prompts)) - 1)
        max_new = [min(r.max_tokens, n_ctx - len(p)) for r, p in zip(requests, prompts)]
        if min(max_new) <= 0 or shared + sum(len(p) - shared + m for p, m in zip(prompts, max_new)) > n_ctx:
            return None
        return prompts, shared, max_new

    def _generate_batch(self, requests: list[GenerationRequest], t0: float,
                        cancel: threading.Event) -> list[GenerationResult]:
        self._apply_threads()
        plan = self._branch_plan(requests)
        if plan is None:
            self.stats["forks_serial"] += 1
            return [self._generate(r, time.perf_counter(), lambda _s: None, cancel) for r in requests]
        prompts, shared, max_new = plan
        first = requests[0]
        prefix = prompts[0][:shared]
        keep, to_persist = self._prepare(first.session_id, prefix, first.segments, min_eval=0)
        done = self._evaluate_prefix(prefix, keep, to_persist, min_eval=0)
        if done < shared:
            self.llm.eval(prefix[done:])
        self.llm._ctx.kv_cache_seq_rm(0, shared, -1)  # live cells past the prefix are stale now
        self.llm.n_tokens = shared
        self._live_dirty = True
        specs = [BranchSpec(tuple(p), r.temperature, tuple(r.stop), m, self.seed + i)
                 for i, (r, p, m) in enumerate(zip(requests, prompts, max_new))]
        outs = decode_branches(self.llm, specs, shared, t0, cancel, self.stats, self._apply_threads)
        self.stats["forks_batched"] += 1
        # The prefix was computed once: every branch after the first reused it.
        return [self._result(r, o.text, o.finish,
                             Usage(prompt_tokens=len(p), reused_tokens=keep if i == 0 else shared,
                                   completion_tokens=o.completion_tokens),
                             Timings(ttft_s=o.ttft_s, total_s=o.total_s))
                for i, (r, p, o) in enumerate(zip(requests, prompts, outs))]

    def _guarded(self, work: Callable[[], Any]) -> Any:
        """Run a job on the worker; a failure that is not ours leaves a context we cannot trust."""
        try:
            return work()
        except BaseException as exc:
            if not isinstance(exc, EngineError):  # (ours leave the state consistent)
                self.llm.reset()
                self._live_session, self._live_dirty = None, False
            raise
        finally:
            self.warmed.refresh(self._live_tokens(), self.snapshots)

    @staticmethod
    def _result(request: GenerationRequest, text: str, finish: FinishReason, usage: Usage,
                timings: Timings) -> GenerationResult:
        return GenerationResult(request_id=request.request_id, text=text, finish_reason=finish, usage=usage,
                                timings=timings, agent=request.agent, program_id=request.program_id,
                                session_id=request.session_id)

    # -- Engine API --------------------------------------------------------------------------------

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamChunk]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancel = threading.Event()
        queued_at = time.perf_counter()

        def put(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the consumer's loop is closed: nobody listens, keep decoding state
                cancel.set()

        def job() -> None:
            t0 = time.perf_counter()
            if cancel.is_set():  # the consumer left before the job started
                put(_DONE)
                return
            try:
                self._apply_threads()
                result = self._guarded(
                    (lambda: self._prefill(request, t0)) if request.prefill_only
                    else lambda: self._generate(request, t0, lambda s: put(StreamChunk(text=s)), cancel))
                result.timings.queued_s = t0 - queued_at
                put(StreamChunk(result=result))
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                put(exc)
            finally:
                put(_DONE)

        self._pool.submit(job)
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, BaseException):
                    if isinstance(item, EngineError):
                        raise item
                    raise EngineError(f"llama.cpp failed on request {request.request_id}: {item!r}") from item
                yield item
        finally:
            cancel.set()  # a consumer that stops early ends the decode at the next token

    async def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Forked branches decoded together (``llamacpp_batch.py``); one by one where they cannot be."""
        requests = list(requests)
        cancel = threading.Event()
        queued_at = time.perf_counter()

        def job() -> list[GenerationResult]:
            t0 = time.perf_counter()
            results = self._guarded(lambda: self._generate_batch(requests, t0, cancel))
            for r in results:
                r.timings.queued_s = t0 - queued_at
            return results

        try:
            return await asyncio.wrap_future(self._pool.submit(job))
        except (EngineError, asyncio.CancelledError):
            raise
        except Exception as exc:
            raise EngineError(f"llama.cpp failed on a fork of {len(requests)} requests: {exc!r}") from exc
        finally:
            cancel.set()  # a caller that gave up ends the decode at the next step

    def holds_prefix(self, session_id: str, prefix: PromptSegments) -> bool:
        """A warm-up's prefix is still live or in a snapshot (any session's: the tokens are what count)."""
        return self.session_cache and prefill_text(self.template, prefix) in self.warmed.held

    def end_session(self, session_id: str) -> None:
        """Drop a session's snapshot; queued on the worker so it never races a running job."""
        def forget() -> None:
            self.snapshots.pop(session_id)
            if self._live_session == session_id:
                self._live_session, self._live_dirty = None, False
            self.warmed.refresh(self._live_tokens(), self.snapshots)

        self._pool.submit(forget)

    async def close(self) -> None:
        await asyncio.to_thread(self._pool.shutdown, True)  # let a running decode finish first
        close = getattr(self.llm, "close", None)
        if close is not None:
            close()
