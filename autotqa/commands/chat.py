"""``autotqa chat SOURCE...``: ask question after question about the same tables in a terminal.

The sources are loaded once and the session warms the shared prompt prefix in the background
while the first question is typed. Line editing and history (``~/.local/share/autotqa/
chat_history`` on Linux) when stdin is a terminal; plain line reading when it is a pipe or a file,
so a chat can be scripted: ``autotqa chat shop/ < questions.txt``.

Exit codes: 0 when the chat ends with ``/exit`` or Ctrl-D (errors of single questions are shown
and the chat goes on), 1 when the sources or the engine cannot be opened, 2 usage error.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import typer
from rich.console import Console

from ..cli import app, config_from_flags, examples, handle_errors


@app.command("chat", epilog=examples(
    "autotqa chat datasets/demo",
    "autotqa chat shop.sqlite --engine openai --base-url http://127.0.0.1:8000/v1",
    "autotqa chat datasets/demo < questions.txt"))
@handle_errors
def chat_cmd(
    sources: list[str] = typer.Argument(..., metavar="SOURCE...",
                                        help="Data files (CSV, TSV, Parquet, JSON, Excel), folders, "
                                             "SQLite or DuckDB databases."),
    engine: str | None = typer.Option(None, "--engine", metavar="KIND", help="local (default), openai or vllm."),
    model: str | None = typer.Option(None, "--model", metavar="MODEL", help="GGUF path / model id for the engine."),
    base_url: str | None = typer.Option(None, "--base-url", metavar="URL", help="Server URL for openai/vllm."),
    max_rounds: int | None = typer.Option(None, "--max-rounds", metavar="N", min=1,
                                          help="Critic rounds per question before the best result is returned."),
    max_rows: int = typer.Option(20, "--max-rows", metavar="N", min=1, help="Result rows shown per answer."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show full code and results of every step."),
    no_history: bool = typer.Option(False, "--no-history", help="Do not read or write the input history file."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Chat with your tables: questions, follow-ups ("and for 2023?") and slash commands.

    In the chat: /tables, /schema [TABLE], /sql (last query), /trace, /metrics, /save FILE,
    /plot [FILE], /help, /exit.
    Ctrl-C cancels the running question; Ctrl-D leaves.

    Settings: flags, then AUTOTQA_* variables (AUTOTQA_ENGINE, AUTOTQA_MODEL, AUTOTQA_BASE_URL,
    AUTOTQA_API_KEY, AUTOTQA_MAX_ROUNDS, AUTOTQA_ENGINE__N_CTX ...), then config.toml in the user
    config directory (AUTOTQA_CONFIG names another file).
    """
    from ..api import Session
    from ..chat import ChatREPL
    from ..settings import data_dir
    from ..ui.catalog_view import schema_view, tables_table
    from ..ui.engine import engine_from_config
    from ..ui.lineinput import make_reader

    config = config_from_flags({"engine.kind": engine, "engine.model": model, "engine.base_url": base_url,
                                "agents.max_rounds": max_rounds})
    console = Console(highlight=False)
    with console.status("loading tables…", spinner="dots") if console.is_terminal else nullcontext():
        built = engine_from_config(config.engine)
        session = Session(sources, config=config, engine=built, close_engine=True)
    with session:
        catalog = session.catalog
        names = ", ".join(catalog.tables)
        console.print(f"[bold]autotqa chat[/bold] — {len(catalog.tables)} table"
                      f"{'s' * (len(catalog.tables) != 1)}: {names}")
        console.print("Ask a question, or /help. Ctrl-C cancels a question, Ctrl-D leaves.", style="dim")
        workspace = getattr(getattr(session, "orchestrator", None), "workspace", None)

        def show_schema(table: str | None) -> object:
            if table is None and workspace is not None:  # exactly what the agents are shown
                from rich.text import Text

                return Text(workspace.schema_text)
            return schema_view(catalog.schema(), table)

        history: Path | None = None if no_history else data_dir() / "chat_history"
        repl = ChatREPL(session=session, reader=make_reader(history), console=console,
                        tables_view=lambda: tables_table(list(catalog.tables.values())),
                        schema_view=show_schema, max_rows=max_rows, verbose=verbose, debug=debug)
        code = repl.run()
    raise typer.Exit(code)
