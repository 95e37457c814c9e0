"""A server table's schema from the server's own catalog, and its statistics by bounded queries.

Columns, types, primary and foreign keys come from SQLAlchemy's inspector (the server's catalog:
``pg_catalog`` / ``information_schema``), not from guessing. Row counts are the planner's estimate
(``pg_class.reltuples``, ``information_schema.tables.table_rows``) where an exact ``count(*)`` would
be expensive, exact below ``EXACT_COUNT_LIMIT``. Null shares, distinct counts, min/max and sample
values are computed over the first ``SAMPLE_WINDOW`` rows only, with queries SQLAlchemy writes in the
server's dialect, so a billion-row table costs the same as a small one.

Types are shown as DuckDB names (``INTEGER``, ``VARCHAR``, ``DECIMAL(10,2)``): the Engineer writes
DuckDB SQL whatever the server, and the schema block reads the same for a file and a server.
"""

from __future__ import annotations

import datetime as _dt
import decimal
from typing import Any

import sqlalchemy as sa
import sqlglot
from sqlglot.errors import SqlglotError

from autotqa.catalog.models import ColumnInfo, ColumnSchema, TableInfo, TableSchema
from autotqa.catalog.stats import SAMPLE_WINDOW, can_be_key, clip_sample, is_numeric, is_temporal

#: Below this estimate the row count is exact (a count(*) of a million rows takes well under a second).
EXACT_COUNT_LIMIT = 1_000_000


def duckdb_type(col_type: sa.types.TypeEngine[Any], dialect: sa.Dialect, sqlglot_dialect: str) -> str:
    """The DuckDB name for a reflected column type.

    >>> from sqlalchemy.dialects import postgresql
    >>> d = postgresql.dialect()
    >>> [duckdb_type(t, d, "postgres") for t in (sa.String(20), sa.BigInteger(), sa.Numeric(10, 2),
    ...                                            sa.DateTime(timezone=True), postgresql.JSONB())]
    ['VARCHAR', 'BIGINT', 'DECIMAL(10,2)', 'TIMESTAMP WITH TIME ZONE', 'JSON']
    """
    checks: list[tuple[type[sa.types.TypeEngine[Any]], str]] = [
        (sa.Boolean, "BOOLEAN"), (sa.BigInteger, "BIGINT"), (sa.SmallInteger, "SMALLINT"),
        (sa.Integer, "INTEGER"), (sa.Float, "DOUBLE"), (sa.Date, "DATE"), (sa.Time, "TIME"),
        (sa.Interval, "INTERVAL"), (sa.String, "VARCHAR")]
    if isinstance(col_type, sa.DateTime):
        return "TIMESTAMP WITH TIME ZONE" if getattr(col_type, "timezone", False) else "TIMESTAMP"
    if isinstance(col_type, sa.Numeric) and not isinstance(col_type, sa.Float):
        p, s = getattr(col_type, "precision", None), getattr(col_type, "scale", None)
        return f"DECIMAL({p},{s or 0})" if p else "DECIMAL"
    for kind, name in checks:
        if isinstance(col_type, kind):
            return name
    try:
        text = col_type.compile(dialect=dialect)
    except Exception:  # noqa: BLE001 - a type SQLAlchemy cannot render (NullType): say so plainly
        return "UNKNOWN"
    try:
        return sqlglot.exp.DataType.build(text, dialect=sqlglot_dialect).sql("duckdb").upper()
    except (SqlglotError, ValueError):
        return text.upper()


def _plain(type_: str) -> bool:
    """Types whose values compare and group (no JSON, arrays, blobs, geometry)."""
    return is_numeric(type_) or is_temporal(type_) or type_ in ("VARCHAR", "BOOLEAN", "UUID")


