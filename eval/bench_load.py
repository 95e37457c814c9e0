"""Benchmark: the demo question on an idle machine and beside one CPU-bound process, per thread policy.

    .venv/bin/python eval/bench_load.py [--repeats 3] [--question "..."] [--policies fixed adaptive]

One embedded engine (the packaged 0.5B, ``engine.n_threads`` = every core unless
AUTOTQA_ENGINE__N_THREADS says otherwise) answers the question with ``autotqa.ask`` (a fresh
session each time, as ``autotqa ask`` does; the engine stays loaded), ``--repeats`` times per
policy, first on the machine as it is, then while a child ``python -c "while True: pass"`` (started
and stopped here) holds a core. Repeats alternate the policies so drift in the machine's load hits
both alike. ``fixed`` uses n_threads always; ``adaptive`` the cores other processes leave idle
(``serving/engines/threads.py``). Target: adaptive with the competitor <= 1.6x its idle median.
Run it on an otherwise quiet machine: the "idle" column is only as idle as the machine is. The
last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import autotqa  # noqa: E402
from autotqa.serving.engines.llamacpp import LlamaCppEngine  # noqa: E402
from autotqa.serving.engines.threads import ThreadPolicy  # noqa: E402
from autotqa.settings import load_config  # noqa: E402

QUESTION = "How many orders were placed by customers from Germany?"


def run_round(engine: LlamaCppEngine, args: argparse.Namespace, config: Any, condition: str,
              times: dict[str, list[float]]) -> None:
    for rep in range(args.repeats):
        for policy in args.policies:
            engine.threads = ThreadPolicy(config.engine.n_threads, adaptive=policy == "adaptive")
            t = time.perf_counter()
            ans = autotqa.ask(args.data, args.question, config=config, engine=engine)
            times[f"{policy}/{condition}"].append(time.perf_counter() - t)
            print(f"{condition:6} {policy:8} repeat {rep + 1}: {times[f'{policy}/{condition}'][-1]:6.1f} s, "
                  f"threads {engine.stats['threads']}, {ans.metrics.get('llm_calls')} LLM calls, "
                  f"values {ans.values}, load {os.getloadavg()[0]:.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / "datasets" / "demo")
    ap.add_argument("--question", default=QUESTION)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--policies", nargs="+", choices=["fixed", "adaptive"], default=["fixed", "adaptive"])
    args = ap.parse_args()
    config = load_config(path=None)  # defaults < AUTOTQA_* environment
    engine = LlamaCppEngine.from_config(config.engine)
    times: dict[str, list[float]] = {f"{p}/{c}": [] for p in args.policies for c in ("idle", "loaded")}
    load_before = os.getloadavg()[0]
    print(f"n_threads {config.engine.n_threads}, load average {load_before:.2f} on {os.cpu_count()} CPUs",
          flush=True)
    try:
        autotqa.ask(args.data, args.question, config=config, engine=engine)  # model + prefix warm
        run_round(engine, args, config, "idle", times)
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(1.0)  # let the policy's next look see it
            run_round(engine, args, config, "loaded", times)
        finally:
            hog.kill()
            hog.wait()
    finally:
        import asyncio

        asyncio.run(engine.close())
    med = {k: round(statistics.median(v), 2) for k, v in times.items()}
    ratios = {p: round(med[f"{p}/loaded"] / med[f"{p}/idle"], 2) for p in args.policies}
    print("\n| policy | idle median (s) | with a competitor (s) | ratio |\n|---|---:|---:|---:|")
    for p in args.policies:
        print(f"| {p} | {med[f'{p}/idle']} | {med[f'{p}/loaded']} | {ratios[p]} |")
    print(json.dumps({"question": args.question, "repeats": args.repeats, "n_threads": config.engine.n_threads,
                      "median_s": med, "ratio_loaded_vs_idle": ratios, "times_s": times,
                      "load_before": round(load_before, 2), "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
