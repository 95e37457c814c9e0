"""App-aware scheduler: orders and places LLM calls knowing the program they belong to.

The scheduler owns *when* and *where* (which engine slot) a request runs; the engine owns the KV
state (the vLLM split of scheduler and KV manager). A slot is one unit of ``engine.max_concurrency``;
each slot remembers the session whose state it ran last (``live_session``).

Policy ``"app_aware"`` (Parrot/SGLang ideas). For each free slot the ready request with the smallest
key runs, key = (warm-up last, priority minus aging, critical first, started program first,
session live on this slot first, older program first, FIFO; ``ordering.py`` computes it):

* **Warm-ups** (prefill-only shared prefix, submitted when a session opens) never delay a ready real
  request — except their own session's: when the chosen request's session still has a queued warm-up,
  the warm-up runs first on that slot (the request needs that prefix anyway).
* **Priority** (lower = sooner, vLLM convention) with **aging**: every ``aging_skips`` times a ready
  request is passed over by another dispatch, it gains one priority level, so nothing starves.
  Aging counts dispatches, not seconds, so the policy is the same on a fast GPU and on a loaded CPU
  (a seconds-based threshold made a loaded 2-core machine interleave sessions after ~3 calls).
* **Critical path**: a request that another queued request depends on (``depends_on``) goes first;
  a request whose dependencies are still queued or running is not ready.
* **Programs already started before new ones**, and **anticipation**: when a live program's call
  ends and it has nothing else queued, its slot is held for ``anticipate_s`` so the program's next
  call (built from this result) gets the slot before another program's first call (anticipatory
  disk scheduling). The hold ends as soon as the program submits, ends, or the time is up.
* **Locality**: among equals, the session whose state is live on the slot.

**Forks** (``submit_batch``) are one unit: the branches queue, rank and run together, as one call
of ``engine.generate_batch``, so an engine that decodes them together gets them together.

Policy ``"fifo"`` is the naive baseline: submission order only, no holds, no locality. For the
ablation (``options.py``), ``locality=False`` drops the started-first/live-session/older-program
keys and the holds, ``priority=False`` the priority and critical-path keys; both off is FIFO.

Times use the injected ``clock`` (tests pass a fake one and assert exact queue times); the
anticipation timer uses the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from .engine import Engine
from .metrics import CallRecord, MetricsRecorder
from .ordering import Entry, Ordering, ProgramState, Slot
from .types import GenerationRequest, GenerationResult, StreamChunk, Timings

Policy = Literal["app_aware", "fifo"]


def _consume(fut: asyncio.Future[Any]) -> None:
    """Mark a fire-and-forget future's exception as retrieved (its failure is in the metrics)."""
    if not fut.cancelled():
        fut.exception()


