"""Session-wide PostgreSQL and MariaDB servers with a small ``shop`` database, for the server tests.

Each server starts once per test session (a few seconds) in a temporary folder on a free port and is
stopped at the end. Without the binaries the tests skip locally; in CI (CI=true, where
scripts/test.sh installs them) that is a failure instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from servers import (ADMIN_PASSWORD, READER_PASSWORD, Server, mariadb_bin,  # noqa: E402
                     postgres_bin, start_mariadb, start_postgres)

pytest.importorskip("sqlalchemy")
pytest.importorskip("psycopg")
pytest.importorskip("pymysql")

_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

#: The shop database, in SQL both servers accept. Mixed-case and spaced names check that the
#: Engineer's lower-case DuckDB SQL reaches them.
SHOP_TABLES = [
    "CREATE TABLE customers (id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL, city VARCHAR(40))",
    "CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id), "
    "amount DECIMAL(10,2) NOT NULL, placed DATE NOT NULL)",
    "INSERT INTO customers VALUES (1, 'Ann', 'Lisbon'), (2, 'Bob', 'Porto'), (3, 'Cy', 'Lisbon'), (4, 'Di', NULL)",
    "INSERT INTO orders VALUES (10, 1, 9.50, '2024-01-05'), (11, 1, 3.00, '2024-02-10'), "
    "(12, 2, 7.25, '2024-02-11'), (13, 3, 1.00, '2024-03-01'), (14, 3, 4.00, '2024-03-02')",
]
PG_EXTRA = [
    'CREATE TABLE "Product Lines" ("LineID" INTEGER PRIMARY KEY, "Line Name" TEXT, "Launched" INTEGER)',
    """INSERT INTO "Product Lines" VALUES (1, 'Tea', 2019), (2, 'Coffee', 2021)""",
    "CREATE TABLE big AS SELECT g AS n FROM generate_series(1, 5000) g",
    "CREATE SCHEMA sales",
    "CREATE TABLE sales.regions (code VARCHAR(4) PRIMARY KEY, region TEXT)",
    "INSERT INTO sales.regions VALUES ('N', 'North'), ('S', 'South')",
]
MARIA_EXTRA = [
    "CREATE TABLE `Product Lines` (`LineID` INTEGER PRIMARY KEY, `Line Name` TEXT, `Launched` INTEGER)",
    "INSERT INTO `Product Lines` VALUES (1, 'Tea', 2019), (2, 'Coffee', 2021)",
    "CREATE TABLE big (n INTEGER)",
    "SET SESSION max_recursive_iterations = 10000",
    "INSERT INTO big WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 5000) SELECT n FROM g",
]


def _need(found: object, what: str) -> None:
    if found:
        return
    message = f"{what} not installed (apt-get install postgresql mariadb-server; scripts/test.sh does it as root)"
    if _CI:
        pytest.fail(message)
    pytest.skip(message)


def _seed_postgres(server: Server) -> None:
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=server.port, user="admin", password=ADMIN_PASSWORD,
                         dbname="postgres", autocommit=True) as con:
        con.execute("CREATE DATABASE shop")
        con.execute(f"CREATE ROLE reader LOGIN PASSWORD '{READER_PASSWORD}'")
    with psycopg.connect(host="127.0.0.1", port=server.port, user="admin", password=ADMIN_PASSWORD,
                         dbname="shop", autocommit=True) as con:
        for sql in [*SHOP_TABLES, *PG_EXTRA]:
            con.execute(sql)
        for schema in ("public", "sales"):
            con.execute(f"GRANT USAGE ON SCHEMA {schema} TO reader")
            con.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO reader")
        con.execute("ANALYZE")


def _seed_mariadb(server: Server) -> None:
    import pymysql

    con = pymysql.connect(host="127.0.0.1", port=server.port, user="root", autocommit=True)
    try:
        with con.cursor() as cur:
            cur.execute(f"CREATE USER admin@'%' IDENTIFIED BY '{ADMIN_PASSWORD}'")
            cur.execute("GRANT ALL ON *.* TO admin@'%' WITH GRANT OPTION")
            cur.execute(f"CREATE USER reader@'%' IDENTIFIED BY '{READER_PASSWORD}'")
            cur.execute("CREATE DATABASE shop")
            cur.execute("GRANT SELECT ON shop.* TO reader@'%'")
            cur.execute("USE shop")
            for sql in [*SHOP_TABLES, *MARIA_EXTRA]:
                cur.execute(sql)
            cur.execute("ANALYZE TABLE customers, orders, big")
    finally:
        con.close()


@contextlib.contextmanager
def server_folder(prefix: str) -> Iterator[Path]:
    """A fresh folder straight under the system temp dir: pytest's own is private to root (0700),
    which the unprivileged server user cannot enter, and concurrent pytest runs reset its mode."""
    folder = Path(tempfile.mkdtemp(prefix=f"autotqa-{prefix}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def running(what: str, found: object, start: Callable[[Path], Server], seed: Callable[[Server], None]
            ) -> Iterator[Server]:
    """A seeded server in a folder of its own, stopped and removed afterwards."""
    _need(found, what)
    with server_folder(what.split()[0].lower()) as folder:
        server = start(folder / "server")
        try:
            seed(server)
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    with running("PostgreSQL (initdb/pg_ctl)", postgres_bin(), start_postgres, _seed_postgres) as server:
        yield server


@pytest.fixture(scope="session")
def maria_server() -> Iterator[Server]:
    with running("MariaDB (mariadbd/mariadb-install-db)", mariadb_bin(), start_mariadb, _seed_mariadb) as server:
        yield server


@pytest.fixture(scope="session")
def pg_url(pg_server: Server) -> str:
    """The shop database as the read-only ``reader`` (password in the URL)."""
    return pg_server.url("reader", READER_PASSWORD, "shop")


@pytest.fixture(scope="session")
def maria_url(maria_server: Server) -> str:
    return maria_server.url("reader", READER_PASSWORD, "shop")


@pytest.fixture(params=["postgresql", "mysql"])
def shop_url(request: pytest.FixtureRequest) -> str:
    """The shop database on each server in turn."""
    return request.getfixturevalue("pg_url" if request.param == "postgresql" else "maria_url")


@pytest.fixture()
def scratch_pg() -> Iterator[Server]:
    """A PostgreSQL server of this test's own, which the test may stop and start again."""
    with running("PostgreSQL (initdb/pg_ctl)", postgres_bin(), start_postgres, _seed_postgres) as server:
        yield server
