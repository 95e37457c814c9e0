"""The shared engine-conformance suite (tests/engine_suite.py) on :class:`VLLMEngine`.

The suite asks for what a *real* model does (count to 20, name a table), so it cannot run on the
random-weight tiny model; it runs when ``AUTOTQA_VLLM_TEST_MODEL`` names a local Hugging Face chat
model directory (e.g. Qwen2.5-0.5B-Instruct in safetensors; on CPU use float32), and is skipped
otherwise. The vLLM-specific behaviour is covered without a real model by ``checks.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_suite import EngineCase, EngineConformance

pytestmark = pytest.mark.vllm

MODEL_ENV = "AUTOTQA_VLLM_TEST_MODEL"


class TestVLLMEngineConformance(EngineConformance):
    @pytest.fixture(scope="class")
    def engine_case(self) -> Iterator[EngineCase]:
        model = os.environ.get(MODEL_ENV)
        if not model:
            pytest.skip(f"set {MODEL_ENV} to a local Hugging Face chat model directory to run the suite on vLLM")
        if not (Path(model) / "config.json").is_file():
            pytest.fail(f"{MODEL_ENV}={model} is not a model directory (no config.json)")
        from autotqa.config import EngineConfig
        from autotqa.serving.engines.vllm_engine import VLLMEngine
        from autotqa.serving.layout import shared_prefix_text

        from vllm.platforms import current_platform

        on_cpu = current_platform.is_cpu()
        extra = {"dtype": "float32", "enforce_eager": True, "distributed_executor_backend": "uni"} if on_cpu else {}
        eng = VLLMEngine(EngineConfig(kind="vllm", model=model, n_ctx=4096), block_size=32, max_num_seqs=2, **extra)
        tok = eng.llm.get_tokenizer()

        def prefix_tokens(seg) -> int:  # noqa: ANN001
            return len(tok(shared_prefix_text(seg), add_special_tokens=False)["input_ids"])

        try:
            yield EngineCase(eng, prefix_tokens=prefix_tokens)
        finally:
            eng.close_sync()
