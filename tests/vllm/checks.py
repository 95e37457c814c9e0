"""vLLM checks run on both paths: the in-process engine and ``vllm serve`` + the OpenAI engine.

The model has random weights, so no check depends on what it "says". Outputs that must be exact
are *forced by the grammar*: a JSON schema whose only value is ``{"pad":"<PAD>"}`` makes vLLM emit
exactly that text (byte-level vocabulary: one character, one token), then EOS. That gives exact
streaming, stop-string and timing-free priority assertions on any machine.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass
from typing import Any, Literal

from engine_suite import collect  # tests/ is on sys.path (tests/vllm/conftest.py)
from pydantic import BaseModel

from autotqa.serving.engine import Engine
from autotqa.serving.layout import render_chatml
from autotqa.serving.types import GenerationRequest, PromptSegments

BLOCK = 32  # conftest.BLOCK_SIZE (kept literal: conftest is not importable as a module)
_uid = itertools.count(1)

SCHEMA_BLOCK = ("Table orders (1200 rows): order_id INTEGER key; customer_id INTEGER -> customers.customer_id; "
                "status VARCHAR ('shipped', 'pending'); total_amount DOUBLE 3.5..1890.0\n"
                "Table customers (310 rows): customer_id INTEGER key; name VARCHAR; country VARCHAR")


def unique_segments(tail: str, tag: str) -> PromptSegments:
    """Segments whose first KV block is unique, so no other test's cached blocks can match."""
    header = f"[{tag}-{next(_uid)}] You are a careful data analyst; reply with short exact answers."
    return PromptSegments(header=header, schema_block=SCHEMA_BLOCK, tail=tail)


def forced(pad: str) -> tuple[dict[str, Any], str]:
    """A schema with exactly one valid document, and that document in compact form."""
    schema = {"type": "object", "properties": {"pad": {"enum": [pad]}}, "required": ["pad"],
              "additionalProperties": False}
    return schema, json.dumps({"pad": pad}, separators=(",", ":"))


class Verdict(BaseModel):
    table: Literal["orders", "customers"]
    ok: bool


@dataclass
class VLLMCase:
    engine: Engine
    tokenizer: Any  # the tiny model's Hugging Face tokenizer

    def n_tokens(self, seg: PromptSegments) -> int:
        return len(self.tokenizer(render_chatml(seg), add_special_tokens=False)["input_ids"])

    def block_aligned_common(self, a: PromptSegments, b: PromptSegments) -> int:
        """Tokens vLLM can reuse for ``b`` after ``a``: whole blocks of their common token prefix."""
        ta = self.tokenizer(render_chatml(a), add_special_tokens=False)["input_ids"]
        tb = self.tokenizer(render_chatml(b), add_special_tokens=False)["input_ids"]
        common = next((i for i, (x, y) in enumerate(zip(ta, tb)) if x != y), min(len(ta), len(tb)))
        return common // BLOCK * BLOCK


