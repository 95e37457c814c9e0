"""Benchmark: what one ``llama_decode`` step costs with 1, 2, 4, 8 and 16 rows (one per sequence).

    .venv/bin/python eval/bench_decode_rows.py [--threads 2] [--steps 15] [--prefix 1000]

Why: a fork decodes its branches together, one row per live branch in each step, so the fork
benchmark's ratio (``bench_fork.py``: 4 branches vs 1) is bounded below by how a step's cost grows
with its rows. This measures that alone, below the engine: a ``--prefix``-token shared prefix in
sequence 0, copied to 16 sequences (a unified KV cache, as the engine uses), then ``--steps`` decode
steps of n rows each, timed one by one; medians per n, then the ratio to one row. A step that were
bound by reading the weights would cost about the same for 1 and 4 rows; a compute-bound one grows
with the rows. The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autotqa.serving.engines.llamacpp_batch import ensure_sequences  # noqa: E402
from autotqa.serving.model_store import resolve_model  # noqa: E402

ROWS = (1, 2, 4, 8, 16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="GGUF path (default: the packaged 0.5B)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--prefix", type=int, default=1000)
    args = ap.parse_args()
    import llama_cpp

    path = resolve_model(args.model).path
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=4096, n_threads=args.threads, n_batch=512, verbose=False)
    if not ensure_sequences(llm, max(ROWS) + 1):
        sys.exit("llama.cpp refused a context with several sequences")
    ctx = llm.ctx
    mem = llama_cpp.llama_get_memory(ctx)
    prefix = llm.tokenize(b"The quick brown fox jumps over the lazy dog. " * 200)[: args.prefix]
    llm.eval(prefix)
    shared = len(prefix)
    for seq in range(1, max(ROWS) + 1):
        llama_cpp.llama_memory_seq_cp(mem, 0, seq, 0, shared)
    batch = llama_cpp.llama_batch_init(64, 0, 1)
    medians: dict[int, float] = {}
    print(f"{path.name}, {args.threads} threads, prefix {shared} tokens, load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    for n in ROWS:
        times = []
        for step in range(args.steps):
            for i in range(n):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = 100 + i, shared + step, 1
                batch.seq_id[i][0], batch.logits[i] = i + 1, 1
            batch.n_tokens = n
            t = time.perf_counter()
            if llama_cpp.llama_decode(ctx, batch) != 0:
                sys.exit(f"llama_decode failed with {n} rows")
            times.append(time.perf_counter() - t)
        for seq in range(1, max(ROWS) + 1):
            llama_cpp.llama_memory_seq_rm(mem, seq, shared, -1)
        medians[n] = statistics.median(times)
        print(f"{n:2d} rows: {medians[n] * 1000:6.1f} ms a step, x{medians[n] / medians[1]:.2f} one row, "
              f"{medians[n] * 1000 / n:5.1f} ms a row", flush=True)
    llama_cpp.llama_batch_free(batch)
    print(json.dumps({"threads": args.threads, "prefix": shared, "ms": {n: round(v * 1000, 1) for n, v in medians.items()},
                      "ratio_vs_one": {n: round(v / medians[1], 2) for n, v in medians.items()},
                      "load_after": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