def sample_text(value: Any) -> str:
    """A value as DuckDB would print it in the schema block.

    >>> sample_text(True), sample_text(decimal.Decimal("9.50")), sample_text(_dt.date(2024, 1, 5))
    ('true', '9.50', '2024-01-05')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat(sep=" ") if isinstance(value, _dt.datetime) else value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def reflect_table(insp: sa.Inspector, name: str, schema: str | None, sqlglot_dialect: str
                  ) -> tuple[list[ColumnInfo], list[str], list[dict[str, Any]]]:
    """Columns (DuckDB types), the declared primary key and the declared foreign keys of one table."""
    columns = [ColumnInfo(c["name"], duckdb_type(c["type"], insp.dialect, sqlglot_dialect))
               for c in insp.get_columns(name, schema=schema)]
    try:
        pk = list(insp.get_pk_constraint(name, schema=schema).get("constrained_columns") or [])
        fks = list(insp.get_foreign_keys(name, schema=schema))
    except NotImplementedError:  # views
        pk, fks = [], []
    return columns, pk, fks


def readable(conn: sa.Connection, dialect: str, schema: str | None, names: list[str]) -> list[str]:
    """The tables among ``names`` the user may SELECT from (MySQL lists no others to begin with)."""
    if dialect != "postgresql" or not names:
        return names
    sql = sa.text("SELECT has_table_privilege(format('%I.%I', coalesce(CAST(:schema AS text), current_schema()), "
                  "CAST(:name AS text)), 'SELECT')")
    return [n for n in names if conn.execute(sql, {"schema": schema, "name": n}).scalar_one()]


def table_facts(conn: sa.Connection, dialect: str, schema: str | None) -> list[tuple[str, int | None]]:
    """(table, the planner's row estimate) in the order the tables were created, as a file lists its
    tables; an estimate is None (or negative on PostgreSQL) when the server has none."""
    if dialect == "postgresql":
        sql = sa.text("SELECT c.relname, c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                      "WHERE n.nspname = coalesce(CAST(:schema AS text), current_schema()) "
                      "AND c.relkind IN ('r', 'p', 'm', 'v') ORDER BY c.oid")
    else:
        sql = sa.text("SELECT table_name, table_rows FROM information_schema.tables "
                      "WHERE table_schema = coalesce(:schema, database()) ORDER BY create_time, table_name")
    return [(str(n), None if r is None else int(r)) for n, r in conn.execute(sql, {"schema": schema})]


def count_rows(conn: sa.Connection, table: sa.TableClause, estimate: int | None) -> int:
    if estimate is not None and estimate >= EXACT_COUNT_LIMIT:
        return estimate
    return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def table_schema(conn: sa.Connection, info: TableInfo, table: sa.TableClause, sample_values: int) -> TableSchema:
    """Statistics of one server table, over at most ``SAMPLE_WINDOW`` rows (see the module docstring)."""
    window = sa.select(*table.c).select_from(table).limit(SAMPLE_WINDOW).subquery("w")
    plain = [_plain(c.type) for c in info.columns]
    aggs: list[Any] = [sa.func.count()]
    for c, ok in zip(info.columns, plain, strict=True):
        col = window.c[c.name]
        ordered = is_numeric(c.type) or is_temporal(c.type)
        aggs += [sa.func.count(col),
                 sa.func.count(sa.distinct(col)) if ok and can_be_key(c.type) else sa.null(),
                 sa.func.min(col) if ordered else sa.null(),
                 sa.func.max(col) if ordered else sa.null(),
                 # Floats count as keys only when every value is whole (ids stored as REAL), as in stats.py.
                 sa.func.min(sa.case((col == sa.func.floor(col), 1), else_=0)) if c.type in ("DOUBLE", "REAL", "FLOAT")
                 else sa.null()]
    row = conn.execute(sa.select(*aggs).select_from(window)).one()
    seen = int(row[0])  # rows in the window
    complete = seen >= info.n_rows  # the window is the whole table: distinct counts are exact
    columns = []
    for i, (c, ok) in enumerate(zip(info.columns, plain, strict=True)):
        non_null, distinct, lo, hi, whole = row[1 + 5 * i: 6 + 5 * i]
        samples = _samples(conn, window.c[c.name], sample_values) if ok else []
        columns.append(ColumnSchema(
            name=c.name, type=c.type, n_rows=info.n_rows,
            null_share=0.0 if seen == 0 else 1.0 - int(non_null) / seen,
            samples=samples, min=None if lo is None else sample_text(lo), max=None if hi is None else sample_text(hi),
            n_distinct=None if distinct is None else int(distinct),
            unique=complete and whole != 0 and distinct is not None and int(distinct) == seen == int(non_null)
            and seen > 1))
    return TableSchema(name=info.name, display_name=info.display_name, source=info.source,
                       n_rows=info.n_rows, columns=columns)


def _samples(conn: sa.Connection, col: sa.ColumnElement[Any], n: int) -> list[str]:
    """Up to ``n`` most frequent values (ties by value) of one column within the window."""
    if n <= 0:
        return []
    freq = sa.func.count().label("freq")
    query = (sa.select(col, freq).where(col.is_not(None)).group_by(col)
             .order_by(sa.desc("freq"), col).limit(n))
    return [clip_sample(sample_text(v)) for v, _ in conn.execute(query)]
