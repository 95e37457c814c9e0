"""``Catalog``: every source in one in-process DuckDB connection, with safe names and a lazy schema.

>>> import pandas as pd
>>> cat = Catalog.from_sources([{"Sales 2024": pd.DataFrame({"id": [1, 2], "amount": [9.5, 3.0]})}])
>>> list(cat.tables), cat.tables["sales_2024"].display_name, cat.tables["sales_2024"].n_rows
(['sales_2024'], 'Sales 2024', 2)
>>> cat.con.execute("SELECT sum(amount) FROM sales_2024").fetchone()
(12.5,)
>>> print(cat.schema().render())
Table sales_2024 (2 rows) -- originally "Sales 2024"
  id BIGINT, primary key, 1..2
  amount DOUBLE, 3.0..9.5
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from autotqa.catalog import loaders
from autotqa.catalog.keys import foreign_keys, primary_keys
from autotqa.catalog.models import ColumnInfo, TableInfo
from autotqa.catalog.naming import quote_ident, safe_table_name
from autotqa.catalog.schema import SchemaInfo
from autotqa.catalog.stats import table_schema
from autotqa.config import ExecutorConfig
from autotqa.errors import ConfigError, DataLoadError

Source = str | Path | pd.DataFrame | Mapping[str, pd.DataFrame]

DATAFRAME = "<dataframe>"


class Catalog:
    """Loaded tables (``tables``: safe name -> ``TableInfo``, in load order) on ``con``.

    Load with ``from_sources`` (which freezes) or ``add`` then ``freeze``. Once frozen, the
    connection can no longer read files or change its settings, so model-written SQL cannot reach
    the file system; loading more is then refused with a ``DataLoadError``.
    """

    def __init__(self, *, follow_links: bool = False) -> None:
        #: Whether a folder source follows symbolic links that lead out of the folder.
        self.follow_links = follow_links
        # No progress bar: it would print over the caller's terminal during long loads and queries.
        self.con: duckdb.DuckDBPyConnection = duckdb.connect(":memory:")
        self.con.execute("SET enable_progress_bar = false")
        # DuckDB refuses (instead of waiting) a call on a connection object another thread is
        # using, cursor() included: the pandas feeder, the schema statistics and the SQL executor
        # take their cursors through ``cursor()``, one at a time.
        self._con_lock = threading.Lock()
        self.tables: dict[str, TableInfo] = {}
        self._frozen = False
        self._bare_frames = 0
        self._schemas: dict[int, SchemaInfo] = {}

    @classmethod
    def from_sources(cls, sources: Source | Iterable[Source], *, freeze: bool = True,
                     limits: ExecutorConfig | None = None, follow_links: bool = False) -> Catalog:
        """Load every source (a path, a folder, a DataFrame, or a mapping name -> DataFrame) in order.

        A single source may be passed without a list. Table names follow ``naming.safe_table_name``:
        a second ``sales.csv`` becomes ``sales_2``. ``limits`` gives the DuckDB memory and threads
        that queries get once frozen (default: ``ExecutorConfig()``'s). ``follow_links`` lets a folder
        source load links whose targets lie outside it (off: they are skipped with a warning).
        """
        if isinstance(sources, str | Path | pd.DataFrame | Mapping):
            sources = [sources]
        cat = cls(follow_links=follow_links)
        try:
            for source in sources:
                cat.add(source)
            if not cat.tables:
                raise DataLoadError("no sources given", hint="pass at least one file, folder or DataFrame")
            if freeze:
                cat.freeze(limits)
        except BaseException:
            cat.con.close()
            raise
        return cat

    @property
    def frozen(self) -> bool:
        """Whether ``freeze`` has run."""
        return self._frozen

    def add(self, source: Source, name: str | None = None) -> list[str]:
        """Load one source; returns the new table names. ``name`` overrides a bare DataFrame's name.

        A source that fails to load leaves no table behind (partly loaded databases are dropped).
        """
        if self._frozen:
            raise DataLoadError(f"cannot load {_describe(source)}: the catalog is frozen",
                                hint="load every source before freeze() / from_sources() returns")
        created: list[str] = []

        def new_name(display: str) -> str:
            safe = safe_table_name(display, [*self.tables, *created])
            created.append(safe)
            return safe

        try:
            if isinstance(source, pd.DataFrame):
                self._bare_frames += 1
                frames = {name or f"df{self._bare_frames}": source}
                loaded = loaders.load_frames(self.con, frames, new_name, DATAFRAME)
            elif isinstance(source, Mapping):
                loaded = loaders.load_frames(self.con, source, new_name, DATAFRAME)
            elif isinstance(source, str | Path):
                loaded = loaders.load_path(self.con, Path(source).expanduser(), new_name,
                                           follow_links=self.follow_links)
            else:
                raise DataLoadError(f"cannot load a {type(source).__name__}",
                                    hint="pass a file or folder path, a DataFrame, or a dict of DataFrames")
        except BaseException:
            for safe in created:
                self.con.execute(f"DROP TABLE IF EXISTS {quote_ident(safe)}")
            raise
        for safe, display, origin in loaded:
            self.tables[safe] = self._describe_table(safe, display, origin)
        self._schemas.clear()
        return [safe for safe, _, _ in loaded]

    def _describe_table(self, safe: str, display: str, origin: str) -> TableInfo:
        cols = self.con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND table_name = ? ORDER BY column_index", [safe]).fetchall()
        # fetchall, not fetchone: DuckDB 2 treats a half-read result as unfinished work on ``con``.
        row = self.con.execute(f"SELECT count(*) FROM {quote_ident(safe)}").fetchall()[0]
        return TableInfo(name=safe, display_name=display, source=origin,
                         columns=[ColumnInfo(n, t) for n, t in cols], n_rows=int(row[0]))

    def freeze(self, limits: ExecutorConfig | None = None) -> None:
        """Cut the connection off from files, bound its memory and threads, lock its settings
        (idempotent).

        DuckDB's defaults are 80 % of RAM, every core, and spilling to ``./.tmp`` in the working
        directory: for model-written queries that is a denial of service and a file write. The
        memory limit is the data already loaded plus ``sql_memory_limit_mb`` for query work; with no
        temporary directory a query past it fails with an out-of-memory error instead of spilling.
        """
        if self._frozen:
            return
        limits = limits or ExecutorConfig()
        try:
            loaded = self.con.execute("SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()").fetchall()
            budget = int(loaded[0][0]) + limits.sql_memory_limit_mb * 1024 * 1024
            self.con.execute(f"SET memory_limit = '{budget // 1024}KiB'")
            self.con.execute(f"SET threads = {int(limits.sql_threads)}")
            self.con.execute("SET temp_directory = ''")
            self.con.execute("SET enable_external_access = false")
            self.con.execute("SET lock_configuration = true")
        except duckdb.Error as e:
            raise ConfigError(f"could not lock the DuckDB connection: {e}") from None
        self._frozen = True

    def columns_by_table(self) -> dict[str, list[str]]:
        """Table name -> column names, in load and column order."""
        return {name: [c.name for c in info.columns] for name, info in self.tables.items()}

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A handle of its own on the catalog's database, safe to take from any thread."""
        with self._con_lock:
            return self.con.cursor()

    def arrow(self, table_name: str) -> pa.Table:
        """A table's full contents as Arrow (e.g. for the pandas sandbox)."""
        info = self._info(table_name)
        with self.cursor() as cur:  # callers may be on other threads (sandbox feeders)
            return cur.sql(f"SELECT * FROM {quote_ident(info.name)}").to_arrow_table()

    def _info(self, table_name: str) -> TableInfo:
        info = self.tables.get(table_name) or self.tables.get(table_name.lower())
        if info is None:
            raise KeyError(f"no table {table_name!r}; tables: {', '.join(self.tables)}")
        return info

    def schema(self, sample_values: int = 3) -> SchemaInfo:
        """Statistics, keys and foreign keys of all tables; computed on first call, then cached."""
        cached = self._schemas.get(sample_values)
        if cached is None:
            # A cursor: statistics queries must not disturb a result the caller holds on ``con``.
            with self.cursor() as cur:
                tables = [table_schema(cur, info, sample_values) for info in self.tables.values()]
                pks = primary_keys(tables)
                cached = SchemaInfo(tables=tables, primary_keys=pks,
                                    foreign_keys=foreign_keys(cur, tables, pks))
            self._schemas[sample_values] = cached
        return cached

    def fingerprint(self) -> str:
        """sha256 (hex) of the full schema render and row counts: a cache key for prompt-prefix state.

        Cheap, not a content hash: data edits that keep the rendered statistics identical collide,
        which is what a cache for a *prompt* built from that render wants.
        """
        h = hashlib.sha256(self.schema().render().encode())
        for name, info in self.tables.items():
            h.update(f"\n{name}:{info.n_rows}".encode())
        return h.hexdigest()

    def close(self) -> None:
        """Close the connection."""
        self.con.close()


def _describe(source: object) -> str:
    return str(source) if isinstance(source, str | Path) else f"a {type(source).__name__}"
