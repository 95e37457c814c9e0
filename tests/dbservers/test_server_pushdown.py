"""The server catalog and push-down executor on real PostgreSQL and MariaDB servers.

Every query here runs on the server: the catalog holds no copy of the data. The Engineer's DuckDB SQL
must come back with DuckDB's answers (``7 / 2`` is 3.5, ``strftime`` formats dates), which only holds
while sqlglot transpiles it; lower-case names must reach mixed-case tables and columns; the guard
must refuse before anything is sent; and the session must refuse writes even without the guard.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from servers import ADMIN_PASSWORD, READER_PASSWORD, Server

from autotqa.catalog import server_stats
from autotqa.catalog.server import ServerCatalog, open_sources
from autotqa.catalog.server_conn import parse_server_url
from autotqa.config import ExecutorConfig
from autotqa.errors import DataLoadError
from autotqa.executors.server_sql import ServerSQLExecutor, sql_executor_for


@pytest.fixture()
def shop(shop_url: str) -> Any:
    catalog = open_sources(shop_url)
    yield catalog
    catalog.close()


def run(catalog: ServerCatalog, sql: str, **config: Any) -> Any:
    return ServerSQLExecutor(catalog, ExecutorConfig(**config)).run(sql)


def test_schema_comes_from_the_servers_catalog(shop: ServerCatalog) -> None:
    assert sorted(shop.tables) == ["big", "customers", "orders", "product_lines"]
    if shop.dialect == "postgresql":  # in creation order, as a file lists its tables
        assert list(shop.tables) == ["customers", "orders", "product_lines", "big"]
    assert shop.server_name["product_lines"] == "Product Lines"
    schema = shop.schema()
    text = schema.render()
    assert "Table customers (4 rows)" in text
    assert "  id INTEGER, primary key, 1..4\n  name VARCHAR, e.g. 'Ann', 'Bob', 'Cy'\n" \
           "  city VARCHAR, 25% null, e.g. 'Lisbon', 'Porto'" in text
    assert "  amount DECIMAL(10,2), 1.00..9.50\n  placed DATE, 2024-01-05..2024-03-02" in text
    assert 'Table product_lines (2 rows) -- from shop, originally "Product Lines"' in text
    # Declared keys, not guesses: orders.customer_id is not unique, yet it is the declared foreign key.
    assert [f.pair() for f in schema.foreign_keys] == [("orders", "customer_id", "customers", "id")]
    assert schema.primary_keys["orders"] == ["order_id"]


def test_catalog_serves_the_same_schema_to_every_caller(shop: ServerCatalog) -> None:
    assert shop.schema() is shop.schema()
    assert len(shop.fingerprint()) == 64
    assert isinstance(sql_executor_for(shop), ServerSQLExecutor)


def test_big_tables_use_the_planners_estimate(pg_server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=pg_server.port, user="admin", password=ADMIN_PASSWORD,
                         dbname="postgres", autocommit=True) as con:
        con.execute("CREATE DATABASE tally")
    with psycopg.connect(host="127.0.0.1", port=pg_server.port, user="admin", password=ADMIN_PASSWORD,
                         dbname="tally", autocommit=True) as con:
        con.execute("CREATE TABLE t AS SELECT g AS n FROM generate_series(1, 100) g")
        con.execute("ANALYZE t")
        con.execute("INSERT INTO t SELECT g FROM generate_series(101, 150) g")  # autovacuum is off
    url = pg_server.url("admin", ADMIN_PASSWORD, "tally")
    exact = open_sources(url)
    assert exact.tables["t"].n_rows == 150
    exact.close()
    monkeypatch.setattr(server_stats, "EXACT_COUNT_LIMIT", 50)
    estimated = open_sources(url)
    assert estimated.tables["t"].n_rows == 100
    estimated.close()


def test_schema_parameter_picks_the_postgres_schema(pg_url: str) -> None:
    catalog = open_sources(pg_url + "?schema=sales")
    try:
        assert list(catalog.tables) == ["regions"]
        result = run(catalog, "SELECT region FROM regions WHERE code = 'S'")
        assert result.rows == [["South"]]
        assert '"sales"."regions"' in result.code
    finally:
        catalog.close()


@pytest.mark.parametrize(("sql", "rows"), [
    # DuckDB divides integers exactly; PostgreSQL and MySQL would not without the transpiled cast.
    ("SELECT 7 / 2 AS x", [[3.5]]),
    ("SELECT strftime(placed, '%Y-%m') AS m, count(*) AS n FROM orders GROUP BY 1 ORDER BY 1",
     [["2024-01", 1], ["2024-02", 2], ["2024-03", 2]]),
    # Lower-case names reach "Product Lines" and "LineID" as the server spells them.
    ('SELECT "Line Name" FROM product_lines WHERE lineid = 2', [["Coffee"]]),
    ("SELECT c.name, sum(o.amount) AS total FROM customers c JOIN orders o ON o.customer_id = c.id "
     "GROUP BY c.name ORDER BY total DESC", [["Ann", 12.5], ["Bob", 7.25], ["Cy", 5]]),
    ("SELECT name FROM customers WHERE name LIKE 'A%'", [["Ann"]]),
])
def test_duckdb_sql_is_transpiled_and_runs_on_the_server(shop: ServerCatalog, sql: str, rows: list) -> None:
    result = run(shop, sql)
    assert result.ok, result.error
    assert result.rows == rows


def test_the_sql_sent_is_in_the_servers_dialect(shop: ServerCatalog) -> None:
    result = run(shop, "SELECT strftime(placed, '%Y') AS y FROM orders LIMIT 1")
    expected = {"postgresql": "SELECT TO_CHAR(\"placed\", 'YYYY') AS y FROM \"orders\" AS orders LIMIT 1",
                "mysql": "SELECT DATE_FORMAT(`placed`, '%Y') AS y FROM `orders` AS orders LIMIT 1"}
    assert result.code == expected[shop.dialect]


def test_row_cap_is_a_limit_and_the_total_is_counted(shop: ServerCatalog) -> None:
    result = run(shop, "SELECT n FROM big ORDER BY n", row_cap=10)
    assert result.rows == [[i] for i in range(1, 11)]
    assert (result.n_rows, result.truncated) == (5000, True)
    assert result.code.endswith("LIMIT 11")


def test_byte_cap(shop: ServerCatalog) -> None:
    result = run(shop, "SELECT n FROM big", result_max_bytes=200)
    assert (result.ok, result.error_type) == (False, "too_large")


def test_timeout_stops_the_query_on_the_server(shop: ServerCatalog) -> None:
    t0 = time.perf_counter()
    result = run(shop, "SELECT count(*) FROM big a, big b, big c", sql_timeout_s=0.5)
    assert (result.ok, result.error_type) == (False, "timeout")
    assert time.perf_counter() - t0 < 5


def test_server_errors_are_results_the_model_can_act_on(pg_url: str) -> None:
    catalog = open_sources(pg_url)
    try:
        result = run(catalog, "SELECT CAST(name AS INTEGER) FROM customers")
        assert (result.ok, result.error_type) == (False, "conversion")
        assert result.error == 'invalid input syntax for type integer: "Ann"'
    finally:
        catalog.close()


HOSTILE = [
    ("DELETE FROM customers", "not_read_only"),
    ("SELECT 1; DROP TABLE customers", "multiple_statements"),
    ("COPY customers TO '/tmp/autotqa-stolen'", "not_read_only"),
    ("SET statement_timeout = 0", "not_read_only"),
    ("SELECT pg_read_file('/etc/passwd')", "forbidden_function"),
    ("SELECT pg_ls_dir('.')", "forbidden_function"),
    ("SELECT pg_read_binary_file('/etc/passwd')", "forbidden_function"),
    ("SELECT lo_import('/etc/passwd')", "forbidden_function"),
    ("SELECT dblink('host=127.0.0.1', 'SELECT 1')", "forbidden_function"),
    ("SELECT query_to_xml('DELETE FROM customers', true, true, '')", "forbidden_function"),
    ("SELECT load_file('/etc/passwd')", "forbidden_function"),
    ("SELECT * FROM customers INTO OUTFILE '/tmp/autotqa-stolen'", "not_read_only"),
    ("SELECT * FROM customers INTO DUMPFILE '/tmp/autotqa-stolen'", "not_read_only"),
    ("SELECT pg_sleep(30)", "forbidden_function"),
    ("SELECT sleep(30)", "forbidden_function"),
    ("SELECT benchmark(100000000, md5('a'))", "forbidden_function"),
    ("SELECT name FROM customers /*!50000 WHERE sleep(30) */", "not_read_only"),
    ("SELECT /*+ MAX_EXECUTION_TIME(999999) */ name FROM customers", "not_read_only"),
    ("SELECT * FROM customers FOR UPDATE", "not_read_only"),
    ("SELECT * FROM pg_catalog.pg_shadow", "unknown_table"),
    ("SELECT * FROM mysql.user", "unknown_table"),
]


@pytest.mark.parametrize(("sql", "kind"), HOSTILE)
def test_hostile_queries_are_refused_before_the_server(shop: ServerCatalog, sql: str, kind: str) -> None:
    t0 = time.perf_counter()
    result = run(shop, sql)
    assert (result.ok, result.error_type) == (False, kind), result.error
    assert time.perf_counter() - t0 < 2  # never sent: nothing slept
    assert run(shop, "SELECT count(*) FROM customers").rows == [[4]]


def test_session_is_read_only_even_past_the_guard(shop_url: str) -> None:
    """As the admin (who may write), a write sent straight to the session still fails."""
    admin = shop_url.replace(f"reader:{READER_PASSWORD}", f"admin:{ADMIN_PASSWORD}")
    catalog = open_sources(admin)
    try:
        executor = ServerSQLExecutor(catalog)
        with pytest.raises(Exception, match="(?i)read.only") as err:
            executor._execute("INSERT INTO customers VALUES (99, 'Eve', 'X')", "")
        assert getattr(err.value, "kind", None) == "not_read_only"
        assert executor.run("SELECT count(*) FROM customers").rows == [[4]]
    finally:
        catalog.close()


def test_a_url_is_the_only_source(pg_url: str, tmp_path: Any) -> None:
    (tmp_path / "x.csv").write_text("a\n1\n")
    with pytest.raises(DataLoadError, match="a database URL must be the only source"):
        open_sources([pg_url, str(tmp_path / "x.csv")])


def test_password_from_the_environment(pg_server: Server) -> None:
    target = parse_server_url(pg_server.url("reader", None, "shop"), env={"AUTOTQA_DB_PASSWORD": READER_PASSWORD})
    catalog = ServerCatalog(target)
    try:
        assert "customers" in catalog.tables
        assert READER_PASSWORD not in repr(target) + target.display + str(catalog.tables["customers"])
    finally:
        catalog.close()


@pytest.mark.parametrize("name", ["pg_read_file", "pg_ls_dir", "pg_read_binary_file", "lo_import", "lo_export",
                                  "dblink", "load_file", "sleep", "pg_sleep", "benchmark", "query_to_xml"])
def test_server_guard_refuses_server_functions_itself(name: str) -> None:
    """The server guard stands on its own, whatever the common guard's allow-list lets through."""
    import sqlglot

    from autotqa.errors import SQLError
    from autotqa.executors import server_guard

    sql = f"SELECT {name}('x') AS v FROM customers"
    for check in (lambda: server_guard.check_text(sql),
                  lambda: server_guard.check_tree(sqlglot.parse_one(sql, read="duckdb"))):
        with pytest.raises(SQLError) as err:
            check()
        assert (err.value.kind, err.value.message) == (
            "forbidden_function", f"function {name}() is not allowed on a database server: queries may only read the tables")
    server_guard.check_text(f"SELECT '{name}(1)' AS quoted_text FROM customers")  # a string, not a call
