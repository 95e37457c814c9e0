"""Prefix-stable prompt layout.

Every prompt is ``[header][schema block][transcript][role tail]``. Header and schema go in the
system message, transcript and tail in the user message, joined by a blank line, so that with the
Qwen ChatML template the shared part of two calls is an exact *token* prefix (see FINDINGS.md:
role text first or a separate message costs reuse; a timestamp in the header destroys it).

>>> from autotqa.serving.types import PromptSegments
>>> s = PromptSegments(header="H", schema_block="S", transcript="T", tail="do X")
>>> render_chatml(s).startswith("<|im_start|>system\\nH\\n\\nS<|im_end|>")
True
"""

from __future__ import annotations

from .types import Message, PromptSegments

SEP = "\n\n"


def _join(*parts: str) -> str:
    return SEP.join(p for p in parts if p)


def to_messages(segments: PromptSegments) -> list[Message]:
    """Two chat messages: system = header + schema, user = transcript + tail."""
    return [
        Message(role="system", content=_join(segments.header, segments.schema_block)),
        Message(role="user", content=_join(segments.transcript, segments.tail)),
    ]


def role_first(segments: PromptSegments) -> PromptSegments:
    """The naive layout of the ablation: the role text leads the system message, so calls of
    different roles share no prefix at all (what the stable layout avoids).

    >>> role_first(PromptSegments(header="H", schema_block="S", tail="do X")).header
    'do X\\n\\nH'
    """
    if not segments.tail:
        return segments
    return segments.model_copy(update={"header": _join(segments.tail, segments.header), "tail": ""})


def render_chatml(segments: PromptSegments, *, add_generation_prompt: bool = True) -> str:
    """Render with the ChatML template Qwen models use, byte-stable for equal segments."""
    out = []
    for m in to_messages(segments):
        out.append(f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n")
    if add_generation_prompt:
        out.append("<|im_start|>assistant\n")
    return "".join(out)


def shared_prefix_text(segments: PromptSegments) -> str:
    """The part of the rendered prompt shared by every call of a session (header + schema)."""
    return f"<|im_start|>system\n{_join(segments.header, segments.schema_block)}<|im_end|>\n<|im_start|>user\n"
