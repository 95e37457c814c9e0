"""``autotqa eval --dataset spider --target postgresql://...`` (and ``mysql://``): Spider databases copied
into a real server and the questions answered there, with the scripted engine replying each question's
gold SQL (SQLite SQL: transpiled to DuckDB by the guard, then to the server's dialect by its executor).
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from servers import ADMIN_PASSWORD, Server
from typer.testing import CliRunner

from autotqa import cli
from autotqa.evaluation.harness import RunSpec
from autotqa.evaluation.runner import group_by_source

N = 4


def eval_on(target: str, spider_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list, Path, str]:
    """Run the baseline on N Spider questions on ``target``: (records, run folder, output)."""
    items = group_by_source(RunSpec(dataset="spider", data=str(spider_dir), limit=N, sample_seed=0).items())
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps([f"```sql\n{item.gold_sql}\n```" for item in items]))
    for var in ("AUTOTQA_CONFIG", "AUTOTQA_ENGINE__MODEL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("AUTOTQA_ENGINE", "scripted")
    monkeypatch.setenv("AUTOTQA_SCRIPTED_REPLIES", str(replies))
    out = tmp_path / "run"
    cli._register()
    res = CliRunner().invoke(cli.app, ["eval", "--dataset", "spider", "--data", str(spider_dir), "--limit", str(N),
                                       "--strategy", "baseline", "--target", target, "--out", str(out)])
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in (out / "results-baseline.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == [i.id for i in items]
    assert all(r["correct"] for r in records), [(r["prediction"]["sql"], r["error"]) for r in records]
    return items, out, res.output


@pytest.fixture()
def spider_db(pg_server: Server) -> str:
    with psycopg.connect(host="127.0.0.1", port=pg_server.port, user="admin", password=ADMIN_PASSWORD,
                         dbname="postgres", autocommit=True) as con:
        con.execute("DROP DATABASE IF EXISTS spider")
        con.execute("CREATE DATABASE spider")
    return pg_server.url("admin", ADMIN_PASSWORD, "spider")


def test_spider_questions_run_on_the_server(spider_dir: Path, spider_db: str, pg_server: Server,
                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    items, out, output = eval_on(spider_db, spider_dir, tmp_path, monkeypatch)
    # The copies are on the server, one schema per Spider database, and the questions ran there.
    with psycopg.connect(host="127.0.0.1", port=pg_server.port, user="admin", password=ADMIN_PASSWORD,
                         dbname="spider") as con:
        schemas = {r[0] for r in con.execute("SELECT DISTINCT table_schema FROM information_schema.tables "
                                             "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')")}
    assert schemas == {i.db_id for i in items}
    spec = json.loads((out / "run.json").read_text())
    assert spec["target"] == spider_db.replace(ADMIN_PASSWORD, "***")
    # Nothing in the run folder or the output holds the password.
    for path in out.rglob("*"):
        if path.is_file():
            assert ADMIN_PASSWORD not in path.read_text(errors="replace"), path
    assert ADMIN_PASSWORD not in output


def test_spider_questions_run_on_a_mysql_protocol_server(spider_dir: Path, maria_server: Server, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import pymysql

    items, out, output = eval_on(maria_server.url("admin", ADMIN_PASSWORD, "shop"), spider_dir, tmp_path, monkeypatch)
    con = pymysql.connect(host="127.0.0.1", port=maria_server.port, user="admin", password=ADMIN_PASSWORD)
    try:
        with con.cursor() as cur:
            cur.execute("SHOW DATABASES")
            databases = {row[0] for row in cur.fetchall()}
    finally:
        con.close()
    assert {i.db_id for i in items} <= databases  # a database per Spider database
    assert ADMIN_PASSWORD not in output
