"""The SQL executor for a database server: the query runs there (push-down), not in DuckDB.

The Engineer writes DuckDB SQL whatever the source; nothing above the executors learns which engine
runs it. Here a query goes through

1. ``server_guard.check_text`` on the text as written;
2. ``SQLGuard`` (the same checks as for files: one read-only SELECT over the catalog's tables,
   functions by allow-list, "did you mean" for unknown names);
3. sqlglot: parsed as DuckDB, table names mapped back to the server's (``product_lines`` ->
   ``"Product Lines"``, qualified with ``?schema=``), known columns written as the server spells
   them (PostgreSQL folds unquoted names to lower case), a ``LIMIT`` of the row cap + 1, and
   transpiled to the server's dialect without comments;
4. ``server_guard`` on the tree and on the text sent;
5. a read-only transaction with a statement timeout (``statement_timeout``; ``max_execution_time``
   on MySQL/TiDB, ``max_statement_time`` on MariaDB) plus a client-side cancel shortly after it,
   at most row cap + 1 rows fetched and ``result_max_bytes`` of them.

Mistakes of the model (unknown column, bad cast, timeout) come back as results with ``ok=False``;
a lost connection is a program error (``SourceUnavailableError``).
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

from ..config import ExecutorConfig
from ..errors import SQLError
from . import server_guard
from .base import ExecutionResult, to_jsonable
from .sql import SQLExecutor, strip_fences
from .sql_guard import SQLGuard
from .watchdog import Watchdog

if TYPE_CHECKING:
    from ..catalog.server import ServerCatalog

#: Seconds the client waits past the server's own statement timeout before cancelling itself.
CLIENT_GRACE_S = 2.0
#: SQLSTATE (PostgreSQL) / error number (MySQL) -> SQLError kind.
_PG_KINDS = {"42703": "unknown_column", "42P01": "unknown_table", "42601": "parse", "57014": "timeout",
             "25006": "not_read_only", "22012": "division_by_zero", "22P02": "conversion",
             "42804": "conversion", "22007": "conversion", "22008": "out_of_range", "22003": "out_of_range",
             "42883": "binder", "42803": "binder", "42702": "binder", "42501": "forbidden_source"}
_MY_KINDS = {1054: "unknown_column", 1146: "unknown_table", 1064: "parse", 3024: "timeout", 1969: "timeout",
             1317: "timeout", 1792: "not_read_only", 1305: "binder", 1055: "binder", 1052: "binder",
             1142: "forbidden_source", 1365: "division_by_zero"}


def sql_executor_for(catalog: Any, config: ExecutorConfig | None = None) -> Any:
    """The SQL executor that fits the catalog: push-down for a server, DuckDB for loaded files."""
    from ..catalog.server import ServerCatalog

    if isinstance(catalog, ServerCatalog):
        return ServerSQLExecutor(catalog, config)
    return SQLExecutor.from_catalog(catalog, config)


class _Cancel:
    """What the watchdog calls when a query overstays: cancel it from outside its thread."""

    def __init__(self, catalog: ServerCatalog, dbapi_conn: Any) -> None:
        self._catalog, self._conn = catalog, dbapi_conn

    def interrupt(self) -> None:
        try:
            if self._catalog.dialect == "postgresql":
                cancel = getattr(self._conn, "cancel_safe", None) or self._conn.cancel
                cancel()
            else:
                with self._catalog.engine.connect() as other:
                    other.exec_driver_sql(f"KILL QUERY {int(self._conn.thread_id())}")
        except Exception:  # noqa: BLE001 - the server's own timeout still stands behind this one
            pass


class ServerSQLExecutor:
    """Runs guarded, transpiled, read-only SQL on a ``ServerCatalog``'s server."""

    language = "sql"

    def __init__(self, catalog: ServerCatalog, config: ExecutorConfig | None = None) -> None:
        self.catalog = catalog
        self.config = config or ExecutorConfig()
        self._guard = SQLGuard(catalog.columns_by_table())
        self._write = catalog.target.sqlglot_dialect
        self._watchdog = Watchdog()
        spellings: dict[str, set[str]] = {}
        for cols in catalog.columns_by_table().values():
            for c in cols:
                spellings.setdefault(c.lower(), set()).add(c)
        # Only names spelled one way across the tables can be respelled without knowing the table.
        self._column_spelling = {low: next(iter(s)) for low, s in spellings.items() if len(s) == 1}

    def check(self, sql: str, read: str | None = None) -> str:
        """The SQL that would be sent to the server (its dialect, capped), or SQLError."""
        return self._translate(sql, read)[0]

    def _translate(self, code: str, read: str | None) -> tuple[str, str]:
        """(capped SQL to run, uncapped SQL to count with)."""
        text = strip_fences(code)
        server_guard.check_text(text)
        checked = self._guard.check(text, read)
        try:
            tree = sqlglot.parse_one(checked, read="duckdb")
        except SqlglotError as exc:  # the guard parsed it: only a sqlglot round-trip gap lands here
            raise SQLError(f"could not parse the query: {str(exc).splitlines()[0]}", kind="parse") from None
        server_guard.check_tree(tree)
        self._to_server_names(tree)
        full = self._render(tree)
        capped = self._render(self._capped(tree.copy()))
        server_guard.check_text(capped)
        return capped, full

    def _render(self, tree: exp.Expression) -> str:
        try:
            # Constructs with no exact equivalent (NULLS LAST by position on MySQL) are written as
            # close as sqlglot can, silently: a warning on stderr would reach the person, not the model.
            return tree.sql(dialect=self._write, comments=False, unsupported_level=ErrorLevel.IGNORE)
        except SqlglotError as exc:
            raise SQLError(f"cannot write this query for {self.catalog.dialect}: {str(exc).splitlines()[0]}",
                           kind="unsupported", hint="use more common SQL functions and syntax") from None

    def _to_server_names(self, tree: exp.Expression) -> None:
        ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
        lowered = {s.lower(): s for s in self.catalog.server_name}
        schema = self.catalog.target.schema
        for table in list(tree.find_all(exp.Table)):
            if not isinstance(table.this, exp.Identifier) or table.name.lower() in ctes:
                continue
            safe = lowered.get(table.name.lower())
            if safe is None:
                continue
            if not table.alias:  # "product_lines.x" must still resolve once the name changes
                table.set("alias", exp.TableAlias(this=exp.to_identifier(table.name)))
            table.set("this", exp.to_identifier(self.catalog.server_name[safe], quoted=True))
            if schema:
                table.set("db", exp.to_identifier(schema, quoted=True))
        for column in tree.find_all(exp.Column):
            ident = column.this
            if isinstance(ident, exp.Identifier):
                spelled = self._column_spelling.get(ident.name.lower())
                if spelled is not None:
                    column.set("this", exp.to_identifier(spelled, quoted=True))

    def _capped(self, tree: exp.Expression) -> exp.Expression:
        """The query with a LIMIT of row cap + 1, unless it already has a smaller literal one."""
        cap = self.config.row_cap + 1
        limit = tree.args.get("limit")
        if isinstance(limit, exp.Limit):
            value = limit.expression
            if isinstance(value, exp.Literal) and value.is_int and int(value.this) <= cap:
                return tree
            if not isinstance(value, exp.Literal):
                return tree  # an expression: the fetch below still stops at the cap
        if isinstance(tree, exp.Select | exp.SetOperation):
            tree.set("limit", exp.Limit(expression=exp.Literal.number(cap)))
        return tree

    # -- running -------------------------------------------------------------------------------

    def run(self, code: str, read: str | None = None) -> ExecutionResult:
        """Check and run ``code`` on the server; every model mistake comes back as ``ok=False``."""
        start = time.perf_counter()
        try:
            sql, full = self._translate(code, read)
        except SQLError as exc:
            return ExecutionResult.failure("sql", code, exc.kind, str(exc), time.perf_counter() - start)
        try:
            columns, rows, n_rows = self._execute(sql, full)
        except SQLError as exc:
            return ExecutionResult.failure("sql", sql, exc.kind, str(exc), time.perf_counter() - start)
        cap = self.config.row_cap
        return ExecutionResult(ok=True, language="sql", columns=columns, rows=rows[:cap], n_rows=n_rows,
                               truncated=n_rows > cap, elapsed_s=time.perf_counter() - start, code=sql)

    def _execute(self, sql: str, full: str) -> tuple[list[str], list[list[Any]], int]:
        import sqlalchemy as sa

        from ..catalog.server_conn import connection_error

        timeout = self.config.sql_timeout_s
        try:
            conn = self.catalog.engine.connect()
        except sa.exc.DBAPIError as exc:
            raise connection_error(self.catalog.target, exc) from None
        try:
            self._begin_read_only(conn, timeout)
            token = self._watchdog.watch(_Cancel(self.catalog, conn.connection.dbapi_connection),
                                         timeout + CLIENT_GRACE_S)
            try:
                result = conn.exec_driver_sql(_escape_percent(sql))
                columns = list(result.keys())
                rows = self._fetch(result, self.config.row_cap + 1)
                result.close()
                n_rows = len(rows)
                if n_rows > self.config.row_cap:
                    n_rows = self._count(conn, full, n_rows)
            finally:
                self._watchdog.done(token)
        except sa.exc.DBAPIError as exc:
            if self._lost(exc):
                raise connection_error(self.catalog.target, exc) from None
            raise self._model_error(exc, timeout) from None
        finally:
            with contextlib.suppress(Exception):  # a dead connection cannot roll back: it is discarded
                conn.rollback()
            with contextlib.suppress(Exception):
                conn.close()
        return columns, rows, n_rows

    def _lost(self, exc: Any) -> bool:
        """Whether an error means the connection is gone (rather than the query being wrong)."""
        import sqlalchemy as sa

        if exc.connection_invalidated or isinstance(exc, sa.exc.InterfaceError):
            return True
        orig = getattr(exc, "orig", None)
        if self.catalog.dialect == "postgresql":
            state = getattr(orig, "sqlstate", None) or ""
            return state.startswith(("08", "57P")) or (not state and isinstance(exc, sa.exc.OperationalError))
        code = (getattr(orig, "args", None) or (None,))[0]
        return isinstance(code, int) and 2000 <= code < 3000  # client-side: gone away, lost, cannot connect

    def _begin_read_only(self, conn: Any, timeout: float) -> None:
        """A read-only transaction with the statement timeout (the executor's own statements)."""
        ms = max(1, int(timeout * 1000))
        if self.catalog.dialect == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {ms}")
            return
        if conn.dialect.is_mariadb:
            conn.exec_driver_sql(f"SET SESSION max_statement_time = {timeout:.3f}")
        else:  # MySQL and TiDB
            conn.exec_driver_sql(f"SET SESSION max_execution_time = {ms}")
        conn.exec_driver_sql("START TRANSACTION READ ONLY")

    def _fetch(self, result: Any, max_rows: int) -> list[list[Any]]:
        """At most ``max_rows`` rows, JSON-ready; SQLError ``too_large`` past ``result_max_bytes``."""
        limit = self.config.result_max_bytes
        rows: list[list[Any]] = []
        size = 0
        while len(rows) < max_rows:
            chunk = result.fetchmany(min(256, max_rows - len(rows)))
            if not chunk:
                break
            for raw in chunk:
                row = [to_jsonable(v) for v in raw]
                size += len(json.dumps(row, ensure_ascii=False, default=str).encode())
                if size > limit:
                    raise SQLError(f"result too large: more than {limit:,} bytes in the first {len(rows) + 1:,} rows",
                                   kind="too_large", hint="select fewer columns, aggregate, or add LIMIT")
                rows.append(row)
        return rows

    def _count(self, conn: Any, full: str, fetched: int) -> int:
        """The full row count (re-runs the query), or what was fetched when counting fails."""
        count = f"SELECT COUNT(*) FROM ({full}) AS _counted"
        try:
            with conn.begin_nested():  # a failed count must not abort the transaction's rows
                return int(conn.exec_driver_sql(_escape_percent(count)).scalar_one())
        except Exception:  # noqa: BLE001 - out of time, or MySQL's duplicate names: a lower bound
            return fetched

    def _model_error(self, exc: Any, timeout: float) -> SQLError:
        orig = getattr(exc, "orig", None) or exc
        if self.catalog.dialect == "postgresql":
            kind = _PG_KINDS.get(getattr(orig, "sqlstate", None) or "", "runtime")
            diag = getattr(orig, "diag", None)
            message = (getattr(diag, "message_primary", None) or str(orig).splitlines()[0]).strip()
            hint = getattr(diag, "message_hint", None)
        else:
            args = getattr(orig, "args", ())
            code = args[0] if args and isinstance(args[0], int) else None
            kind = _MY_KINDS.get(code or 0, "runtime")
            message = str(args[1] if len(args) > 1 else orig).splitlines()[0].strip()
            hint = None
        if kind == "timeout":
            return SQLError(f"query interrupted after {timeout:g} s (time limit)", kind="timeout",
                            hint="add filters or aggregate before joining; avoid cross joins")
        return SQLError(self.catalog.target.scrub(message), kind=kind, hint=hint)


def _escape_percent(sql: str) -> str:
    """Double ``%``: both drivers read ``%`` as a parameter marker even when no parameters are given."""
    return sql.replace("%", "%%")
