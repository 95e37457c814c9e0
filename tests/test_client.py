"""LLMClient/Program: the agents' API, routed through the scheduler and recorded in metrics."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from autotqa.errors import OutputParseError
from autotqa.serving.client import LLMClient
from autotqa.serving.engines.scripted import ScriptedEngine
from autotqa.serving.types import GenerationRequest, PromptSegments

PREFIX = PromptSegments(header="You answer questions about tables.", schema_block="t(a INT, b TEXT)")


class Plan(BaseModel):
    steps: list[str]


def req(step: str, tail: str = "go", **kw: object) -> GenerationRequest:
    return GenerationRequest(step_id=step, agent="planner",
                             segments=PREFIX.model_copy(update={"tail": tail}), **kw)  # type: ignore[arg-type]


def test_begin_program_warms_the_shared_prefix_first() -> None:
    async def main() -> tuple[LLMClient, ScriptedEngine, str]:
        engine = ScriptedEngine(["plain answer"])
        client = LLMClient(engine)
        async with client.begin_program("s1", PREFIX) as prog:
            assert prog.warmup is not None
            r = await prog.generate(req("p"))
        return client, engine, r.text

    client, engine, text = asyncio.run(main())
    assert text == "plain answer"
    warm, real = engine.requests
    assert (warm.prefill_only, warm.segments, warm.priority, warm.agent) == (True, PREFIX, 10, "warmup")
    assert (real.program_id, real.session_id) == ("s1/p1", "s1")
    s = client.summary("s1/p1")
    # ScriptedEngine counts whitespace tokens: 13 in the warm prompt; the real call (13 tokens) reuses
    # everything up to and including "<|im_start|>user" (11) and computes "go<|im_end|>" + the turn.
    assert (s["llm_calls"], s["warmup_tokens"], s["prompt_tokens"], s["reused_tokens"]) == (1, 13, 13, 11)


def test_warm_off_and_deferred_warmup_outside_a_loop() -> None:
    engine = ScriptedEngine(["a", "b"])
    client = LLMClient(engine, warm_on_begin=False)
    prog_cold = client.begin_program("s", PREFIX)
    deferred = LLMClient(ScriptedEngine(["x"])).begin_program("t", PREFIX)  # no running loop here

    async def main() -> None:
        await prog_cold.generate(req("1"))
        await deferred.generate(req("1"))

    asyncio.run(main())
    assert [r.prefill_only for r in engine.requests] == [False]
    assert [r.agent for r in deferred.client.engine.requests] == ["warmup", "planner"]  # type: ignore[attr-defined]


def test_structured_output_with_one_repair_round() -> None:
    async def main() -> tuple[ScriptedEngine, Plan, LLMClient]:
        engine = ScriptedEngine(["not json", '{"steps": ["join t", "count"]}'])
        client = LLMClient(engine, warm_on_begin=False)
        prog = client.begin_program("s", PREFIX)
        r = await prog.generate(req("plan", output_model=Plan))
        return engine, r.parsed, client

    engine, parsed, client = asyncio.run(main())
    assert parsed == Plan(steps=["join t", "count"])
    first, repair = engine.requests
    assert repair.step_id == "plan:repair" and repair.depends_on == [first.request_id]
    assert repair.segments.tail.startswith("go\n\nYour previous reply could not be used")
    assert [c.step_id for c in client.metrics.calls] == ["plan", "plan:repair"]


def test_structured_output_gives_up_after_one_repair() -> None:
    async def main() -> None:
        client = LLMClient(ScriptedEngine(["nope", "still nope"]), warm_on_begin=False)
        await client.begin_program("s", PREFIX).generate(req("plan", output_model=Plan))

    with pytest.raises(OutputParseError) as info:
        asyncio.run(main())
    assert info.value.raw == "still nope"


@pytest.mark.parametrize("batch", [True, False])
def test_fork_n_and_list(batch: bool) -> None:
    async def main() -> tuple[list[str], list[str], list[int]]:
        engine = ScriptedEngine(fn=lambda r: r.step_id, batch=batch)
        prog = LLMClient(engine, warm_on_begin=False).begin_program("s", PREFIX)
        sampled = await prog.fork(req("vote"), n=3)
        listed = await prog.fork([req("a"), req("b")])
        return [r.text for r in sampled], [r.text for r in listed], [len(b) for b in engine.batches]

    # An engine that decodes branches together gets each fork as one call; others one per branch.
    assert asyncio.run(main()) == (["vote#0", "vote#1", "vote#2"], ["a", "b"], [3, 2] if batch else [])
    with pytest.raises(ValueError):
        asyncio.run(LLMClient(ScriptedEngine()).begin_program("s", PREFIX).fork([req("a")], n=2))


def test_stream_goes_through_the_scheduler_and_is_recorded() -> None:
    async def main() -> tuple[list[str], LLMClient, int]:
        client = LLMClient(ScriptedEngine(["SELECT 1;\n```"]), warm_on_begin=False)
        prog = client.begin_program("s", PREFIX)
        texts = [c.text async for c in prog.stream(req("code", stop=["```"]))]
        return texts, client, len(prog.results)

    texts, client, n = asyncio.run(main())
    assert texts == ["SELECT 1;\n", ""]
    assert n == 1 and client.scheduler.dispatch_order == [client.metrics.calls[0].request_id]


def test_client_warm_counts_as_warmup() -> None:
    async def main() -> LLMClient:
        client = LLMClient(ScriptedEngine())
        r = await client.warm("s", PREFIX)
        assert r.finish_reason == "prefill"
        return client

    s = asyncio.run(main()).summary("s")
    assert s["llm_calls"] == 0 and s["prompt_tokens"] == 0 and s["warmup_tokens"] > 0


@pytest.mark.parametrize(("layout", "kv_reuse", "reused"), [
    ("stable", True, [0, 11]),  # the second call reuses header + schema + "<|im_start|>user"
    ("role_first", True, [0, 1]),  # role text first: only "<|im_start|>system" is shared
    ("stable", False, [0, 0]),  # the engine keeps no KV state
])
def test_layout_and_kv_reuse_switches(layout: str, kv_reuse: bool, reused: list[int]) -> None:
    from autotqa.serving.factory import build_engine, engine_options
    from autotqa.serving.options import ServingOptions
    from autotqa.config import EngineConfig

    options = ServingOptions(layout=layout, kv_reuse=kv_reuse, warm_up=False)  # type: ignore[arg-type]
    cfg = EngineConfig(kind="scripted")
    engine = build_engine(cfg, replies=["a", "b", "c"], **engine_options(cfg, options))
    client = LLMClient(engine, options=options)

    async def main() -> None:
        async with client.begin_program("s", PREFIX) as prog:
            await prog.generate(req("1", tail="plan the steps"))
            await prog.generate(req("2", tail="write the query", output_model=Plan))  # + one repair

    with pytest.raises(OutputParseError):
        asyncio.run(main())
    first, second, repair = engine.requests  # type: ignore[attr-defined]
    assert [c.reused_tokens for c in client.metrics.calls][:2] == reused
    if layout == "role_first":  # the role text (and a repair's instruction) leads the system message
        assert first.segments.header == f"plan the steps\n\n{PREFIX.header}" and first.segments.tail == ""
        assert repair.segments.header.startswith("write the query\n\n") and "JSON" in repair.segments.header
    else:
        assert (first.segments, second.segments.tail) == (PREFIX.model_copy(update={"tail": "plan the steps"}),
                                                          "write the query")