class VLLMChecks:
    """Subclasses provide a ``case`` fixture (:class:`VLLMCase`)."""

    tag = "vllm"

    def test_generation_usage_is_exact(self, case: VLLMCase) -> None:
        seg = unique_segments("Name the table that lists customers.", self.tag)
        r = asyncio.run(case.engine.generate(GenerationRequest(segments=seg, max_tokens=8)))
        assert r.usage.prompt_tokens == case.n_tokens(seg)
        assert r.usage.reused_tokens == 0  # a unique first block: nothing to reuse
        assert r.finish_reason in ("stop", "length")
        assert 1 <= r.usage.completion_tokens <= 8
        if r.finish_reason == "length":
            assert r.usage.completion_tokens == 8
        assert r.timings.total_s >= r.timings.ttft_s > 0

    def test_streaming_delivers_the_forced_text(self, case: VLLMCase) -> None:
        schema, expected = forced("abcdefghijklmnopqrstuvwx")
        texts, r = asyncio.run(collect(case.engine, GenerationRequest(
            segments=unique_segments("stream", self.tag), json_schema=schema, max_tokens=64)))
        assert r.text == expected
        assert "".join(texts) == expected
        assert len(texts) > 1  # streamed in pieces, not one final blob
        assert r.finish_reason == "stop"
        assert len(expected) <= r.usage.completion_tokens <= len(expected) + 1  # + EOS where counted

    def test_json_schema_output_validates(self, case: VLLMCase) -> None:
        r = asyncio.run(case.engine.generate(GenerationRequest(
            segments=unique_segments('Reply as JSON with keys "table" and "ok".', self.tag),
            output_model=Verdict, max_tokens=48)))
        assert set(json.loads(r.text)) == {"table", "ok"}
        assert Verdict.model_validate_json(r.text).table in ("orders", "customers")
        assert r.finish_reason == "stop"

    def test_stop_string_cuts_the_output(self, case: VLLMCase) -> None:
        schema, expected = forced("abcdefghij")
        texts, r = asyncio.run(collect(case.engine, GenerationRequest(
            segments=unique_segments("stop", self.tag), json_schema=schema, max_tokens=64, stop=["f"])))
        assert r.text == expected[:expected.index("f")] == '{"pad":"abcde'
        assert "".join(texts) == r.text
        assert r.finish_reason == "stop"
        assert r.usage.completion_tokens == len('{"pad":"abcdef')  # the stop token was generated

    def test_repeated_prefix_is_reused_exactly(self, case: VLLMCase) -> None:
        first = unique_segments("Which table holds order totals?", self.tag)
        second = first.model_copy(update={"tail": "Which column links orders to customers?"})
        r1 = asyncio.run(case.engine.generate(GenerationRequest(segments=first, max_tokens=2)))
        r2 = asyncio.run(case.engine.generate(GenerationRequest(segments=second, max_tokens=2)))
        expected = case.block_aligned_common(first, second)
        assert r1.usage.reused_tokens == 0
        assert expected >= 4 * BLOCK  # header + schema span several blocks
        assert r2.usage.reused_tokens == expected
        assert r2.usage.prompt_tokens == case.n_tokens(second)

    def test_prefill_warms_the_shared_prefix(self, case: VLLMCase) -> None:
        shared = unique_segments("", self.tag)
        warm = asyncio.run(case.engine.warm(GenerationRequest(segments=shared)))
        assert (warm.finish_reason, warm.text, warm.usage.completion_tokens) == ("prefill", "", 0)
        assert warm.usage.prompt_tokens == case.n_tokens(shared)
        ask = shared.model_copy(update={"tail": "How many customers are there?"})
        r = asyncio.run(case.engine.generate(GenerationRequest(segments=ask, max_tokens=2)))
        assert r.usage.reused_tokens == case.block_aligned_common(shared, ask) >= 4 * BLOCK

    def test_lower_priority_value_runs_first(self, case: VLLMCase) -> None:
        """With both batch slots busy, queued requests start in priority order (lower first).

        Two forced-length blockers fill ``max_num_seqs=2``: A (short) frees its slot first, B (long)
        keeps the other one busy until every queued request is done, so the queued requests run one
        at a time in the freed slot, and their completion order is their scheduling order. Lengths
        are in decode steps, not seconds: A's 1600 steps outlast the five submissions (~0.1 s; 64
        steps once did not, on a fast CI machine, and 800 did not on a machine running two other
        model jobs, which starved this event loop's 20 ms sleeps), and B outlasts A plus all five queued requests
        several times over (it is cancelled once they are done, so its length costs nothing).
        """
        order: list[int] = []
        engine = case.engine

        async def scenario() -> tuple[float, float, bool]:
            loop = asyncio.get_running_loop()
            started = {"A": asyncio.Event(), "B": asyncio.Event()}
            done_at: dict[str, float] = {}

            async def blocker(name: str, pad_len: int) -> None:
                schema, text = forced(name.lower() * pad_len)
                req = GenerationRequest(segments=unique_segments(f"blocker {name}", self.tag),
                                        json_schema=schema, max_tokens=len(text) + 8, priority=0)
                async for chunk in engine.stream(req):
                    if chunk.text:
                        started[name].set()
                done_at[name] = loop.time()

            async def queued(priority: int) -> None:
                await engine.generate(GenerationRequest(
                    segments=unique_segments(f"queued p{priority}", self.tag), max_tokens=3, priority=priority))
                order.append(priority)

            a = asyncio.create_task(blocker("A", 1600))
            b = asyncio.create_task(blocker("B", 3600))
            async def until_both_stream() -> None:
                while not (started["A"].is_set() and started["B"].is_set()):
                    for name, task in (("A", a), ("B", b)):
                        if task.done():
                            task.result()  # a blocker that failed raises its error here
                            raise AssertionError(f"blocker {name} finished before both were streaming")
                    await asyncio.sleep(0.01)

            await asyncio.wait_for(until_both_stream(), 600)
            tasks = []
            for p in (5, 3, 1, 4, 2):  # arrival order differs from priority order
                tasks.append(asyncio.create_task(queued(p)))
                await asyncio.sleep(0.02)
            submitted_at = loop.time()
            await asyncio.wait_for(asyncio.gather(*tasks), 600)
            b_still_running = not b.done()
            await a
            b.cancel()
            try:
                await b
            except asyncio.CancelledError:
                pass
            return done_at["A"], submitted_at, b_still_running

        a_done, submitted, b_running = asyncio.run(scenario())
        assert a_done > submitted, "precondition: all requests were queued before blocker A finished"
        assert b_running, "precondition: blocker B held its slot the whole time"
        assert order == [1, 2, 3, 4, 5]
