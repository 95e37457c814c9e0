"""Column statistics for the schema block, in a fixed, small number of queries per table.

Per table and batch of ``BATCH_COLUMNS`` columns: one aggregate pass (non-null counts, approximate
distinct counts, min/max), one exact ``count(DISTINCT)`` pass only for columns that might be unique
(key candidates), and one bounded query for sample values over the first ``SAMPLE_WINDOW`` rows.
Samples are the most frequent values, ties broken by value, so they are deterministic (DuckDB keeps
insertion order for a plain scan with LIMIT); nothing is sampled at random.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import TypeVar

import duckdb

from autotqa.catalog.models import ColumnInfo, ColumnSchema, TableInfo, TableSchema
from autotqa.catalog.naming import quote_ident

#: Rows (from the start of the table) that sample values are drawn from: bounds the cost on big tables.
SAMPLE_WINDOW = 100_000
#: Columns per statistics query: one query per column (or one UNION ALL branch per column in a single
#: query) made a 10,000-column file take minutes and gigabytes; a fixed batch keeps each query small.
BATCH_COLUMNS = 64
#: Sample values longer than this are cut (with "...") to keep the schema block compact.
MAX_SAMPLE_CHARS = 40

T = TypeVar("T")

_NUMERIC = re.compile(r"(U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?|FLOAT|DOUBLE|REAL|DECIMAL.*|VARINT|BIGNUM)\Z")
_TEMPORAL = re.compile(r"(DATE|TIME.*|TIMESTAMP.*|INTERVAL)\Z")
_NESTED = re.compile(r".*(\[\d*\]|^STRUCT|^MAP|^UNION).*")


def is_numeric(type_: str) -> bool:
    """Whether a DuckDB type is a number.

    >>> is_numeric("DECIMAL(18,3)"), is_numeric("UBIGINT"), is_numeric("VARCHAR")
    (True, True, False)
    """
    return bool(_NUMERIC.match(type_.upper()))


def is_temporal(type_: str) -> bool:
    """Whether a DuckDB type is a date, time, timestamp or interval.

    >>> is_temporal("TIMESTAMP WITH TIME ZONE"), is_temporal("DATE"), is_temporal("BIGINT")
    (True, True, False)
    """
    return bool(_TEMPORAL.match(type_.upper()))


def is_nested(type_: str) -> bool:
    """Whether a DuckDB type is a list, struct, map or union.

    >>> is_nested("INTEGER[]"), is_nested("STRUCT(a INTEGER)"), is_nested("VARCHAR")
    (True, True, False)
    """
    return bool(_NESTED.match(type_.upper()))


def can_be_key(type_: str) -> bool:
    """Whether a column of this type may serve as a key (not boolean or nested).

    Floating point stays allowed: SQLite files often store integer ids as REAL (Spider's ``hr_1``).

    >>> can_be_key("BIGINT"), can_be_key("BOOLEAN"), can_be_key("VARCHAR")
    (True, False, True)
    """
    t = type_.upper()
    return not (t == "BOOLEAN" or is_nested(t))


def _is_float(type_: str) -> bool:
    return type_.upper() in ("FLOAT", "DOUBLE", "REAL")


def clip_sample(value: str) -> str:
    """One-line sample text, cut to ``MAX_SAMPLE_CHARS``.

    >>> clip_sample("a\\nb")
    'a b'
    >>> len(clip_sample("x" * 100)), clip_sample("x" * 100)[-3:]
    (40, '...')
    """
    value = " ".join(value.split()) if any(ch in value for ch in "\n\r\t") else value
    return value if len(value) <= MAX_SAMPLE_CHARS else value[: MAX_SAMPLE_CHARS - 3] + "..."


def table_schema(con: duckdb.DuckDBPyConnection, info: TableInfo, sample_values: int) -> TableSchema:
    """Statistics of one loaded table (see the module docstring for the queries it runs)."""
    t = quote_ident(info.name)
    cols = info.columns
    n_rows = int(con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0])
    per_col: list[tuple] = []
    for batch in _batches(cols):
        aggs = []
        for c in batch:
            q = quote_ident(c.name)
            ordered = is_numeric(c.type) or is_temporal(c.type)
            aggs += [f"count({q})",
                     "NULL" if is_nested(c.type) else f"approx_count_distinct({q})",
                     f"CAST(min({q}) AS VARCHAR)" if ordered else "NULL",
                     f"CAST(max({q}) AS VARCHAR)" if ordered else "NULL",
                     # Floats count as keys only when every value is whole (ids stored as REAL).
                     f"bool_and({q} = trunc({q}))" if _is_float(c.type) else "NULL"]
        row = con.execute(f"SELECT {', '.join(aggs)} FROM {t}").fetchall()[0]
        per_col += [row[5 * i: 5 + 5 * i] for i in range(len(batch))]

    distinct = _exact_distinct(con, t, cols, per_col, n_rows)
    samples = _samples(con, t, cols, sample_values)
    columns = []
    for i, (c, (non_null, approx, lo, hi, _)) in enumerate(zip(cols, per_col, strict=True)):
        exact = distinct.get(i)
        columns.append(ColumnSchema(
            name=c.name, type=c.type, n_rows=n_rows,
            null_share=0.0 if n_rows == 0 else 1.0 - int(non_null) / n_rows,
            samples=samples.get(i, []), min=lo, max=hi,
            n_distinct=exact if exact is not None else (None if approx is None else int(approx)),
            unique=exact is not None and exact == n_rows > 1))  # one row proves nothing
    return TableSchema(name=info.name, display_name=info.display_name, source=info.source,
                       n_rows=n_rows, columns=columns)


def _exact_distinct(con: duckdb.DuckDBPyConnection, t: str, cols: list[ColumnInfo],
                    per_col: list[tuple], n_rows: int) -> dict[int, int]:
    """Exact distinct counts, only for null-free key-typed columns whose estimate is near ``n_rows``
    (and, for floats, whose values are all whole numbers)."""
    # HyperLogLog is off by a few percent; 0.9 leaves room so no truly unique column is missed.
    maybe = [i for i, (c, (non_null, approx, _, _, whole)) in enumerate(zip(cols, per_col, strict=True))
             if n_rows > 1 and non_null == n_rows and can_be_key(c.type) and whole is not False
             and approx is not None and approx >= 0.9 * n_rows]
    if not maybe:
        return {}
    out: dict[int, int] = {}
    for batch in _batches(maybe):
        exprs = ", ".join(f"count(DISTINCT {quote_ident(cols[i].name)})" for i in batch)
        row = con.execute(f"SELECT {exprs} FROM {t}").fetchall()[0]
        out.update({i: int(v) for i, v in zip(batch, row, strict=True)})
    return out


def _samples(con: duckdb.DuckDBPyConnection, t: str, cols: list[ColumnInfo],
             n: int) -> dict[int, list[str]]:
    """Up to ``n`` most frequent values per column (ties by value) within the sample window."""
    if n <= 0 or not cols:
        return {}
    # Aliases no real column or table is likely to share (a column named "r" broke plain ones).
    out: dict[int, list[str]] = {}
    for batch in _batches(list(enumerate(cols))):
        parts = []
        for i, c in batch:
            q = quote_ident(c.name)
            parts.append(
                f"(SELECT {i} AS __i, row_number() OVER (ORDER BY count(*) DESC, {q}) AS __r, "
                f"CAST({q} AS VARCHAR) AS __v FROM __window WHERE {q} IS NOT NULL GROUP BY {q} "
                f"QUALIFY __r <= {n})")
        sql = (f"WITH __window AS (SELECT * FROM {t} LIMIT {SAMPLE_WINDOW}) "
               f"SELECT __i, __v FROM ({' UNION ALL '.join(parts)}) ORDER BY __i, __r")
        for i, v in con.execute(sql).fetchall():
            out.setdefault(i, []).append(clip_sample(v))
    return out


def _batches(items: Sequence[T]) -> Iterator[Sequence[T]]:
    """``items`` in slices of ``BATCH_COLUMNS``.

    >>> [len(b) for b in _batches(list(range(150)))]
    [64, 64, 22]
    """
    for start in range(0, len(items), BATCH_COLUMNS):
        yield items[start:start + BATCH_COLUMNS]
