"""Hostile statements are refused with the right kind, and the source data is untouched afterwards."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import duckdb
import pytest

from autotqa.config import ExecutorConfig
from autotqa.errors import SQLError
from autotqa.executors.sql import SQLExecutor
from autotqa.executors.sql_guard import SQLGuard

HOSTILE: list[tuple[str, str]] = [
    ("INSERT INTO people VALUES (9, 'eve', 1)", "not_read_only"),
    ("UPDATE people SET name = 'x'", "not_read_only"),
    ("DELETE FROM people", "not_read_only"),
    ("MERGE INTO people USING people AS p ON people.id = p.id WHEN MATCHED THEN DELETE", "not_read_only"),
    ("CREATE TABLE x AS SELECT 1", "not_read_only"),
    ("CREATE VIEW v AS SELECT 1", "not_read_only"),
    ("CREATE MACRO m(a) AS a + 1", "not_read_only"),
    ("DROP TABLE people", "not_read_only"),
    ("ALTER TABLE people ADD COLUMN z INT", "not_read_only"),
    ("TRUNCATE people", "not_read_only"),
    ("ATTACH '/tmp/evil.db' AS evil", "not_read_only"),
    ("DETACH memory", "not_read_only"),
    ("COPY people TO '/tmp/x.csv'", "not_read_only"),
    ("COPY (SELECT * FROM people) TO '/tmp/x.parquet' (FORMAT parquet)", "not_read_only"),
    ("EXPORT DATABASE '/tmp/dump'", "not_read_only"),
    ("IMPORT DATABASE '/tmp/dump'", "not_read_only"),
    ("INSTALL httpfs", "not_read_only"),
    ("LOAD httpfs", "not_read_only"),
    ("PRAGMA database_list", "not_read_only"),
    ("SET enable_external_access = true", "not_read_only"),
    ("RESET threads", "not_read_only"),
    ("CALL pragma_version()", "not_read_only"),
    ("CHECKPOINT", "not_read_only"),
    ("BEGIN TRANSACTION", "not_read_only"),
    ("CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')", "not_read_only"),
    ("SELECT 1; DROP TABLE people", "multiple_statements"),
    ("SELECT * FROM people; DELETE FROM people;", "multiple_statements"),
    ("WITH d AS (DELETE FROM people RETURNING *) SELECT * FROM d", "not_read_only"),
    ("SELECT * FROM read_csv('/etc/passwd')", "forbidden_function"),
    ("SELECT * FROM read_csv_auto('/etc/passwd')", "forbidden_function"),
    ("SELECT * FROM read_parquet('/tmp/x.parquet')", "forbidden_function"),
    ("SELECT * FROM parquet_scan('/tmp/x.parquet')", "forbidden_function"),
    ("SELECT * FROM read_json_auto('/tmp/x.json')", "forbidden_function"),
    ("SELECT * FROM read_text('/etc/passwd')", "forbidden_function"),
    ("SELECT * FROM read_blob('/etc/passwd')", "forbidden_function"),
    ("SELECT * FROM glob('/*')", "forbidden_function"),
    ("SELECT * FROM sniff_csv('/etc/passwd')", "forbidden_function"),
    ("SELECT * FROM sqlite_scan('/tmp/x.db', 't')", "forbidden_function"),
    ("SELECT * FROM iceberg_scan('s3://bucket/t')", "forbidden_function"),
    ("SELECT * FROM duckdb_secrets()", "forbidden_function"),
    ("SELECT * FROM duckdb_settings()", "forbidden_function"),
    ("SELECT * FROM query('SELECT 1')", "forbidden_function"),
    ("SELECT * FROM people WHERE id IN (SELECT 1 FROM read_csv('/etc/passwd'))", "forbidden_function"),
    ("SELECT * FROM '/etc/passwd'", "forbidden_source"),
    ("SELECT * FROM 'http://example.com/data.csv'", "forbidden_source"),
    ("SELECT * FROM 'people.csv'", "forbidden_source"),
    ("SELECT getenv('HOME')", "forbidden_function"),
    ("SELECT current_setting('s3_secret_access_key')", "forbidden_function"),
    ("SELECT nextval('seq')", "forbidden_function"),
    ("SELECT * FROM information_schema.tables", "unknown_table"),
    ("SELECT * FROM evil.main.people", "unknown_table"),
    ("DESCRIBE people", "not_read_only"),
    ("EXPLAIN SELECT 1", "not_read_only"),
]


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    path = tmp_path / "people.csv"
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([["id", "name", "age"], [1, "ann", 31], [2, "bob", 42], [3, "cy", 27]])
    return path


@pytest.fixture()
def frozen(source: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE people AS SELECT * FROM read_csv('{source}')")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def test_at_least_25_hostile_cases() -> None:
    assert len(HOSTILE) >= 25


@pytest.mark.parametrize(("sql", "kind"), HOSTILE, ids=[s[:50] for s, _ in HOSTILE])
def test_guard_refuses_with_kind(sql: str, kind: str) -> None:
    with pytest.raises(SQLError) as info:
        SQLGuard({"people": ["id", "name", "age"]}).check(sql)
    assert info.value.kind == kind, str(info.value)
    assert str(info.value)  # a message a person can act on


def test_executor_refuses_all_and_source_and_table_unchanged(
        source: Path, frozen: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    ex = SQLExecutor(frozen, {"people": ["id", "name", "age"]}, ExecutorConfig())
    for sql, kind in HOSTILE:
        result = ex.run(sql)
        assert (result.ok, result.error_type) == (False, kind), sql
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before
    assert not (tmp_path / "x.csv").exists()
    assert ex.run("SELECT count(*), sum(age) FROM people").rows == [[3, 100]]


def test_runtime_layer_blocks_file_access_even_without_the_guard(frozen: duckdb.DuckDBPyConnection) -> None:
    cursor = frozen.cursor()
    with pytest.raises(duckdb.PermissionException):
        cursor.execute("SELECT * FROM read_csv('/etc/passwd')")
    with pytest.raises(duckdb.Error, match="locked"):
        cursor.execute("SET enable_external_access = true")


def test_hidden_write_never_runs(frozen: duckdb.DuckDBPyConnection) -> None:
    ex = SQLExecutor(frozen, {"people": ["id", "name", "age"]})
    result = ex.run("SELECT 1; DROP TABLE people")
    assert result.error == "only one statement may run at a time, got 2 (SELECT, DROP) " \
                           "(hint: send a single SELECT without ';' between statements)"
    assert frozen.execute("SELECT count(*) FROM people").fetchone() == (3,)


@pytest.mark.parametrize("sql", [
    "SELECT name FROM people WHERE age > 30 ORDER BY name",
    "WITH o AS (SELECT * FROM people WHERE age > 30) SELECT name FROM o ORDER BY 1",
    "SELECT name FROM people WHERE age > 30 UNION SELECT name FROM people WHERE false ORDER BY name",
    "SELECT name FROM people WHERE age > 30 INTERSECT SELECT name FROM people ORDER BY name",
    "SELECT name FROM people EXCEPT SELECT name FROM people WHERE age < 30 ORDER BY name",
    "FROM people SELECT name WHERE age > 30 ORDER BY name",
    "SELECT col0 AS name FROM (VALUES ('ann'), ('bob')) ORDER BY name",
    "SELECT p.name FROM people AS p JOIN range(100) AS r(i) ON p.age = r.i + 0 WHERE p.age > 30 ORDER BY 1",
])
def test_read_queries_are_accepted(frozen: duckdb.DuckDBPyConnection, sql: str) -> None:
    result = SQLExecutor(frozen, {"people": ["id", "name", "age"]}).run(sql)
    assert result.ok, result.error
    assert result.rows == [["ann"], ["bob"]]
