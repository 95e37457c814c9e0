"""Spider on a database server: ``autotqa eval --dataset spider ... --target postgresql://...``.

Each Spider database is copied once into the server (a schema named after it on PostgreSQL, a
database on MySQL-protocol servers), then every question on it is answered through that server:
the strategy sees a task whose source is the server URL, so the catalog reflects the server and the
Engineer's SQL runs there. The gold query still runs on the original SQLite file (the reference).

The copy is made from the DuckDB catalog of the SQLite file, so both runs see the same values and
types; the keys the DuckDB catalog finds are declared on the server (foreign keys ``NOT VALID`` on
PostgreSQL: Spider's data does not always satisfy them), so both schema blocks name the same keys.
The target's user must be allowed to create schemas (databases) there; questions run read-only.
"""

from __future__ import annotations

import threading
from typing import Any

from ..catalog.server_conn import ServerTarget, connection_error, parse_server_url
from ..catalog.stats import is_numeric
from .datasets import Task
from .strategies import Prediction, Strategy

#: Rows inserted per batch while copying a database.
BATCH_ROWS = 2000


def server_type(duckdb_type: str, dialect: str) -> str:
    """The column type to create on the server for a DuckDB column type.

    >>> [server_type(t, "postgresql") for t in ("BIGINT", "DOUBLE", "VARCHAR", "DECIMAL(10,2)", "DATE")]
    ['BIGINT', 'DOUBLE PRECISION', 'TEXT', 'DECIMAL(10,2)', 'DATE']
    >>> server_type("HUGEINT", "mysql"), server_type("TIMESTAMP", "mysql")
    ('DECIMAL(38,0)', 'DATETIME')
    """
    t = duckdb_type.upper()
    if t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "BOOLEAN", "DATE", "TIME"):
        return t
    if t in ("UTINYINT", "USMALLINT", "UINTEGER"):
        return "BIGINT"
    if t.startswith("DECIMAL"):
        return t
    if t in ("FLOAT", "REAL"):
        return "REAL"
    if t == "DOUBLE":
        return "DOUBLE PRECISION" if dialect == "postgresql" else "DOUBLE"
    if is_numeric(t):  # HUGEINT, UBIGINT and wider
        return "NUMERIC(38,0)" if dialect == "postgresql" else "DECIMAL(38,0)"
    if t.startswith("TIMESTAMP"):
        return t if dialect == "postgresql" else "DATETIME"
    return "TEXT"


class OnServer:
    """Wraps a strategy so that each Spider question is answered on the server copy of its database."""

    def __init__(self, inner: Strategy, target: str | ServerTarget) -> None:
        self._inner = inner
        self.name = inner.name
        self.target = parse_server_url(target) if isinstance(target, str) else target
        self._urls: dict[str, str] = {}
        self._lock = threading.Lock()

    def answer(self, task: Task) -> Prediction:
        return self._inner.answer(task.model_copy(update={"source": self.url_for(task)}))

    def url_for(self, task: Task) -> str:
        """The server URL of the task's database, copying the database there first if needed."""
        with self._lock:
            url = self._urls.get(task.source_key)
            if url is None:
                name = copy_sqlite(task.source, self.target, task.source_key)
                # In memory only (it holds the password): records and traces keep the source key.
                if self.target.dialect == "postgresql":
                    rendered = self.target.url.set(drivername="postgresql")
                    url = rendered.render_as_string(hide_password=False) + f"?schema={name}"
                else:
                    url = self.target.url.set(drivername="mysql", database=name).render_as_string(hide_password=False)
                self._urls[task.source_key] = url
            return url

    def close(self) -> None:
        self._inner.close()


def copy_sqlite(path: str, target: ServerTarget, name: str) -> str:
    """Copy the SQLite database at ``path`` into ``target`` as ``name`` (skipped when already there)."""
    import sqlalchemy as sa

    from ..catalog import Catalog

    catalog = Catalog.from_sources([path])
    # A writable engine of its own: create_server_engine's sessions are read-only.
    engine = sa.create_engine(target.url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            if _already_there(conn, target, name, len(catalog.tables)):
                return name
            _create(conn, catalog, target, name)
    except sa.exc.OperationalError as exc:
        raise connection_error(target, exc) from None
    finally:
        engine.dispose()
        catalog.close()
    return name


def _already_there(conn: Any, target: ServerTarget, name: str, n_tables: int) -> bool:
    import sqlalchemy as sa

    found = conn.execute(sa.text("SELECT count(*) FROM information_schema.tables WHERE table_schema = :s"),
                         {"s": name}).scalar_one()
    return int(found) == n_tables


def _create(conn: Any, catalog: Any, target: ServerTarget, name: str) -> None:
    import sqlalchemy as sa

    q = conn.dialect.identifier_preparer.quote
    pg = target.dialect == "postgresql"
    conn.exec_driver_sql(f"DROP {'SCHEMA' if pg else 'DATABASE'} IF EXISTS {q(name)}{' CASCADE' if pg else ''}")
    conn.exec_driver_sql(f"CREATE {'SCHEMA' if pg else 'DATABASE'} {q(name)}")
    schema = catalog.schema()
    for table, info in catalog.tables.items():
        key = (schema.primary_keys.get(table) or [None])[0]
        cols = []
        for c in info.columns:
            typ = server_type(c.type, target.dialect)
            keyable = c.name == key and (pg or typ != "TEXT")  # MySQL keys need a bounded type
            cols.append(f"{q(c.name)} {typ}{' PRIMARY KEY' if keyable else ''}")
        conn.exec_driver_sql(f"CREATE TABLE {q(name)}.{q(table)} ({', '.join(cols)})")
        data = catalog.arrow(table).to_pylist()
        clause = sa.table(table, *(sa.column(c.name) for c in info.columns), schema=name)
        for start in range(0, len(data), BATCH_ROWS):
            conn.execute(clause.insert(), data[start:start + BATCH_ROWS])
    if not pg:
        return  # MySQL would check every row and needs type-identical columns: no foreign keys there
    for fk in schema.foreign_keys:
        if (schema.primary_keys.get(fk.to_table) or [None])[0] != fk.to_column:
            continue  # a foreign key needs a unique parent column
        conn.exec_driver_sql(
            f"ALTER TABLE {q(name)}.{q(fk.from_table)} ADD FOREIGN KEY ({q(fk.from_column)}) "
            f"REFERENCES {q(name)}.{q(fk.to_table)} ({q(fk.to_column)}) NOT VALID")
    for table in catalog.tables:
        conn.exec_driver_sql(f"ANALYZE {q(name)}.{q(table)}")  # row estimates for the catalog
