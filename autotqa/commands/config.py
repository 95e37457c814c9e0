"""``autotqa config show``: the settings a command would run with, and where each came from.

Layers, highest first: command-line flags, ``AUTOTQA_*`` environment variables, the TOML file
(``AUTOTQA_CONFIG`` or ``config.toml`` in the user config directory), defaults. The same flags as
``ask``/``chat`` can be given to see their effect.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from .. import jsonsafe
from ..cli import app, examples, fail, handle_errors

config_app = typer.Typer(help="Settings: what a command runs with, and why.", no_args_is_help=True,
                         rich_markup_mode=None)
app.add_typer(config_app, name="config")


@config_app.command("show", epilog=examples(
    "autotqa config show", "AUTOTQA_ENGINE__N_CTX=4096 autotqa config show --engine openai --json"))
@handle_errors
def show(
    engine: str | None = typer.Option(None, "--engine", metavar="KIND", help="As `ask --engine`."),
    model: str | None = typer.Option(None, "--model", metavar="MODEL", help="As `ask --model`."),
    base_url: str | None = typer.Option(None, "--base-url", metavar="URL", help="As `ask --base-url`."),
    max_rounds: int | None = typer.Option(None, "--max-rounds", min=1, metavar="N", help="As `ask --max-rounds`."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object {setting: {value, source}}."),
) -> None:
    """Print every setting's effective value and its source (flag, environment, file or default)."""
    from ..settings import FlagError, config_path, effective_settings, load_config_sources

    try:
        config, origin = load_config_sources({"engine.kind": engine, "engine.model": model,
                                              "engine.base_url": base_url, "agents.max_rounds": max_rounds})
    except FlagError as exc:
        raise fail(exc.message, exc.hint, code=2) from None
    rows = effective_settings(config, origin)
    if as_json:
        print(jsonsafe.dumps({name: {"value": value, "source": source} for name, value, source in rows},
                             ensure_ascii=False))
        return
    table = Table(title=f"settings (config file: {config_path()})", title_justify="left", box=None)
    for header in ("setting", "value", "source"):
        table.add_column(header)
    for name, value, source in rows:
        table.add_row(name, "-" if value is None else str(value), source,
                      style="dim" if source == "default" else None)
    Console(highlight=False).print(table)
