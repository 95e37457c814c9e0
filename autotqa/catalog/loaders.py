"""Loaders: each puts one source's tables into the catalog's DuckDB connection.

A loader gets the connection, the source and ``new_name`` (which turns an original name into a safe,
unique table name and reserves it) and returns ``(table_name, display_name, source)`` triples in load
order; ``source`` is the file the table came from (for a folder: the file inside it).
Every failure becomes a ``DataLoadError`` naming the file and what to do; source files are opened
read-only and never written.

Text formats go straight through DuckDB's own readers (no pandas: a CSV of hundreds of MB loads at
DuckDB speed). SQLite is read with Python's ``sqlite3`` because DuckDB's sqlite extension would need a
download; DuckDB files are attached read-only and copied.
"""

from __future__ import annotations

import csv
import logging
import re
import sqlite3
from collections.abc import Callable, Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from autotqa.catalog.excel import read_workbook
from autotqa.catalog.frames import frame_to_arrow, rows_to_arrow, sqlite_affinity
from autotqa.catalog.limits import check_width
from autotqa.catalog.naming import quote_ident, sql_string
from autotqa.catalog.published import retype_published
from autotqa.catalog.sniff import (detect_format, display_stem, extension_format, sniff_encoding,
                                   text_suffix)
from autotqa.errors import DataLoadError

NewName = Callable[[str], str]
Loaded = list[tuple[str, str, str]]

#: Bytes read to recognise a file: magic numbers and the encoding of the first lines.
HEAD_BYTES = 1 << 16
_LOG = logging.getLogger("autotqa.catalog")
_TEXT_EXTENSIONS_TAB = (".tsv", ".tab")


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def read_head(path: Path) -> bytes:
    """The first bytes of ``path``; missing, unreadable and empty files become ``DataLoadError``."""
    try:
        with path.open("rb") as f:
            head = f.read(HEAD_BYTES)
    except FileNotFoundError:
        raise DataLoadError(f"{path}: no such file", path=str(path),
                            hint="check the path (relative paths start at the current directory)") from None
    except OSError as e:
        raise DataLoadError(f"{path}: cannot be read ({e.strerror or e})", path=str(path),
                            hint="check the file's permissions") from None
    if not head:
        raise DataLoadError(f"{path}: file is empty (0 bytes)", path=str(path),
                            hint="export the data again; a CSV needs at least a header line")
    return head


def load_path(con: duckdb.DuckDBPyConnection, path: Path, new_name: NewName, *,
              follow_links: bool = False) -> Loaded:
    """Load a file, or a folder: every file in it with a supported extension (not recursing, skipping
    hidden and Office lock files), in sorted name order, one table per file (per sheet for Excel).

    In a folder, a symbolic link whose target lies outside the folder is skipped (with a warning
    naming it) unless ``follow_links``: a link to a secret file must not load it as a table.
    """
    if path.is_dir():
        return _load_folder(con, path, new_name, follow_links)
    head = read_head(path)
    fmt = detect_format(path, head)
    display = display_stem(path)
    if fmt == "csv":
        _check_header_width(path, head)
        loaded = [(_load_csv(con, path, head, new_name(display)), display, str(path))]
    elif fmt in ("parquet", "json"):
        loaded = [(_load_with_reader(con, path, fmt, new_name(display)), display, str(path))]
    elif fmt == "excel":
        loaded = _load_excel(con, path, display, new_name)
    elif fmt == "sqlite":
        return _load_sqlite(con, path, new_name)
    else:
        loaded = _load_duckdb(con, path, new_name)
    for table, _, _ in loaded:
        width = con.execute("SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database() "
                            "AND table_name = ?", [table]).fetchall()[0][0]
        check_width(path, int(width))
        if fmt in ("csv", "excel"):  # published for readers: see catalog/published.py
            retype_published(con, table)
    return loaded


