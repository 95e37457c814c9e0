"""Benchmark: a fork of 4 branches decoded together vs one branch, embedded 0.5B, side by side.

    AUTOTQA_ENGINE__N_THREADS=2 .venv/bin/python eval/bench_fork.py [--repeats 3] [--tokens 40]

The prompt is the agents' own shared prefix over the demo tables (header + schema) and a tail
that keeps the model writing, so every branch runs to ``--tokens`` (no stop string). On one warm
session, each repeat times, in turn: one greedy branch (``generate``); 4 branches (1 greedy + 3
sampled at 0.8) through ``generate_batch`` (decoded together); the same 4 one after another (what
a fork cost before). Medians are reported with ``ratio = batched 4 / one`` (target <= 2.0). The
engine's counters say how many ``llama_decode`` calls the batched forks made. Load average and the
threads llama.cpp used are printed, because a busy machine changes every figure. The last stdout
line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autotqa.agents.base import shared_prefix  # noqa: E402
from autotqa.api import open_catalog  # noqa: E402
from autotqa.serving.engines.llamacpp import LlamaCppEngine  # noqa: E402
from autotqa.serving.types import GenerationRequest  # noqa: E402
from autotqa.settings import load_config  # noqa: E402

# A reply that goes on well past --tokens (the shared header asks for SQL; SQL tails end in a few
# tokens, this prose does not), so every branch runs to --tokens.
TAIL = "Describe each table and each of its columns in one sentence."


async def bench(engine: LlamaCppEngine, prefix: Any, repeats: int, tokens: int) -> dict[str, Any]:
    seg = prefix.model_copy(update={"tail": TAIL})

    def req(i: int) -> GenerationRequest:
        return GenerationRequest(session_id="bench", agent="engineer", segments=seg, max_tokens=tokens,
                                 temperature=0.0 if i == 0 else 0.8)

    await engine.warm(req(0).model_copy(update={"segments": prefix}))
    await engine.generate(req(0))  # the tail's tokens are cached from here on
    one, batched, serial, out_tokens = [], [], [], []
    for rep in range(repeats):
        t = time.perf_counter()
        r1 = await engine.generate(req(0))
        one.append(time.perf_counter() - t)
        before = engine.stats["decode_calls"]
        t = time.perf_counter()
        rb = await engine.generate_batch([req(i) for i in range(4)])
        batched.append(time.perf_counter() - t)
        decodes = engine.stats["decode_calls"] - before
        t = time.perf_counter()
        for i in range(4):
            await engine.generate(req(i))
        serial.append(time.perf_counter() - t)
        out_tokens.append([r.usage.completion_tokens for r in rb])
        print(f"repeat {rep + 1}: one {one[-1]:.2f} s ({r1.usage.completion_tokens} tokens) | "
              f"4 together {batched[-1]:.2f} s ({decodes} llama_decode calls, tokens "
              f"{out_tokens[-1]}) | 4 one by one {serial[-1]:.2f} s | threads {engine.stats['threads']}",
              flush=True)
        if rep == 0 and rb[0].text != r1.text:
            print("note: the batched greedy branch differs from the single greedy run", flush=True)
    med = {k: statistics.median(v) for k, v in (("one_s", one), ("batched4_s", batched), ("serial4_s", serial))}
    return {**{k: round(v, 3) for k, v in med.items()},
            "ratio_batched_vs_one": round(med["batched4_s"] / med["one_s"], 2),
            "ratio_serial_vs_one": round(med["serial4_s"] / med["one_s"], 2),
            "branch_tokens": out_tokens, "forks_batched": engine.stats["forks_batched"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / "datasets" / "demo")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=40)
    args = ap.parse_args()
    config = load_config(path=None)  # defaults < AUTOTQA_* environment
    config.engine.persist_prefix = False
    catalog = open_catalog(args.data, config)
    prefix = shared_prefix(catalog.schema().render(token_budget=config.agents.schema_token_budget))
    load_before = os.getloadavg()[0]
    engine = LlamaCppEngine.from_config(config.engine)
    print(f"n_threads cap {config.engine.n_threads}, policy {config.engine.thread_policy}, "
          f"load average {load_before:.2f} on {os.cpu_count()} CPUs", flush=True)
    try:
        out = asyncio.run(bench(engine, prefix, args.repeats, args.tokens))
    finally:
        asyncio.run(engine.close())
    out.update(tokens=args.tokens, repeats=args.repeats, n_threads=config.engine.n_threads,
               thread_policy=config.engine.thread_policy, load_before=round(load_before, 2),
               load_after=round(os.getloadavg()[0], 2), cpus=os.cpu_count())
    print(f"median: one {out['one_s']} s, 4 together {out['batched4_s']} s "
          f"(x{out['ratio_batched_vs_one']}), 4 one by one {out['serial4_s']} s (x{out['ratio_serial_vs_one']})")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
