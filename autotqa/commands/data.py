"""``autotqa tables SOURCE... [--json]`` and ``autotqa sql SOURCE... "QUERY" [--json]``: look at the
loaded tables and query them through the safe SQL executor, without any LLM.

Typer cannot put a variadic argument before a single one, so ``sql`` takes all positionals together
and the last one is the query. A rejected or failing query prints one line on stderr and exits 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from .. import jsonsafe
from ..cli import app, examples, fail, handle_errors

if TYPE_CHECKING:
    from ..catalog import Catalog
    from ..config import ExecutorConfig
    from ..executors.base import ExecutionResult


def tables_json(catalog: Catalog) -> dict[str, Any]:
    """What was loaded, with key and foreign-key candidates, as plain JSON-ready data."""
    schema = catalog.schema()
    return {
        "tables": [
            {"name": info.name, "display_name": info.display_name, "source": info.source,
             "n_rows": info.n_rows, "columns": [{"name": c.name, "type": c.type} for c in info.columns],
             "primary_keys": schema.primary_keys.get(info.name, [])}
            for info in catalog.tables.values()
        ],
        "foreign_keys": [
            {"from_table": fk.from_table, "from_column": fk.from_column, "to_table": fk.to_table,
             "to_column": fk.to_column, "score": round(fk.score, 3)}
            for fk in schema.foreign_keys
        ],
    }


def result_json(result: ExecutionResult) -> dict[str, Any]:
    return {"columns": result.columns, "rows": result.rows, "n_rows": result.n_rows,
            "truncated": result.truncated}


def _tables_view(data: dict[str, Any]) -> Table:
    view = Table(title="Loaded tables", title_justify="left", show_lines=True)
    view.add_column("table", style="bold")
    view.add_column("rows", justify="right")
    view.add_column("columns")
    view.add_column("key candidates")
    for table in data["tables"]:
        name = table["name"] if table["name"] == table["display_name"] else \
            f"{table['name']}\n[dim]{table['display_name']}[/dim]"
        columns = ", ".join(f"{c['name']} [dim]{c['type']}[/dim]" for c in table["columns"])
        view.add_row(name, f"{table['n_rows']:,}", columns, ", ".join(table["primary_keys"]))
    return view


def _result_view(result: ExecutionResult) -> Table:
    shown = len(result.rows)
    caption = f"{result.n_rows:,} row{'s' if result.n_rows != 1 else ''}"
    if result.truncated:
        caption += f", first {shown:,} shown"
    view = Table(caption=caption, caption_justify="left")
    for column in result.columns:
        view.add_column(column, overflow="fold")
    for row in result.rows:
        view.add_row(*("NULL" if v is None else str(v) for v in row))
    return view


def _load(sources: list[str], limits: ExecutorConfig | None = None) -> Catalog:
    from ..catalog.server import open_sources  # files, or one database URL

    return open_sources(sources, limits=limits)


@app.command("tables", epilog=examples(
    "autotqa tables datasets/demo", "autotqa tables shop.sqlite --json"))
@handle_errors
def tables_cmd(
    sources: list[str] = typer.Argument(..., metavar="SOURCE...", help="Data files, folders or databases."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """List the tables loaded from SOURCE...: rows, columns and types, key candidates."""
    catalog = _load(sources)
    try:
        data = tables_json(catalog)
    finally:
        catalog.close()
    if as_json:
        print(jsonsafe.dumps(data, ensure_ascii=False))
        return
    console = Console()
    console.print(_tables_view(data))
    for fk in data["foreign_keys"]:
        console.print(f"[dim]foreign key?[/dim] {fk['from_table']}.{fk['from_column']} -> "
                      f"{fk['to_table']}.{fk['to_column']} [dim](score {fk['score']:.2f})[/dim]")


@app.command("sql", epilog=examples(
    'autotqa sql datasets/demo "SELECT country, count(*) AS n FROM customers GROUP BY country"',
    'autotqa sql shop.sqlite "SELECT * FROM orders LIMIT 5" --json'))
@handle_errors
def sql_cmd(
    args: list[str] = typer.Argument(..., metavar="SOURCE... QUERY",
                                     help="Data files, folders or databases, then the query in quotes."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    max_rows: int | None = typer.Option(None, "--max-rows", metavar="N", min=1, help="Row cap (default from config)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Run one read-only SQL query (DuckDB dialect; SQLite/MySQL/Postgres are transpiled)."""
    if len(args) < 2:
        raise fail("give at least one SOURCE and then the QUERY",
                   hint='autotqa sql data.csv "SELECT count(*) FROM data"', code=2)
    *sources, query = args
    if not query.strip():
        raise fail("the query is empty", code=2)
    from ..executors.server_sql import sql_executor_for
    from ..settings import load_config

    config = load_config().executor
    if max_rows is not None:
        config = config.model_copy(update={"row_cap": max_rows})
    catalog = _load(sources, config)
    try:
        result = sql_executor_for(catalog, config).run(query)
    finally:
        catalog.close()
    if not result.ok:
        raise fail(f"{result.error} [{result.error_type}]")
    if as_json:
        print(jsonsafe.dumps(result_json(result), ensure_ascii=False))
    else:
        Console().print(_result_view(result))