def _check_header_width(path: Path, head: bytes) -> None:
    """Refuse a CSV whose first line already has too many fields, before DuckDB reads it all.

    Counted with every usual delimiter (quotes respected) on the first line of ``head``; the
    widest count decides, so a file DuckDB reads narrower can only be refused by the width check
    after loading, never wrongly here unless its header really is that wide.
    """
    first = head.splitlines()[0].decode("latin-1") if head.strip() else ""  # \r alone ends a line too

    def width(delimiter: str) -> int:
        try:
            return len(next(csv.reader([first], delimiter=delimiter), []))
        except csv.Error:  # a malformed line: DuckDB's own reader gives the real error
            return first.count(delimiter) + 1

    check_width(path, max(width(d) for d in ",;\t|"))


def _inside(folder: Path, entry: Path) -> bool:
    try:
        entry.resolve().relative_to(folder.resolve())
    except (ValueError, OSError):
        return False
    return True


def _load_folder(con: duckdb.DuckDBPyConnection, folder: Path, new_name: NewName,
                 follow_links: bool = False) -> Loaded:
    files = []
    skipped = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith((".", "~$")) or not extension_format(p) or not p.is_file():
            continue
        if p.is_symlink() and not follow_links and not _inside(folder, p):
            skipped.append(p)
            _LOG.warning("%s: skipped, a link to %s outside the folder (follow_links=True loads it)",
                         p, p.resolve())
            continue
        files.append(p)
    if not files:
        why = f" (skipped links out of the folder: {', '.join(p.name for p in skipped)})" if skipped else ""
        raise DataLoadError(f"{folder}: folder has no loadable data files{why}", path=str(folder),
                            hint="put .csv/.tsv/.parquet/.json/.xlsx/.sqlite/.duckdb files in it")
    loaded: Loaded = []
    for p in files:
        loaded += load_path(con, p, new_name)
    return loaded


def _create_from(con: duckdb.DuckDBPyConnection, table: str, select: str, params: list[Any]) -> None:
    con.execute(f"CREATE TABLE {quote_ident(table)} AS {select}", params)


def _load_csv(con: duckdb.DuckDBPyConnection, path: Path, head: bytes, table: str) -> str:
    """DuckDB's ``read_csv`` with its sniffer, falling back step by step for messy files.

    Attempts: as sniffed; then with ragged rows padded and types sniffed from the whole file; then
    everything as text. A UTF-8 failure restarts with latin-1 (which decodes any byte). A sniff that
    "succeeds" with one column named like ``a,b,c`` (ragged rows confuse the delimiter detection) is
    only kept when no later attempt splits the columns; a header line read as data is re-read as
    the header (see ``_missed_header``).
    """
    compressed = text_suffix(path) != path.suffix.lower()
    encoding = "utf-8" if compressed else sniff_encoding(head)
    base: dict[str, Any] = {"delim": "\t"} if text_suffix(path) in _TEXT_EXTENSIONS_TAB else {}
    relaxed = {**base, "null_padding": True, "strict_mode": False, "sample_size": -1}
    attempts = [base, relaxed, {**relaxed, "all_varchar": True}]
    last: duckdb.Error | None = None
    unsplit: list[Any] | None = None
    for enc in dict.fromkeys([encoding, "latin-1"]):
        wrong_encoding = False
        for opts in attempts:
            named = "".join(f", {k} = ?" for k in opts)
            params = [str(path), enc, *opts.values()]
            select = f"SELECT * FROM read_csv(?, encoding = ?{named})"
            try:
                _create_from(con, table, select, params)
            except duckdb.Error as e:
                last = e
                if "unicode" in str(e).lower() and enc != "latin-1":
                    wrong_encoding = True
                    break  # no option helps: go to latin-1
                continue
            if _missed_header(con, table):
                con.execute(f"DROP TABLE {quote_ident(table)}")
                try:
                    _create_from(con, table, select[:-1] + ", header = true)", params)
                except duckdb.Error:
                    _create_from(con, table, select, params)  # keep DuckDB's reading after all
            if not _unsplit(con, table):
                return table
            con.execute(f"DROP TABLE {quote_ident(table)}")
            unsplit = unsplit or [select, params]
        if not wrong_encoding:
            break
    if unsplit is not None:
        _create_from(con, table, *unsplit)
        return table
    assert last is not None
    raise DataLoadError(f"{path}: could not be read as CSV: {_first_line(last)}", path=str(path),
                        hint="check the delimiter, quoting and that every row has the same number "
                             "of fields") from None


