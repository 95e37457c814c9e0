"""``autotqa trace show FILE``: read back a run saved with ``autotqa ask ... --trace FILE``.

Shows the run as the chat showed it live (question, plan, code, results, critiques), the answer,
and a table of the LLM calls (tokens prompt / cached / generated, queue time, time to first token,
run time, wall-clock start). ``--prompts`` adds what each call sent and received, when the run was
traced with ``--trace-prompts``. Needs neither the data nor the model.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from ..cli import app, examples, handle_errors

trace_app = typer.Typer(help="Read back runs saved with `autotqa ask ... --trace FILE`.", no_args_is_help=True,
                        rich_markup_mode=None)
app.add_typer(trace_app, name="trace")


@trace_app.command("show", epilog=examples(
    "autotqa ask datasets/demo \"Customers per country?\" --trace run.json --trace-prompts",
    "autotqa trace show run.json --prompts"))
@handle_errors
def show(
    file: Path = typer.Argument(..., metavar="FILE", dir_okay=False, help="A trace file (JSON)."),
    prompts: bool = typer.Option(False, "--prompts", help="Also show each call's prompt and reply."),
) -> None:
    """Show a saved run: its steps, answer and per-call tokens and times."""
    from ..ui.tracefile import print_trace, read_trace

    print_trace(read_trace(file), Console(highlight=False), prompts=prompts)
