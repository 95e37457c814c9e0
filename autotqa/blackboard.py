"""The blackboard: the append-only, typed record every agent reads and writes.

Why append-only: every prompt of a question carries the board rendered as its transcript segment.
Because entries are only ever added, and each renders on its own, the transcript of a later call
extends the transcript of an earlier one byte for byte, so the engine reuses the KV state of
everything already computed (see FINDINGS.md). The same entries, serialised, are the trace.

>>> board = Blackboard()
>>> _ = board.add("question", "user", "How many orders?")
>>> _ = board.add("code", "engineer", "SELECT count(*) FROM orders", step="s1", data={"language": "sql"})
>>> print(board.render())
QUESTION: How many orders?
SQL s1:
SELECT count(*) FROM orders
>>> Blackboard.from_json(board.to_json()).render() == board.render()
True
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

EntryKind = Literal["history", "question", "plan", "code", "result", "critique", "answer", "error"]
AgentRole = Literal["user", "planner", "engineer", "executor", "critic", "system"]


class Entry(BaseModel):
    """One line of the record: what was written, by whom, in which round and for which plan step.

    ``content`` is the text agents read; ``data`` keeps the structured payload (plan steps, result
    rows, verdict) for the orchestrator and the trace, and never reaches a prompt.
    """

    model_config = ConfigDict(frozen=True)

    kind: EntryKind
    role: AgentRole
    content: str
    round: int = 0
    step: str = ""
    data: dict[str, Any] = Field(default_factory=dict)

    def render(self) -> str:
        """The entry as prompt text. Depends on this entry only, so rendering stays append-only."""
        label = _LABELS[self.kind]
        if self.kind == "code":
            label = "PANDAS" if self.data.get("language") == "pandas" else "SQL"
        if self.step:
            label = f"{label} {self.step}"
        body = self.content.strip()
        return f"{label}:\n{body}" if "\n" in body or self.kind in ("code", "result") else f"{label}: {body}"


_LABELS: dict[str, str] = {
    "history": "EARLIER", "question": "QUESTION", "plan": "PLAN", "code": "SQL", "result": "RESULT",
    "critique": "CRITIQUE", "answer": "ANSWER", "error": "ERROR",
}

_ENTRIES = TypeAdapter(list[Entry])


class Blackboard:
    """An append-only list of :class:`Entry`, rendered deterministically."""

    def __init__(self, entries: list[Entry] | None = None) -> None:
        self._entries: list[Entry] = list(entries or [])

    def add(self, kind: EntryKind, role: AgentRole, content: str, *, round: int = 0, step: str = "",
            data: dict[str, Any] | None = None) -> Entry:
        entry = Entry(kind=kind, role=role, content=content, round=round, step=step, data=data or {})
        self._entries.append(entry)
        return entry

    @property
    def entries(self) -> tuple[Entry, ...]:
        """A read-only view: nothing may rewrite history."""
        return tuple(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(tuple(self._entries))

    def last(self, kind: EntryKind, step: str | None = None) -> Entry | None:
        """The most recent entry of ``kind`` (for ``step``, when given)."""
        for entry in reversed(self._entries):
            if entry.kind == kind and (step is None or entry.step == step):
                return entry
        return None

    def render(self, upto: int | None = None) -> str:
        """Entries ``0..upto-1`` joined by newlines: a byte prefix of any longer rendering."""
        return "\n".join(e.render() for e in self._entries[:upto])

    def sequence(self) -> list[tuple[str, str]]:
        """(kind, role) pairs in order: the shape of the run, for tests and quick inspection."""
        return [(e.kind, e.role) for e in self._entries]

    def to_trace(self) -> list[dict[str, Any]]:
        return [e.model_dump(mode="json") for e in self._entries]

    def to_json(self) -> str:
        return json.dumps(self.to_trace(), ensure_ascii=False)

    @classmethod
    def from_trace(cls, trace: list[dict[str, Any]]) -> Blackboard:
        return cls(_ENTRIES.validate_python(trace))

    @classmethod
    def from_json(cls, text: str) -> Blackboard:
        return cls(_ENTRIES.validate_json(text))