class Scheduler:
    """Queue + dispatcher in front of one engine. Create it anywhere; it binds to the running loop."""

    def __init__(self, engine: Engine, *, policy: Policy = "app_aware", max_concurrency: int | None = None,
                 clock: Callable[[], float] = time.monotonic, metrics: MetricsRecorder | None = None,
                 anticipate_s: float = 0.05, aging_skips: int = 32, locality: bool = True,
                 priority: bool = True) -> None:
        if policy not in ("app_aware", "fifo"):
            raise ValueError(f"unknown scheduling policy {policy!r} (app_aware or fifo)")
        self.engine = engine
        self.policy: Policy = policy
        self.clock = clock
        self.metrics = metrics
        self.locality = locality and policy == "app_aware"
        self.priority = priority and policy == "app_aware"
        self.anticipate_s = anticipate_s if self.locality else 0.0
        self.aging_skips = aging_skips
        self.ordering = Ordering(fifo=policy == "fifo", priority=self.priority, locality=self.locality,
                                 aging_skips=aging_skips)
        n = max_concurrency if max_concurrency is not None else engine.max_concurrency
        self.slots = [Slot(i) for i in range(max(1, n))]
        #: Request ids in the order they were given a slot (for tests and benchmarks).
        self.dispatch_order: list[str] = []
        self._queue: list[Entry] = []
        self._programs: dict[str, ProgramState] = {}
        self._unfinished: Counter[str] = Counter()  # request id -> queued/running count
        self._dependents: Counter[str] = Counter()  # request id -> queued requests waiting on it
        self._seq = 0
        self._dispatch_pending = False

    # -- programs ------------------------------------------------------------------------------
    def begin_program(self, program_id: str, session_id: str,
                      warmup: GenerationRequest | None = None) -> asyncio.Future[GenerationResult] | None:
        """Register a program; submit ``warmup`` (its shared prefix, prefill only) at once if given."""
        self._seq += 1
        self._programs[program_id] = ProgramState(program_id, session_id, self._seq)
        if self.metrics is not None:
            self.metrics.program_opened(program_id, session_id, self.clock())
        if warmup is None:
            return None
        fut = self.submit(warmup.model_copy(update={"program_id": program_id, "session_id": session_id}),
                          warmup=True)
        fut.add_done_callback(_consume)
        return fut

    def end_program(self, program_id: str) -> None:
        prog = self._programs.get(program_id)
        if prog is None or prog.ended:
            return
        prog.ended = True
        if self.metrics is not None:
            self.metrics.program_closed(program_id, self.clock())
        self._release_holds(program_id)
        if prog.outstanding == 0:
            del self._programs[program_id]
        self._schedule_dispatch()

    # -- submitting ----------------------------------------------------------------------------
    def submit(self, request: GenerationRequest, *, warmup: bool = False) -> asyncio.Future[GenerationResult]:
        """Queue a request; the returned future resolves to its result (timings filled in)."""
        return self._enqueue(request, warmup=warmup, stream=False).future

    def submit_batch(self, requests: list[GenerationRequest]) -> asyncio.Future[list[GenerationResult]]:
        """Queue a fork's branches as one unit for ``engine.generate_batch``; results in order."""
        if not requests:
            raise ValueError("submit_batch needs at least one request")
        return self._enqueue(requests[0], warmup=False, stream=False, batch=tuple(requests)).future

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamChunk]:
        """Stream through a slot like any call; closing the iterator early releases the slot."""
        entry = self._enqueue(request, warmup=False, stream=True)
        assert entry.chunks is not None
        try:
            while True:
                item = await entry.chunks.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item.result is not None:
                    return
        finally:
            if not entry.future.done():
                entry.future.cancel()  # dequeues it, or cancels the engine stream if running

    def _enqueue(self, request: GenerationRequest, *, warmup: bool, stream: bool,
                 batch: tuple[GenerationRequest, ...] = ()) -> Entry:
        loop = asyncio.get_running_loop()
        self._seq += 1
        entry = Entry(request, self._seq, self.clock(), warmup, loop.create_future(),
                       asyncio.Queue() if stream else None, batch=batch)
        if stream:
            entry.future.add_done_callback(_consume)
        entry.future.add_done_callback(lambda f, e=entry: self._on_future_done(e))
        self._queue.append(entry)
        for req in entry.requests:
            self._unfinished[req.request_id] += 1
            for dep in req.depends_on:
                self._dependents[dep] += 1
        prog = self._programs.get(request.program_id)
        if prog is not None and not warmup:
            prog.outstanding += 1
            self._release_holds(prog.program_id)  # it may run on any free slot now
        self._schedule_dispatch()
        return entry

    # -- dispatching ---------------------------------------------------------------------------
    def _schedule_dispatch(self) -> None:
        """Dispatch on the next loop turn so requests submitted together are ranked together."""
        if not self._dispatch_pending:
            self._dispatch_pending = True
            asyncio.get_running_loop().call_soon(self._dispatch)

    def _ready(self, entry: Entry) -> bool:
        return not any(self._unfinished[d] for r in entry.requests for d in r.depends_on)

    def _key(self, entry: Entry, slot: Slot) -> tuple[Any, ...]:
        critical = any(self._dependents[r.request_id] for r in entry.requests)
        return self.ordering.key(entry, slot, self._programs.get(entry.request.program_id), critical=critical)

    def _dispatch(self) -> None:
        self._dispatch_pending = False
        while True:
            free = [s for s in self.slots if s.running is None]
            ready = [e for e in self._queue if self._ready(e)]
            best: tuple[tuple[Any, ...], Slot, Entry] | None = None
            for slot in free:
                for entry in ready:
                    if slot.held_for is not None and entry.request.program_id != slot.held_for:
                        continue
                    key = self._key(entry, slot)
                    if best is None or key < best[0]:
                        best = (key, slot, entry)
            if best is None:
                return
            _, slot, entry = best
            if self.policy == "app_aware" and not entry.warmup:
                entry = self._own_warmup(entry) or entry
            for other in ready:
                if other is not entry and not other.warmup:
                    other.skipped += 1
            self._start(slot, entry)

    def _own_warmup(self, entry: Entry) -> Entry | None:
        sid = entry.request.session_id
        return next((e for e in self._queue if e.warmup and e.request.session_id == sid and self._ready(e)),
                    None)

    def _start(self, slot: Slot, entry: Entry) -> None:
        self._queue.remove(entry)
        self._release_holds(entry.request.program_id)
        self._clear_hold(slot)
        slot.running = entry
        slot.live_session = entry.request.session_id
        prog = self._programs.get(entry.request.program_id)
        if prog is not None and not entry.warmup:
            prog.started = True
        entry.started_at = self.clock()
        self.dispatch_order.extend(r.request_id for r in entry.requests)
        entry.task = asyncio.get_running_loop().create_task(self._run(slot, entry))

    async def _run(self, slot: Slot, entry: Entry) -> None:
        req = entry.request
        result: Any = None  # a GenerationResult; a list of them for a fork
        ttft: float | None = None
        error: BaseException | None = None
        try:
            if entry.batch:
                result = await self.engine.generate_batch(list(entry.batch))
                if len(result) != len(entry.batch):  # pragma: no cover - an engine bug
                    raise RuntimeError(f"engine {self.engine.name} returned {len(result)} results "
                                       f"for a fork of {len(entry.batch)}")
            elif entry.chunks is None:
                result = await (self.engine.warm(req) if entry.warmup else self.engine.generate(req))
                ttft = result.timings.ttft_s
            else:
                agen = self.engine.stream(req)
                try:
                    async for chunk in agen:
                        if ttft is None:
                            ttft = self.clock() - entry.started_at
                        if chunk.result is not None:
                            result = chunk.result
                            if chunk.text:
                                entry.chunks.put_nowait(StreamChunk(text=chunk.text))
                            break
                        entry.chunks.put_nowait(chunk)
                finally:
                    await agen.aclose()  # type: ignore[attr-defined]
                if result is None:
                    raise RuntimeError(f"engine {self.engine.name} ended a stream without a result")
        except asyncio.CancelledError:
            error = asyncio.CancelledError()
        except Exception as exc:  # noqa: BLE001 - handed to the caller through its future
            error = exc
        self._finish(slot, entry, result, ttft, error)

    def _finish(self, slot: Slot, entry: Entry, result: Any, ttft: float | None,
                error: BaseException | None) -> None:
        now = self.clock()
        req = entry.request
        slot.running = None
        self._forget(entry)
        prog = self._programs.get(req.program_id)
        if (prog is not None and not entry.warmup and not prog.ended and prog.outstanding == 0
                and self.anticipate_s > 0 and error is None):
            slot.held_for = prog.program_id
            slot.hold_timer = asyncio.get_running_loop().call_later(
                self.anticipate_s, self._expire_hold, slot, prog.program_id)
        timings = Timings(queued_s=entry.started_at - entry.submitted_at, ttft_s=ttft or 0.0,
                          total_s=now - entry.started_at)
        failure = ("cancelled" if isinstance(error, asyncio.CancelledError)
                   else "error" if error is not None else None)
        if entry.batch:  # each branch keeps its own time to first token
            result = None if result is None else [
                r.model_copy(update={"timings": timings.model_copy(update={"ttft_s": r.timings.ttft_s})})
                for r in result]
            for i, req in enumerate(entry.batch):
                self._record(entry, req, result[i] if result else None,
                             result[i].timings if result else timings, failure)
        else:
            if result is not None:
                result = result.model_copy(update={"timings": timings})
            self._record(entry, req, result, timings, failure)
        if not entry.future.done():
            if isinstance(error, asyncio.CancelledError):
                entry.future.cancel()
            elif error is not None:
                entry.future.set_exception(error)
            else:
                assert result is not None
                entry.future.set_result(result)
        if entry.chunks is not None:
            entry.chunks.put_nowait(error if error is not None else StreamChunk(result=result))
        self._schedule_dispatch()

    def _forget(self, entry: Entry) -> None:
        for req in entry.requests:
            self._unfinished[req.request_id] -= 1
            if self._unfinished[req.request_id] <= 0:
                del self._unfinished[req.request_id]
            for dep in req.depends_on:
                self._dependents[dep] -= 1
                if self._dependents[dep] <= 0:
                    del self._dependents[dep]
        prog = self._programs.get(entry.request.program_id)
        if prog is not None and not entry.warmup:
            prog.outstanding -= 1
            if prog.ended and prog.outstanding == 0:
                del self._programs[prog.program_id]

    def _on_future_done(self, entry: Entry) -> None:
        """A caller gave up (cancelled): drop the request if queued, stop it if running."""
        if not entry.future.cancelled():
            return
        if entry in self._queue:
            self._queue.remove(entry)
            self._forget(entry)
            for req in entry.requests:
                self._record(entry, req, None, Timings(queued_s=self.clock() - entry.submitted_at), "cancelled")
            self._schedule_dispatch()
        elif entry.task is not None and not entry.task.done():
            entry.task.cancel()

    def _record(self, entry: Entry, req: GenerationRequest, result: GenerationResult | None,
                timings: Timings, failure: str | None) -> None:
        if self.metrics is None:
            return
        usage = result.usage if result is not None else None
        self.metrics.record(CallRecord(
            request_id=req.request_id, program_id=req.program_id, session_id=req.session_id,
            agent=req.agent, step_id=req.step_id,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            reused_tokens=usage.reused_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            queued_s=timings.queued_s, ttft_s=timings.ttft_s, total_s=timings.total_s,
            finish_reason=failure or (result.finish_reason if result is not None else "error"),
            warmup=entry.warmup, submitted_at=entry.submitted_at))

    # -- anticipation holds -------------------------------------------------------------------
    def _clear_hold(self, slot: Slot) -> None:
        if slot.hold_timer is not None:
            slot.hold_timer.cancel()
        slot.held_for = None
        slot.hold_timer = None

    def _release_holds(self, program_id: str) -> None:
        for slot in self.slots:
            if slot.held_for == program_id:
                self._clear_hold(slot)

    def _expire_hold(self, slot: Slot, program_id: str) -> None:
        if slot.held_for == program_id:
            self._clear_hold(slot)
            self._schedule_dispatch()

    @property
    def queued(self) -> int:
        return len(self._queue)
