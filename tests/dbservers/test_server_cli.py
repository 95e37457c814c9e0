"""Database URLs through the command line and the Python API: ``tables``, ``sql``, ``ask``, ``Session``;
the password never shown; faults as one line with a hint and exit 1; a session that outlives them."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import psycopg
import pytest
from servers import ADMIN_PASSWORD, READER_PASSWORD, Server, free_port
from typer.testing import CliRunner

import autotqa
from autotqa import cli
from autotqa.errors import SourceUnavailableError
from autotqa.serving.engines.scripted import ScriptedEngine

REPLIES = {"planner": '{"steps": [{"goal": "count Lisbon customers", "tables": ["customers"]}]}',
           "engineer": "```sql\nSELECT count(*) AS n FROM customers WHERE city = 'Lisbon'\n```",
           "critic": '{"verdict": "accept", "note": "There are 2 customers in Lisbon."}'}


@pytest.fixture()
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    import os

    for var in list(os.environ):
        if var.startswith("AUTOTQA_") or var in ("PGPASSWORD", "MYSQL_PWD"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    cli._register()
    return CliRunner()


def scripted() -> ScriptedEngine:
    return ScriptedEngine(fn=lambda req: REPLIES.get(req.agent, '{"question": "x", "answerable": true}'))


def one_error_line(output: str) -> list[str]:
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error: "), output
    assert len(lines) <= 2 and all(line.startswith(("error: ", "hint: ")) for line in lines), output
    return lines


def test_tables_json_masks_the_password(runner: CliRunner, shop_url: str) -> None:
    res = runner.invoke(cli.app, ["tables", shop_url, "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    by_name = {t["name"]: t for t in data["tables"]}
    assert sorted(by_name) == ["big", "customers", "orders", "product_lines"]
    assert by_name["product_lines"]["display_name"] == "Product Lines"
    assert {(f["from_table"], f["to_table"]) for f in data["foreign_keys"]} == {("orders", "customers")}
    assert READER_PASSWORD not in res.output
    assert data["tables"][0]["source"] == "shop"


def test_sql_runs_on_the_server(runner: CliRunner, shop_url: str) -> None:
    res = runner.invoke(cli.app, ["sql", shop_url, "SELECT city, count(*) AS n FROM customers "
                                  "WHERE city IS NOT NULL GROUP BY city ORDER BY n DESC", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["rows"] == [["Lisbon", 2], ["Porto", 1]]


def test_sql_refusal_is_one_line_exit_1(runner: CliRunner, shop_url: str) -> None:
    res = runner.invoke(cli.app, ["sql", shop_url, "SELECT pg_read_file('/etc/passwd')"])
    assert res.exit_code == 1
    assert "[forbidden_function]" in one_error_line(res.output)[0]


def test_ask_json_through_the_api_and_the_cli(runner: CliRunner, shop_url: str, monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    answer = autotqa.ask(shop_url, "How many customers live in Lisbon?", engine=scripted())
    assert answer.values == [2]
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps({"by_agent": {k: [v] * 10 for k, v in REPLIES.items()}}))  # one per call
    monkeypatch.setenv("AUTOTQA_ENGINE", "scripted")
    monkeypatch.setenv("AUTOTQA_SCRIPTED_REPLIES", str(replies))
    res = runner.invoke(cli.app, ["ask", shop_url, "How many customers live in Lisbon?", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["values"] == [2]
    assert READER_PASSWORD not in res.output


def test_password_from_autotqa_db_password(runner: CliRunner, pg_server: Server) -> None:
    url = pg_server.url("reader", None, "shop")
    res = runner.invoke(cli.app, ["sql", url, "SELECT count(*) AS n FROM orders", "--json"],
                        env={"AUTOTQA_DB_PASSWORD": READER_PASSWORD})
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["rows"] == [[5]]


@pytest.mark.parametrize(("make_url", "message", "hint"), [
    (lambda s: s.url("reader", "wrong-pw-0000", "shop"), "refused the login of reader", "check the user and password"),
    (lambda s: s.url("reader", READER_PASSWORD, "nosuchdb"), "no database 'nosuchdb'", "check the database name"),
    (lambda s: f"{s.scheme}://reader:{READER_PASSWORD}@127.0.0.1:{free_port()}/shop", "cannot reach the",
     "is it running"),
])
@pytest.mark.parametrize("server", ["pg_server", "maria_server"])
def test_connection_faults_are_one_line_with_a_hint(runner: CliRunner, request: pytest.FixtureRequest, server: str,
                                                    make_url, message: str, hint: str) -> None:
    url = make_url(request.getfixturevalue(server))
    res = runner.invoke(cli.app, ["tables", url])
    assert res.exit_code == 1
    error, *rest = one_error_line(res.output)
    assert message in error
    assert rest and hint in rest[0]
    assert READER_PASSWORD not in res.output and "wrong-pw-0000" not in res.output


def test_session_survives_the_server_going_away(scratch_pg: Server) -> None:
    """Server down: the question fails with one clear error; back up: the same session answers."""
    with autotqa.Session(scratch_pg.url("reader", READER_PASSWORD, "shop"), engine=scripted(), warm=False) as s:
        assert s.ask("How many customers live in Lisbon?").values == [2]
        scratch_pg.stop()
        with pytest.raises(SourceUnavailableError) as err:
            s.ask("How many customers live in Lisbon?")
        assert f"cannot reach the postgresql server at 127.0.0.1:{scratch_pg.port}" in str(err.value)
        assert READER_PASSWORD not in str(err.value)
        scratch_pg.start_again()
        assert s.ask("How many customers live in Lisbon?").values == [2]


def test_connection_dropped_mid_query(scratch_pg: Server) -> None:
    from autotqa.catalog.server import open_sources
    from autotqa.config import ExecutorConfig
    from autotqa.executors.server_sql import ServerSQLExecutor

    catalog = open_sources(scratch_pg.url("reader", READER_PASSWORD, "shop"))

    def kill_soon() -> None:
        time.sleep(1.0)
        with psycopg.connect(host="127.0.0.1", port=scratch_pg.port, user="admin", password=ADMIN_PASSWORD,
                             dbname="postgres", autocommit=True) as con:
            con.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = 'autotqa' AND state = 'active'")

    killer = threading.Thread(target=kill_soon)
    killer.start()
    try:
        executor = ServerSQLExecutor(catalog, ExecutorConfig(sql_timeout_s=30))
        with pytest.raises(SourceUnavailableError, match="was lost") as err:
            executor.run("SELECT count(*) FROM big a, big b, big c")
        assert err.value.hint and "try again" in err.value.hint
        assert executor.run("SELECT count(*) AS n FROM customers").rows == [[4]]  # a new connection
    finally:
        killer.join()
        catalog.close()
