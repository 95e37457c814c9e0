"""The safe SQL executor: guard a model-written query, run it on the frozen catalog connection with a
row cap and a wall-clock timeout, and return an ExecutionResult (mistakes are results, not exceptions).

>>> import duckdb
>>> con = duckdb.connect()
>>> _ = con.execute("CREATE TABLE people AS SELECT * FROM (VALUES (1, 'ann'), (2, 'bob')) v(id, name)")
>>> ex = SQLExecutor(con, {"people": ["id", "name"]}, ExecutorConfig(row_cap=1))
>>> r = ex.run("SELECT name FROM people ORDER BY id")
>>> r.rows, r.n_rows, r.truncated
([['ann']], 2, True)
>>> ex.run("SELECT nme FROM people").error
'unknown column "nme" in table "people" — did you mean "name"?'
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import duckdb

from ..config import ExecutorConfig
from ..errors import SQLError
from .base import ExecutionResult, to_jsonable
from .sql_guard import SQLGuard
from .watchdog import Watchdog

if TYPE_CHECKING:
    from ..catalog import Catalog

#: DuckDB exception class -> SQLError kind.
_KINDS = {
    "InterruptException": "timeout",
    "BinderException": "binder",
    "CatalogException": "unknown_table",
    "ParserException": "parse",
    "PermissionException": "forbidden_source",
    "OutOfMemoryException": "memory",
    "ConversionException": "conversion",
    "InvalidInputException": "invalid_input",
    "OutOfRangeException": "out_of_range",
    "DivisionByZeroException": "division_by_zero",
}
#: Rows fetched at a time: the byte cap is checked between fetches.
_FETCH_ROWS = 256
_FENCE = re.compile(r"^\s*```[A-Za-z]*\s*\n?(.*?)\n?```\s*$", re.S)


def strip_fences(code: str) -> str:
    """Drop a surrounding Markdown code fence, as models often add one.

    >>> strip_fences("```sql\\nSELECT 1\\n```")
    'SELECT 1'
    """
    match = _FENCE.match(code)
    return (match.group(1) if match else code).strip()


def duckdb_error(exc: duckdb.Error, *, timeout_s: float | None = None) -> SQLError:
    """Turn a DuckDB exception into a one-or-two-line SQLError an LLM can act on.

    The ``LINE 1: ...`` caret block is dropped; the "Candidate bindings" line DuckDB adds is kept.

    >>> duckdb_error(duckdb.BinderException('Binder Error: Referenced column "x" not found\\n\\nLINE 1: x'))
    SQLError('Referenced column "x" not found')
    """
    kind = _KINDS.get(type(exc).__name__, "runtime")
    if kind == "timeout":
        return SQLError(f"query interrupted after {timeout_s:g} s (time limit)", kind="timeout",
                        hint="add filters or aggregate before joining; avoid cross joins")
    if kind == "memory":
        first = (str(exc).splitlines() or [""])[0]
        return SQLError(f"query ran out of memory ({re.sub(r'^[A-Za-z ]*Error: ', '', first)})", kind="memory",
                        hint="filter or aggregate earlier, select fewer columns, avoid cross joins")
    lines = []
    for line in str(exc).splitlines():
        if line.startswith("LINE "):
            break
        if line.strip():
            lines.append(line.strip())
    text = "; ".join(lines) or type(exc).__name__
    text = re.sub(r"^[A-Za-z ]*Error: ", "", text)
    return SQLError(text, kind=kind)


class SQLExecutor:
    """Runs read-only DuckDB SQL against a catalog connection.

    ``con`` should be frozen (external access disabled, configuration locked): the guard is the first
    line of defence, the connection the second. Each run uses its own cursor so a timeout interrupts
    only that query; one watchdog thread per executor does the interrupting.
    """

    language = "sql"

    def __init__(self, con: duckdb.DuckDBPyConnection, columns_by_table: Mapping[str, Sequence[str]],
                 config: ExecutorConfig | None = None) -> None:
        # A handle of our own: DuckDB refuses (instead of waiting) a second call on a connection
        # object that is busy, and the pandas feeder thread opens cursors on ``con`` meanwhile.
        self._con = con.cursor()
        # DuckDB numbers a table's rows in load order (``rowid``): for a file, its row order, which
        # questions such as "the one listed after X" need (the schema says so for files).
        self._guard = SQLGuard(columns_by_table, pseudo_columns=("rowid",))
        self.config = config or ExecutorConfig()
        self._watchdog = Watchdog()

    @classmethod
    def from_catalog(cls, catalog: Catalog, config: ExecutorConfig | None = None) -> SQLExecutor:
        return cls(catalog.cursor(), catalog.columns_by_table(), config)

    def check(self, sql: str, read: str | None = None) -> str:
        """The DuckDB SQL that would run, or SQLError (also when DuckDB's own parser disagrees)."""
        checked = self._guard.check(strip_fences(sql), read)
        # Defence in depth: DuckDB's parser must also see exactly one SELECT.
        try:
            statements = self._con.extract_statements(checked)
        except duckdb.Error as exc:
            raise duckdb_error(exc) from None
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            raise SQLError("only a single read-only SELECT may run", kind="not_read_only")
        return checked

    def run(self, code: str, read: str | None = None) -> ExecutionResult:
        """Check and run ``code``; every failure comes back as ``ok=False`` with a kind and message.

        ``read`` names the dialect the SQL is written in when the caller knows it (e.g. ``"sqlite"``).
        The guard's time counts against ``sql_timeout_s``: the query gets what is left of it (the
        guard's work is bounded by its size limits, so it cannot use it all up on its own).
        """
        start = time.perf_counter()
        try:
            sql = self.check(code, read)
        except SQLError as exc:
            return ExecutionResult.failure("sql", code, exc.kind, str(exc), time.perf_counter() - start)
        remaining = self.config.sql_timeout_s - (time.perf_counter() - start)
        try:
            if remaining <= 0:
                raise SQLError(f"query interrupted after {self.config.sql_timeout_s:g} s (time limit)",
                               kind="timeout", hint="write a shorter, simpler query")
            columns, rows, n_rows = self._execute(sql, remaining)
        except SQLError as exc:
            return ExecutionResult.failure("sql", sql, exc.kind, str(exc), time.perf_counter() - start)
        cap = self.config.row_cap
        return ExecutionResult(
            ok=True, language="sql", columns=columns, rows=rows[:cap],
            n_rows=n_rows, truncated=n_rows > cap, elapsed_s=time.perf_counter() - start, code=sql)

    def _execute(self, sql: str, timeout: float) -> tuple[list[str], list[list[Any]], int]:
        cap = self.config.row_cap
        cursor = self._con.cursor()
        token = self._watchdog.watch(cursor, timeout)
        try:
            try:
                # An outer LIMIT lets DuckDB stop early (top-N instead of a full sort) and bounds
                # memory; it keeps the inner ORDER BY. Newlines: a trailing "-- comment" in sql
                # must not swallow the bracket. Duplicate column names come back as DuckDB names
                # them in a subquery (id, id_1).
                cursor.execute(f"SELECT * FROM (\n{sql}\n) AS _capped LIMIT {cap + 1}")
                columns = [d[0] for d in cursor.description or []]
                rows = self._fetch_capped(cursor, cap + 1)
            except duckdb.Error as exc:
                raise duckdb_error(exc, timeout_s=self.config.sql_timeout_s) from None
            n_rows = len(rows)
            if n_rows > cap:
                # Counting re-runs the query, so only pay for it when the result was cut.
                try:
                    n_rows = cursor.execute(f"SELECT count(*) FROM (\n{sql}\n) AS _counted").fetchone()[0]
                except duckdb.Error:
                    pass  # out of time while counting: the rows are good, the total a lower bound
            return columns, rows, n_rows
        finally:
            self._watchdog.done(token)
            cursor.close()

    def _fetch_capped(self, cursor: duckdb.DuckDBPyConnection, max_rows: int) -> list[list[Any]]:
        """Up to ``max_rows`` rows as JSON-ready lists; SQLError ``too_large`` once their JSON passes
        ``result_max_bytes`` (a row cap alone let 1,000 rows of 200 KB each come back whole)."""
        limit = self.config.result_max_bytes
        rows: list[list[Any]] = []
        size = row_size = 0
        while len(rows) < max_rows:
            # Rows of a size seen so far that still fit: one wide row must not pull in 256 more.
            fitting = (limit - size) // row_size + 1 if row_size else 1
            chunk = cursor.fetchmany(max(1, min(_FETCH_ROWS, max_rows - len(rows), fitting)))
            if not chunk:
                break
            for raw in chunk:
                row = [to_jsonable(v) for v in raw]
                row_size = len(json.dumps(row, ensure_ascii=False, default=str).encode())
                size += row_size
                if size > limit:
                    raise SQLError(
                        f"result too large: more than {limit:,} bytes in the first {len(rows) + 1:,} rows",
                        kind="too_large", hint="select fewer columns, aggregate, or add LIMIT")
                rows.append(row)
        return rows
