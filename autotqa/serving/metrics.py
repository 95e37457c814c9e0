"""Per-call measurements of the serving layer and their aggregates (Teola's latency breakdown).

Every LLM call that passes through the scheduler becomes one :class:`CallRecord`. Aggregates are
computed on demand (per agent, per session, per program), so the recorder holds only raw facts.

**LLM vs non-LLM time.** The orchestrator reports its non-LLM spans explicitly
(:meth:`MetricsRecorder.add_non_llm` or the :meth:`MetricsRecorder.span` context manager) instead of
deriving them as "program wall time minus LLM time": with several sessions sharing one engine, a
program's wall time also contains time spent *queued* behind other sessions, which is neither LLM
work of this program nor its own non-LLM work. Queue time is therefore reported on its own
(``queued_s``), and ``wall_s`` (program open to close) is given when the program was opened and
closed through the scheduler, so all three can be compared.

**Warm-ups** (prefill-only calls of a shared prefix before the first question) are recorded but kept
out of ``prompt_tokens``/``reuse_ratio``: their tokens appear as ``warmup_tokens`` and their time as
``warmup_s``. Reuse ratios therefore describe the calls that answer questions.

>>> m = MetricsRecorder()
>>> m.record(CallRecord(request_id="r1", program_id="s/p1", session_id="s", agent="planner",
...                     prompt_tokens=100, reused_tokens=90, completion_tokens=10, total_s=2.0))
>>> m.add_non_llm("s", 0.5, "sql")
>>> s = m.summary("s")
>>> (s["computed_tokens"], s["reuse_ratio"], s["llm_s"], s["non_llm_s"])
(10, 0.9, 2.0, 0.5)
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class CallRecord:
    """One LLM call as the scheduler saw it.

    ``queued_s`` is submit -> dispatch, ``total_s`` dispatch -> result (engine run time),
    ``ttft_s`` dispatch -> first token. Latency as a caller feels it is ``queued_s + total_s``.
    """

    request_id: str
    program_id: str
    session_id: str
    agent: str
    step_id: str = ""
    prompt_tokens: int = 0
    reused_tokens: int = 0
    completion_tokens: int = 0
    queued_s: float = 0.0
    ttft_s: float = 0.0
    total_s: float = 0.0
    finish_reason: str = "stop"
    warmup: bool = False
    submitted_at: float = 0.0

    @property
    def computed_tokens(self) -> int:
        return self.prompt_tokens - self.reused_tokens

    @property
    def latency_s(self) -> float:
        return self.queued_s + self.total_s


@dataclass(frozen=True)
class NonLLMSpan:
    """Time the orchestrator spent on non-LLM work (SQL execution, pandas, rendering) for a session."""

    session_id: str
    seconds: float
    label: str
    program_id: str | None = None


@dataclass
class _ProgramSpan:
    session_id: str
    opened_at: float
    closed_at: float | None = None


def _token_totals(calls: Iterable[CallRecord]) -> dict[str, Any]:
    real = [c for c in calls if not c.warmup]
    prompt = sum(c.prompt_tokens for c in real)
    reused = sum(c.reused_tokens for c in real)
    return {
        "prompt_tokens": prompt,
        "reused_tokens": reused,
        "computed_tokens": prompt - reused,
        "completion_tokens": sum(c.completion_tokens for c in real),
        "reuse_ratio": round(reused / prompt, 4) if prompt else 0.0,
        "llm_calls": len(real),
        "llm_s": round(sum(c.total_s for c in real), 6),
        "queued_s": round(sum(c.queued_s for c in real), 6),
        "ttft_median_s": round(statistics.median(c.ttft_s for c in real), 6) if real else 0.0,
    }


@dataclass
class MetricsRecorder:
    """Collects call records and non-LLM spans; one recorder per client (never global)."""

    calls: list[CallRecord] = field(default_factory=list)
    non_llm: list[NonLLMSpan] = field(default_factory=list)
    clock: Callable[[], float] = time.monotonic
    _programs: dict[str, _ProgramSpan] = field(default_factory=dict)

    # -- recording ---------------------------------------------------------------------------
    def record(self, call: CallRecord) -> None:
        self.calls.append(call)

    def add_non_llm(self, session_id: str, seconds: float, label: str, *,
                    program_id: str | None = None) -> None:
        """Report ``seconds`` of non-LLM work (e.g. ``label="sql"``) done for a session/program."""
        if seconds < 0:
            raise ValueError(f"non-LLM span {label!r} has negative duration {seconds}")
        self.non_llm.append(NonLLMSpan(session_id, float(seconds), label, program_id))

    @contextmanager
    def span(self, session_id: str, label: str, *, program_id: str | None = None) -> Iterator[None]:
        """Measure a block of non-LLM work with the recorder's clock."""
        t0 = self.clock()
        try:
            yield
        finally:
            self.add_non_llm(session_id, self.clock() - t0, label, program_id=program_id)

    def program_opened(self, program_id: str, session_id: str, at: float) -> None:
        self._programs[program_id] = _ProgramSpan(session_id, at)

    def program_closed(self, program_id: str, at: float) -> None:
        span = self._programs.get(program_id)
        if span is not None and span.closed_at is None:
            span.closed_at = at

    # -- aggregates ----------------------------------------------------------------------------
    def _select(self, key: str | None) -> tuple[list[CallRecord], list[NonLLMSpan], str]:
        if key is None:
            return list(self.calls), list(self.non_llm), "all"
        if key in self._programs or any(c.program_id == key for c in self.calls):
            calls = [c for c in self.calls if c.program_id == key]
            return calls, [s for s in self.non_llm if s.program_id == key], "program"
        calls = [c for c in self.calls if c.session_id == key]
        return calls, [s for s in self.non_llm if s.session_id == key], "session"

    def summary(self, key: str | None = None) -> dict[str, Any]:
        """Totals for a program id or a session id (program ids are tried first); None: everything.

        Keys: prompt_tokens, reused_tokens, computed_tokens, completion_tokens, reuse_ratio,
        llm_calls, llm_s, queued_s, ttft_median_s, non_llm_s, non_llm_by_label, warmup_tokens,
        warmup_s, by_agent{agent: token/time totals}; for a program also session_warmup_tokens and
        session_warmup_s (its session's warm-ups), and wall_s when it was opened and closed.
        """
        calls, spans, scope = self._select(key)
        out = _token_totals(calls)
        warm = [c for c in calls if c.warmup]
        out["warmup_tokens"] = sum(c.computed_tokens for c in warm)
        out["warmup_s"] = round(sum(c.total_s for c in warm), 6)
        out["non_llm_s"] = round(sum(s.seconds for s in spans), 6)
        labels: dict[str, float] = {}
        for s in spans:
            labels[s.label] = round(labels.get(s.label, 0.0) + s.seconds, 6)
        out["non_llm_by_label"] = labels
        agents: dict[str, list[CallRecord]] = {}
        for c in calls:
            if not c.warmup:
                agents.setdefault(c.agent, []).append(c)
        out["by_agent"] = {a: _token_totals(cs) for a, cs in agents.items()}
        if scope == "program" and key is not None:
            span = self._programs.get(key)
            if span is not None and span.closed_at is not None:
                out["wall_s"] = round(span.closed_at - span.opened_at, 6)
            # The session's warm-ups (mostly the one at open, before any question): what the
            # question did not have to compute, and what opening the session cost.
            sid = span.session_id if span is not None else calls[0].session_id if calls else None
            session_warm = [c for c in self.calls if c.warmup and c.session_id == sid]
            out["session_warmup_tokens"] = sum(c.computed_tokens for c in session_warm)
            out["session_warmup_s"] = round(sum(c.total_s for c in session_warm), 6)
        return out

    def by_session(self) -> dict[str, dict[str, Any]]:
        sessions = dict.fromkeys(c.session_id for c in self.calls)
        sessions.update(dict.fromkeys(s.session_id for s in self.non_llm))
        return {sid: self.summary(sid) for sid in sessions}

    def by_agent(self) -> dict[str, dict[str, Any]]:
        return self.summary()["by_agent"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": [asdict(c) for c in self.calls],
            "non_llm": [asdict(s) for s in self.non_llm],
            "summary": self.summary(),
            "by_session": self.by_session(),
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)


def percentile(values: Iterable[float], q: int) -> float:
    """Percentile ``q`` (integer 0..100), interpolated between the observed values as
    ``statistics.quantiles(method="inclusive")`` does (numpy's default, too).

    >>> percentile([1, 2, 3, 4], 50), percentile([1, 2, 3, 4], 95)
    (2.5, 3.85)
    """
    data = sorted(float(v) for v in values)
    if len(data) < 2 or q <= 0 or q >= 100:
        return (data[-1] if q >= 100 else data[0]) if data else 0.0
    return statistics.quantiles(data, n=100, method="inclusive")[int(q) - 1]
