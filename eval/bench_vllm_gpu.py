"""The serving benchmark (naive vs app-aware) on vLLM in-process, with a real model on a GPU.

It replays the workload of ``autotqa bench serving`` (K concurrent multi-agent sessions, each a
chain of calls over its own 1-2k-token database schema; ``autotqa/serving/bench.py``) on
:class:`~autotqa.serving.engines.vllm_engine.VLLMEngine`:

* ``naive``: FIFO, role text first (no shared prefix), no warm-up, vLLM's prefix cache **off**;
* ``app_aware``: stable layout, app-aware scheduler with priorities, warm-up at session open,
  vLLM's prefix cache **on**.

Each mode gets a fresh engine. Printed: per-mode throughput (calls/s, prompt and output tokens/s),
latency (median, p95 per call; median per session), reuse, then the ratios; the **last line is
JSON** (the whole result). Nothing is downloaded: ``--model`` must be a local model directory
(config.json + safetensors + tokenizer); without ``--data`` a deterministic synthetic set of SQLite
databases is generated (the Spider training folder is not on a GPU box).

Run (GPU box, vLLM installed; e.g. Qwen2.5-Coder-7B-Instruct or any chat model)::

    python eval/bench_vllm_gpu.py --model /models/Qwen2.5-Coder-7B-Instruct --sessions 32 --calls 6 \\
        --md eval/results/bench_vllm_gpu.md

Smoke run on CPU with the generated tiny model (checks the plumbing only)::

    .venv-vllm/bin/python tests/vllm/tiny_model.py /tmp/tiny_qwen2
    VLLM_CPU_KVCACHE_SPACE=1 .venv-vllm/bin/python eval/bench_vllm_gpu.py --model /tmp/tiny_qwen2 \\
        --sessions 2 --calls 3 --max-tokens 8 --dtype float32 --block-size 32 --enforce-eager
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_WORDS = ("order customer product invoice payment shipment region store employee supplier account "
          "category campaign ticket visit device session contract claim policy vendor branch route").split()
_COLS = ("id name code status amount price quantity created_at updated_at country city email phone "
         "score rating total discount currency channel owner notes segment level").split()


def synthetic_databases(out: Path, k: int, *, seed: int = 7) -> Path:
    """``k`` SQLite files whose rendered schemas fall in the workload's 1-2k-token window.

    Deterministic (seeded), so two runs replay the same prompts.
    """
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    for d in range(k):
        path = out / f"synth_{d:03d}.sqlite"
        if path.exists():
            continue
        conn = sqlite3.connect(path)
        tables = rng.sample(_WORDS, 7)
        for t in tables:
            cols = ["id"] + rng.sample(_COLS[1:], 6)
            decl = ", ".join(f"{c} {'INTEGER PRIMARY KEY' if c == 'id' else rng.choice(['TEXT', 'REAL', 'INTEGER'])}"
                             for c in cols)
            conn.execute(f"CREATE TABLE {t}_{d} ({decl})")
            rows = [[i + 1] + [f"{c}_{rng.randint(100, 999)}" for c in cols[1:]] for i in range(12)]
            conn.executemany(f"INSERT INTO {t}_{d} VALUES ({', '.join('?' * len(cols))})", rows)
        conn.commit()
        conn.close()
    return out


def engine_args(ns: argparse.Namespace, *, on_cpu: bool) -> dict[str, Any]:
    args: dict[str, Any] = {"gpu_memory_utilization": ns.gpu_memory_utilization,
                            "tensor_parallel_size": ns.tensor_parallel_size, "max_num_seqs": ns.max_num_seqs,
                            "dtype": ns.dtype, "enforce_eager": ns.enforce_eager}
    if ns.block_size:
        args["block_size"] = ns.block_size
    if ns.load_format:
        args["load_format"] = ns.load_format
    if ns.attention_backend:
        args["attention_backend"] = ns.attention_backend
    if on_cpu:
        args.pop("gpu_memory_utilization")  # CPU: the KV budget is VLLM_CPU_KVCACHE_SPACE (GiB)
    return args


def throughput(mode: dict[str, Any]) -> dict[str, float]:
    wall = mode["wall_s"] or float("nan")
    return {"calls_per_s": round(mode["llm_calls"] / wall, 3),
            "prompt_tok_per_s": round(mode["prompt_tokens"] / wall, 1),
            "computed_prompt_tok_per_s": round(mode["computed_tokens"] / wall, 1),
            "output_tok_per_s": round(mode["completion_tokens"] / wall, 1)}


def markdown(result: dict[str, Any]) -> str:
    w = result["workload"]
    lines = [f"# Serving benchmark on vLLM ({w['model_name']})", "",
             f"{w['sessions']} sessions x {w['calls_per_session']} calls, max {w['max_tokens']} output tokens, "
             f"device: {w['device']}, vLLM {w['vllm_version']}, engine args `{json.dumps(w['engine_args'])}`.", "",
             *([f"Weights: **random** (`load_format=dummy`): the {w['model_name']} architecture and tokenizer with "
                "weights of the right shapes but random values, so every call generates its full "
                f"{w['max_tokens']} tokens; serving cost depends on shapes and token counts, not on weight values.", ""]
               if w["engine_args"].get("load_format") == "dummy" else []),
             "| mode | wall s | calls/s | prompt tok/s | output tok/s | median call s | p95 call s | "
             "median session s | reuse ratio | computed tokens |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name in ("naive", "app_aware"):
        if name in result:
            m, t = result[name], result[name]["throughput"]
            lines.append(f"| {name} | {m['wall_s']} | {t['calls_per_s']} | {t['prompt_tok_per_s']} | "
                         f"{t['output_tok_per_s']} | {m['median_latency_s']} | {m['p95_latency_s']} | "
                         f"{m['session_median_s']} | {m['reuse_ratio']} | {m['computed_tokens']} |")
    for key in ("speedup_median", "speedup_session_median", "computed_tokens_ratio", "throughput_ratio"):
        if result.get(key) is not None:
            lines.append(f"\n{key}: **{result[key]}**")
    lines.append(f"\n{result['note']}\n")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="local model directory (nothing is downloaded)")
    p.add_argument("--sessions", type=int, default=32)
    p.add_argument("--calls", type=int, default=6)
    p.add_argument("--max-tokens", type=int, default=40)
    p.add_argument("--data", type=Path, default=None, help="Spider folder or folder of *.sqlite; default: synthetic")
    p.add_argument("--mode", action="append", choices=["naive", "app_aware"], default=None)
    p.add_argument("--max-model-len", type=int, default=8192)
    p.add_argument("--max-num-seqs", type=int, default=64)
    p.add_argument("--gpu-memory-utilization", type=float, default=0.85)
    p.add_argument("--tensor-parallel-size", type=int, default=1)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--block-size", type=int, default=None)
    p.add_argument("--enforce-eager", action="store_true", help="skip CUDA graphs / torch.compile (faster start)")
    p.add_argument("--load-format", default=None,
                   help="vLLM load format; 'dummy' = random weights of the model's shape (config.json + "
                        "tokenizer only: the cost of serving does not depend on the weights' values)")
    p.add_argument("--attention-backend", default=None, help="vLLM attention backend, e.g. TRITON_ATTN")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON result here")
    p.add_argument("--md", type=Path, default=None, help="also write a markdown table here")
    ns = p.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the GPU box has no internet: fail fast, never hang
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    model = Path(ns.model)
    if not (model / "config.json").is_file():
        p.error(f"--model must be a local model directory with config.json: {model}")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import vllm

    from autotqa.config import EngineConfig
    from autotqa.serving.bench import run_benchmark
    from autotqa.serving.engines.vllm_engine import VLLMEngine
    from autotqa.serving.workload import build_sessions

    data = ns.data or synthetic_databases(Path(tempfile.gettempdir()) / "autotqa-bench-synth", ns.sessions)
    specs = build_sessions(data, ns.sessions)
    cfg = EngineConfig(kind="vllm", model=str(model), n_ctx=ns.max_model_len)
    from vllm.platforms import current_platform

    args = engine_args(ns, on_cpu=current_platform.is_cpu())

    def factory(mode: Any) -> VLLMEngine:
        t = time.perf_counter()
        eng = VLLMEngine.from_config(cfg, session_cache=mode.session_cache, **args)
        print(f"[{mode.name}] engine up in {time.perf_counter() - t:.1f} s "
              f"(prefix caching {'on' if mode.session_cache else 'off'}, max_num_seqs {eng.max_concurrency})",
              file=sys.stderr, flush=True)
        return eng

    modes = tuple(ns.mode or ["naive", "app_aware"])
    result = asyncio.run(run_benchmark(factory, specs, calls=ns.calls, max_tokens=ns.max_tokens, modes=modes))
    for name in modes:
        result[name]["throughput"] = throughput(result[name])
        result[name].pop("dispatch_order", None)  # long; the CLI benchmark keeps it
    if "naive" in result and "app_aware" in result:
        n, a = result["naive"]["throughput"], result["app_aware"]["throughput"]
        result["throughput_ratio"] = round(a["calls_per_s"] / n["calls_per_s"], 2) if n["calls_per_s"] else None
    device = "cpu"
    try:
        import torch

        if torch.cuda.is_available():
            device = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    result["workload"].update(engine="vllm-inprocess", model_name=model.name, device=device,
                              vllm_version=vllm.__version__, engine_args=args)
    for name in modes:
        m, t = result[name], result[name]["throughput"]
        print(f"{name:>9}: wall {m['wall_s']:.1f} s | {t['calls_per_s']} calls/s | {t['prompt_tok_per_s']} prompt tok/s "
              f"({t['computed_prompt_tok_per_s']} computed) | {t['output_tok_per_s']} output tok/s | "
              f"call median {m['median_latency_s']} s p95 {m['p95_latency_s']} s | session median "
              f"{m['session_median_s']} s | reuse {m['reuse_ratio']}")
    if ns.md is not None:
        ns.md.parent.mkdir(parents=True, exist_ok=True)
        ns.md.write_text(markdown(result), encoding="utf-8")
    if ns.out is not None:
        ns.out.parent.mkdir(parents=True, exist_ok=True)
        ns.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":  # vLLM spawns processes: keep the entry point guarded
    raise SystemExit(main())
