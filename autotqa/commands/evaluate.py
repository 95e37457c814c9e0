"""``autotqa eval``: run a benchmark through one or more strategies and write a report.

    autotqa eval --dataset spider --data ../shared/datasets/spider-train --limit 100 \\
        --strategy agents --strategy baseline --out tmp/eval/spider100
    autotqa eval report tmp/eval/spider100      # re-render the report from existing results
    autotqa eval report tmp/eval/spider100 --to eval/results/eval_spider.md   # publish it

Results go to ``DIR/results-<strategy>.jsonl`` one line per question as it finishes; running the
same command again resumes where it stopped.

The embedded engine persists each schema's KV state on disk across runs (``engine.prefix_cache_dir``,
an LRU of 2 GB). A benchmark reading that cache would time each database's first question by what
earlier runs happened to leave there, so a run uses a fresh folder of its own, deleted at the end:
every database's first question pays its schema once, as a first-time user's does, and two runs
compare. A ``prefix_cache_dir`` set in the config file or environment is used as set.
"""

from __future__ import annotations

import asyncio
import importlib.util
import contextlib
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from ..cli import app, config_from_flags, examples, fail, handle_errors
from ..errors import ConfigError
from ..evaluation.harness import RunSpec, bind_spec
from ..evaluation.report import write_report
from ..evaluation.results import ResultRecord
from ..evaluation.runner import EvalRunner
from ..evaluation.strategies import STRATEGIES, build_strategy


def _flags(engine: str | None, model: str | None, base_url: str | None) -> dict[str, Any]:
    return {"engine.kind": engine, "engine.model": model, "engine.base_url": base_url}


