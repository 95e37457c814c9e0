"""Scheduler policy on a fake clock: exact dispatch order and exact queue times."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from autotqa.serving.client import LLMClient
from autotqa.serving.engines.scripted import ScriptedEngine
from autotqa.serving.metrics import MetricsRecorder
from autotqa.serving.options import ServingOptions
from autotqa.serving.scheduler import Scheduler
from autotqa.serving.types import GenerationRequest, PromptSegments, StreamChunk


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class TimedEngine(ScriptedEngine):
    """Scripted replies; each call advances the fake clock (warm-ups cost 2 s, calls 1 s).

    A request with agent ``blocker`` holds its slot until ``release`` is set.
    """

    def __init__(self, clock: FakeClock, max_concurrency: int = 1) -> None:
        super().__init__(fn=lambda r: f"out-{r.step_id}", max_concurrency=max_concurrency)
        self.clock = clock
        self.release = asyncio.Event()
        self.running = 0
        self.peak = 0
        self.closed_streams = 0

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamChunk]:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            if request.agent == "blocker":
                await self.release.wait()
            await asyncio.sleep(0)
            self.clock.t += 2.0 if request.prefill_only else 1.0
            async for chunk in super().stream(request):
                yield chunk
        finally:
            self.running -= 1
            self.closed_streams += 1


def seg(session: str, tail: str = "") -> PromptSegments:
    return PromptSegments(header="H", schema_block=f"schema of {session}", tail=tail)


def req(step: str, session: str = "s", **kw: object) -> GenerationRequest:
    return GenerationRequest(request_id=step, step_id=step, session_id=session,
                             segments=seg(session, step), **kw)  # type: ignore[arg-type]


async def run_sessions(client: LLMClient, sessions: list[str], calls: int) -> None:
    async def one(sid: str) -> None:
        async with client.begin_program(sid, seg(sid)) as prog:
            for i in range(1, calls + 1):
                await prog.generate(req(f"{sid}{i}", sid))
    await asyncio.gather(*(one(s) for s in sessions))


def order(engine: ScriptedEngine) -> list[str]:
    return [r.step_id for r in engine.requests]


def queued(metrics: MetricsRecorder) -> dict[str, float]:
    return {c.step_id: c.queued_s for c in metrics.calls}


def test_fifo_interleaves_sessions() -> None:
    clock = FakeClock()
    engine = TimedEngine(clock)
    client = LLMClient(engine, policy="fifo", clock=clock, warm_on_begin=False)
    asyncio.run(run_sessions(client, ["A", "B", "C"], 2))
    assert order(engine) == ["A1", "B1", "C1", "A2", "B2", "C2"]
    assert queued(client.metrics) == {"A1": 0, "B1": 1, "C1": 2, "A2": 2, "B2": 2, "C2": 2}


def test_app_aware_keeps_programs_together() -> None:
    clock = FakeClock()
    engine = TimedEngine(clock)
    client = LLMClient(engine, clock=clock, warm_on_begin=False)
    asyncio.run(run_sessions(client, ["A", "B", "C"], 2))
    # A's second call is submitted after A1 ends, yet beats B1 and C1 (anticipation + started first).
    assert order(engine) == ["A1", "A2", "B1", "B2", "C1", "C2"]
    assert queued(client.metrics) == {"A1": 0, "A2": 0, "B1": 2, "B2": 0, "C1": 4, "C2": 0}


def test_warmup_runs_right_before_its_own_session_and_never_before_others() -> None:
    clock = FakeClock()
    engine = TimedEngine(clock)
    client = LLMClient(engine, clock=clock)
    asyncio.run(run_sessions(client, ["A", "B"], 2))
    assert order(engine) == ["warmup", "A1", "A2", "warmup", "B1", "B2"]
    assert [r.session_id for r in engine.requests] == ["A", "A", "A", "B", "B", "B"]
    warm = engine.requests[0]
    assert warm.prefill_only and warm.priority == 10 and warm.segments == seg("A")
    # A1 waited for A's warm-up (2 s); B1 waited for A's warm-up, A1, A2 and its own warm-up.
    assert [(c.step_id, c.queued_s) for c in client.metrics.calls] == [
        ("warmup", 0), ("A1", 2), ("A2", 0), ("warmup", 4), ("B1", 6), ("B2", 0)]
    summary = client.metrics.summary()
    assert summary["llm_calls"] == 4 and summary["warmup_s"] == 4.0


def test_other_sessions_warmup_waits_behind_a_ready_real_request() -> None:
    async def main() -> list[str]:
        clock = FakeClock()
        engine = TimedEngine(clock)
        sched = Scheduler(engine, clock=clock)
        blocker = sched.submit(req("block", "X", agent="blocker"))
        await asyncio.sleep(0)
        sched.begin_program("B/p", "B", warmup=req("wB", "B", prefill_only=True, priority=10))
        sched.begin_program("A/p", "A")
        a1 = sched.submit(req("A1", "A", program_id="A/p"))
        engine.release.set()
        await asyncio.gather(blocker, a1)
        sched.end_program("A/p")
        await asyncio.sleep(0.01)
        return order(engine)

    assert asyncio.run(main()) == ["block", "A1", "wB"]


def test_critical_path_and_dependencies() -> None:
    async def main() -> list[str]:
        clock = FakeClock()
        engine = TimedEngine(clock)
        client = LLMClient(engine, clock=clock, warm_on_begin=False)
        prog = client.begin_program("s", seg("s"))
        # Z needs Y: Y is on the critical path and goes first; Z is not ready until Y is done.
        await prog.fork([req("X"), req("Y"), req("Z", depends_on=["Y"])])
        return order(engine)

    assert asyncio.run(main()) == ["Y", "X", "Z"]


def test_explicit_priority_then_fifo() -> None:
    async def main() -> list[str]:
        engine = TimedEngine(FakeClock())
        sched = Scheduler(engine)
        futs = [sched.submit(req(n, priority=p)) for n, p in [("p5", 5), ("p0", 0), ("p1", 1), ("p0b", 0)]]
        await asyncio.gather(*futs)
        return order(engine)

    assert asyncio.run(main()) == ["p0", "p0b", "p1", "p5"]


@pytest.mark.parametrize(("aging_skips", "expected"), [
    (2, ["block", "Y1", "Y2", "X", "Y3", "Y4"]),  # passed over twice: priority 1 -> 0, older wins
    (0, ["block", "Y1", "Y2", "Y3", "Y4", "X"]),  # aging off
])
def test_aging_lifts_a_request_that_keeps_being_passed_over(aging_skips: int, expected: list[str]) -> None:
    async def main() -> list[str]:
        engine = TimedEngine(FakeClock())
        sched = Scheduler(engine, aging_skips=aging_skips)
        blocker = sched.submit(req("block", agent="blocker"))
        await asyncio.sleep(0)
        x = sched.submit(req("X", priority=1))

        async def newcomers() -> None:  # a fresh priority-0 request each time the last one ends
            for i in range(1, 5):
                await sched.submit(req(f"Y{i}"))

        engine.release.set()
        await asyncio.gather(blocker, x, newcomers())
        return order(engine)

    assert asyncio.run(main()) == expected


def test_concurrency_limit_and_locality_on_two_slots() -> None:
    async def main() -> tuple[int, list[str | None], list[str]]:
        engine = TimedEngine(FakeClock(), max_concurrency=2)
        client = LLMClient(engine, warm_on_begin=False)
        prog = client.begin_program("s", seg("s"))
        await prog.fork(req("b"), n=5)
        return engine.peak, [s.live_session for s in client.scheduler.slots], order(engine)

    peak, live, steps = asyncio.run(main())
    assert peak == 2
    assert live == ["s", "s"]
    assert steps == ["b#0", "b#1", "b#2", "b#3", "b#4"]


def test_stream_holds_the_slot_and_early_close_frees_it() -> None:
    async def main() -> tuple[list[str], list[str], int, str]:
        engine = TimedEngine(FakeClock())
        metrics = MetricsRecorder()
        sched = Scheduler(engine, metrics=metrics)
        stream = sched.stream(req("S", agent="blocker"))
        first = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0)
        other = sched.submit(req("after"))
        await asyncio.sleep(0.01)
        running_before = list(sched.dispatch_order)
        first.cancel()  # the consumer gives up while the engine is still producing
        await other
        return running_before, sched.dispatch_order, engine.closed_streams, metrics.calls[0].finish_reason

    before, after, closed, finish = asyncio.run(main())
    assert before == ["S"]  # "after" waited behind the stream's slot
    assert after == ["S", "after"]
    assert closed == 2
    assert finish == "cancelled"


def test_stream_passes_chunks_and_fills_timings() -> None:
    async def main() -> list[StreamChunk]:
        clock = FakeClock()
        sched = Scheduler(TimedEngine(clock), clock=clock)
        return [c async for c in sched.stream(req("S"))]

    chunks = asyncio.run(main())
    assert [c.text for c in chunks] == ["out-S", ""]
    assert chunks[-1].result is not None and chunks[-1].result.timings.total_s == 1.0


def test_cancelled_queued_request_never_runs_and_errors_free_the_slot() -> None:
    class Failing(TimedEngine):
        async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamChunk]:
            if request.step_id == "bad":
                raise RuntimeError("engine down")
            async for c in super().stream(request):
                yield c

    async def main() -> tuple[list[str], str]:
        engine = Failing(FakeClock())
        sched = Scheduler(engine)
        bad, gone, good = sched.submit(req("bad")), sched.submit(req("gone")), sched.submit(req("good"))
        gone.cancel()
        with pytest.raises(RuntimeError, match="engine down"):
            await bad
        text = (await good).text
        return order(engine), text

    assert asyncio.run(main()) == (["good"], "out-good")


# -- the ablation's switches (ServingOptions): each one changes the schedule it is meant to change --

@pytest.mark.parametrize(("options", "expected"), [
    (ServingOptions(), ["A:warmup", "A:A1", "A:A2", "B:warmup", "B:B1", "B:B2", "C:warmup", "C:C1", "C:C2"]),
    # without locality a session's second call queues behind the other sessions' first calls
    (ServingOptions(locality=False),
     ["A:warmup", "A:A1", "B:warmup", "B:B1", "C:warmup", "C:C1", "A:A2", "B:B2", "C:C2"]),
    (ServingOptions(warm_up=False), ["A:A1", "A:A2", "B:B1", "B:B2", "C:C1", "C:C2"]),
    (ServingOptions(locality=False, priority=False, warm_up=False),
     ["A:A1", "B:B1", "C:C1", "A:A2", "B:B2", "C:C2"]),
])
def test_serving_options_switch_locality_and_warmup(options: ServingOptions, expected: list[str]) -> None:
    clock = FakeClock()
    engine = TimedEngine(clock)
    client = LLMClient(engine, clock=clock, options=options)
    asyncio.run(run_sessions(client, ["A", "B", "C"], 2))
    assert [f"{r.session_id}:{r.step_id}" for r in engine.requests] == expected
    assert client.scheduler.policy == ("fifo" if expected[1] == "B:B1" else "app_aware")


@pytest.mark.parametrize(("priority", "expected"), [(True, ["Y", "X", "Z"]), (False, ["X", "Y", "Z"])])
def test_priority_switch_covers_the_critical_path(priority: bool, expected: list[str]) -> None:
    async def main() -> list[str]:
        engine = TimedEngine(FakeClock())
        client = LLMClient(engine, options=ServingOptions(warm_up=False, priority=priority))
        prog = client.begin_program("s", seg("s"))
        await prog.fork([req("X"), req("Y"), req("Z", depends_on=["Y"])])
        return order(engine)

    assert asyncio.run(main()) == expected


@pytest.mark.parametrize(("priority", "expected"), [(True, ["p0", "p0b", "p1", "p5"]),
                                                    (False, ["p5", "p0", "p1", "p0b"])])
def test_priority_switch_covers_explicit_priority(priority: bool, expected: list[str]) -> None:
    async def main() -> list[str]:
        engine = TimedEngine(FakeClock())
        sched = Scheduler(engine, priority=priority)
        futs = [sched.submit(req(n, priority=p)) for n, p in [("p5", 5), ("p0", 0), ("p1", 1), ("p0b", 0)]]
        await asyncio.gather(*futs)
        return order(engine)

    assert asyncio.run(main()) == expected
