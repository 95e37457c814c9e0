"""``vllm serve`` (subprocess on 127.0.0.1) through autotqa's OpenAI engine, flavor ``vllm``.

The same checks as in-process: priority travels as the body field ``priority``
(``--scheduling-policy priority``), reuse as ``usage.prompt_tokens_details.cached_tokens``
(``--enable-prompt-tokens-details``), structured output as ``response_format`` json_schema.
"""

from __future__ import annotations

import pytest
from checks import VLLMCase, VLLMChecks

pytestmark = pytest.mark.vllm


class TestVLLMServe(VLLMChecks):
    tag = "serve"

    @pytest.fixture
    def case(self, vllm_server: str, tokenizer) -> VLLMCase:  # noqa: ANN001 - fixture
        from autotqa.serving.engines.openai_http import OpenAIEngine

        engine = OpenAIEngine(vllm_server, "tiny-qwen2", server_flavor="vllm", max_concurrency=2,
                              timeout_s=300, max_retries=0)
        return VLLMCase(engine, tokenizer)