def _missed_header(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether DuckDB read a header line as data.

    Its sniffer decides "no header" when the header's cells fit the column types, which an empty
    header cell always does (WikiTableQuestions files start ``"","Name",...``). Then every column is
    called ``column<i>``, and the first row holds only NULLs in typed columns and non-numbers in
    text columns: that row was a header.
    """
    cols = con.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? "
                       "AND database_name = current_database() ORDER BY column_index", [table]).fetchall()
    if not all(re.fullmatch(r"column\d+", name) for name, _ in cols):
        return False
    first = con.execute(f"SELECT * FROM {quote_ident(table)} LIMIT 1").fetchall()
    if not first or all(v is None for v in first[0]):
        return False
    for (_, type_), value in zip(cols, first[0], strict=True):
        if value is None:
            continue
        if type_ != "VARCHAR" or re.fullmatch(r"[-+]?[\d.,%$ ]+", value):
            return False
    return True


def _unsplit(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether the table came out as one column whose name still holds a delimiter."""
    cols = con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
                       "AND database_name = current_database()", [table]).fetchall()
    return len(cols) == 1 and any(d in cols[0][0] for d in ",;\t|")


def _load_with_reader(con: duckdb.DuckDBPyConnection, path: Path, fmt: str, table: str) -> str:
    reader = "read_parquet" if fmt == "parquet" else "read_json_auto"
    try:
        _create_from(con, table, f"SELECT * FROM {reader}(?)", [str(path)])
    except duckdb.Error as e:
        raise DataLoadError(f"{path}: could not be read as {fmt}: {_first_line(e)}", path=str(path),
                            hint=f"the file may be corrupt or not really {fmt}; export it again") from None
    return table


def load_arrow(con: duckdb.DuckDBPyConnection, data: pa.Table, table: str) -> str:
    """Copy an Arrow table into the connection as ``table``."""
    if data.num_columns == 0:
        raise DataLoadError(f"table {table!r} has no columns", hint="pass data with at least one column")
    check_width(f"table {table!r}", data.num_columns)
    view = f"__autotqa_in_{table}"
    con.register(view, data)
    try:
        _create_from(con, table, f"SELECT * FROM {quote_ident(view)}", [])
    finally:
        con.unregister(view)
    return table


def load_frames(con: duckdb.DuckDBPyConnection, frames: Mapping[str, pd.DataFrame],
                new_name: NewName, source: str = "<dataframe>") -> Loaded:
    """Load named DataFrames (dict order)."""
    loaded: Loaded = []
    for display, df in frames.items():
        if not isinstance(df, pd.DataFrame):
            raise DataLoadError(f"{source}: value for {display!r} is {type(df).__name__}, not a DataFrame",
                                hint="pass a mapping of table name to pandas.DataFrame")
        try:
            data = frame_to_arrow(df)
        except (pa.ArrowException, ValueError, TypeError) as e:
            raise DataLoadError(f"{source}: DataFrame {display!r} cannot be converted: {_first_line(e)}",
                                hint="convert unusual column types (objects) to text first") from None
        loaded.append((load_arrow(con, data, new_name(str(display))), str(display), source))
    return loaded


