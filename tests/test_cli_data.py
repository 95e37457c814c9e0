"""``autotqa tables`` and ``autotqa sql`` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autotqa import cli


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    cli._register()
    return CliRunner()


@pytest.fixture()
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AUTOTQA_CONFIG", str(tmp_path / "config.toml"))
    (tmp_path / "config.toml").write_text("")
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "customers.csv").write_text("customer_id,name,city\n1,ann,oslo\n2,bob,rome\n3,cy,oslo\n")
    (folder / "orders.csv").write_text(
        "order_id,customer_id,amount\n10,1,5.5\n11,1,7.0\n12,3,2.25\n13,2,1.0\n")
    return folder


def invoke(runner: CliRunner, *args: str):  # noqa: ANN201
    return runner.invoke(cli.app, list(args))


def test_tables_json(runner: CliRunner, data: Path) -> None:
    res = invoke(runner, "tables", str(data), "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    by_name = {t["name"]: t for t in out["tables"]}
    assert set(by_name) == {"customers", "orders"}
    assert by_name["orders"]["n_rows"] == 4
    assert by_name["customers"]["columns"] == [
        {"name": "customer_id", "type": "BIGINT"}, {"name": "name", "type": "VARCHAR"},
        {"name": "city", "type": "VARCHAR"}]
    assert by_name["customers"]["primary_keys"][0] == "customer_id"
    assert by_name["orders"]["primary_keys"][0] == "order_id"
    fks = {(f["from_table"], f["from_column"], f["to_table"], f["to_column"]) for f in out["foreign_keys"]}
    assert ("orders", "customer_id", "customers", "customer_id") in fks


def test_tables_rich(runner: CliRunner, data: Path) -> None:
    res = invoke(runner, "tables", str(data / "customers.csv"), str(data / "orders.csv"))
    assert res.exit_code == 0, res.output
    assert "customers" in res.stdout and "orders" in res.stdout
    assert "customer_id" in res.stdout and "BIGINT" in res.stdout
    assert "foreign key? orders.customer_id -> customers.customer_id" in res.stdout


def test_sql_json(runner: CliRunner, data: Path) -> None:
    res = invoke(runner, "sql", str(data), "SELECT c.name, sum(o.amount) AS total FROM orders o "
                 "JOIN customers c USING (customer_id) GROUP BY c.name ORDER BY total DESC", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"columns": ["name", "total"],
                                      "rows": [["ann", 12.5], ["cy", 2.25], ["bob", 1.0]],
                                      "n_rows": 3, "truncated": False}


def test_sql_row_cap(runner: CliRunner, data: Path) -> None:
    res = invoke(runner, "sql", str(data), "SELECT order_id FROM orders ORDER BY 1", "--json", "--max-rows", "2")
    assert json.loads(res.stdout) == {"columns": ["order_id"], "rows": [[10], [11]], "n_rows": 4,
                                      "truncated": True}


def test_sql_rich(runner: CliRunner, data: Path) -> None:
    res = invoke(runner, "sql", str(data / "orders.csv"), "SELECT count(*) AS n FROM orders")
    assert res.exit_code == 0, res.output
    assert "n" in res.stdout and "4" in res.stdout and "1 row" in res.stdout


@pytest.mark.parametrize(("query", "line"), [
    ("SELECT nme FROM customers",
     'error: unknown column "nme" in table "customers" — did you mean "name"? [unknown_column]'),
    ("DROP TABLE orders",
     "error: DROP statements are not allowed: queries are read-only "
     "(hint: write a SELECT over the loaded tables) [not_read_only]"),
    ("SELECT * FROM read_csv('/etc/passwd')",
     "error: table function read_csv() is not allowed: only the loaded tables can be queried "
     "(hint: tables: customers, orders) [forbidden_function]"),
])
def test_sql_failure_is_one_line_and_exit_1(runner: CliRunner, data: Path, query: str, line: str) -> None:
    res = invoke(runner, "sql", str(data), query)
    assert res.exit_code == 1
    assert res.stdout == ""
    assert res.stderr.splitlines() == [line]


def test_sql_needs_a_query(runner: CliRunner, data: Path) -> None:
    res = invoke(runner, "sql", "SELECT 1")
    assert res.exit_code == 2
    assert res.stderr.startswith("error: give at least one SOURCE and then the QUERY")


def test_missing_source_is_one_line(runner: CliRunner, tmp_path: Path) -> None:
    res = invoke(runner, "tables", str(tmp_path / "nope.csv"))
    assert res.exit_code == 1
    assert res.stderr.startswith("error: ")


def _strict_json(text: str) -> object:
    """json.loads that refuses the bare NaN / Infinity Python's json writes (they are not JSON)."""
    def refuse(constant: str) -> object:
        raise ValueError(f"invalid JSON constant {constant}")
    return json.loads(text, parse_constant=refuse)


def test_sql_json_is_valid_json_with_infinities_and_nan(runner: CliRunner, data: Path) -> None:
    res = invoke(runner, "sql", str(data), "SELECT 'inf'::DOUBLE AS hi, '-inf'::DOUBLE AS lo, "
                 "'nan'::DOUBLE AS nan, 1.5 AS x", "--json")
    assert res.exit_code == 0, res.output
    assert _strict_json(res.stdout)["rows"] == [["Infinity", "-Infinity", None, 1.5]]


def test_answer_json_is_valid_json_with_infinities_and_nan() -> None:
    from autotqa.answer import Answer
    from autotqa.commands.ask import answer_json
    from autotqa.executors.base import ExecutionResult

    result = ExecutionResult(ok=True, columns=["x"], rows=[[float("inf")], [float("nan")]], n_rows=2)
    answer = Answer(question="q", answer="a", values=[float("-inf"), 2.0], result=result,
                    metrics={"ratio": float("inf")}, trace=[{"scores": (float("nan"), 1.0)}])
    out = _strict_json(answer_json(answer))  # pydantic's JSON mode writes non-finite numbers as null
    assert out["values"] == [None, 2.0]
    assert out["result"]["rows"] == [[None], [None]]
    assert out["trace"] == [{"scores": [None, 1.0]}]
