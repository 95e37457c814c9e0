"""Repairs that need no model: an error message that names its own fix is applied directly.

A 0.5B model given "unknown column "Release" — did you mean "Release date"?" often writes the same
query again; DuckDB's binder is stricter than the SQLite a small model learned from (a column beside
GROUP BY without an aggregate, SUM over numbers stored as text). Each rule here reads one kind of
error, rewrites the query with sqlglot, and returns None when it does not apply -- so the Engineer
is asked only when no rule knows the fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import sqlglot
from sqlglot import exp

_UNKNOWN_COLUMN = re.compile(r'unknown column "(?P<bad>[^"]+)".*did you mean "(?P<good>[^"]+)"\?', re.S)
_UNKNOWN_TABLE = re.compile(r'unknown table "(?P<bad>[^"]+)".*did you mean "(?P<good>[^"]+)"\?', re.S)
_GROUP_BY = re.compile(r'column "(?P<col>[^"]+)" must appear in the GROUP BY clause', re.I)
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TEXT_AGG = re.compile(r"No function matches the given name and argument types '(?P<fn>sum|avg)\(VARCHAR",
                       re.I)


def _parse(sql: str) -> exp.Expression | None:
    try:
        return sqlglot.parse_one(sql, read="duckdb")
    except (sqlglot.errors.SqlglotError, RecursionError):
        return None


def _identifier(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=not _PLAIN_NAME.fullmatch(name))


def _rename(sql: str, kind: type[exp.Column] | type[exp.Table], bad: str, good: str) -> str | None:
    """Every ``kind`` node named ``bad`` (any case) is renamed ``good``; None when there is none."""
    tree = _parse(sql)
    if tree is None:
        return None
    nodes = [n for n in tree.find_all(kind) if n.name.lower() == bad.lower()]
    for node in nodes:
        node.set("this", _identifier(good))
    return tree.sql(dialect="duckdb") if nodes else None


def rename_column(sql: str, bad: str, good: str) -> str | None:
    """Every reference to column ``bad`` becomes ``good`` (quoted when it needs quotes); a suggestion
    ``table.column`` renames to the column.

    >>> rename_column('SELECT Release FROM t WHERE Release > 2000', "Release", "Release date")
    'SELECT "Release date" FROM t WHERE "Release date" > 2000'
    """
    return _rename(sql, exp.Column, bad, good.rpartition(".")[2] if "." not in bad else good)


def rename_table(sql: str, bad: str, good: str) -> str | None:
    """``FROM bad`` becomes ``FROM good``.

    >>> rename_table("SELECT count(*) FROM custmers", "custmers", "customers")
    'SELECT COUNT(*) FROM customers'
    """
    return _rename(sql, exp.Table, bad, good)


def any_value_beside_group_by(sql: str, column: str) -> str | None:
    """A column selected beside GROUP BY without an aggregate (SQLite allows it, DuckDB refuses):
    take ``ANY_VALUE`` of it, keeping its output name.

    >>> any_value_beside_group_by("SELECT name, count(*) FROM t GROUP BY id", "name")
    'SELECT ANY_VALUE(name) AS name, COUNT(*) FROM t GROUP BY id'
    """
    tree = _parse(sql)
    if tree is None:
        return None
    changed = False
    for select in tree.find_all(exp.Select):
        group = select.args.get("group")
        if group is None:
            continue
        grouped = {g.sql().lower() for g in group.expressions}
        for i, item in enumerate(select.expressions):
            for col in list(item.find_all(exp.Column)):
                if col.name.lower() != column.lower() or col.find_ancestor(exp.AggFunc) is not None \
                        or col.sql().lower() in grouped:
                    continue
                wrapped = exp.AnyValue(this=col.copy())
                if col is item:
                    select.expressions[i].replace(exp.alias_(wrapped, col.name, quoted=None))
                else:
                    col.replace(wrapped)
                changed = True
        for order in (select.args.get("order").expressions if select.args.get("order") else []):
            for col in list(order.find_all(exp.Column)):
                if col.name.lower() == column.lower() and col.find_ancestor(exp.AggFunc) is None \
                        and col.sql().lower() not in grouped and col.table:
                    col.replace(exp.AnyValue(this=col.copy()))
                    changed = True
    return tree.sql(dialect="duckdb") if changed else None


def cast_text_aggregate(sql: str, function: str) -> str | None:
    """``SUM``/``AVG`` over a column of numbers stored as text: cast it (non-numbers become NULL).

    Thousands separators are dropped first: people publish "1,582", and a plain cast makes it NULL.

    >>> cast_text_aggregate("SELECT sum(votes) FROM t", "sum")
    "SELECT SUM(TRY_CAST(REPLACE(CAST(votes AS TEXT), ',', '') AS DOUBLE)) FROM t"
    """
    tree = _parse(sql)
    if tree is None:
        return None
    kind = {"sum": exp.Sum, "avg": exp.Avg}[function.lower()]
    changed = False
    for agg in tree.find_all(kind):
        arg = agg.this
        if isinstance(arg, exp.Column):
            plain = exp.func("replace", exp.cast(arg.copy(), "text"), exp.Literal.string(","), exp.Literal.string(""))
            arg.replace(exp.TryCast(this=plain, to=exp.DataType.build("double")))
            changed = True
    return tree.sql(dialect="duckdb") if changed else None


def count_star_for_unknown(sql: str, column: str) -> str | None:
    """``COUNT(key)`` where no table has ``key``: the model meant to count rows.

    >>> count_star_for_unknown("SELECT count(key) FROM t WHERE a = 1", "key")
    'SELECT COUNT(*) FROM t WHERE a = 1'
    >>> count_star_for_unknown("SELECT key FROM t", "key") is None
    True
    """
    tree = _parse(sql)
    if tree is None:
        return None
    refs = [c for c in tree.find_all(exp.Column) if c.name.lower() == column.lower()]
    if not refs or not all(isinstance(c.parent, exp.Count) or (isinstance(c.parent, exp.Distinct)
                                                               and isinstance(c.parent.parent, exp.Count))
                           for c in refs):
        return None
    for col in refs:
        count = col.parent if isinstance(col.parent, exp.Count) else col.parent.parent
        count.set("this", exp.Star())
    return tree.sql(dialect="duckdb")


_QUOTED = re.compile(r"('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")")


def quote_known_names(sql: str, names: list[str]) -> str:
    """Quote column names with spaces or punctuation that the model wrote bare (``Last Team``,
    ``Single/EP``): unquoted, they do not parse, or parse as arithmetic. String literals and names
    already quoted are left alone.

    >>> print(quote_known_names("SELECT Name FROM t WHERE Last Team = 'Last Team' AND Single/EP > 1",
    ...                         ["Name", "Last Team", "Single/EP"]))
    SELECT Name FROM t WHERE "Last Team" = 'Last Team' AND "Single/EP" > 1
    """
    special = sorted({n for n in names if len(n) >= 3 and not _PLAIN_NAME.fullmatch(n)
                      and re.search(r"[A-Za-z]", n)}, key=len, reverse=True)
    if not special:
        return sql
    pattern = re.compile(r"(?<![\w\"])(" + "|".join(re.escape(n) for n in special) + r")(?![\w\"])", re.I)
    by_lower = {n.lower(): n for n in special}
    parts = _QUOTED.split(sql)
    for i in range(0, len(parts), 2):  # even parts: outside literals and quoted names
        parts[i] = pattern.sub(lambda m: '"' + by_lower[m[1].lower()].replace('"', '""') + '"', parts[i])
    return "".join(parts)


def _unknown_in_count(sql: str, error: str) -> str | None:
    m = re.search(r'unknown column "(?P<bad>[^"]+)"', error)
    return count_star_for_unknown(sql, m["bad"]) if m else None


def _did_you_mean_column(sql: str, error: str) -> str | None:
    m = _UNKNOWN_COLUMN.search(error)
    return rename_column(sql, m["bad"], m["good"]) if m else None


def _did_you_mean_table(sql: str, error: str) -> str | None:
    m = _UNKNOWN_TABLE.search(error)
    return rename_table(sql, m["bad"], m["good"]) if m else None


def _group_by(sql: str, error: str) -> str | None:
    m = _GROUP_BY.search(error)
    return any_value_beside_group_by(sql, m["col"]) if m else None


def _text_aggregate(sql: str, error: str) -> str | None:
    m = _TEXT_AGG.search(error)
    return cast_text_aggregate(sql, m["fn"]) if m else None


RULES: tuple[Callable[[str, str], str | None], ...] = (
    _unknown_in_count, _did_you_mean_column, _did_you_mean_table, _group_by, _text_aggregate)


def repair_sql(sql: str, error: str) -> str | None:
    """The query with the fix the error names, or None when no rule applies (or nothing changed).

    >>> repair_sql('SELECT Term_start FROM t', 'unknown column "Term_start" in table "t" — did you mean "Term start"?')
    'SELECT "Term start" FROM t'
    >>> repair_sql("SELECT 1", "Parser Error: syntax error") is None
    True
    """
    for rule in RULES:
        fixed = rule(sql, error)
        if fixed is not None and fixed.strip() != sql.strip():
            return fixed
    return None


Lookup = Callable[[str], list[list[object]] | None]


def _table_of(column: exp.Column, select: exp.Select, columns: dict[str, list[str]]) -> str | None:
    """The catalog table a column reference reads (by its qualifier, or the one FROM table having it)."""
    tables = [t for t in select.find_all(exp.Table) if t.name.lower() in columns]
    if column.table:
        hit = [t for t in tables if t.alias_or_name.lower() == column.table.lower()]
    else:
        hit = [t for t in tables if column.name.lower() in (c.lower() for c in columns[t.name.lower()])]
    names = {t.name.lower() for t in hit}
    return next(iter(names)) if len(names) == 1 else None


def relink_values(sql: str, columns: dict[str, list[str]], lookup: Lookup) -> str | None:
    """A filter ``col = 'text'`` that matched nothing: replace the literal by the one value of
    ``col`` that equals it ignoring case and spaces, else the one value that contains it (value
    linking after the fact: 'north america' -> 'North America', 'chemosvit svit' -> 'Chemosvit
    SVIT'). ``lookup`` runs a read query and returns its rows (None on error). None when no
    literal could be relinked to exactly one value.

    >>> rows = {"north america": [["North America"]]}
    >>> def lookup(q):
    ...     return rows.get(q.split("'")[-2].strip("%"), [])
    >>> relink_values("SELECT count(*) FROM t WHERE region = 'north america'", {"t": ["region"]}, lookup)
    "SELECT COUNT(*) FROM t WHERE region = 'North America'"
    """
    tree = _parse(sql)
    if tree is None:
        return None
    known = {t.lower(): list(cols) for t, cols in columns.items()}
    changed = False
    for eq in list(tree.find_all(exp.EQ)):
        col, lit = eq.this, eq.expression
        if isinstance(lit, exp.Column) and isinstance(col, exp.Literal):
            col, lit = lit, col
        if not (isinstance(col, exp.Column) and isinstance(lit, exp.Literal) and lit.is_string and lit.this.strip()):
            continue
        select = eq.find_ancestor(exp.Select)
        table = _table_of(col, select, known) if select is not None else None
        if table is None:
            continue
        name = next((c for c in known[table] if c.lower() == col.name.lower()), col.name)
        ident = '"' + name.replace('"', '""') + '"'
        text = lit.this.replace("'", "''")
        value = None
        for cond in (f"lower(trim(CAST({ident} AS VARCHAR))) = lower(trim('{text}'))",
                     f"CAST({ident} AS VARCHAR) ILIKE '%{text}%'"):
            rows = lookup(f'SELECT DISTINCT CAST({ident} AS VARCHAR) FROM "{table}" WHERE {cond} LIMIT 2')
            if rows and len(rows) == 1 and rows[0] and rows[0][0] is not None:
                value = str(rows[0][0])
                break
        if value is not None and value != lit.this:
            lit.replace(exp.Literal.string(value))
            changed = True
    return tree.sql(dialect="duckdb") if changed else None


_ORDINALS = {"second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4, "fifth": 5, "5th": 5}


def ordinal_offset(sql: str, question: str) -> str | None:
    """"The second (third, ...) one" answered with ``ORDER BY ... LIMIT 2``: the top two, when the
    question asks for the one in second place. Keep that one: ``LIMIT 1 OFFSET 1``.

    >>> ordinal_offset("SELECT name FROM p ORDER BY price DESC LIMIT 2", "And the second one?")
    'SELECT name FROM p ORDER BY price DESC LIMIT 1 OFFSET 1'
    >>> ordinal_offset("SELECT name FROM p ORDER BY price DESC LIMIT 2", "Which two are the priciest?") is None
    True
    """
    words = re.findall(r"[a-z0-9]+", question.lower())
    wanted = {_ORDINALS[w] for w in words if w in _ORDINALS}
    if len(wanted) != 1:
        return None
    n = wanted.pop()
    tree = _parse(sql)
    if not isinstance(tree, exp.Select) or not tree.args.get("order") or tree.args.get("offset"):
        return None
    limit = tree.args.get("limit")
    value = limit.expression if isinstance(limit, exp.Limit) else None
    if not (isinstance(value, exp.Literal) and value.is_int and int(value.this) == n):
        return None
    return tree.limit(1, copy=False).offset(n - 1, copy=False).sql(dialect="duckdb")