def _load_excel(con: duckdb.DuckDBPyConnection, path: Path, display: str, new_name: NewName) -> Loaded:
    """One table per non-empty sheet: named after the file for one sheet, ``file_sheet`` for several."""
    sheets = {k: v for k, v in read_workbook(path).items() if v.shape[1] > 0}
    if not sheets:
        raise DataLoadError(f"{path}: workbook has no non-empty sheet", path=str(path))
    if len(sheets) > 1:
        sheets = {f"{display}_{k}": v for k, v in sheets.items()}
    else:
        sheets = {display: next(iter(sheets.values()))}
    return load_frames(con, sheets, new_name, source=str(path))


def _load_sqlite(con: duckdb.DuckDBPyConnection, path: Path, new_name: NewName) -> Loaded:
    """Every table of a SQLite file, in creation order, values typed by what they hold.

    ``immutable=1`` makes SQLite skip locking and journal files, so even a read-only folder works and
    nothing is ever written next to the database.
    """
    uri = path.resolve().as_uri() + "?mode=ro&immutable=1"
    loaded: Loaded = []
    try:
        with closing(sqlite3.connect(uri, uri=True)) as src:
            names = [r[0] for r in src.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid")]
            for name in names:
                q = '"' + name.replace('"', '""') + '"'
                info = src.execute(f"PRAGMA table_info({q})").fetchall()
                check_width(path, len(info), name)  # before any row is fetched
                columns, fetched = _fetch_all(src, f"SELECT * FROM {q}")
                declared = {row[1]: row[2] for row in info}
                data = rows_to_arrow(columns, fetched, [sqlite_affinity(declared.get(c)) for c in columns])
                loaded.append((load_arrow(con, data, new_name(name)), name, str(path)))
    except sqlite3.Error as e:
        raise DataLoadError(f"{path}: could not be read as SQLite: {_first_line(e)}", path=str(path),
                            hint="check the file with `sqlite3 FILE .tables`; it may be corrupt") from None
    if not loaded:
        raise DataLoadError(f"{path}: SQLite database has no tables", path=str(path))
    return loaded


def _fetch_all(src: sqlite3.Connection, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows; text that is not valid UTF-8 is decoded leniently (U+FFFD).

    The lenient decoder runs only for a table that needs it: as a Python ``text_factory`` it costs
    a function call per cell (a quarter of the load time of a large database).
    """
    try:
        cur = src.execute(sql)
        return [d[0] for d in cur.description], cur.fetchall()
    except sqlite3.OperationalError as e:
        if "decode" not in str(e).lower():
            raise
    src.text_factory = lambda b: b.decode("utf-8", errors="replace")
    try:
        cur = src.execute(sql)
        return [d[0] for d in cur.description], cur.fetchall()
    finally:
        src.text_factory = str


def _load_duckdb(con: duckdb.DuckDBPyConnection, path: Path, new_name: NewName) -> Loaded:
    """Every base table of a DuckDB file (by schema, then name), copied in from a read-only attach."""
    alias = "__autotqa_src"
    try:
        con.execute(f"ATTACH {sql_string(str(path))} AS {alias} (READ_ONLY)")
    except duckdb.Error as e:
        raise DataLoadError(f"{path}: could not be opened as a DuckDB database: {_first_line(e)}",
                            path=str(path), hint="it may be corrupt, or written by a newer DuckDB") from None
    loaded: Loaded = []
    try:
        tables = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ? "
            "ORDER BY schema_name, table_name", [alias]).fetchall()
        for schema, name in tables:
            display = name if schema == "main" else f"{schema}.{name}"
            source = f"{alias}.{quote_ident(schema)}.{quote_ident(name)}"
            loaded.append((new_name(display), display, str(path)))
            _create_from(con, loaded[-1][0], f"SELECT * FROM {source}", [])
    except duckdb.Error as e:
        raise DataLoadError(f"{path}: could not copy tables from DuckDB file: {_first_line(e)}",
                            path=str(path)) from None
    finally:
        con.execute(f"DETACH {alias}")
    if not loaded:
        raise DataLoadError(f"{path}: DuckDB database has no tables", path=str(path))
    return loaded
