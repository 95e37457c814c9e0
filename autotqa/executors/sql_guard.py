"""The SQL guard: parse a model-written query, prove it only reads the catalog, and say why when not.

Every query first passes size and depth limits (``sql_limits``: a deeply nested or huge statement is
refused before any parser recursion or long work), then is parsed with sqlglot (DuckDB dialect
first; SQLite, MySQL and Postgres as fallbacks, then transpiled to DuckDB). DuckDB SQL runs as
written: regenerating it would cost about a millisecond a query and can alter DuckDB syntax sqlglot
does not round-trip exactly; the executor has DuckDB's own parser confirm it is one SELECT, and the
frozen connection refuses files and settings whatever the text says. Transpiled SQL runs as
generated from the checked tree. The checks are allow-lists where they can be:

- the statement must be a read query (SELECT, WITH ... SELECT, UNION/INTERSECT/EXCEPT, VALUES), alone;
- every function must be known to compute a value (``sql_policy``): typed by sqlglot or on a curated
  DuckDB list; in FROM/JOIN/LATERAL only ``range``, ``generate_series`` and ``unnest``;
- every table must be a catalog table or a CTE *visible where it is named*: names are resolved scope
  by scope with sqlglot's scope machinery, so a CTE named like a system view in one subquery does
  not make the real view reachable from another; file paths, URLs, system catalogs
  (``information_schema``, ``pg_catalog``, ``duckdb_*`` views, ``sqlite_master``) are refused;
- column references are checked against the catalog (``sql_columns``) for "did you mean" feedback.

The runtime (a frozen connection with external access disabled) is the second line of defence.

>>> guard = SQLGuard({"people": ["id", "name"]})
>>> guard.check("select NAME from People where id = 1;")
'select NAME from People where id = 1'
>>> guard.check("SELECT `name` FROM people")  # MySQL/SQLite quoting, transpiled
'SELECT "name" FROM people'
>>> guard.check("SELECT nme FROM people")
Traceback (most recent call last):
...
autotqa.errors.SQLError: unknown column "nme" in table "people" — did you mean "name"?
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.optimizer.scope import Scope, traverse_scope

from ..catalog.naming import RESERVED, quote_ident
from ..errors import SQLError
from .sql_columns import ColumnCheck, did_you_mean, suggest
from .sql_limits import SQLLimits, check_limits
from .sql_policy import check_function

FALLBACK_DIALECTS = ("sqlite", "mysql", "postgres")

#: Statement (or sub-statement) nodes that never belong in a read query.
_WRITE_NODES: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, name) for name in (
        "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "TruncateTable", "Command",
        "Pragma", "Set", "Attach", "Detach", "Copy", "Install", "Use", "Transaction", "Commit",
        "Rollback", "Describe", "Summarize", "Show", "Analyze", "Export", "LoadData", "Grant",
        "Revoke", "Comment", "Refresh", "Cache", "Uncache",
    ) if hasattr(exp, name)
)
_READ_ROOTS = (exp.Select, exp.SetOperation, exp.Values)

#: Leading keywords of statements sqlglot cannot parse (EXPORT DATABASE ...) that we can still name.
_WRITE_KEYWORDS = frozenset({
    "insert", "update", "delete", "merge", "create", "drop", "alter", "truncate", "attach", "detach",
    "copy", "export", "import", "pragma", "set", "reset", "install", "load", "force", "call", "use",
    "checkpoint", "vacuum", "begin", "commit", "rollback", "grant", "revoke", "comment", "analyze",
    "describe", "show", "summarize", "explain", "replace", "upsert", "prepare", "execute",
    "deallocate", "update_extensions",
})
_MAIN_SCHEMAS = frozenset({"", "main"})
_MAIN_CATALOGS = frozenset({"", "memory"})


def _reject(kind: str, message: str, hint: str | None = None) -> SQLError:
    return SQLError(message, kind=kind, hint=hint)


def _first_keyword(sql: str) -> str:
    """The first word of ``sql`` after comments and brackets, lower-cased.

    >>> _first_keyword("  -- note\\n(Export DATABASE 'x')")
    'export'
    """
    text = re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.S)
    match = re.search(r"[A-Za-z_]+", text)
    return match.group(0).lower() if match else ""


def parse_sql(sql: str, read: str | None = None) -> tuple[exp.Expression, str]:
    """Parse one statement; return the tree and the dialect that parsed it.

    Tries ``read`` alone when given, else DuckDB then the fallbacks. Raises SQLError (``parse``,
    ``multiple_statements`` or ``not_read_only`` when an unparsable statement starts like a write).

    >>> tree, dialect = parse_sql("SELECT `a` FROM t")
    >>> dialect, tree.sql(dialect="duckdb")
    ('sqlite', 'SELECT "a" FROM t')
    """
    dialects = (read,) if read else ("duckdb", *FALLBACK_DIALECTS)
    first_error: SqlglotError | None = None
    for dialect in dialects:
        try:
            statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
        except SqlglotError as exc:
            first_error = first_error or exc
            continue
        if not statements:
            raise _reject("parse", "empty query: write one SELECT statement")
        if len(statements) > 1:
            kinds = ", ".join(type(s).__name__.upper() for s in statements)
            raise _reject("multiple_statements",
                          f"only one statement may run at a time, got {len(statements)} ({kinds})",
                          hint="send a single SELECT without ';' between statements")
        return statements[0], dialect
    keyword = _first_keyword(sql)
    if keyword in _WRITE_KEYWORDS:
        raise _reject("not_read_only", f"{keyword.upper()} statements are not allowed: queries are read-only",
                      hint="write a SELECT over the loaded tables")
    detail = str(first_error).splitlines()[0] if first_error else "unparsable"
    errors = getattr(first_error, "errors", None) or [{}]
    raise SQLError(f"could not parse the query: {detail}", kind="parse",
                   line=errors[0].get("line"), col=errors[0].get("col"))


_QUOTED_PARTS = re.compile(r"('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")")


def quote_spaced_names(sql: str, names: Sequence[str]) -> str:
    """Double-quote the names among ``names`` that need quotes and appear unquoted in ``sql``.

    Models often write ``WHERE Last Team = 'x'`` for a column called ``Last Team``; such SQL does not
    parse. Only names that are not plain identifiers are touched, only outside string literals and
    quoted identifiers, matched case-insensitively and written as the catalog spells them.

    >>> print(quote_spaced_names("SELECT Name FROM t WHERE last team = 'Last Team' ORDER BY Target date",
    ...                          ["Name", "Last Team", "Target date"]))
    SELECT Name FROM t WHERE "Last Team" = 'Last Team' ORDER BY "Target date"
    """
    # Names quote_ident quotes for a reason other than being a keyword: spaces, slashes, digits first.
    # (Unquoted keyword names are left alone: quoting every "order" would also hit ORDER BY.)
    odd = sorted({n for n in names if quote_ident(n) != n and n.lower() not in RESERVED}, key=len, reverse=True)
    if not odd:
        return sql
    spelled = {n.lower(): n for n in odd}
    pattern = re.compile("|".join(rf"(?<![\w\"']){re.escape(n)}(?![\w\"'])" for n in odd), re.IGNORECASE)

    def quoted(m: re.Match[str]) -> str:
        return quote_ident(spelled[m.group(0).lower()])

    parts = _QUOTED_PARTS.split(sql)  # odd indexes: the quoted literals and identifiers, kept as they are
    return "".join(part if i % 2 else pattern.sub(quoted, part) for i, part in enumerate(parts))


class SQLGuard:
    """Checks queries against a catalog's tables and columns (names compared case-insensitively).

    ``columns_by_table`` maps each queryable table to its column names, as the catalog names them.
    ``limits`` bounds the size and nesting of a query before it is parsed.
    """

    def __init__(self, columns_by_table: Mapping[str, Sequence[str]], limits: SQLLimits | None = None,
                 pseudo_columns: Sequence[str] = ()) -> None:
        self._tables = {t.lower(): t for t in columns_by_table}
        self._columns = {t.lower(): list(cols) for t, cols in columns_by_table.items()}
        self._column_check = ColumnCheck(self._tables, self._columns, pseudo_columns)
        self.limits = limits or SQLLimits()

    def check(self, sql: str, read: str | None = None) -> str:
        """Return the DuckDB SQL to run, or raise SQLError saying what is wrong and how to fix it.

        SQL that does not parse gets one retry with the catalog's multi-word names quoted
        (:func:`quote_spaced_names`); valid SQL is never rewritten that way. Never raises anything
        but SQLError: a query that still drives sqlglot past Python's recursion limit is
        ``too_complex``.
        """
        try:
            return self._check(sql, read)
        except RecursionError:
            raise _reject("too_complex", "the query is nested too deeply to check",
                          hint="write it flatter: name the parts in WITH (CTEs) and join them") from None

    def _check(self, sql: str, read: str | None) -> str:
        check_limits(sql, self.limits)
        try:
            tree, dialect = parse_sql(sql, read)
        except SQLError as exc:
            names = [*self._tables.values(), *(c for cols in self._columns.values() for c in cols)]
            fixed = quote_spaced_names(sql, names) if exc.kind == "parse" else sql
            if fixed == sql or len(fixed) > self.limits.max_chars:
                raise
            try:
                tree, dialect = parse_sql(fixed, read)
            except SQLError:
                raise exc from None
            sql = fixed
        has_lambda = self.check_tree(tree)
        # Lambdas are regenerated: DuckDB 2 refuses the ``x -> x + 1`` arrow models still write,
        # and sqlglot writes the new ``lambda x: x + 1`` form.
        if dialect == "duckdb" and not has_lambda:
            return sql.strip().rstrip(";").rstrip()
        return tree.sql(dialect="duckdb")

    def check_tree(self, tree: exp.Expression) -> bool:
        """Raise SQLError unless ``tree`` is a safe read query; return whether it has lambdas."""
        if not isinstance(tree, _READ_ROOTS):
            name = type(tree).__name__.upper()
            raise _reject("not_read_only", f"{name} statements are not allowed: queries are read-only",
                          hint="write a SELECT over the loaded tables")
        has_lambda = has_pivot = False
        for node in tree.walk():
            if isinstance(node, _WRITE_NODES):
                name = type(node).__name__.upper()
                raise _reject("not_read_only",
                              f"{name} is not allowed inside a query: queries are read-only")
            if isinstance(node, exp.Func):
                check_function(node, self._tables_hint())
            elif isinstance(node, exp.Lambda):
                has_lambda = True
            elif isinstance(node, exp.Pivot):
                has_pivot = True
        self._check_tables(tree)
        if not (has_lambda or has_pivot):  # their scoping rules are DuckDB's to judge
            self._column_check.check(tree)
        return has_lambda

    # -- tables --------------------------------------------------------------------------------

    def _tables_hint(self) -> str:
        return f"tables: {', '.join(sorted(self._tables.values()))}"

    def _check_tables(self, tree: exp.Expression) -> None:
        """Every table reference is a CTE visible in its own scope, or else a catalog table.

        Resolution runs on a copy with identifiers normalised as DuckDB compares them (case-blind),
        so ``WITH X ... FROM x`` resolves like DuckDB does. A table that no scope accounts for, or a
        query whose scopes cannot be built, is held to the catalog: the safe side.
        """
        normal = normalize_identifiers(tree.copy(), dialect="duckdb")
        ctes: set[int] = set()
        try:
            for scope in traverse_scope(normal):
                for table in scope.tables:
                    if isinstance(scope.sources.get(table.alias_or_name), Scope) and not table.args.get("db"):
                        ctes.add(id(table))
        except SqlglotError:
            ctes.clear()
        # The copy has the same shape, so walking both in step pairs each table with its original
        # (whose spelling the error messages keep).
        for table, original in zip(normal.find_all(exp.Table), tree.find_all(exp.Table), strict=True):
            if id(table) not in ctes:
                self._check_table(original)

    def _check_table(self, node: exp.Table) -> None:
        source = node.this
        if isinstance(source, exp.Func):
            return  # a table function: check_function judged it by what it is
        if not isinstance(source, exp.Identifier):
            return  # e.g. a VALUES list or a nested expression; checked node by node elsewhere
        name = source.name
        if node.text("db").lower() not in _MAIN_SCHEMAS or node.text("catalog").lower() not in _MAIN_CATALOGS:
            raise _reject("unknown_table",
                          f'unknown table "{node.sql(dialect="duckdb")}": only the loaded tables can be '
                          f"queried ({', '.join(sorted(self._tables.values()))})")
        lower = name.lower()
        if lower in self._tables:
            return
        # DuckDB would read a quoted path or URL in FROM as a file ('/etc/passwd', 'x.csv', 's3://..').
        if re.search(r"[/\\:]|\.[A-Za-z0-9]{1,8}$|^~", name):
            raise _reject("forbidden_source",
                          f'"{name}" looks like a file or URL: only the loaded tables can be queried',
                          hint=self._tables_hint())
        suggestion = suggest(name, list(self._tables.values()))
        raise _reject("unknown_table", f'unknown table "{name}"{did_you_mean(suggestion)}',
                      hint=None if suggestion else self._tables_hint())
