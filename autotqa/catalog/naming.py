"""Safe, unique SQL names for tables and columns.

Tables get *plain* identifiers (lowercase ``[a-z0-9_]``, never starting with a digit, never a keyword
that DuckDB or sqlglot refuse unquoted) because small models rarely quote correctly. The original name
is kept as the table's ``display_name``.

Columns keep their original spelling (DuckDB identifiers are case-insensitive, and benchmark SQL such as
Spider's uses the original names); only names DuckDB itself would reject are fixed, with DuckDB's own
CSV convention so every source behaves alike: an empty name becomes ``column<i>`` (0-based position,
zero-padded to the width of the last index: ``column01`` in a 12-column table) and a repeated name
gets ``_1``, ``_2``, ... in order of appearance.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

#: Keywords that break as unquoted table names in DuckDB or in sqlglot's duckdb dialect (probed from
#: ``duckdb_keywords()``: each was tried as ``SELECT k.x FROM k JOIN k AS b ON k.x = b.x``).
RESERVED = frozenset("""
all alter analyse analyze and anti any array as asc asof asymmetric at authorization between binary
both by case cast check collate collation column concurrently constraint create cross default
deferrable desc describe distinct do drop else end except false fetch for force foreign freeze from
full glob grant group having ilike in initially inner insert install intersect into is isnull join
lambda lateral leading left like limit map natural not notnull null offset on only or order outer
overlaps pivot pivot_longer pivot_wider placing positional primary qualify references returning revoke
right rollback select semi show similar some summarize symmetric table tablesample then to trailing
true union unique unpack unpivot using values variadic verbose when where window with
""".split())

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def safe_table_name(raw: str, taken: Iterable[str] = ()) -> str:
    """A plain lowercase identifier for ``raw`` that is not in ``taken``.

    >>> safe_table_name("Sales Report (2024).csv")
    'sales_report_2024_csv'
    >>> safe_table_name("2024-sales")
    't_2024_sales'
    >>> safe_table_name("order")
    't_order'
    >>> safe_table_name("Orders", taken={"orders", "orders_2"})
    'orders_3'
    """
    base = re.sub(r"[^a-z0-9_]+", "_", raw.strip().lower())
    base = re.sub(r"_+", "_", base).strip("_") or "table"
    if base[0].isdigit() or base in RESERVED:
        base = f"t_{base}"
    used = {t.lower() for t in taken}
    name, n = base, 1
    while name in used:
        n += 1
        name = f"{base}_{n}"
    return name


def dedupe_columns(names: Sequence[object]) -> list[str]:
    """Column names DuckDB accepts, following DuckDB's own CSV reader convention.

    >>> dedupe_columns(["a", "a", "", "b", None, "a"])
    ['a', 'a_1', 'column2', 'b', 'column4', 'a_2']
    >>> dedupe_columns([1, ("x", "y")])
    ['1', 'x_y']
    >>> dedupe_columns(["a", ""] + list("cdefghijkl"))[1]  # zero-padded to the widest index, as DuckDB
    'column01'
    """
    out: list[str] = []
    seen: set[str] = set()
    width = len(str(max(len(names) - 1, 0)))
    for i, raw in enumerate(names):
        if isinstance(raw, tuple):  # pandas MultiIndex columns
            raw = "_".join(str(p) for p in raw if str(p).strip())
        name = "" if raw is None else str(raw)
        if not name.strip():
            name = f"column{i:0{width}d}"
        # DuckDB compares identifiers case-insensitively, so "A" and "a" collide too.
        candidate, n = name, 0
        while candidate.lower() in seen:
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate.lower())
        out.append(candidate)
    return out


def quote_ident(name: str) -> str:
    """``name`` as it must be written in DuckDB SQL: bare when that works, else double-quoted.

    >>> quote_ident("Department_ID")
    'Department_ID'
    >>> quote_ident("First Name")
    '"First Name"'
    >>> quote_ident("order")
    '"order"'
    >>> quote_ident('a"b')
    '"a""b"'
    """
    if _PLAIN.match(name) and name.lower() not in RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


def sql_string(value: str) -> str:
    """A single-quoted SQL string literal.

    >>> sql_string("O'Brien")
    "'O''Brien'"
    """
    return "'" + value.replace("'", "''") + "'"
