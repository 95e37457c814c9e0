"""Numbers and dates as people publish them, typed at load time.

Spreadsheets and web tables write numbers for readers: ``"1,582"``, ``"$1,200"``, ``"45%"``,
``"2006*"``, ``"17[3]"``, with ``"—"`` or ``"N/A"`` for a missing value. DuckDB's CSV sniffer keeps
such a column as text, and then ``SUM``, ``>`` and ``ORDER BY`` silently work on strings
(``'9' > '10'``) or fail — a small model does not think of casting. Dates such as
``"September 5, 2001"`` sort and compare as text too.

A text column of a CSV or workbook is retyped only when *every* value either is a placeholder
(:data:`PLACEHOLDERS`, read as NULL) or parses with a rule that keeps the value: thousands
separators, a currency sign, a per-cent sign and trailing citation marks are dropped; nothing else.
A value such as ``"12 (3)"``, ``"1952-56"`` or ``"Total"`` keeps the whole column as text, as does a
number written with a leading zero (``"007"``: codes, not quantities). Percentages keep their
scale (``"45%"`` -> 45.0). Dates: ``"September 5, 2001"``, ``"5 September 2001"``, ``"Sep 5, 2001"``
and ISO dates become ``DATE``; month-only or year-range text stays text.

Databases (SQLite, DuckDB, servers), Parquet, JSON and DataFrames keep their owners' types.
"""

from __future__ import annotations

import duckdb

from autotqa.catalog.naming import quote_ident

#: Cell texts that mean "no value" in published tables (compared trimmed and lower-cased).
PLACEHOLDERS = ("", "-", "--", "---", "—", "–", "−", "n/a", "na", "n.a.", "none", "?", "unknown",
                "tba", "tbd", "tbc")

# A trailing run of citation marks: "[3]", "[citation needed]", "*", "†", "‡", "§", "#".
_CITATIONS = r"(\s*(\[[^\]]*\]|[*†‡§#]))+$"
# What is left once citations, spaces, currency and per-cent signs are removed: a plain number,
# its thousands grouped by commas in threes or not at all. Unicode minus and en dash are minus signs.
_NUMBER = r"[-+]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?|[-+]?\.\d+"
_LEADING_ZERO = r"[-+]?0\d.*"
_DATE_FORMATS = ["%B %d, %Y", "%d %B %Y", "%b %d, %Y", "%d %b %Y", "%b. %d, %Y", "%Y-%m-%d"]


def _uncited(col: str) -> str:
    """SQL for the trimmed cell without its trailing citation marks."""
    return f"regexp_replace(trim({col}), '{_CITATIONS}', '')"


def _stripped(col: str) -> str:
    """SQL for the cell with citations, currency, per-cent and spaces removed and minus signs made ASCII."""
    text = f"regexp_replace({_uncited(col)}, '[$€£¥%\\s]', '', 'g')"
    return f"regexp_replace({text}, '^[−–]', '-')"


def _is_placeholder(col: str) -> str:
    items = ", ".join("'" + p.replace("'", "''") + "'" for p in PLACEHOLDERS)
    return f"(lower(trim({col})) IN ({items}))"


def _as_date(col: str) -> str:
    formats = ", ".join(f"'{f}'" for f in _DATE_FORMATS)
    return f"CAST(try_strptime({_uncited(col)}, [{formats}]) AS DATE)"


def _as_number(col: str, integer: bool) -> str:
    digits = f"replace({_stripped(col)}, ',', '')"
    return f"CASE WHEN {_is_placeholder(col)} THEN NULL ELSE TRY_CAST({digits} AS {'BIGINT' if integer else 'DOUBLE'}) END"


def retype_published(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """Retype ``table``'s text columns that hold only published numbers or dates; returns name -> new type.

    A scan of the first rows, then one of the whole table for the columns still in question, decides;
    one ``CREATE OR REPLACE`` rewrites the table when any column changes.
    """
    text_cols = [r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND table_name = ? AND data_type = 'VARCHAR' ORDER BY column_index",
        [table]).fetchall()]
    # The first rows rule most columns out cheaply; only the rest get a scan of the whole table.
    text_cols = _candidates(con, text_cols, f"(SELECT * FROM {quote_ident(table)} LIMIT {_HEAD_ROWS})")
    if not text_cols:
        return {}
    counts = _counts(con, quote_ident(table), text_cols)
    changes: dict[str, str] = {}
    replace: list[str] = []
    for name, (n, numbers, decimals, dates) in zip(text_cols, counts, strict=True):
        c = quote_ident(name)
        if n and numbers == n:
            changes[name] = "DOUBLE" if decimals else "BIGINT"
            replace.append(f"{_as_number(c, not decimals)} AS {c}")
        elif n and dates == n:
            changes[name] = "DATE"
            replace.append(f"CASE WHEN {_is_placeholder(c)} THEN NULL ELSE {_as_date(c)} END AS {c}")
    if replace:
        q = quote_ident(table)
        con.execute(f"CREATE OR REPLACE TABLE {q} AS SELECT * REPLACE ({', '.join(replace)}) FROM {q}")
    return changes


_HEAD_ROWS = 2000


def _counts(con: duckdb.DuckDBPyConnection, source: str, text_cols: list[str]) -> list[tuple[int, ...]]:
    """Per column: values (not NULL, not placeholders), numbers, numbers with a point, dates."""
    probes = []
    for name in text_cols:
        c = quote_ident(name)
        value = f"{c} IS NOT NULL AND NOT {_is_placeholder(c)}"
        probes += [f"count(*) FILTER (WHERE {value})",
                   f"count(*) FILTER (WHERE {value} AND regexp_full_match({_stripped(c)}, '{_NUMBER}')"
                   f" AND NOT regexp_full_match({_stripped(c)}, '{_LEADING_ZERO}'))",
                   f"count(*) FILTER (WHERE {value} AND contains({_stripped(c)}, '.'))",
                   f"count(*) FILTER (WHERE {value} AND {_as_date(c)} IS NOT NULL)"]
    row = con.execute(f"SELECT {', '.join(probes)} FROM {source}").fetchall()[0]
    return [tuple(row[i: i + 4]) for i in range(0, len(row), 4)]


def _candidates(con: duckdb.DuckDBPyConnection, text_cols: list[str], head: str) -> list[str]:
    """The text columns whose first rows are all numbers or all dates (placeholders aside)."""
    if not text_cols:
        return []
    counts = _counts(con, head, text_cols)
    return [c for c, (n, numbers, _, dates) in zip(text_cols, counts, strict=True)
            if n == 0 or numbers == n or dates == n]
