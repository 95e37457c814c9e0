"""Metrics aggregates: exact totals per program, session and agent; warm-ups kept apart."""

from __future__ import annotations

import json

from autotqa.serving.metrics import CallRecord, MetricsRecorder, percentile


def call(rid: str, program: str, session: str, agent: str, prompt: int, reused: int, completion: int,
         total: float, queued: float = 0.0, warmup: bool = False, ttft: float = 0.0) -> CallRecord:
    return CallRecord(request_id=rid, program_id=program, session_id=session, agent=agent,
                      prompt_tokens=prompt, reused_tokens=reused, completion_tokens=completion,
                      total_s=total, queued_s=queued, warmup=warmup, ttft_s=ttft,
                      finish_reason="prefill" if warmup else "stop")


def recorder() -> MetricsRecorder:
    m = MetricsRecorder()
    m.program_opened("a/p1", "a", 10.0)
    m.record(call("w", "a/p1", "a", "warmup", 1000, 0, 0, 8.0, warmup=True))
    m.record(call("1", "a/p1", "a", "planner", 1100, 1000, 40, 2.0, queued=1.0, ttft=0.5))
    m.record(call("2", "a/p1", "a", "engineer", 1250, 1150, 40, 2.5, ttft=0.25))
    m.record(call("3", "a/p1", "a", "engineer", 1400, 1300, 30, 2.5, ttft=1.0))
    m.program_closed("a/p1", 25.0)
    m.record(call("4", "b/p2", "b", "planner", 900, 0, 20, 9.0, queued=3.0))
    m.add_non_llm("a", 0.75, "sql", program_id="a/p1")
    m.add_non_llm("a", 0.25, "render")
    return m


def test_program_summary_is_exact() -> None:
    s = recorder().summary("a/p1")
    assert {k: s[k] for k in ("prompt_tokens", "reused_tokens", "computed_tokens", "completion_tokens",
                              "reuse_ratio", "llm_calls", "llm_s", "queued_s", "warmup_tokens",
                              "warmup_s", "non_llm_s", "wall_s")} == {
        "prompt_tokens": 3750, "reused_tokens": 3450, "computed_tokens": 300, "completion_tokens": 110,
        "reuse_ratio": 0.92, "llm_calls": 3, "llm_s": 7.0, "queued_s": 1.0, "warmup_tokens": 1000,
        "warmup_s": 8.0, "non_llm_s": 0.75, "wall_s": 15.0}
    assert s["by_agent"]["engineer"]["computed_tokens"] == 200
    assert s["by_agent"]["engineer"]["llm_calls"] == 2
    assert set(s["by_agent"]) == {"planner", "engineer"}  # the warm-up is not an agent call
    assert (s["ttft_median_s"], s["by_agent"]["engineer"]["ttft_median_s"]) == (0.5, 0.625)
    # The session's warm-ups, also one outside any question's program (at session open).
    assert (s["session_warmup_tokens"], s["session_warmup_s"]) == (1000, 8.0)
    m = recorder()
    m.record(call("w0", "a/warm", "a", "warmup", 500, 0, 0, 4.0, warmup=True))
    assert (m.summary("a/p1")["session_warmup_tokens"], m.summary("a/p1")["session_warmup_s"]) == (1500, 12.0)


def test_session_and_global_summaries() -> None:
    m = recorder()
    a = m.summary("a")
    assert a["non_llm_s"] == 1.0 and a["non_llm_by_label"] == {"sql": 0.75, "render": 0.25}
    assert "wall_s" not in a
    total = m.summary()
    assert (total["prompt_tokens"], total["computed_tokens"], total["llm_calls"]) == (4650, 1200, 4)
    assert total["by_agent"]["planner"]["prompt_tokens"] == 2000
    assert list(m.by_session()) == ["a", "b"]
    assert m.by_session()["b"]["reuse_ratio"] == 0.0


def test_json_export_round_trips() -> None:
    data = json.loads(recorder().to_json())
    assert len(data["calls"]) == 5 and data["calls"][0]["warmup"] is True
    assert data["non_llm"][0] == {"session_id": "a", "seconds": 0.75, "label": "sql", "program_id": "a/p1"}
    assert data["summary"]["warmup_tokens"] == 1000


def test_span_uses_the_clock_and_rejects_negative_time() -> None:
    t = iter([1.0, 3.5])
    m = MetricsRecorder(clock=lambda: next(t))
    with m.span("s", "sql"):
        pass
    assert m.summary("s")["non_llm_s"] == 2.5
    try:
        m.add_non_llm("s", -1, "bad")
    except ValueError as exc:
        assert "negative" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("negative span accepted")


def test_percentile_interpolates_between_observed_values() -> None:
    vals = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert [round(percentile(vals, q), 6) for q in (0, 20, 50, 95, 100)] == [1.0, 1.8, 3.0, 4.8, 5.0]
    assert (percentile([], 50), percentile([7.0], 95)) == (0.0, 7.0)
