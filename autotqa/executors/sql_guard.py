"""The SQL guard: parse a model-written query, prove it only reads the catalog, and say why when not.

Every query is parsed with sqlglot (DuckDB dialect first; SQLite, MySQL and Postgres as fallbacks, then
transpiled to DuckDB). DuckDB SQL runs as written: regenerating it would cost about a millisecond a query
and can alter DuckDB syntax sqlglot does not round-trip exactly; the executor has DuckDB's own parser
confirm it is one SELECT, and the frozen connection refuses files and settings whatever the text
says. Transpiled SQL runs as generated from the checked tree. The checks are allow-lists where they can be:

- the statement must be a read query (SELECT, WITH ... SELECT, UNION/INTERSECT/EXCEPT, VALUES), alone;
- every table in FROM/JOIN must be a catalog table, a CTE, a subquery or one of a few pure table
  functions (``range``, ``generate_series``, ``unnest``); file paths, URLs and file/network/metadata table
  functions are refused;
- scalar functions that reveal the environment or touch state (``getenv``, ``current_setting``,
  ``nextval`` ...) are refused;
- column references are checked against the catalog (case-insensitive, as in DuckDB) so the model gets
  "did you mean" feedback. Where the scope is unclear (``*`` in a subquery, table functions, PIVOT) the
  check steps aside and DuckDB's binder has the last word.

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

import difflib
import re
from collections.abc import Mapping, Sequence

import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError, SqlglotError
from sqlglot.optimizer.scope import Scope, traverse_scope

from ..catalog.naming import RESERVED, quote_ident
from ..errors import SQLError

FALLBACK_DIALECTS = ("sqlite", "mysql", "postgres")

#: Table functions that only compute values; every other table function is refused.
ALLOWED_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})

#: Functions refused wherever they appear: file/network readers (also caught by the FROM allow-list,
#: but named here so a scalar-position call gets the same clear message), and scalars that reveal the
#: environment, settings or secrets, or change session state.
FORBIDDEN_FUNCTIONS = frozenset({
    "read_csv", "read_csv_auto", "read_parquet", "parquet_scan", "read_json", "read_json_auto",
    "read_json_objects", "read_json_objects_auto", "read_ndjson", "read_ndjson_auto",
    "read_ndjson_objects", "read_text", "read_blob", "read_xlsx", "read_duckdb", "glob", "sniff_csv",
    "iceberg_scan", "delta_scan", "sqlite_scan", "sqlite_attach", "postgres_scan", "postgres_attach",
    "mysql_scan", "query", "query_table", "which_secret", "duckdb_secrets", "getenv",
    "current_setting", "current_query", "nextval", "currval", "setseed", "write_log", "sleep_ms",
    "pg_sleep", "json_deserialize_sql", "json_execute_serialized_sql", "json_serialize_sql",
    "pandas_scan", "arrow_scan", "python_map_function", "checkpoint", "force_checkpoint",
    "enable_logging", "enable_profiling", "disable_logging", "disable_profiling",
})
_FORBIDDEN_PREFIXES = ("read_", "parquet_", "duckdb_", "pragma_", "__internal", "st_read")

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


def _suggest(word: str, options: Sequence[str]) -> str | None:
    """The closest option (case-insensitive), or None.

    >>> _suggest("nme", ["id", "name", "age"])
    'name'
    """
    by_lower = {o.lower(): o for o in options}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def _did_you_mean(candidate: str | None) -> str:
    return f' — did you mean "{candidate}"?' if candidate else ""


def function_name(node: exp.Func) -> str:
    """The lower-case name a function node stands for.

    >>> function_name(sqlglot.parse_one("SELECT getenv('HOME')").find(exp.Func))
    'getenv'
    """
    if isinstance(node, exp.Anonymous):
        return node.name.lower()
    return node.sql_name().lower()


def _is_forbidden_function(name: str) -> bool:
    return name in FORBIDDEN_FUNCTIONS or name.startswith(_FORBIDDEN_PREFIXES)


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
    """

    def __init__(self, columns_by_table: Mapping[str, Sequence[str]]) -> None:
        self._tables = {t.lower(): t for t in columns_by_table}
        self._columns = {t.lower(): list(cols) for t, cols in columns_by_table.items()}

    def check(self, sql: str, read: str | None = None) -> str:
        """Return the DuckDB SQL to run, or raise SQLError saying what is wrong and how to fix it.

        SQL that does not parse gets one retry with the catalog's multi-word names quoted
        (:func:`quote_spaced_names`); valid SQL is never rewritten that way.
        """
        try:
            tree, dialect = parse_sql(sql, read)
        except SQLError as exc:
            names = [*self._tables.values(), *(c for cols in self._columns.values() for c in cols)]
            fixed = quote_spaced_names(sql, names) if exc.kind == "parse" else sql
            if fixed == sql:
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
        # One walk over the tree; tables are checked after it, once every CTE name is known.
        cte_names: set[str] = set()
        tables: list[exp.Table] = []
        has_lambda = has_pivot = False
        for node in tree.walk():
            if isinstance(node, _WRITE_NODES):
                name = type(node).__name__.upper()
                raise _reject("not_read_only",
                              f"{name} is not allowed inside a query: queries are read-only")
            if isinstance(node, exp.Func):
                if not isinstance(node.parent, exp.Table):  # table functions: see _check_table
                    self._check_function(node)
            elif isinstance(node, exp.Table):
                tables.append(node)
            elif isinstance(node, exp.CTE):
                cte_names.add(node.alias_or_name.lower())
            elif isinstance(node, exp.Lambda):
                has_lambda = True
            elif isinstance(node, exp.Pivot):
                has_pivot = True
        for table in tables:
            self._check_table(table, cte_names)
        if not (has_lambda or has_pivot):  # their scoping rules are DuckDB's to judge
            self._check_columns(tree)
        return has_lambda

    # -- functions and tables ------------------------------------------------------------------

    @staticmethod
    def _check_function(node: exp.Func) -> None:
        name = function_name(node)
        if _is_forbidden_function(name):
            raise _reject("forbidden_function",
                          f"function {name}() is not allowed: queries may only read the loaded tables",
                          hint="query the catalog tables by name instead of files, settings or the environment")

    def _check_table(self, node: exp.Table, cte_names: set[str]) -> None:
        source = node.this
        if isinstance(source, exp.Func):
            name = function_name(source)
            if name not in ALLOWED_TABLE_FUNCTIONS:
                raise _reject("forbidden_function",
                              f"table function {name}() is not allowed: only the loaded tables can be queried",
                              hint=f"tables: {', '.join(sorted(self._tables.values()))}")
            return
        if not isinstance(source, exp.Identifier):
            return  # e.g. a VALUES list or a nested expression; checked node by node elsewhere
        name = source.name
        if node.text("db").lower() not in _MAIN_SCHEMAS or node.text("catalog").lower() not in _MAIN_CATALOGS:
            raise _reject("unknown_table",
                          f'unknown table "{node.sql(dialect="duckdb")}": only the loaded tables can be '
                          f"queried ({', '.join(sorted(self._tables.values()))})")
        lower = name.lower()
        if lower in self._tables or lower in cte_names:
            return
        # DuckDB would read a quoted path or URL in FROM as a file ('/etc/passwd', 'x.csv', 's3://..').
        if re.search(r"[/\\:]|\.[A-Za-z0-9]{1,8}$|^~", name):
            raise _reject("forbidden_source",
                          f'"{name}" looks like a file or URL: only the loaded tables can be queried',
                          hint=f"tables: {', '.join(sorted(self._tables.values()))}")
        suggestion = _suggest(name, list(self._tables.values()))
        raise _reject("unknown_table", f'unknown table "{name}"{_did_you_mean(suggestion)}',
                      hint=None if suggestion else f"tables: {', '.join(sorted(self._tables.values()))}")

    # -- columns -------------------------------------------------------------------------------

    def _check_columns(self, tree: exp.Expression) -> None:
        try:
            for scope in traverse_scope(tree):  # scopes resolve their sources lazily: errors come late
                self._check_scope(scope)
        except OptimizeError as exc:
            alias = re.fullmatch(r"Alias already used: (.+)", str(exc))
            if alias:
                raise _reject("duplicate_alias", f'the alias "{alias[1]}" names two sources in one query',
                              hint="give each table in FROM/JOIN its own alias") from None
        except (SqlglotError, RecursionError):
            return

    def _source_columns(self, source: exp.Expression | Scope) -> tuple[str, list[str] | None]:
        """A display name and the column names of one FROM source (None when not knowable)."""
        if isinstance(source, exp.Table):
            alias_cols = source.alias_column_names
            if isinstance(source.this, exp.Func):
                return source.alias_or_name, alias_cols or None
            table = self._tables.get(source.name.lower())
            if table is None:
                return source.name, None
            return table, alias_cols or self._columns[table.lower()]
        if isinstance(source, Scope):
            holder = source.expression.parent
            while isinstance(holder, exp.SetOperation):  # a recursive CTE's branches
                holder = holder.parent
            alias_cols = holder.alias_column_names if isinstance(holder, exp.Subquery | exp.CTE) else []
            name = holder.alias if isinstance(holder, exp.Subquery | exp.CTE) else ""
            if alias_cols:
                return name, alias_cols
            query = source.expression
            if isinstance(query, exp.SetOperation):
                query = query.left
                while isinstance(query, exp.SetOperation):
                    query = query.left
            if not isinstance(query, exp.Select) or any(
                    isinstance(p, exp.Star) or (isinstance(p, exp.Column) and isinstance(p.this, exp.Star))
                    for p in query.expressions):
                return name, None
            if not all(isinstance(p, exp.Alias | exp.Column) for p in query.expressions):
                return name, None  # unnamed expressions get DuckDB-generated names
            return name, [p.alias_or_name for p in query.expressions]
        return "", None

    def _visible(self, scope: Scope) -> tuple[dict[str, tuple[str, list[str] | None]], bool]:
        """Sources visible in ``scope`` (its own, then enclosing ones) and whether all are known."""
        visible: dict[str, tuple[str, list[str] | None]] = {}
        complete = True
        current: Scope | None = scope
        while current is not None:
            for alias, source in current.sources.items():
                if alias.lower() in visible:
                    continue
                if isinstance(source, Scope) and source.is_cte and source is not scope:
                    # A CTE is only a FROM source where it is referenced by name.
                    if not any(t.name.lower() == alias.lower() for t in current.tables):
                        continue
                entry = self._source_columns(source)
                visible[alias.lower()] = entry
                complete = complete and entry[1] is not None
            current = current.parent
        return visible, complete

    def _check_scope(self, scope: Scope) -> None:
        if not isinstance(scope.expression, exp.Select):
            return
        visible, complete = self._visible(scope)
        own = {a.lower() for a in scope.selected_sources} | {a.lower() for a in scope.sources}
        # Only real aliases: DuckDB lets WHERE/GROUP BY/HAVING/ORDER BY use them.
        aliases = {p.alias.lower() for p in scope.expression.expressions if isinstance(p, exp.Alias)}
        for column in scope.columns:
            if column.find_ancestor(exp.Select) is not scope.expression:
                continue  # seen from a correlated subquery: checked in the scope that wrote it
            if column.text("db") or column.text("catalog") or isinstance(column.this, exp.Star):
                continue  # struct field paths and qualified stars: the binder decides
            name = column.name
            qualifier = column.text("table")
            if qualifier:
                self._check_qualified(qualifier, name, visible, own, complete)
            elif complete and name.lower() not in aliases:
                try:
                    self._check_unqualified(name, visible, scope)
                except SQLError as exc:
                    if column.this.quoted and exc.hint:  # "bob" meant as a string, as SQLite allows
                        exc.hint = 'double quotes name a column; write string literals in single quotes'
                    raise

    def _check_qualified(self, qualifier: str, name: str,
                         visible: dict[str, tuple[str, list[str] | None]], own: set[str],
                         complete: bool) -> None:
        entry = visible.get(qualifier.lower())
        if entry is None:
            known = [c.lower() for _, cols in visible.values() for c in (cols or [])]
            if not complete or qualifier.lower() in known:
                return  # possibly a struct column's field: DuckDB decides
            local = [a for a in visible if a in own] or list(visible)
            # With a single table in scope, that is what the model meant, however unlike its name.
            suggestion = _suggest(qualifier, local) or (local[0] if len(local) == 1 else None)
            raise _reject("unknown_table",
                          f'unknown table or alias "{qualifier}" in "{qualifier}.{name}"'
                          f"{_did_you_mean(suggestion)}")
        table, cols = entry
        if cols is None or name.lower() in {c.lower() for c in cols}:
            return
        where = f'table "{table}"' if table.lower() in self._tables else f'"{table or qualifier}"'
        suggestion = _suggest(name, cols)
        raise _reject("unknown_column", f'unknown column "{name}" in {where}{_did_you_mean(suggestion)}',
                      hint=None if suggestion else f"its columns: {', '.join(cols)}")

    def _check_unqualified(self, name: str, visible: dict[str, tuple[str, list[str] | None]],
                           scope: Scope) -> None:
        lower = name.lower()
        for alias, (_, cols) in visible.items():
            if lower == alias or lower in {c.lower() for c in cols or []}:
                return
        local = [(t, cols) for a, (t, cols) in visible.items() if a in {s.lower() for s in scope.sources}]
        if not local:
            return
        if len(local) == 1:
            table, cols = local[0]
            where = f' in table "{table}"' if table.lower() in self._tables else (f' in "{table}"' if table else "")
            suggestion = _suggest(name, cols or [])
            raise _reject("unknown_column", f'unknown column "{name}"{where}{_did_you_mean(suggestion)}',
                          hint=None if suggestion else f"its columns: {', '.join(cols or [])}")
        qualified = [f"{t}.{c}" for t, cols in local for c in cols or []]
        by_column = {c.split(".", 1)[1]: c for c in reversed(qualified)}
        close = _suggest(name, list(by_column))
        raise _reject("unknown_column",
                      f'unknown column "{name}"{_did_you_mean(by_column[close] if close else None)}',
                      hint=None if close else f"columns: {', '.join(qualified)}")
