"""``ServerCatalog``: the tables of one database on a PostgreSQL or MySQL-protocol server, described for
the agents like loaded files, while the data stays on the server.

It offers what the rest of autotqa reads from a ``Catalog`` (``tables``, ``schema()``,
``columns_by_table()``, ``fingerprint()``, ``close()``) and, for the server executor, ``engine``,
``target`` and ``server_name``: tables get the same safe names a file would (``Product Lines`` ->
``product_lines``, "originally ..." in the schema block), and the executor maps them back.

``open_sources`` is where sources are dispatched: a database URL opens a ``ServerCatalog``; anything
else loads into the in-process DuckDB ``Catalog``. A URL must be the only source: joining a server's
tables with local files would mean copying one side to the other, which is what pushing down avoids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from autotqa.catalog.keys import primary_keys
from autotqa.catalog.models import ForeignKey, TableInfo
from autotqa.catalog.naming import safe_table_name
from autotqa.catalog.schema import SchemaInfo
from autotqa.catalog.server_conn import (ServerTarget, connection_error, create_server_engine, is_server_url,
                                         parse_server_url)
from autotqa.config import ExecutorConfig
from autotqa.errors import DataLoadError


def open_sources(sources: Any, limits: ExecutorConfig | None = None) -> Any:
    """A ``ServerCatalog`` for one database URL, else a ``Catalog`` of the files and DataFrames
    (``limits``: the DuckDB memory and threads its queries get)."""
    from autotqa.catalog.catalog import Catalog

    if isinstance(sources, str | Path | pd.DataFrame | Mapping):
        sources = [sources]
    sources = list(sources)
    urls = [s for s in sources if is_server_url(s)]
    if not urls:
        return Catalog.from_sources(sources, limits=limits)
    if len(sources) > 1:
        raise DataLoadError("a database URL must be the only source",
                            hint="query one server database at a time; load files in a separate session")
    return ServerCatalog(parse_server_url(urls[0]))


class ServerCatalog:
    """Reflects the tables of ``target`` (all tables and views of its schema, in the order they were
    created, as a file lists its tables) on construction."""

    def __init__(self, target: ServerTarget) -> None:
        import sqlalchemy as sa

        self.target = target
        self.engine = create_server_engine(target)
        self.tables: dict[str, TableInfo] = {}
        #: safe name -> the table's name on the server.
        self.server_name: dict[str, str] = {}
        self._declared_pk: dict[str, list[str]] = {}
        self._declared_fk: list[ForeignKey] = []
        self._schemas: dict[int, SchemaInfo] = {}
        try:
            with self.engine.connect() as conn:
                self._reflect(conn)
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            self.engine.dispose()
            raise connection_error(target, exc) from None
        except sa.exc.DBAPIError as exc:
            self.engine.dispose()
            raise DataLoadError(f"cannot read the tables of {target.display}: {_first_line(target, exc)}",
                                hint="grant the user SELECT on the tables (and USAGE on the schema)") from None
        except BaseException:
            self.engine.dispose()
            raise
        if not self.tables:
            self.engine.dispose()
            where = f"schema {target.schema!r}" if target.schema else "its default schema"
            raise DataLoadError(f"no tables in {where} of {target.display}",
                                hint="name the schema with ?schema=NAME, and grant the user SELECT on its tables")

    def _reflect(self, conn: Any) -> None:
        import sqlalchemy as sa

        from autotqa.catalog.server_stats import count_rows, readable, reflect_table, table_facts

        insp = sa.inspect(conn)
        schema = self.target.schema
        facts = table_facts(conn, self.target.dialect, schema)
        order = {name: i for i, (name, _) in enumerate(facts)}
        estimates = {name: rows for name, rows in facts if rows is not None}
        names = sorted([*insp.get_table_names(schema=schema), *insp.get_view_names(schema=schema)],
                       key=lambda n: (order.get(n, len(order)), n.lower()))
        names = readable(conn, self.target.dialect, schema, names)
        fks: list[tuple[str, dict[str, Any]]] = []
        for name in names:
            columns, pk, table_fks = reflect_table(insp, name, schema, self.target.sqlglot_dialect)
            safe = safe_table_name(name, list(self.tables))
            self.server_name[safe] = name
            table = self.table_clause(safe, columns=[c.name for c in columns])
            estimate = estimates.get(name)
            n_rows = count_rows(conn, table, estimate if estimate is not None and estimate >= 0 else None)
            self.tables[safe] = TableInfo(name=safe, display_name=name, source=self.target.place,
                                          columns=columns, n_rows=n_rows)
            if len(pk) == 1:  # a composite key names no single key column
                self._declared_pk[safe] = pk
            fks += [(safe, fk) for fk in table_fks]
        by_server = {real: safe for safe, real in self.server_name.items()}
        for child, fk in fks:
            parent = by_server.get(fk.get("referred_table", ""))
            same_schema = fk.get("referred_schema") in (None, schema)
            if parent is None or not same_schema:
                continue
            for col, ref in zip(fk["constrained_columns"], fk["referred_columns"], strict=False):
                self._declared_fk.append(ForeignKey(child, col, parent, ref, 1.0))
        # In table and column order, as a file's foreign keys are listed.
        position = {(t, c.name): (i, j) for i, (t, info) in enumerate(self.tables.items())
                    for j, c in enumerate(info.columns)}
        self._declared_fk.sort(key=lambda f: (position.get((f.from_table, f.from_column), (len(position), 0)),
                                              f.to_table, f.to_column))

    def table_clause(self, safe: str, columns: Iterable[str] | None = None) -> Any:
        """A SQLAlchemy table clause for the server table behind ``safe`` (quoted by SQLAlchemy)."""
        import sqlalchemy as sa

        names = [c.name for c in self.tables[safe].columns] if columns is None else list(columns)
        return sa.table(self.server_name[safe], *(sa.column(c) for c in names), schema=self.target.schema)

    @property
    def dialect(self) -> str:
        return self.target.dialect

    @property
    def frozen(self) -> bool:
        """Always: the session is read-only and nothing more can be loaded."""
        return True

    def columns_by_table(self) -> dict[str, list[str]]:
        """Safe table name -> column names (as the server spells them), in reflection order."""
        return {name: [c.name for c in info.columns] for name, info in self.tables.items()}

    def schema(self, sample_values: int = 3) -> SchemaInfo:
        """Statistics, declared keys (heuristic ones where a table declares none) and declared foreign keys."""
        import sqlalchemy as sa

        from autotqa.catalog.server_stats import table_schema

        cached = self._schemas.get(sample_values)
        if cached is None:
            try:
                with self.engine.connect() as conn:
                    tables = [table_schema(conn, info, self.table_clause(name), sample_values)
                              for name, info in self.tables.items()]
            except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
                raise connection_error(self.target, exc) from None
            except sa.exc.DBAPIError as exc:
                raise DataLoadError(f"cannot compute statistics of {self.target.display}: "
                                    f"{_first_line(self.target, exc)}") from None
            pks = {**primary_keys(tables), **self._declared_pk}
            cached = SchemaInfo(tables=tables, primary_keys={t.name: pks[t.name] for t in tables if t.name in pks},
                                foreign_keys=list(self._declared_fk))
            self._schemas[sample_values] = cached
        return cached

    def fingerprint(self) -> str:
        """sha256 (hex) of the schema render, the row counts and the (masked) URL."""
        h = hashlib.sha256(self.schema().render().encode())
        h.update(self.target.display.encode())
        for name, info in self.tables.items():
            h.update(f"\n{name}:{info.n_rows}".encode())
        return h.hexdigest()

    def close(self) -> None:
        """Close the pooled connections."""
        self.engine.dispose()


def _first_line(target: ServerTarget, exc: BaseException) -> str:
    text = target.scrub(str(getattr(exc, "orig", None) or exc))
    return next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
