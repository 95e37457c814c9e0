"""``autotqa ask SOURCE... "QUESTION" [--json] [--save FILE] [--plot FILE] [--trace FILE]``: one
question about one or more tables.

Typer cannot put a variadic argument before a single one, so all positionals are taken together
and the last one is the question. ``--json`` prints the :class:`~autotqa.answer.Answer` as one JSON
object (numbers stay numbers) for scripts and the evaluation harness. ``--save`` writes the result
rows (CSV, Parquet, JSON, Excel), ``--plot`` draws them (PNG, SVG), ``--trace`` keeps the run for
``autotqa trace show``.

Exit codes: 0 answered (also when the question is flagged as unanswerable from the tables), 1 when
no supported answer was found or on an error, 2 usage error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from .. import jsonsafe
from ..answer import Answer
from ..cli import app, config_from_flags, examples, fail, handle_errors
from ..errors import ConfigError


def answer_json(answer: Answer) -> str:
    """The whole answer as one JSON line: answer, values, sql, verified, metrics, trace, ..."""
    return jsonsafe.dumps(answer.model_dump(mode="json"), ensure_ascii=False, default=str)


def print_answer(answer: Answer, console: Console, max_rows: int = 20) -> None:
    """Human output: the answer, its values, the SQL and the time taken (the CLI's rich view)."""
    from ..ui.render import render_answer

    console.print(render_answer(answer, max_rows=max_rows))


def keep(answer: Answer, save: Path | None, plot: Path | None, console: Console) -> None:
    """Write the rows and the chart the person asked for, and say where (and when rows were capped)."""
    if save is not None:
        from ..ui.export import save_result

        console.print(save_result(answer, save).message(), style="dim", highlight=False, markup=False)
    if plot is not None:
        from ..ui.plot import save_plot

        console.print(f"chart saved to {save_plot(answer, plot)}", style="dim", highlight=False, markup=False)


def answered(answer: Answer) -> bool:
    return answer.verified or answer.unanswerable or bool(answer.values)


@app.command("ask", epilog=examples(
    'autotqa ask datasets/demo "How many customers are there?"',
    'autotqa ask datasets/demo "Customers per country?" --save by_country.xlsx --plot by_country.png',
    'autotqa ask shop.sqlite "Orders per month in 2024?" --json --trace run.json --trace-prompts'))
@handle_errors
def ask_cmd(
    args: list[str] = typer.Argument(..., metavar="SOURCE... QUESTION",
                                     help="Data files or folders, then the question in quotes."),
    as_json: bool = typer.Option(False, "--json", help="Print the answer as one JSON object."),
    save: Path | None = typer.Option(None, "--save", metavar="FILE", dir_okay=False,
                                     help="Write the result rows to FILE (.csv, .parquet, .json, .xlsx)."),
    plot: Path | None = typer.Option(None, "--plot", metavar="FILE", dir_okay=False,
                                     help="Draw the result as a chart in FILE (.png, .svg)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show each agent's work as it happens."),
    engine: str | None = typer.Option(None, "--engine", metavar="KIND", help="local (default), openai or vllm."),
    model: str | None = typer.Option(None, "--model", metavar="MODEL", help="GGUF path / model id for the engine."),
    base_url: str | None = typer.Option(None, "--base-url", metavar="URL", help="Server URL for openai/vllm."),
    max_rounds: int | None = typer.Option(None, "--max-rounds", min=1, metavar="N",
                                          help="Critic rounds before the best supported result is returned."),
    trace: Path | None = typer.Option(None, "--trace", metavar="FILE", dir_okay=False,
                                      help="Also write the run (steps, answer, LLM calls) to FILE (JSON)."),
    trace_prompts: bool = typer.Option(False, "--trace-prompts",
                                       help="With --trace: also record each call's prompt and reply."),
    max_rows: int = typer.Option(20, "--max-rows", min=1, metavar="N", help="Result rows shown (not with --json)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Answer one question about the given tables."""
    if len(args) < 2:
        raise fail("give at least one SOURCE and then the QUESTION", hint='autotqa ask data.csv "How many rows?"',
                   code=2)
    *sources, question = args
    if not question.strip():
        raise fail("the question is empty", code=2)
    if trace_prompts and trace is None:
        raise fail("--trace-prompts needs --trace FILE", hint="autotqa ask ... --trace run.json --trace-prompts",
                   code=2)
    from ..api import Session
    from ..ui.engine import engine_from_config
    from ..ui.export import check_save_path
    from ..ui.plot import check_plot_path

    for check, path in ((check_save_path, save), (check_plot_path, plot)):
        if path is not None:
            try:
                check(path)
            except ConfigError as exc:
                raise fail(exc.message, exc.hint, code=2) from None
    config = config_from_flags({"engine.kind": engine, "engine.model": model, "engine.base_url": base_url,
                                "agents.max_rounds": max_rounds,
                                "agents.trace_prompts": True if trace_prompts else None})
    console = Console(stderr=as_json)
    view: Any = None
    if verbose and not as_json:
        from ..ui.live import ProgressView

        view = ProgressView(console, verbose=True)
    with Session(sources, config=config, engine=engine_from_config(config.engine), close_engine=True) as session:
        if view is not None:
            session.events.append(view)
            with view:
                answer = session.ask(question)
        else:
            answer = session.ask(question)
    if trace is not None:
        from ..ui.tracefile import write_trace

        write_trace(answer, trace)
    if as_json:
        print(answer_json(answer))
    else:
        print_answer(answer, console, max_rows)
    keep(answer, save, plot, console)
    if not answered(answer):
        raise typer.Exit(1)
