"""The embedded engine's prompt in a GGUF's own chat format, with the shared prefix kept exact."""

from __future__ import annotations

import pytest

from autotqa.errors import EngineError
from autotqa.serving.chat_template import ChatMLTemplate, JinjaChatTemplate, prefill_text, template_for
from autotqa.serving.layout import render_chatml
from autotqa.serving.types import PromptSegments

# Meta-Llama-3-8B-Instruct's tokenizer.chat_template, as its GGUF carries it.
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
    "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
# gemma-2-2b-it's template: no system role, user/model turns only.
GEMMA2 = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)
# The part of Qwen2.5's template that matters here: it is ChatML.
QWEN = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
        "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

SCHEMA = "TABLE orders(id INTEGER, amount DOUBLE)"


def call(transcript: str, tail: str) -> PromptSegments:
    return PromptSegments(header="You answer questions about tables.", schema_block=SCHEMA,
                          transcript=transcript, tail=tail)


def test_llama3_prompt_is_the_models_own_format() -> None:
    t = template_for({"tokenizer.chat_template": LLAMA3}, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
    assert isinstance(t, JinjaChatTemplate) and not t.merge_system
    assert t.render(call("QUESTION: How many orders?", "Write SQL.")) == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        f"You answer questions about tables.\n\n{SCHEMA}<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nQUESTION: How many orders?\n\nWrite SQL.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n")


@pytest.mark.parametrize("source", [LLAMA3, GEMMA2])
def test_shared_prefix_is_an_exact_prefix_of_every_call(source: str) -> None:
    t = template_for({"tokenizer.chat_template": source}, bos_token="<s>")
    calls = [call("", "Plan."), call("QUESTION: q\nPLAN: 1. count", "Write SQL."),
             call("QUESTION: q\nPLAN: 1. count\nSQL s1:\nSELECT 1", "Judge.")]
    prefix = t.shared_prefix(calls[0])
    assert SCHEMA in prefix and "Plan." not in prefix
    for seg in calls:
        assert t.shared_prefix(seg) == prefix  # byte-stable across the session
        assert t.render(seg).startswith(prefix)
        assert prefill_text(t, seg).startswith(prefix)
        assert t.render(seg).startswith(prefill_text(t, seg).rstrip())


def test_gemma_without_system_role_gets_header_and_schema_first_in_the_user_turn() -> None:
    t = template_for({"tokenizer.chat_template": GEMMA2}, bos_token="<bos>")
    assert isinstance(t, JinjaChatTemplate) and t.merge_system
    assert t.render(call("QUESTION: q", "Write SQL.")) == (
        f"<bos><start_of_turn>user\nYou answer questions about tables.\n\n{SCHEMA}\n\nQUESTION: q\n\nWrite SQL."
        "<end_of_turn>\n<start_of_turn>model\n")


@pytest.mark.parametrize("metadata", [{}, {"tokenizer.chat_template": QWEN}, {"tokenizer.chat_template": " "}])
def test_qwen_and_template_less_models_keep_chatml(metadata: dict[str, str]) -> None:
    t = template_for(metadata)
    assert isinstance(t, ChatMLTemplate)
    seg = call("QUESTION: q", "Write SQL.")
    assert t.render(seg) == render_chatml(seg)
    # Qwen's own template, rendered, is the same text: ChatML is the right default for it.
    assert JinjaChatTemplate(QWEN).render(seg) == render_chatml(seg)


def test_broken_or_unusable_templates_are_clear_errors() -> None:
    with pytest.raises(EngineError, match="does not compile"):
        template_for({"tokenizer.chat_template": "{% for m in messages %}"})
    with pytest.raises(EngineError, match="cannot render a system \\+ user prompt"):
        template_for({"tokenizer.chat_template": "{{ raise_exception('no chat here') }}"})


def test_the_sandbox_refuses_hostile_templates() -> None:
    hostile = "{{ ''.__class__.__mro__[1].__subclasses__() }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with pytest.raises(EngineError):
        template_for({"tokenizer.chat_template": hostile})
