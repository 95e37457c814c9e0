"""``autotqa ask SOURCE... "QUESTION" [--json]``: one question about one or more tables.

Typer cannot put a variadic argument before a single one, so all positionals are taken together
and the last one is the question. ``--json`` prints the :class:`~autotqa.answer.Answer` as one JSON
object (numbers stay numbers) for scripts and the evaluation harness.

Exit codes: 0 answered (also when the question is flagged as unanswerable from the tables), 1 when
no supported answer was found or on an error, 2 usage error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from .. import jsonsafe
from ..answer import Answer
from ..cli import app, config_from_flags, fail, handle_errors
from ..errors import ConfigError


def answer_json(answer: Answer) -> str:
    """The whole answer as one JSON line: answer, values, sql, verified, metrics, trace, ..."""
    return jsonsafe.dumps(answer.model_dump(mode="json"), ensure_ascii=False, default=str)


def print_answer(answer: Answer, console: Console, max_rows: int = 20) -> None:
    """Human output: the answer, its values, the SQL and the time taken (the CLI's rich view)."""
    from ..ui.render import render_answer

    console.print(render_answer(answer, max_rows=max_rows))


def write_trace(answer: Answer, path: Path) -> None:
    """The blackboard as a JSON list of entries (``Blackboard.from_json`` reads it back)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(answer.trace, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the trace to {path}: {exc.strerror or exc}",
                          hint="choose a writable --trace path") from None


def answered(answer: Answer) -> bool:
    return answer.verified or answer.unanswerable or bool(answer.values)


@app.command("ask")
@handle_errors
def ask_cmd(
    args: list[str] = typer.Argument(..., metavar="SOURCE... QUESTION",
                                     help="Data files or folders, then the question in quotes."),
    as_json: bool = typer.Option(False, "--json", help="Print the answer as one JSON object."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show each agent's work as it happens."),
    engine: str | None = typer.Option(None, "--engine", help="local (default), openai or vllm."),
    model: str | None = typer.Option(None, "--model", help="GGUF path / model id for the engine."),
    base_url: str | None = typer.Option(None, "--base-url", help="Server URL for openai/vllm."),
    max_rounds: int | None = typer.Option(None, "--max-rounds", min=1,
                                          help="Critic rounds before the best supported result is returned."),
    trace: Path | None = typer.Option(None, "--trace", metavar="FILE", dir_okay=False,
                                      help="Also write the blackboard trace (JSON) to FILE."),
    max_rows: int = typer.Option(20, "--max-rows", min=1, help="Result rows shown (not with --json)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Answer one question about the given tables."""
    if len(args) < 2:
        raise fail("give at least one SOURCE and then the QUESTION", hint='autotqa ask data.csv "How many rows?"',
                   code=2)
    *sources, question = args
    if not question.strip():
        raise fail("the question is empty", code=2)
    from ..api import Session
    from ..ui.engine import engine_from_config

    config = config_from_flags({"engine.kind": engine, "engine.model": model, "engine.base_url": base_url,
                                "agents.max_rounds": max_rounds})
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
        write_trace(answer, trace)
    if as_json:
        print(answer_json(answer))
    else:
        print_answer(answer, console, max_rows)
    if not answered(answer):
        raise typer.Exit(1)
