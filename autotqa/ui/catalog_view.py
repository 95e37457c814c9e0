"""Rich views of the loaded tables for the chat's ``/tables`` and ``/schema`` commands.

``/schema`` with no table prints the schema block exactly as the agents see it (so a person can
tell what the model was told); ``/schema TABLE`` shows that table's columns with their statistics
and the key candidates that touch it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..catalog.models import ColumnSchema, TableInfo, TableSchema
from ..errors import AutoTQAError


def tables_table(tables: Sequence[TableInfo]) -> Table:
    """One row per table: SQL name, rows, columns, where it came from."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("table")
    table.add_column("rows", justify="right")
    table.add_column("columns", justify="right")
    table.add_column("source", overflow="fold")
    for info in tables:
        table.add_row(info.name, f"{info.n_rows:,}", str(len(info.columns)), info.source)
    n = len(tables)
    table.caption = f"{n} table" + ("" if n == 1 else "s")
    table.caption_justify = "left"
    return table


def find_table(tables: Iterable[TableSchema], name: str) -> TableSchema:
    """The table called ``name`` (SQL or original name, case-insensitive); a clear error otherwise."""
    tables = list(tables)
    for t in tables:
        if name.lower() in (t.name.lower(), t.display_name.lower()):
            return t
    names = ", ".join(t.name for t in tables)
    raise AutoTQAError(f"no table named {name!r}", hint=f"tables: {names}")


def _stats(col: ColumnSchema) -> str:
    parts = []
    if col.min is not None and col.max is not None:
        parts.append(f"{col.min} .. {col.max}")
    if col.samples:
        parts.append("e.g. " + ", ".join(col.samples))
    return "; ".join(parts)


def table_schema_view(schema: TableSchema, keys: Sequence[Any] = (), primary: Sequence[str] = ()) -> Group:
    """Columns of one table (type, nulls, distinct, range or samples) and the keys touching it."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False,
                  title=f"{schema.name} ({schema.n_rows:,} rows, from {schema.source})", title_justify="left")
    table.add_column("column")
    table.add_column("type")
    table.add_column("nulls", justify="right")
    table.add_column("distinct", justify="right")
    table.add_column("values", overflow="fold")
    for col in schema.columns:
        name = Text(col.name, style="bold" if col.name in primary else "")
        if col.name in primary:
            name.append(" (key)", style="dim")
        distinct = "unique" if col.unique else ("" if col.n_distinct is None else f"~{col.n_distinct:,}")
        table.add_row(name, col.type, f"{col.null_share:.0%}", distinct, _stats(col))
    parts: list[RenderableType] = [table]
    for fk in keys:
        if schema.name.lower() in (fk.from_table.lower(), fk.to_table.lower()):
            parts.append(Text(f"  {fk.from_table}.{fk.from_column} -> {fk.to_table}.{fk.to_column}"
                              f"  (score {fk.score:.2f})", style="dim"))
    return Group(*parts)


def schema_view(schema_info: Any, table: str | None) -> RenderableType:
    """The whole schema block as the agents see it, or one table's details."""
    if table is None:
        return Text(schema_info.render())
    found = find_table(schema_info.tables, table)
    primary_keys = getattr(schema_info, "primary_keys", {}) or {}
    primary = primary_keys.get(found.name, ()) if isinstance(primary_keys, dict) else ()
    if isinstance(primary, str):
        primary = (primary,)
    return table_schema_view(found, getattr(schema_info, "foreign_keys", ()) or (), list(primary))
