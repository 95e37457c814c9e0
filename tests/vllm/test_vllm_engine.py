"""In-process :class:`VLLMEngine` on the generated tiny model (vLLM CPU)."""

from __future__ import annotations

import asyncio
import time

import pytest
from checks import VLLMCase, VLLMChecks, forced, unique_segments

from autotqa.errors import EngineError
from autotqa.serving.types import GenerationRequest, PromptSegments

pytestmark = pytest.mark.vllm


class TestVLLMEngine(VLLMChecks):
    tag = "inproc"

    @pytest.fixture
    def case(self, inproc_engine, tokenizer) -> VLLMCase:  # noqa: ANN001 - fixtures
        return VLLMCase(inproc_engine, tokenizer)

    def test_batches_and_reports_engine_stats(self, case: VLLMCase) -> None:
        eng = case.engine
        assert eng.max_concurrency == 2  # max_num_seqs: vLLM batches up to this many sequences
        before = dict(eng.stats)
        segs = [unique_segments(f"batch {i}", self.tag) for i in range(3)]

        async def go():  # noqa: ANN202
            return await asyncio.gather(*(eng.generate(GenerationRequest(segments=s, max_tokens=4)) for s in segs))

        results = asyncio.run(go())
        assert [r.usage.prompt_tokens for r in results] == [case.n_tokens(s) for s in segs]
        assert eng.stats["completed_requests"] - before["completed_requests"] == 3
        assert eng.stats["prompt_tokens"] - before["prompt_tokens"] == sum(case.n_tokens(s) for s in segs)
        # vLLM's own scheduler counters (summed by the engine's stat logger) saw these lookups too.
        deadline = time.monotonic() + 10
        while eng.stats["prefix_cache_queries"] - before["prefix_cache_queries"] < sum(map(case.n_tokens, segs)):
            assert time.monotonic() < deadline, (before, eng.stats)
            time.sleep(0.1)

    def test_closing_the_stream_aborts_the_request(self, case: VLLMCase) -> None:
        eng = case.engine
        schema, _ = forced("z" * 300)

        async def read_three() -> list[str]:
            got = []
            stream = eng.stream(GenerationRequest(segments=unique_segments("abort", self.tag),
                                                  json_schema=schema, max_tokens=320))
            async for chunk in stream:
                got.append(chunk.text)
                if len(got) == 3:
                    break
            await stream.aclose()
            return got

        assert len(asyncio.run(read_three())) == 3
        deadline = time.monotonic() + 10
        while eng.llm.get_num_unfinished_requests() != 0:
            assert time.monotonic() < deadline, "vLLM kept generating for a closed stream"
            time.sleep(0.05)

    def test_prompt_longer_than_the_context_is_an_engine_error(self, case: VLLMCase) -> None:
        too_long = PromptSegments(header="h", tail="x" * 5000)  # 5000 byte tokens > max_model_len 4096
        with pytest.raises(EngineError, match="maximum|max_model_len|context length|longer"):
            asyncio.run(case.engine.generate(GenerationRequest(segments=too_long, max_tokens=4)))
        # The engine is still usable afterwards.
        after = unique_segments("after", self.tag)
        ok = asyncio.run(case.engine.generate(GenerationRequest(segments=after, max_tokens=2)))
        assert ok.usage.prompt_tokens == case.n_tokens(after)

    def test_session_id_reaches_vllm_only_where_it_is_accepted(self, case: VLLMCase,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
        """vLLM 0.32 takes ``session_id=``; 0.26 (the release for torch 2.11 GPU images) does not."""
        eng = case.engine
        original = eng.llm.generate
        seen: list[dict] = []

        def new_api(prompt, sampling_params, request_id, *, priority=0, session_id=None):  # noqa: ANN001, ANN202
            seen.append({"session_id": session_id})
            return original(prompt, sampling_params, request_id, priority=priority, session_id=session_id)

        def old_api(prompt, sampling_params, request_id, *, priority=0):  # noqa: ANN001, ANN202
            seen.append({})
            return original(prompt, sampling_params, request_id, priority=priority)

        for api, expect in ((new_api, {"session_id": "s-new"}), (old_api, {})):
            monkeypatch.setattr(eng.llm, "generate", api)
            sid = expect.get("session_id", "s-old")
            r = asyncio.run(eng.generate(GenerationRequest(session_id=sid, max_tokens=2,
                                                           segments=unique_segments(sid, self.tag))))
            assert r.finish_reason in ("stop", "length") and seen[-1] == expect