def _run_strategy(name: str, spec: RunSpec, out: Path, concurrency: int, config: Any, engine: Any,
                  console: Console, stop: threading.Event, server: Any = None) -> None:
    items = spec.items()
    strategy = build_strategy(name, config, engine, concurrency=concurrency)
    if server is not None:
        from ..evaluation.on_server import OnServer

        strategy = OnServer(strategy, server)
    runner = EvalRunner(strategy, out, dataset=spec.dataset, concurrency=concurrency, stop=stop)
    todo = runner.pending(items)
    done_before = len(items) - len(todo)
    counts = {"n": 0, "correct": 0}
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("acc {task.fields[acc]}"), TimeElapsedColumn(), TextColumn("eta"),
               TimeRemainingColumn())
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            task_id = progress.add_task(name, total=len(todo), acc="-")

            def on_result(rec: ResultRecord) -> None:
                counts["n"] += 1
                counts["correct"] += int(rec.correct)
                progress.update(task_id, advance=1, acc=f"{counts['correct'] / counts['n']:.1%}")

            if done_before:
                console.print(f"{name}: resuming, {done_before} of {len(items)} questions already done")
            summary = runner.run(items, on_result=on_result)
    finally:
        strategy.close()
    console.print(f"{name}: {summary.correct}/{summary.evaluated} correct in this run "
                  f"({summary.accuracy:.1%}), {summary.skipped} resumed, {summary.elapsed_s:.0f} s")


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[threading.Event]:
    """Treat SIGTERM (``timeout``, a batch scheduler) and Ctrl-C alike, so sessions close and the
    report is written; finished questions are already on disk either way. The yielded event is set
    on either signal, for the runner to check (see ``EvalRunner``'s ``stop``)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def interrupt(signum: int, frame: object) -> None:
        stop.set()
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _hint_if_no_plot(console: Console) -> None:
    if importlib.util.find_spec("matplotlib") is None:
        console.print("hint: the report has no plot: pip install 'autotqa[eval]' (matplotlib) to draw it",
                      style="yellow", highlight=False, markup=False, soft_wrap=True)


@app.command("eval", epilog=examples(
    "autotqa eval --dataset wtq --data ../shared/datasets/wtq-train --limit 20 --out eval/runs/wtq20",
    "autotqa eval --dataset spider --data ../shared/datasets/spider-train --strategy agents "
    "--strategy baseline --out eval/runs/spider",
    "autotqa eval report eval/runs/wtq20"))
@handle_errors
def eval_cmd(
    action: str | None = typer.Argument(None, help="'report' to re-render the report of DIR only."),
    report_dir: Path | None = typer.Argument(None, help="With 'report': the run folder."),
    dataset: str | None = typer.Option(None, "--dataset", metavar="NAME", help="Benchmark layout: spider or wtq."),
    data: Path | None = typer.Option(None, "--data", metavar="DIR",
                                     help="Benchmark folder (e.g. ../shared/datasets/wtq-train)."),
    limit: int | None = typer.Option(None, "--limit", metavar="N", min=1, help="Evaluate N sampled questions."),
    sample_seed: int = typer.Option(0, "--sample-seed", metavar="N",
                                    help="Seed of the sample (same seed, same questions)."),
    strategy: list[str] = typer.Option(["agents"], "--strategy", metavar="NAME",
                                       help="agents or baseline; repeat to run both on the same questions."),
    concurrency: int = typer.Option(1, "--concurrency", metavar="N", min=1, help="Questions answered in parallel."),
    engine: str | None = typer.Option(None, "--engine", metavar="KIND",
                                      help="local, openai, vllm (or scripted in tests)."),
    model: str | None = typer.Option(None, "--model", metavar="MODEL", help="Model path / id for the engine."),
    base_url: str | None = typer.Option(None, "--base-url", metavar="URL", help="Server URL for openai/vllm engines."),
    out: Path | None = typer.Option(None, "--out", metavar="DIR", help="Run folder: results, traces and report."),
    report_only: bool = typer.Option(False, "--report-only", help="Only re-render the report of --out."),
    report_to: Path | None = typer.Option(None, "--to", metavar="FILE", help="Write the report here (plot beside it) "
                                           "instead of DIR/report.md, e.g. eval/results/eval_wtq.md."),
    target: str | None = typer.Option(None, "--target", metavar="URL",
                                      help="Run Spider on a database server (postgresql://... or mysql://...): each "
                                           "database is copied there and queried there."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Evaluate a benchmark (Spider-style or WikiTableQuestions-style) and write a report."""
    console = Console(stderr=True)
    if action is not None:
        if action != "report" or report_dir is None:
            raise fail(f"unknown eval action {action!r}", hint="use: autotqa eval report DIR", code=2)
        report_only, out = True, report_dir
    if out is None:
        raise fail("--out is required", hint="name a folder for results, e.g. --out eval/runs/wtq100",
                   code=2)
    if report_only:
        if not out.is_dir():
            raise ConfigError(f"no run folder at {out}")
        path = write_report(out, target=report_to)
        print(path.read_text(encoding="utf-8"), end="")
        _hint_if_no_plot(console)
        return
    if dataset not in ("spider", "wtq"):
        raise fail("--dataset must be spider or wtq", hint="e.g. --dataset wtq --data ../shared/datasets/wtq-train",
                   code=2)
    if data is None:
        raise fail("--data is required", hint="the benchmark folder, e.g. ../shared/datasets/spider-train", code=2)
    unknown = [s for s in strategy if s not in STRATEGIES]
    if unknown:
        raise fail(f"unknown strategy {unknown[0]!r}", hint=f"use one of: {', '.join(STRATEGIES)}", code=2)

    from ..ui.engine import engine_from_config

    config = config_from_flags(_flags(engine, model, base_url))
    server = None
    if target is not None:
        if dataset != "spider":
            raise fail("--target works with --dataset spider", hint="WTQ tables are single CSV files", code=2)
        from ..catalog.server_conn import parse_server_url

        server = parse_server_url(target)
    spec = bind_spec(out, RunSpec(dataset=dataset, data=str(data), limit=limit, sample_seed=sample_seed,
                                  target=server.display if server else None))
    console.print(f"evaluating {spec.describe()} -> {out}")
    with contextlib.ExitStack() as stack:
        if config.engine.prefix_cache_dir is None:  # see the module docstring
            fresh = stack.enter_context(tempfile.TemporaryDirectory(prefix="autotqa-eval-kv-"))
            config = config.model_copy(update={"engine": config.engine.model_copy(
                update={"prefix_cache_dir": fresh})})
        llm = engine_from_config(config.engine)
        try:
            with _terminate_as_interrupt() as stop:
                for name in dict.fromkeys(strategy):  # each once, in the order given
                    _run_strategy(name, spec, out, concurrency, config, llm, console, stop, server)
        finally:
            with contextlib.suppress(Exception):
                asyncio.run(llm.close())
            write_report(out)
    console.print(f"report: {out / 'report.md'}")
    _hint_if_no_plot(console)
