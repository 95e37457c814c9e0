"""Benchmark: seconds per demo question and share of prompt tokens reused, embedded model.

    .venv/bin/python eval/bench_demo.py [--limit N] [--questions datasets/demo_questions.json]

One session over the demo tables (as in ``autotqa chat``): the session opens and warms the schema
prefix, then each question is timed from ``ask`` to answer. Reuse is reused / prompt tokens over
the questions' calls (warm-ups excluded, as in the serving metrics). The expected values only score
the answers here; they never reach the agents. The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import autotqa  # noqa: E402
from autotqa.config import Config  # noqa: E402


def matches(expected: list[Any], got: list[Any]) -> bool:
    """Every expected value is among the answer values (numbers to 0.01, text case-insensitively)."""
    def same(a: Any, b: Any) -> bool:
        if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(b, bool):
            return abs(float(a) - float(b)) <= 0.01
        return str(a).strip().lower() == str(b).strip().lower()
    return all(any(same(e, g) for g in got) for e in expected)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=Path, default=ROOT / "datasets" / "demo_questions.json")
    ap.add_argument("--data", type=Path, default=ROOT / "datasets" / "demo")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--traces", type=Path, default=None, help="write every Answer (with its trace) as JSONL")
    ap.add_argument("--threads", type=int, default=None,
                    help="llama.cpp threads (default: all cores; 1 is faster on an oversubscribed machine)")
    args = ap.parse_args()
    items = json.loads(args.questions.read_text())[: args.limit]
    config = Config()
    if args.threads:
        config.engine.n_threads = args.threads
    load_start = round(os.getloadavg()[0], 2)
    t0 = time.perf_counter()
    rows = []
    with autotqa.Session([args.data], config=config) as session:
        session._await_warm()  # measure questions, not the one-time warm-up (reported separately)
        open_s = time.perf_counter() - t0
        for item in items:
            t = time.perf_counter()
            ans = session.ask(item["question"])
            secs = time.perf_counter() - t
            if args.traces:
                with args.traces.open("a", encoding="utf-8") as fh:
                    fh.write(ans.model_dump_json() + "\n")
            m = ans.metrics
            ok = matches(item["values"], ans.values)
            rows.append({"question": item["question"], "seconds": round(secs, 2), "correct": ok,
                         "verified": ans.verified, "values": ans.values[:5], "expected": item["values"],
                         "prompt_tokens": m.get("prompt_tokens", 0), "reused_tokens": m.get("reused_tokens", 0),
                         "completion_tokens": m.get("completion_tokens", 0), "llm_calls": m.get("llm_calls", 0),
                         "llm_s": m.get("llm_s"), "non_llm_s": m.get("non_llm_s"), "sql": ans.sql})
            print(f"{secs:6.1f} s  {'ok ' if ok else 'BAD'}  calls={rows[-1]['llm_calls']}  "
                  f"{item['question']} -> {ans.values[:3]}", flush=True)
    prompt = sum(r["prompt_tokens"] for r in rows)
    summary = {
        "n": len(rows), "correct": sum(r["correct"] for r in rows),
        "median_s": round(statistics.median(r["seconds"] for r in rows), 2),
        "mean_s": round(statistics.mean(r["seconds"] for r in rows), 2),
        "reuse_ratio": round(sum(r["reused_tokens"] for r in rows) / prompt, 4) if prompt else 0.0,
        "prompt_tokens": prompt, "completion_tokens": sum(r["completion_tokens"] for r in rows),
        "llm_calls": sum(r["llm_calls"] for r in rows), "session_open_s": round(open_s, 2),
        "cpus": len(os.sched_getaffinity(0)), "threads": config.engine.n_threads,
        "load_avg_start": load_start, "load_avg_end": round(os.getloadavg()[0], 2),
        "machine": platform.machine(), "questions": rows,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
