"""Prompt text for the embedded engine in the model's own chat format, with the shared prefix kept.

A GGUF file carries its chat template (``tokenizer.chat_template``, Jinja). Rendering it the way
llama-cpp-python's ``Jinja2ChatFormatter`` does lets ``--model`` take any family (Llama 3, Gemma,
Mistral, Phi ...) instead of forcing ChatML on it. What must not change is the layout's promise
(``layout.py``): the system message (header + schema) comes first and is byte-identical across a
session's calls, so its tokens are an exact prefix the engine reuses and persists.

The shared prefix of an arbitrary template is found by rendering once with a marker as the user
content: everything before the marker is the part every call of the session shares. Templates
that refuse a system role (Gemma) get header + schema at the start of the user turn instead,
which keeps the same property.

ChatML (Qwen, and any GGUF without a template) renders exactly as :func:`layout.render_chatml`.

>>> llama3 = ("{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n'"
...           " + m['content'] | trim + '<|eot_id|>' }}{% endfor %}"
...           "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")
>>> t = template_for({"tokenizer.chat_template": llama3})
>>> from autotqa.serving.types import PromptSegments
>>> s = PromptSegments(header="H", schema_block="S", transcript="T", tail="go")
>>> t.render(s).startswith(t.shared_prefix(s)), t.shared_prefix(s)
(True, '<|start_header_id|>system<|end_header_id|>\\n\\nH\\n\\nS<|eot_id|><|start_header_id|>user<|end_header_id|>\\n\\n')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..errors import EngineError
from .layout import SEP, render_chatml, shared_prefix_text, to_messages
from .types import PromptSegments

TEMPLATE_KEY = "tokenizer.chat_template"
#: Stands in for the user content when locating the shared prefix; no template invents it.
_MARK = "\x00autotqa-user-content\x00"


class ChatTemplate(Protocol):
    """How the embedded engine turns prompt segments into model text."""

    name: str

    def render(self, segments: PromptSegments) -> str:
        """The whole prompt, ending where the assistant's reply begins."""
        ...

    def shared_prefix(self, segments: PromptSegments) -> str:
        """The text before the user content: identical for every call of a session."""
        ...


class ChatMLTemplate:
    """Qwen's ChatML, byte-for-byte what the engine used before templates were read from GGUFs."""

    name = "chatml"

    def render(self, segments: PromptSegments) -> str:
        return render_chatml(segments)

    def shared_prefix(self, segments: PromptSegments) -> str:
        return shared_prefix_text(segments)


def _raise(message: str) -> None:
    raise jinja2.TemplateError(message)


class JinjaChatTemplate:
    """A GGUF's own Jinja chat template, rendered as llama-cpp-python's ``Jinja2ChatFormatter`` does.

    ``strftime_now`` is deliberately not offered: templates that print today's date would change
    the shared prefix every day (a timestamp in the header drops reuse to ~0, FINDINGS.md); without
    it they fall back to their own fixed date.
    """

    name = "gguf"

    def __init__(self, source: str, *, bos_token: str = "", eos_token: str = "") -> None:
        self.bos_token, self.eos_token = bos_token, eos_token
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        try:
            self._compiled = env.from_string(source)
        except jinja2.TemplateError as exc:
            raise EngineError(f"the model's chat template does not compile: {exc}",
                              hint="pass a GGUF with a valid tokenizer.chat_template") from None
        probe = PromptSegments(header="h", schema_block="s", tail="t")
        try:
            self._render_messages(self._messages(probe, merge_system=False), True)
            self.merge_system = False
        except jinja2.TemplateError:  # e.g. Gemma: "System role not supported"
            self.merge_system = True
        try:
            self.render(probe)
        except jinja2.TemplateError as exc:
            raise EngineError(f"the model's chat template cannot render a system + user prompt: {exc}",
                              hint="use a chat (instruct) model's GGUF") from None

    def _messages(self, segments: PromptSegments, *, merge_system: bool, user: str | None = None
                  ) -> list[dict[str, str]]:
        system, content = (m.content for m in to_messages(segments))
        if user is not None:
            content = user
        if merge_system:  # header + schema still lead, so the shared prefix survives
            return [{"role": "user", "content": system + SEP + content if content else system}]
        return [{"role": "system", "content": system}, {"role": "user", "content": content}]

    def _render_messages(self, messages: list[dict[str, str]], generation: bool) -> str:
        return self._compiled.render(
            messages=messages, bos_token=self.bos_token, eos_token=self.eos_token,
            add_generation_prompt=generation, raise_exception=_raise,
            tools=None, functions=None, function_call=None, tool_choice=None)

    def render(self, segments: PromptSegments) -> str:
        return self._render_messages(self._messages(segments, merge_system=self.merge_system), True)

    def shared_prefix(self, segments: PromptSegments) -> str:
        marked = self._render_messages(self._messages(segments, merge_system=self.merge_system, user=_MARK), True)
        cut = marked.find(_MARK)
        return marked[:cut] if cut >= 0 else ""


def prefill_text(template: ChatTemplate, segments: PromptSegments) -> str:
    """The prompt up to the end of the user content, with no turn end: what a warm-up computes."""
    return template.shared_prefix(segments) + to_messages(segments)[1].content


def template_for(metadata: Mapping[str, Any], *, bos_token: str = "", eos_token: str = "") -> ChatTemplate:
    """The template a GGUF asks for: ChatML when it has none or its own is ChatML (Qwen)."""
    source = metadata.get(TEMPLATE_KEY)
    if not isinstance(source, str) or not source.strip() or "<|im_start|>" in source:
        return ChatMLTemplate()
    return JinjaChatTemplate(source, bos_token=bos_token, eos_token=eos_token)
