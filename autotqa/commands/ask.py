"""``autotqa ask SOURCE... "QUESTION" [--json]``: one question about one or more tables.

Typer cannot put a variadic argument before a single one, so all positionals are taken together
and the last one is the question. ``--json`` prints the :class:`~autotqa.answer.Answer` as one JSON
object (numbers stay numbers) for scripts and the evaluation harness.

Exit codes: 0 answered (also when the question is flagged as unanswerable from the tables), 1 when
no supported answer was found or on an error, 2 usage error.
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console

from ..answer import Answer
from ..cli import app, fail, handle_errors


def answer_json(answer: Answer) -> str:
    """The whole answer as one JSON line: answer, values, sql, verified, metrics, trace, ..."""
    return json.dumps(answer.model_dump(mode="json"), ensure_ascii=False, default=str)


def print_answer(answer: Answer, console: Console) -> None:
    """Human output: the answer, its values, the SQL and the time taken (the CLI's rich view)."""
    from ..ui.render import render_answer

    console.print(render_answer(answer))


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
    from ..settings import load_config
    from ..ui.engine import engine_from_config

    config = load_config({"engine.kind": engine, "engine.model": model, "engine.base_url": base_url})
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
    if as_json:
        print(answer_json(answer))
    else:
        print_answer(answer, console)
    if not answered(answer):
        raise typer.Exit(1)
