"""Serving benchmark: the same multi-agent workload served naively and app-aware.

``K`` sessions arrive at once; each is a chain of calls (call i+1 is built from call i's output,
so it depends on it) over its own database schema (``workload.py``). Two modes on one engine kind:

* ``naive``: FIFO across sessions (calls interleave), no session affinity, no warm-up, the engine's
  per-session KV cache off, and the role text *first* in each prompt (prefixes differ by role).
* ``app_aware``: the stable layout (header + schema first, role text last), the app-aware scheduler
  (locality, anticipation, started programs first), per-session KV snapshots, and a warm-up of each
  session's shared prefix as soon as the session opens.

Latency of a call = submit -> result (queue + run), as the scheduler measured it. Warm-up prefill
tokens are reported as ``warmup_tokens`` and are *not* in ``prompt_tokens``/``reuse_ratio``; they
still cost engine time, which is inside ``wall_s`` and the latencies of the calls queued behind them.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .client import LLMClient
from .engine import Engine
from .metrics import CallRecord, percentile
from .scheduler import Policy
from .types import GenerationRequest
from .workload import SessionSpec, roles_for, segments_for, shared_prefix


@dataclass(frozen=True)
class ModeSpec:
    """How one benchmark mode serves the workload."""

    name: str
    policy: Policy
    layout: str  # "stable" or "naive" (see workload.segments_for)
    warm: bool
    session_cache: bool  # what the engine factory should build


MODES = {
    "naive": ModeSpec("naive", policy="fifo", layout="naive", warm=False, session_cache=False),
    "app_aware": ModeSpec("app_aware", policy="app_aware", layout="stable", warm=True, session_cache=True),
}

NOTE = ("latency = submit -> result (queue + run) per call; warmup_tokens (prefix warm-up prefill at "
        "session open) are not counted in prompt_tokens or reuse_ratio, but their time is in wall_s and "
        "in the latencies of calls queued behind them; absolute times depend on machine load, compare ratios")

OnCall = Callable[[str, CallRecord], None]


async def run_mode(mode: ModeSpec, engine: Engine, specs: list[SessionSpec], *, calls: int,
                   max_tokens: int = 40, on_call: OnCall | None = None,
                   clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Serve every session of ``specs`` concurrently on ``engine``; return the mode's figures."""
    client = LLMClient(engine, policy=mode.policy, warm_on_begin=mode.warm, clock=clock)
    roles = roles_for(calls)
    t0 = clock()

    async def session(spec: SessionSpec) -> float:
        prog = client.begin_program(spec.session_id, shared_prefix(spec))
        transcript = f"Question: {spec.question}"
        prev: list[str] = []
        for i, role in enumerate(roles):
            req = GenerationRequest(agent=role, step_id=f"{role}-{i + 1}", depends_on=prev,
                                    segments=segments_for(mode.layout, role, spec, transcript),
                                    max_tokens=max_tokens, temperature=0.0)
            result = await prog.generate(req)
            prev = [req.request_id]
            if on_call is not None:
                on_call(mode.name, client.metrics.calls[-1])
            transcript += f"\n\n[{role}] {result.text.strip()}\n[executor] {spec.result_text(i)}"
        await prog.end()
        return clock() - t0

    session_s = await asyncio.gather(*(session(s) for s in specs))
    out = figures(client, list(session_s), clock() - t0)
    out.update(policy=mode.policy, layout=mode.layout, warm_up=mode.warm, session_cache=mode.session_cache,
               dispatch_order=[_label(client, rid) for rid in client.scheduler.dispatch_order])
    return out


def figures(client: LLMClient, session_s: list[float], wall: float) -> dict[str, Any]:
    """What one run of a workload measured: latencies (per call: submit -> result; per session:
    start -> last answer), time to first token, tokens, reuse, throughput, the engine's counters."""
    summary = client.metrics.summary()
    real = [c for c in client.metrics.calls if not c.warmup]
    latencies = [c.latency_s for c in real]
    out: dict[str, Any] = {
        "wall_s": round(wall, 3),
        "median_latency_s": round(statistics.median(latencies), 3) if latencies else 0.0,
        "p95_latency_s": round(percentile(latencies, 95), 3),
        "ttft_median_s": round(summary["ttft_median_s"], 3),
        "session_median_s": round(statistics.median(session_s), 3),
        "session_p95_s": round(percentile(session_s, 95), 3),
        "session_s": [round(s, 3) for s in session_s],
        **{k: summary[k] for k in ("llm_calls", "prompt_tokens", "reused_tokens", "computed_tokens",
                                   "completion_tokens", "reuse_ratio", "warmup_tokens", "warmup_s")},
        "calls_per_min": round(60 * len(real) / wall, 2) if wall > 0 else 0.0,
        "completion_tok_s": round(summary["completion_tokens"] / wall, 2) if wall > 0 else 0.0,
    }
    stats = getattr(client.engine, "stats", None)
    if isinstance(stats, dict):
        out["engine_stats"] = dict(stats)
    return out


def _label(client: LLMClient, request_id: str) -> str:
    """``session:step`` for a dispatched request id (readable schedule in the JSON)."""
    for c in client.metrics.calls:
        if c.request_id == request_id:
            return f"{c.session_id.split('-')[0]}:{c.step_id}"
    return request_id


async def run_benchmark(engine_factory: Callable[[ModeSpec], Engine], specs: list[SessionSpec], *,
                        calls: int, max_tokens: int = 40, modes: tuple[str, ...] = ("naive", "app_aware"),
                        on_call: OnCall | None = None) -> dict[str, Any]:
    """Run each mode on a fresh engine (no cache carried over) and compare them."""
    out: dict[str, Any] = {}
    for name in modes:
        if name not in MODES:
            raise ValueError(f"unknown mode {name!r} (naive or app_aware)")
        engine = engine_factory(MODES[name])
        try:
            out[name] = await run_mode(MODES[name], engine, specs, calls=calls, max_tokens=max_tokens,
                                       on_call=on_call)
        finally:
            await engine.close()
    out["workload"] = {"sessions": len(specs), "calls_per_session": calls, "max_tokens": max_tokens,
                       "roles": roles_for(calls), "databases": [s.database for s in specs]}
    out["note"] = NOTE
    return compare(out)


def compare(out: dict[str, Any]) -> dict[str, Any]:
    """Add the naive/app-aware ratios when both modes are present."""
    if "naive" in out and "app_aware" in out:
        n, a = out["naive"], out["app_aware"]
        out["speedup_median"] = round(n["median_latency_s"] / a["median_latency_s"], 2) if a["median_latency_s"] else None
        out["speedup_session_median"] = (round(n["session_median_s"] / a["session_median_s"], 2)
                                         if a["session_median_s"] else None)
        out["computed_tokens_ratio"] = (round(n["computed_tokens"] / a["computed_tokens"], 2)
                                        if a["computed_tokens"] else None)
    return out


def combine(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge results of the modes run as separate processes (``--mode``) on the same workload."""
    if not parts:
        raise ValueError("nothing to combine")
    workload = {k: v for k, v in parts[0]["workload"].items()}
    out: dict[str, Any] = {}
    for part in parts:
        if part["workload"] != workload:
            raise ValueError(f"different workloads: {part['workload']} vs {workload}")
        out.update({m: part[m] for m in MODES if m in part})
    out["workload"] = workload
    out["note"] = NOTE
    return compare(out)
