"""Column checks of the SQL guard: every column a query names must exist where it is visible.

Names are compared case-insensitively, as DuckDB does, so the model gets "did you mean" feedback.
Where the scope is unclear (``*`` in a subquery, table functions) the check steps aside and DuckDB's
binder has the last word: this module finds mistakes, the security checks live in ``sql_guard``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from sqlglot import exp
from sqlglot.errors import OptimizeError, SqlglotError
from sqlglot.optimizer.scope import Scope, traverse_scope

from ..errors import SQLError


def _reject(kind: str, message: str, hint: str | None = None) -> SQLError:
    return SQLError(message, kind=kind, hint=hint)


def suggest(word: str, options: Sequence[str]) -> str | None:
    """The closest option (case-insensitive), or None.

    >>> suggest("nme", ["id", "name", "age"])
    'name'
    """
    by_lower = {o.lower(): o for o in options}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def did_you_mean(candidate: str | None) -> str:
    return f' — did you mean "{candidate}"?' if candidate else ""


class ColumnCheck:
    """Checks column references against ``tables`` (lower name -> name) and their ``columns``."""

    def __init__(self, tables: dict[str, str], columns: dict[str, list[str]],
                 pseudo: Sequence[str] = ()) -> None:
        self._tables = tables
        self._columns = columns
        #: Columns every base table answers to without listing them (DuckDB's ``rowid``).
        self._pseudo = list(pseudo)

    # -- columns -------------------------------------------------------------------------------

    def check(self, tree: exp.Expression) -> None:
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
            if alias_cols:
                return table, alias_cols
            own = self._columns[table.lower()]
            return table, own + [p for p in self._pseudo if p.lower() not in {c.lower() for c in own}]
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
            suggestion = suggest(qualifier, local) or (local[0] if len(local) == 1 else None)
            raise _reject("unknown_table",
                          f'unknown table or alias "{qualifier}" in "{qualifier}.{name}"'
                          f"{did_you_mean(suggestion)}")
        table, cols = entry
        if cols is None or name.lower() in {c.lower() for c in cols}:
            return
        where = f'table "{table}"' if table.lower() in self._tables else f'"{table or qualifier}"'
        suggestion = suggest(name, cols)
        raise _reject("unknown_column", f'unknown column "{name}" in {where}{did_you_mean(suggestion)}',
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
            suggestion = suggest(name, cols or [])
            raise _reject("unknown_column", f'unknown column "{name}"{where}{did_you_mean(suggestion)}',
                          hint=None if suggestion else f"its columns: {', '.join(cols or [])}")
        qualified = [f"{t}.{c}" for t, cols in local for c in cols or []]
        by_column = {c.split(".", 1)[1]: c for c in reversed(qualified)}
        close = suggest(name, list(by_column))
        raise _reject("unknown_column",
                      f'unknown column "{name}"{did_you_mean(by_column[close] if close else None)}',
                      hint=None if close else f"columns: {', '.join(qualified)}")
