"""``autotqa bench serving``: naive vs app-aware serving of a multi-agent workload.

    autotqa bench serving --sessions 4 --calls 6 --out eval/results/bench_serving.json
    autotqa bench combine naive.json app_aware.json   # modes run as separate processes (--mode)

Progress goes to stderr; the last stdout line is the JSON result
(``{"naive": {...}, "app_aware": {...}, "speedup_median": ...}``).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..cli import app, config_from_flags, examples, fail, handle_errors
from ..errors import ConfigError

bench_app = typer.Typer(help="Benchmarks of autotqa's parts.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(bench_app, name="bench")


@bench_app.command("serving", epilog=examples(
    "autotqa bench serving --sessions 4 --calls 6 --out bench.json",
    "autotqa bench serving --engine openai --base-url http://127.0.0.1:8000/v1 --mode app_aware"))
@handle_errors
def serving(
    sessions: int = typer.Option(4, "--sessions", metavar="N", min=1,
                                 help="Concurrent sessions (one database each)."),
    calls: int = typer.Option(6, "--calls", metavar="N", min=1,
                              help="Calls per session (user, planner, engineer..., critic)."),
    engine: str = typer.Option("local", "--engine", metavar="KIND", help="local, openai or vllm."),
    model: str | None = typer.Option(None, "--model", metavar="MODEL",
                                     help="Model path / repo id (local) or name (server)."),
    base_url: str | None = typer.Option(None, "--base-url", metavar="URL", help="OpenAI-compatible server URL."),
    data: Path = typer.Option(Path("../shared/datasets/spider-train"), "--data", metavar="DIR",
                              help="Spider folder (or a folder of *.sqlite files); read only."),
    max_tokens: int = typer.Option(40, "--max-tokens", metavar="N", min=1, help="Output tokens per call."),
    mode: list[str] = typer.Option(["naive", "app_aware"], "--mode", metavar="MODE", help="Modes to run (repeatable)."),
    out: Path | None = typer.Option(None, "--out", metavar="FILE", help="Also write the JSON result here."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Serve K concurrent sessions x N calls naively and app-aware; print the comparison as JSON."""
    from ..serving.bench import MODES, ModeSpec, run_benchmark
    from ..serving.factory import build_engine, engine_options
    from ..serving.options import ServingOptions
    from ..serving.workload import build_sessions

    if engine not in ("local", "openai", "vllm"):
        raise fail(f"unknown engine {engine!r}", hint="use --engine local, openai or vllm", code=2)
    unknown = [m for m in mode if m not in MODES]
    if unknown:
        raise fail(f"unknown mode {unknown[0]!r}", hint="use --mode naive and/or --mode app_aware", code=2)
    if not data.is_dir():
        raise ConfigError(f"no dataset folder at {data}", hint="pass --data ../shared/datasets/spider-train")
    try:
        specs = build_sessions(data, sessions)
    except FileNotFoundError as exc:
        raise ConfigError(str(exc), hint="use fewer --sessions or another --data folder") from None
    config = config_from_flags({"engine.kind": engine, "engine.model": model, "engine.base_url": base_url})
    # Measure serving within one process: a prefix persisted by an earlier run must not help.
    cfg = config.engine.model_copy(update={"persist_prefix": False})

    def factory(m: ModeSpec) -> Any:
        # In-process engines (llama.cpp, vLLM) keep KV state across calls: naive mode turns it off.
        return build_engine(cfg, **engine_options(cfg, ServingOptions(kv_reuse=m.session_cache)))

    console = Console(stderr=True)
    console.print(f"bench serving: {len(specs)} sessions x {calls} calls on {engine} "
                  f"({', '.join(s.database for s in specs)})")
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[last]}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        tasks = {m: progress.add_task(m, total=len(specs) * calls, last="") for m in mode}

        def on_call(name: str, rec: Any) -> None:
            last = (f"{rec.session_id.split('-')[0]} {rec.agent} {rec.prompt_tokens - rec.reused_tokens}/"
                    f"{rec.prompt_tokens} tok {rec.queued_s + rec.total_s:.1f}s")
            progress.update(tasks[name], advance=1, last=last)
            if not console.is_terminal:  # a log file gets one line a call instead of a live bar
                console.print(f"{name}: {last}", highlight=False)

        result = asyncio.run(run_benchmark(factory, specs, calls=calls, max_tokens=max_tokens,
                                           modes=tuple(mode), on_call=on_call))
    result["workload"]["engine"] = engine
    result["workload"]["model"] = cfg.model
    if cfg.kind == "local":
        result["workload"]["n_threads"] = cfg.n_threads
    line = json.dumps(result, separators=(",", ":"))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(line)


@bench_app.command("combine", epilog=examples(
    "autotqa bench combine naive.json app_aware.json --out both.json"))
@handle_errors
def combine_cmd(
    files: list[Path] = typer.Argument(..., help="JSON results of `bench serving --mode ... --out FILE`."),
    out: Path | None = typer.Option(None, "--out", metavar="FILE", help="Also write the combined JSON here."),
) -> None:
    """Merge per-mode results run as separate processes (same workload) and add the ratios."""
    from ..serving.bench import combine

    try:
        parts = [json.loads(f.read_text(encoding="utf-8")) for f in files]
        result = combine(parts)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"cannot combine {', '.join(map(str, files))}: {exc}") from None
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, separators=(",", ":")))
