"""``autotqa bench serving``: naive vs app-aware serving of a multi-agent workload.

    autotqa bench serving --sessions 4 --calls 6 --out eval/results/bench_serving.json
    autotqa bench combine naive.json app_aware.json   # modes run as separate processes (--mode)
    autotqa bench serving --workload agents --sessions 4 --questions 2 --out ablation.json

``--workload synthetic`` (default) replays the synthetic call chains of ``serving/workload.py``;
``--workload agents`` runs the real agents on real questions, one row per technique switched on
(``evaluation/serving_ablation.py``). Progress goes to stderr; the last stdout line is the JSON
result (``{"naive": {...}, "app_aware": {...}, "speedup_median": ...}``, or ``{"rows": {...}}``).
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
    "autotqa bench serving --engine openai --base-url http://127.0.0.1:8000/v1 --mode app_aware",
    "autotqa bench serving --workload agents --sessions 4 --questions 2 --out ablation.json"))
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
    mode: list[str] | None = typer.Option(
        None, "--mode", metavar="MODE",
        help="Modes (synthetic: naive, app_aware) or rows (agents: naive, layout, kv_reuse, locality, "
             "warm_up, priority) to run (repeatable; default all)."),
    workload: str = typer.Option("synthetic", "--workload", metavar="KIND",
                                 help="synthetic (call chains) or agents (the agents on real questions)."),
    questions: int = typer.Option(2, "--questions", metavar="N", min=1,
                                  help="agents: questions asked in each session, one after another."),
    question_file: Path = typer.Option(Path("datasets/demo_questions.json"), "--question-file", metavar="FILE",
                                       help="agents, when --data is a folder of tables: its questions (JSON)."),
    out: Path | None = typer.Option(None, "--out", metavar="FILE", help="Also write the JSON result here."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Serve K concurrent sessions naively and app-aware (synthetic), or the agents' real calls with
    one technique more per row (agents); print the comparison as JSON."""
    from ..serving.bench import MODES, ModeSpec, run_benchmark
    from ..serving.factory import build_engine, engine_options
    from ..serving.options import ServingOptions
    from ..serving.workload import build_sessions

    if engine not in ("local", "openai", "vllm"):
        raise fail(f"unknown engine {engine!r}", hint="use --engine local, openai or vllm", code=2)
    if workload not in ("synthetic", "agents"):
        raise fail(f"unknown workload {workload!r}", hint="use --workload synthetic or agents", code=2)
    if not data.is_dir():
        raise ConfigError(f"no dataset folder at {data}", hint="pass --data ../shared/datasets/spider-train")
    if workload == "agents":
        _agents(engine, model, base_url, data, sessions, questions, question_file, mode, out)
        return
    mode = mode or ["naive", "app_aware"]
    unknown = [m for m in mode if m not in MODES]
    if unknown:
        raise fail(f"unknown mode {unknown[0]!r}", hint="use --mode naive and/or --mode app_aware", code=2)
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
    _emit(result, cfg, out)


def _emit(result: dict[str, Any], cfg: Any, out: Path | None) -> None:
    """Engine facts into the workload, the JSON to ``out`` and as the last stdout line."""
    result["workload"].update(engine=cfg.kind, model=cfg.model)
    if cfg.kind == "local":
        result["workload"].update(n_threads=cfg.n_threads, thread_policy=cfg.thread_policy)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, separators=(",", ":")))


def _agents(engine: str, model: str | None, base_url: str | None, data: Path, sessions: int, questions: int,
            question_file: Path, rows: list[str] | None, out: Path | None) -> None:
    """The ablation on the agents' real calls: every row of LADDER (or ``rows``) on a fresh engine."""
    from ..evaluation.serving_ablation import ROWS, folder_sessions, run_ablation, spider_sessions, table
    from ..serving.factory import build_engine, engine_options

    rows = rows or list(ROWS)
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise fail(f"unknown row {unknown[0]!r}", hint=f"use --mode with one of {', '.join(ROWS)}", code=2)
    config = config_from_flags({"engine.kind": engine, "engine.model": model, "engine.base_url": base_url})
    # Measure serving within one process: a prefix persisted by an earlier run must not help.
    config.engine.persist_prefix = False
    if (data / "questions.jsonl").is_file():
        specs, catalogs = spider_sessions(data, sessions, questions, config)
    else:
        specs, catalogs = folder_sessions(data, question_file, sessions, questions, config)
    console = Console(stderr=True)
    console.print(f"bench serving --workload agents: {len(specs)} sessions x {questions} questions on "
                  f"{engine} ({', '.join(s.source for s in specs)}), rows {', '.join(rows)}", highlight=False)

    def on_answer(row: str, session_id: str, answer: Any) -> None:
        console.print(f"{row}: {session_id.split('-')[0]} {len(answer.calls)} calls {answer.elapsed_s:.1f}s "
                      f"{answer.question[:60]!r} -> {answer.values[:3]}", highlight=False)

    try:
        result = asyncio.run(run_ablation(
            lambda o: build_engine(config.engine, **engine_options(config.engine, o)), specs, config,
            rows=rows, on_answer=on_answer))
    finally:
        for executor in (e for s in specs for e in s.workspace.executors.values()):
            getattr(executor, "close", lambda: None)()
        for catalog in catalogs:
            getattr(catalog, "close", lambda: None)()
    console.print(table(result), highlight=False)
    _emit(result, config.engine, out)


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
