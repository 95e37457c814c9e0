"""The User agent: turns an inquiry (and the chat so far) into one self-contained question.

Why it often makes no LLM call: on a CPU every call costs seconds. A question asked with no
history, or one that refers to nothing earlier, and that names things the tables contain, is
already self-contained; only follow-ups with references ("and for those?") or questions whose
words match nothing in the schema are sent to the model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from pydantic import BaseModel, Field

from ..catalog.words import content_words, name_terms
from ..errors import OutputParseError
from .base import RunContext, render_prompt

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_REFERRING = frozenset(
    "it its they them their those these that this he she his her same also too instead previous "
    "above earlier again".split())


class Reformulation(BaseModel):
    """What the model returns when it is asked: the question, and whether the tables can answer it."""

    question: str = Field(max_length=240)
    answerable: bool = True
    missing: str = Field(default="", max_length=120)


def schema_vocabulary(columns: Mapping[str, Sequence[str]]) -> frozenset[str]:
    """Stems of table and column names (split on ``_`` and camelCase): the words a relevant question uses."""
    vocab: set[str] = set()
    for table, cols in columns.items():
        for name in (table, *cols):
            vocab.update(name_terms(name, min_len=3))
    return frozenset(vocab)


def refers_back(text: str) -> bool:
    """Does the inquiry lean on earlier turns ("what about...", "and those")?"""
    lowered = text.strip().lower()
    if lowered.startswith(("and ", "what about", "how about", "same ")):
        return True
    return any(w.lower() in _REFERRING for w in _WORD.findall(text))


def missing_concept(question: str, error: str, vocabulary: Iterable[str]) -> str | None:
    """The question's own word that the query needed as a column or table and the tables lack
    (no "did you mean" either): "weather" in "What will the weather be in Paris tomorrow?".

    >>> missing_concept("What will the weather be in Paris?", 'unknown column "weather" in table "t"', {"city"})
    'weather'
    >>> missing_concept("Which town?", 'unknown column "town" — did you mean "city"?', {"city"}) is None
    True
    """
    m = re.search(r'unknown (?:column|table) "([^"]+)"|Referenced column "([^"]+)" not found', error)
    if m is None or "did you mean" in error:
        return None
    name = m[1] or m[2]
    parts = name_terms(name)
    words = set(content_words(question))
    vocab = set(vocabulary)
    if parts and all(p in words and p not in vocab for p in parts):
        return name
    return None


def mentions_schema(text: str, vocabulary: Iterable[str]) -> bool:
    vocab = set(vocabulary)
    return any(w in vocab for w in content_words(text))


class UserAgent:
    """Makes the question self-contained; flags questions the tables cannot answer."""

    role = "user"

    def __init__(self, columns: Mapping[str, Sequence[str]]) -> None:
        self.vocabulary = schema_vocabulary(columns)

    def needs_model(self, inquiry: str, history: Sequence[Sequence[str]]) -> bool:
        if history and refers_back(inquiry):
            return True
        return not mentions_schema(inquiry, self.vocabulary)

    async def run(self, ctx: RunContext, inquiry: str,
                  history: Sequence[Sequence[str]] = ()) -> Reformulation:
        """Return the self-contained question; post it (or the model's mistake) on the board.

        A follow-up that leans on the last turn ("and how many of them are from Germany?") is not
        rewritten by the model -- a 0.5B model rewrites it back into the earlier question. The
        earlier question and its SQL go to the Engineer instead (``ctx.followup``), which edits that
        query: a coder model is far better at "change this SQL" than at paraphrase.
        History items are ``(question, answer)`` or ``(question, answer, sql)``."""
        inquiry = " ".join(inquiry.split())
        turns = [(t[0], t[1], t[2] if len(t) > 2 else "") for t in history]
        if turns and refers_back(inquiry) and turns[-1][2]:
            prev_q, _, prev_sql = turns[-1]
            ctx.followup = (prev_q, prev_sql)
            out = Reformulation(question=inquiry)
        elif not self.needs_model(inquiry, history):
            out = Reformulation(question=inquiry)
        else:
            # Either a follow-up without an earlier query, or no word of the question matches the
            # schema: the model rewrites it and says whether the tables can answer it at all.
            ctx.doubtful = not (turns and refers_back(inquiry))
            req = ctx.request("user", render_prompt("user", inquiry=inquiry,
                                                    history=[(q, a) for q, a, _ in turns]),
                              output_model=Reformulation, max_tokens=96, step_id="user", priority=0)
            try:
                out = (await ctx.generate(req)).parsed
            except OutputParseError as err:
                # A model mistake: keep the inquiry as asked and let the other agents try.
                ctx.board.add("error", "user", f"could not rewrite the question: {err.message}",
                              round=ctx.round, data={"raw": err.raw[:500]})
                out = Reformulation(question=inquiry)
            if not out.question.strip():
                out = out.model_copy(update={"question": inquiry})
        ctx.question = out.question
        ctx.board.add("question", "user", out.question, round=ctx.round,
                      data={"inquiry": inquiry, "answerable": out.answerable, "missing": out.missing,
                            "history": [list(turn) for turn in history], "followup": list(ctx.followup or ())})
        return out
