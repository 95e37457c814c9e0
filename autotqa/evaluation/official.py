"""Spider execution accuracy the way the official evaluator computes it.

Today's metric (``correct`` in a result record) scores the rows the user actually got: the
prediction as autotqa's DuckDB executor ran it on its copy of the database. Published Spider numbers
run the *predicted query* on the source SQLite file instead. This module does the latter so the two
can sit side by side:

1. the predicted query runs on the SQLite file **as written** (what the official evaluator does);
2. only when SQLite refuses it (a DuckDB-only cast ``x::INT``, function or syntax) is it transpiled by
   sqlglot from DuckDB to SQLite and run once more; the record says which text ran. sqlglot keeps
   DuckDB's meaning where the dialects differ (``a / b`` becomes a REAL division), so a transpiled
   query can score where the same text as written would not;
3. a query naming a table the catalog had to make safe (``order`` became ``t_order``) is transpiled
   at once, with those names mapped back to the file's own, so it reads the same tables on SQLite;
4. the rows are compared with the gold rows by :func:`~autotqa.evaluation.execution.results_match`,
   the same comparison as today's metric.

The query is untrusted model text: it runs through
:func:`~autotqa.evaluation.execution.run_untrusted` (read-only, reads only, deadline, row cap).

>>> renames = {"t_order": "order"}
>>> to_sqlite("SELECT o.id::INT FROM t_order AS o", renames)
'SELECT CAST(o.id AS INTEGER) FROM "order" AS o'
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlglot
from pydantic import BaseModel
from sqlglot import exp

from ..catalog.naming import safe_table_name
from ..executors.base import to_jsonable
from .execution import results_match, run_untrusted

#: Rows kept in a record's ``official`` summary (as for the gold rows).
KEEP_ROWS = 20


class OfficialScore(BaseModel):
    """The predicted query scored on the source SQLite file.

    ``sql`` is the text SQLite ran (``None`` when there was nothing to run); ``transpiled`` says it
    is sqlglot's DuckDB-to-SQLite rewrite, because SQLite refused the query as written.
    """

    correct: bool
    sql: str | None = None
    transpiled: bool = False
    error: str | None = None
    n_rows: int = 0
    rows: list[list[Any]] = []

    def summary(self) -> dict[str, Any]:
        """The record's ``official`` field (``correct`` is stored beside it as ``official_correct``)."""
        return self.model_dump(exclude={"correct"})


def catalog_renames(db_path: str | Path) -> dict[str, str]:
    """Catalog name -> SQLite name for every table the catalog could not keep as it is.

    Mirrors the catalog's naming: each table, in creation order, gets :func:`safe_table_name` given
    the names taken before it (the catalog lowercases; SQLite names are case-insensitive, so only
    real renames matter).
    """
    uri = f"file:{Path(db_path).resolve()}?mode=ro&immutable=1"
    with sqlite3.connect(uri, uri=True) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid")]
    taken: list[str] = []
    renames: dict[str, str] = {}
    for name in names:
        safe = safe_table_name(name, taken)
        taken.append(safe)
        if safe != name.lower():
            renames[safe] = name
    return renames


def _rename_tables(tree: exp.Expression, renames: Mapping[str, str]) -> exp.Expression:
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}

    def rename(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and not node.args.get("db"):
            key = node.name.lower()
            if key in renames and key not in ctes:
                node.set("this", exp.to_identifier(renames[key], quoted=True))
        return node

    return tree.transform(rename)


def to_sqlite(sql: str, renames: Mapping[str, str] | None = None) -> str:
    """``sql`` (DuckDB) rewritten by sqlglot for SQLite, with catalog table names mapped back.

    Raises :class:`sqlglot.errors.SqlglotError` when the text does not parse as DuckDB.
    """
    tree = sqlglot.parse_one(sql, read="duckdb")
    if renames:
        tree = _rename_tables(tree, renames)
    return tree.sql(dialect="sqlite")


def _uses_renamed(sql: str, renames: Mapping[str, str]) -> bool:
    """True when ``sql`` reads a table under a name the catalog gave it (so SQLite cannot run it as is)."""
    if not renames:
        return False
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.SqlglotError:
        return False
    return any(t.name.lower() in renames for t in tree.find_all(exp.Table))


def score_official(db_path: str | Path, sql: str | None, gold_rows: Sequence[Sequence[Any]], *,
                   ordered: bool, timeout_s: float = 10.0) -> OfficialScore:
    """Run the predicted ``sql`` on the SQLite file (as written, else transpiled) and compare.

    >>> import sqlite3, tempfile, os
    >>> db = os.path.join(tempfile.mkdtemp(), "t.sqlite")
    >>> with sqlite3.connect(db) as c: _ = c.execute("CREATE TABLE t (x TEXT)"); _ = c.execute("INSERT INTO t VALUES ('7')")
    >>> s = score_official(db, "SELECT x::INT + 1 FROM t", [(8,)], ordered=False)
    >>> (s.correct, s.transpiled, s.sql)
    (True, True, 'SELECT CAST(x AS INTEGER) + 1 FROM t')
    """
    if not sql or not sql.strip():
        return OfficialScore(correct=False, error="no_sql: the prediction has no SQL query")
    renames = catalog_renames(db_path)
    first: sqlite3.Error | None = None
    if not _uses_renamed(sql, renames):
        try:
            rows = run_untrusted(db_path, sql, timeout_s=timeout_s)
            return _compared(rows, gold_rows, ordered, sql, transpiled=False)
        except sqlite3.Error as exc:
            first = exc
    try:
        rewritten = to_sqlite(sql, renames)
    except sqlglot.errors.SqlglotError as exc:
        return OfficialScore(correct=False, sql=sql, error=_message(first) if first else f"ParseError: {exc}")
    if first is not None and rewritten == sql:  # sqlglot changed nothing: the first error stands
        return OfficialScore(correct=False, sql=sql, error=_message(first))
    try:
        rows = run_untrusted(db_path, rewritten, timeout_s=timeout_s)
    except sqlite3.Error as exc:
        return OfficialScore(correct=False, sql=rewritten, transpiled=True, error=_message(exc))
    return _compared(rows, gold_rows, ordered, rewritten, transpiled=True)


def _compared(rows: list[tuple[Any, ...]], gold_rows: Sequence[Sequence[Any]], ordered: bool, sql: str,
              *, transpiled: bool) -> OfficialScore:
    return OfficialScore(correct=results_match(gold_rows, rows, ordered=ordered), sql=sql,
                         transpiled=transpiled, n_rows=len(rows),
                         rows=[[to_jsonable(v) for v in r] for r in rows[:KEEP_ROWS]])


def _message(exc: sqlite3.Error) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
