"""The shared engine-conformance suite (tests/engine_suite.py) on :class:`VLLMEngine`.

The suite asks for what a *real* model does (count to 20, name a table), so it runs on a real
model: ``AUTOTQA_VLLM_TEST_MODEL`` (a local Hugging Face chat model directory) if set, else the
packaged offline Qwen2.5-Coder-0.5B exported once from its GGUF (``packaged_model.py``; needs the
model in the cache, i.e. ``autotqa model fetch`` in the main venv, and the ``gguf`` package). Under
CI=true a missing prerequisite fails instead of skipping. The vLLM-specific behaviour is also
covered on the generated tiny model by ``checks.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_suite import EngineCase, EngineConformance

pytestmark = pytest.mark.vllm

MODEL_ENV = "AUTOTQA_VLLM_TEST_MODEL"


def _packaged_model() -> str:
    from autotqa.errors import AutoTQAError

    try:
        from packaged_model import packaged_hf_model

        return str(packaged_hf_model())
    except (ImportError, AutoTQAError) as exc:
        why = (f"no real model for the vLLM conformance suite ({exc}); set {MODEL_ENV}, or fetch the "
               "packaged model (autotqa model fetch) and install gguf (scripts/setup-vllm-venv.sh)")
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(why)
        pytest.skip(why)


class TestVLLMEngineConformance(EngineConformance):
    @pytest.fixture(scope="class")
    def engine_case(self) -> Iterator[EngineCase]:
        model = os.environ.get(MODEL_ENV) or _packaged_model()
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
            yield EngineCase(eng, prefix_tokens=prefix_tokens, reuse_block=eng.llm.vllm_config.cache_config.block_size)
        finally:
            eng.close_sync()
