"""A session's shared prefix is warmed once: at session open, and again only when the engine may
have lost it (issue 13 item 5). Counted where it costs: warm-up requests reaching the engine, and
warm-up requests reaching an OpenAI-compatible server (mock transport, as test_openai_engine)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pandas as pd
import pytest
from engine_suite import SCHEMA, llm, make_engine, model_path, run, segments  # noqa: F401
from pydantic import ValidationError

import autotqa
from autotqa.config import AgentConfig, Config, EngineConfig
from autotqa.serving.client import LLMClient
from autotqa.serving.engines.openai_http import OpenAIEngine
from autotqa.serving.engines.scripted import ScriptedEngine
from autotqa.serving.factory import build_engine
from autotqa.serving.types import GenerationRequest, PromptSegments

PREFIX = PromptSegments(header="You answer questions about tables.", schema_block="sales(region TEXT, amount INT)")
FRAMES = {"sales": pd.DataFrame({"region": ["north", "south", "north"], "amount": [10, 20, 5]})}
QUESTIONS = ("How many sales are there?", "What is the total amount of sales?", "How many sales rows exist?")
REPLIES = {"planner": json.dumps({"steps": [{"goal": "count", "tables": ["sales"], "lang": "sql"}]}),
           "engineer": "```sql\nSELECT count(*) AS n FROM sales\n```",
           "critic": '{"verdict": "accept", "note": "There are 3 sales."}'}
LOOP = Config(agents=AgentConfig(candidates=1))  # planner -> engineer -> critic, no vote


def reply(request: GenerationRequest) -> str:
    return REPLIES[request.agent]


class Server:
    """An OpenAI-compatible server behind httpx's mock transport: replies by the X-Agent header
    (honouring stop strings, streaming when asked) and keeps the agent of every chat request."""

    def __init__(self) -> None:
        self.agents: list[str] = []
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": [{"id": "m", "owned_by": "vllm"}]})
        body = json.loads(request.content)
        agent = request.headers["x-agent"]
        self.agents.append(agent)
        self.bodies.append(body)
        text = "" if agent == "warmup" else REPLIES[agent]
        for stop in body.get("stop", []):
            text = text.split(stop)[0] if stop in text else text
        usage = {"prompt_tokens": 100, "completion_tokens": 1}
        if not body["stream"]:
            return httpx.Response(200, json={"choices": [{"index": 0, "finish_reason": "stop",
                                                          "message": {"role": "assistant", "content": text}}],
                                             "usage": usage})
        events = [{"choices": [{"delta": {"content": text}, "finish_reason": "stop"}]}, {"choices": [], "usage": usage}]
        sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return httpx.Response(200, content=sse, headers={"content-type": "text/event-stream"})

    def warmups(self) -> list[dict[str, Any]]:
        return [b for a, b in zip(self.agents, self.bodies) if a == "warmup"]


def http_engine(server: Server, **kw: Any) -> OpenAIEngine:
    return OpenAIEngine("http://test:8000", model="m", transport=httpx.MockTransport(server), **kw)


def ask_three(engine: Any) -> list[autotqa.Answer]:
    with autotqa.Session(FRAMES, engine=engine, config=LOOP, close_engine=True) as session:
        return [session.ask(q) for q in QUESTIONS]


def test_http_session_of_three_questions_sends_one_warmup() -> None:
    server = Server()
    answers = ask_three(http_engine(server))
    assert [a.values for a in answers] == [[3], [3], [3]]
    assert server.agents.count("warmup") == 1 and server.agents[0] == "warmup"  # the one at session open
    assert server.agents[1:] == ["planner", "engineer", "critic"] * 3
    (warm,) = server.warmups()
    assert warm["max_tokens"] == 1 and warm["messages"][1]["content"] == ""
    # The questions' prompts start with exactly the warmed system message (header + schema).
    assert {b["messages"][0]["content"] for b in server.bodies} == {warm["messages"][0]["content"]}


def test_scripted_session_of_three_questions_sends_one_warmup() -> None:
    engine = ScriptedEngine(fn=reply)
    ask_three(engine)
    assert [r.agent for r in engine.requests if r.prefill_only] == ["warmup"]
    assert len(engine.requests) == 1 + 3 * 3


def test_an_engine_that_cannot_tell_is_warmed_at_every_question() -> None:
    engine = ScriptedEngine(fn=reply, session_cache=False)  # holds nothing: every warm-up counts
    ask_three(engine)
    assert [r.agent for r in engine.requests if r.prefill_only] == ["warmup"] * 4


def test_http_prefix_is_warmed_again_only_after_idle_time() -> None:
    now = [0.0]
    server = Server()
    client = LLMClient(http_engine(server, rewarm_after_s=300.0, clock=lambda: now[0]))

    async def question(session: str, at: float) -> None:
        now[0] = at
        async with client.begin_program(session, PREFIX) as prog:
            await prog.generate(GenerationRequest(agent="planner", segments=PREFIX.model_copy(update={"tail": "go"})))

    async def main() -> None:
        await client.warm("s1", PREFIX)
        await question("s1", 0.0)
        await question("s1", 299.0)  # warm; its call carries the prefix, so the clock restarts
        await question("s1", 598.0)  # 299 s idle: still warm
        await question("s1", 898.0)  # 300 s idle: the server may have evicted it
        await question("s2", 898.5)  # another session's prefix is its own (routing keeps sessions apart)

    asyncio.run(main())
    assert server.agents == ["warmup", "planner", "planner", "planner", "warmup", "planner", "warmup", "planner"]


def test_rewarm_after_zero_warms_every_question() -> None:
    server = Server()
    client = LLMClient(http_engine(server, rewarm_after_s=0.0))

    async def main() -> None:
        await client.warm("s1", PREFIX)
        for _ in range(2):
            async with client.begin_program("s1", PREFIX) as prog:
                await prog.generate(GenerationRequest(agent="planner", segments=PREFIX))

    asyncio.run(main())
    assert server.agents == ["warmup", "warmup", "planner", "warmup", "planner"]


def test_a_question_reuses_the_warmup_still_on_its_way() -> None:
    engine = ScriptedEngine(fn=lambda r: "SELECT 1", session_cache=False)  # cannot tell: only the queue can
    client = LLMClient(engine)

    async def main() -> None:
        opening = asyncio.ensure_future(client.warm("s1", PREFIX))
        await asyncio.sleep(0)  # the session-open warm-up is queued, not finished
        async with client.begin_program("s1", PREFIX) as first:
            assert first.warmup is not None and not first.warmup.done()  # the queued one, not a second
            await first.generate(GenerationRequest(agent="planner", segments=PREFIX))
        await opening
        async with client.begin_program("s1", PREFIX) as second:  # nothing queued now: warm again
            assert second.warmup is not None and second.warmup is not first.warmup
            await second.generate(GenerationRequest(agent="planner", segments=PREFIX))

    asyncio.run(main())
    assert [r.agent for r in engine.requests] == ["warmup", "planner", "warmup", "planner"]


def test_rewarm_after_is_configured_and_checked() -> None:
    eng = build_engine(EngineConfig(kind="openai", base_url="http://h:1/v1", rewarm_after_s=60))
    assert isinstance(eng, OpenAIEngine) and eng.prefixes.idle_s == 60
    assert build_engine(EngineConfig(kind="openai", base_url="http://h:1/v1")).prefixes.idle_s == 300  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        EngineConfig(rewarm_after_s=-1)


@pytest.mark.model
def test_llamacpp_holds_a_warmed_prefix_until_it_is_evicted(make_engine: Any) -> None:
    eng = make_engine()
    prefix = segments("")
    other = segments("Name the table.", schema="Table trips (88 rows): trip_id INTEGER key; km DOUBLE")
    assert not eng.holds_prefix("A", prefix)
    run(eng.warm(GenerationRequest(session_id="A", segments=prefix)))
    # Held for any session on the same header + schema (the tokens are what count), no other schema.
    assert eng.holds_prefix("A", prefix) and eng.holds_prefix("B", prefix)
    assert not eng.holds_prefix("A", other.model_copy(update={"tail": ""}))
    run(eng.generate(GenerationRequest(session_id="A", segments=segments("Name one table."), max_tokens=2)))
    assert eng.holds_prefix("A", prefix)  # the call extended the warmed prefix
    eng.snapshots.budget_bytes = 0  # no snapshot fits: switching sessions loses A's state
    run(eng.generate(GenerationRequest(session_id="C", segments=other, max_tokens=2)))
    assert not eng.holds_prefix("A", prefix) and len(eng.snapshots) == 0
