"""The engine-conformance suite (tests/engine_suite.py) on the scripted and llama.cpp engines.

The OpenAI-compatible engine's class lives in test_openai_engine.py, beside the real server it
needs, so one server process serves all of that module's tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_suite import COUNT_TAIL, JSON_TAIL, EngineCase, EngineConformance, model_path

from autotqa.config import EngineConfig
from autotqa.serving.engines.scripted import ScriptedEngine
from autotqa.serving.layout import shared_prefix_text
from autotqa.serving.types import GenerationRequest, PromptSegments

__all__ = ["model_path"]  # session fixture used below


def _scripted_reply(request: GenerationRequest) -> str:
    tail = request.segments.tail
    if tail == COUNT_TAIL:
        return "1, 2, 3, 4, 5, 6, 7, 8, 9, 10"
    if tail == JSON_TAIL:
        return '{"table": "orders", "rows": 1200}'
    return "orders"


class TestScriptedEngine(EngineConformance):
    @pytest.fixture
    def engine_case(self) -> EngineCase:
        return EngineCase(ScriptedEngine(fn=_scripted_reply, stream_words=True),
                          prefix_tokens=lambda seg: len(shared_prefix_text(seg).split()))


@pytest.mark.model
class TestLlamaCppEngine(EngineConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def engine_case(cls, model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineCase]:
        import asyncio

        from autotqa.serving.engines.llamacpp import LlamaCppEngine

        cfg = EngineConfig(model=str(model_path), n_ctx=2048,
                           prefix_cache_dir=str(tmp_path_factory.mktemp("prefix-kv")))
        eng = LlamaCppEngine.from_config(cfg)

        def prefix_tokens(seg: PromptSegments) -> int:
            return len(eng.llm.tokenize(shared_prefix_text(seg).encode(), add_bos=False, special=True))

        yield EngineCase(eng, prefix_tokens=prefix_tokens)
        asyncio.run(eng.close())
