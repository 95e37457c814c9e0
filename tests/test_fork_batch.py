"""Forks reach an engine that decodes branches together as ONE call (scheduler + client), on the
scripted engine with exact call lists; engines without that keep one request per branch."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel
from test_scheduler import FakeClock, TimedEngine, order, req, seg

from autotqa.serving.client import LLMClient
from autotqa.serving.engines.scripted import ScriptedEngine
from autotqa.serving.metrics import MetricsRecorder
from autotqa.serving.scheduler import Scheduler


class Pick(BaseModel):
    name: str


def test_fork_is_one_engine_call_with_results_and_records_per_branch() -> None:
    async def main() -> tuple[list[str], ScriptedEngine, LLMClient]:
        engine = ScriptedEngine(fn=lambda r: f"out {r.step_id}", batch=True)
        client = LLMClient(engine, warm_on_begin=False)
        prog = client.begin_program("s", seg("s"))
        results = await prog.fork([req("a"), req("b"), req("c")])
        await prog.end()
        return [r.text for r in results], engine, client

    texts, engine, client = asyncio.run(main())
    assert texts == ["out a", "out b", "out c"]
    assert engine.batches == [["a", "b", "c"]]
    assert client.scheduler.dispatch_order == ["a", "b", "c"]
    records = client.metrics.calls
    assert [(c.request_id, c.finish_reason, c.program_id) for c in records] == [
        ("a", "stop", "s/p1"), ("b", "stop", "s/p1"), ("c", "stop", "s/p1")]
    assert client.summary("s/p1")["llm_calls"] == 3


def test_n_way_fork_is_one_batch() -> None:
    async def main() -> tuple[list[str], list[list[str]]]:
        engine = ScriptedEngine(fn=lambda r: r.step_id, batch=True)
        prog = LLMClient(engine, warm_on_begin=False).begin_program("s", seg("s"))
        out = await prog.fork(req("vote"), n=4)
        steps = {r.request_id: r.step_id for r in engine.requests}
        return [r.text for r in out], [[steps[i] for i in b] for b in engine.batches]

    texts, batches = asyncio.run(main())
    assert texts == ["vote#0", "vote#1", "vote#2", "vote#3"]
    assert batches == [["vote#0", "vote#1", "vote#2", "vote#3"]]


def test_fork_waits_as_a_unit_and_times_are_the_forks() -> None:
    async def main() -> tuple[list[str], list[list[str]], dict[str, tuple[float, float]]]:
        clock = FakeClock()
        engine = TimedEngine(clock)
        engine.supports_batch = True  # type: ignore[misc]
        metrics = MetricsRecorder(clock=clock)
        sched = Scheduler(engine, metrics=metrics, clock=clock)
        blocker = sched.submit(req("block", agent="blocker"))
        await asyncio.sleep(0)
        # "a" needs "block": the whole fork waits (b never runs alone), then runs as one call.
        fork = sched.submit_batch([req("a", depends_on=["block"]), req("b")])
        await asyncio.sleep(0)
        engine.release.set()
        await asyncio.gather(blocker, fork)
        times = {c.request_id: (c.queued_s, c.total_s) for c in metrics.calls}
        return order(engine), engine.batches, times

    steps, batches, times = asyncio.run(main())
    assert steps == ["block", "a", "b"] and batches == [["a", "b"]]
    # Queued behind the blocker's 1 s; the fork's two branches took 2 s together.
    assert times == {"block": (0.0, 1.0), "a": (1.0, 2.0), "b": (1.0, 2.0)}


def test_dependent_or_structured_branches_go_request_by_request() -> None:
    async def main() -> tuple[list[str], list[str], list[list[str]]]:
        engine = TimedEngine(FakeClock())
        engine.supports_batch = True  # type: ignore[misc]
        client = LLMClient(engine, warm_on_begin=False)
        prog = client.begin_program("s", seg("s"))
        await prog.fork([req("X"), req("Y"), req("Z", depends_on=["Y"])])
        picks = ScriptedEngine(['{"name": "orders"}', '{"name": "items"}'], batch=True)
        parsed = await LLMClient(picks, warm_on_begin=False).begin_program("t", seg("t")).fork(
            [req("p", output_model=Pick), req("q", output_model=Pick)])
        return order(engine), [r.parsed.name for r in parsed], engine.batches + picks.batches

    steps, names, batches = asyncio.run(main())
    assert steps == ["Y", "X", "Z"] and names == ["orders", "items"] and batches == []


def test_a_cancelled_queued_fork_never_runs() -> None:
    async def main() -> tuple[list[str], list[tuple[str, str]]]:
        engine = TimedEngine(FakeClock())
        engine.supports_batch = True  # type: ignore[misc]
        metrics = MetricsRecorder()
        sched = Scheduler(engine, metrics=metrics)
        blocker = sched.submit(req("block", agent="blocker"))
        fork = sched.submit_batch([req("a"), req("b")])
        await asyncio.sleep(0)
        fork.cancel()
        engine.release.set()
        await blocker
        await asyncio.sleep(0.01)
        return order(engine), [(c.request_id, c.finish_reason) for c in metrics.calls]

    steps, records = asyncio.run(main())
    assert steps == ["block"]
    assert records == [("a", "cancelled"), ("b", "cancelled"), ("block", "stop")]
