"""The schema block: compact, deterministic text for the shared prompt prefix.

The same tables always give the same bytes (no timestamps, no randomness, values as DuckDB prints
them, fixed order), so the block can be a cached KV prefix. Shape, about 15-25 tokens a column::

    Table customers (120 rows) -- from customers.csv
      customer_id BIGINT, primary key, 1..120
      name VARCHAR, e.g. 'Ana Silva', 'Bo Chen'
      city VARCHAR, 2% null, e.g. 'Lisbon', 'Porto'
    Foreign keys: orders.customer_id -> customers.customer_id

Numbers and dates show their range, other columns their most frequent values. A table rendered with
only some of its columns says how many it left out; tables left out entirely are named at the end.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath

from autotqa.catalog.models import ColumnSchema, ForeignKey, TableSchema
from autotqa.catalog.naming import quote_ident, sql_string
from autotqa.catalog.sniff import display_stem, extension_format
from autotqa.catalog.stats import is_numeric, is_temporal

#: Characters per token assumed by ``estimate_tokens``: typical for BPE tokenizers on schema text
#: (identifiers, numbers, punctuation), which tokenizes denser than prose (~4 characters a token).
CHARS_PER_TOKEN = 3.5


def estimate_tokens(text: str) -> int:
    """Approximate token count: ``ceil(len(text) / 3.5)``; no tokenizer needed, same on every machine.

    >>> estimate_tokens("x" * 7)
    2
    """
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def null_text(share: float) -> str | None:
    """How a null share is written; None when there are no nulls.

    >>> [null_text(s) for s in (0.0, 0.004, 0.021, 1.0)]
    [None, '<1% null', '2% null', 'all null']
    """
    if share <= 0.0:
        return None
    if share >= 1.0:
        return "all null"
    pct = math.floor(share * 100 + 0.5)
    return "<1% null" if pct < 1 else f"{min(pct, 99)}% null"


def column_line(col: ColumnSchema, is_key: bool) -> str:
    """One indented line describing a column.

    >>> column_line(ColumnSchema("city", "VARCHAR", 10, 0.2, ["Lisbon", "O'Neil"]), False)
    "  city VARCHAR, 20% null, e.g. 'Lisbon', 'O''Neil'"
    >>> column_line(ColumnSchema("id", "BIGINT", 3, 0.0, ["1"], "1", "3"), True)
    '  id BIGINT, primary key, 1..3'
    """
    parts = [f"{quote_ident(col.name)} {col.type}"]
    if is_key:
        parts.append("primary key")
    nulls = null_text(col.null_share)
    if nulls:
        parts.append(nulls)
    if (is_numeric(col.type) or is_temporal(col.type)) and col.min is not None:
        parts.append(col.min if col.min == col.max else f"{col.min}..{col.max}")
    elif col.samples:
        text = col.type.upper() == "VARCHAR" or col.type.upper().startswith("ENUM")
        parts.append("e.g. " + ", ".join(sql_string(s) if text else s for s in col.samples))
    return "  " + ", ".join(parts)


def table_header(t: TableSchema) -> str:
    """The ``Table ...`` line: safe name, row count, and where it came from.

    >>> table_header(TableSchema("order_items", "Order Items", "/data/shop.sqlite", 1))
    'Table order_items (1 row) -- from shop.sqlite, originally "Order Items"'
    >>> table_header(TableSchema("t_233", "233", "/wtq/233.csv", 20))
    'Table t_233 (20 rows in file order, rowid 0..19) -- from 233.csv'
    """
    rows = f"{t.n_rows} row{'' if t.n_rows == 1 else 's'}"
    if t.n_rows > 1 and extension_format(Path(t.source)) in ("csv", "excel"):
        # A file's rows have an order people ask about ("listed after", "the first one"); DuckDB
        # keeps it as rowid (the SQL executor accepts the name).
        rows += f" in file order, rowid 0..{t.n_rows - 1}"
    notes = []
    if t.source != "<dataframe>":
        # Only the file name: a full path would change the bytes between machines.
        notes.append(f"from {PurePath(t.source).name}")
        file_stem = display_stem(Path(t.source))
    else:
        file_stem = ""
    if t.display_name.lower() != t.name and t.display_name != file_stem:
        notes.append(f'originally "{t.display_name}"')
    return f"Table {t.name} ({rows})" + (f" -- {', '.join(notes)}" if notes else "")


def fk_line(fks: Sequence[ForeignKey]) -> str | None:
    """All foreign keys on one line, in the given (deterministic) order."""
    if not fks:
        return None
    return "Foreign keys: " + ", ".join(
        f"{f.from_table}.{quote_ident(f.from_column)} -> {f.to_table}.{quote_ident(f.to_column)}"
        for f in fks)


def render_block(tables: Sequence[TableSchema], primary_keys: Mapping[str, list[str]],
                 fks: Sequence[ForeignKey],
                 keep: Mapping[str, Sequence[str]] | None = None, list_hidden: bool = True) -> str:
    """The schema text; ``keep`` (table -> column names) restricts it, in catalog order.

    Tables not in ``keep`` are listed on a final ``Other tables:`` line; foreign keys are shown only
    between rendered tables.
    """
    lines: list[str] = []
    shown: set[str] = set()
    for t in tables:
        if keep is not None and t.name not in keep:
            continue
        shown.add(t.name)
        wanted = None if keep is None else {c.lower() for c in keep[t.name]}
        key = (primary_keys.get(t.name) or [None])[0]
        lines.append(table_header(t))
        cols = [c for c in t.columns if wanted is None or c.name.lower() in wanted]
        lines += [column_line(c, c.name == key) for c in cols]
        if len(cols) < len(t.columns):
            left = len(t.columns) - len(cols)
            lines.append(f"  (+{left} more column{'' if left == 1 else 's'})")
    line = fk_line([f for f in fks if f.from_table in shown and f.to_table in shown])
    if line:
        lines.append(line)
    hidden = [t.name for t in tables if t.name not in shown]
    if hidden and list_hidden:
        lines.append("Other tables: " + ", ".join(hidden))
    return "\n".join(lines)
