"""Spider accuracy the official way: the predicted query run on the source SQLite file, beside the
rows the user got from DuckDB — on a tiny Spider-like database where the two differ for known reasons.

The baseline strategy runs for real (catalog, DuckDB executor) with a scripted engine replying fixed
SQL, so "as answered" is what DuckDB really returned, and "official" is what SQLite really returned.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from autotqa.config import Config
from autotqa.evaluation.datasets import SpiderItem, Task
from autotqa.evaluation.execution import run_untrusted
from autotqa.evaluation.official import catalog_renames, score_official, to_sqlite
from autotqa.evaluation.report import write_report
from autotqa.evaluation.results import ResultRecord, read_records
from autotqa.evaluation.runner import EvalRunner
from autotqa.evaluation.strategies import BaselineStrategy, Prediction
from autotqa.serving.engines.scripted import ScriptedEngine


@pytest.fixture()
def club(tmp_path: Path) -> Path:
    """Ages stored as text (as in several Spider databases) and a table named with a keyword."""
    db = tmp_path / "club.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE singer (id INTEGER, name TEXT, age TEXT, country TEXT)")
        conn.executemany("INSERT INTO singer VALUES (?, ?, ?, ?)",
                         [(1, "Ann", "30", "NL"), (2, "Bo", "41", "DE"), (3, "Cy", "25", "NL"),
                          (4, "Di", "52", "FR")])
        conn.execute('CREATE TABLE "order" (id INTEGER, singer_id INTEGER, qty INTEGER)')
        conn.executemany('INSERT INTO "order" VALUES (?, ?, ?)', [(1, 1, 2), (2, 1, 3), (3, 2, 5)])
    conn.close()
    return db


# (id, gold SQL, the SQL the scripted model replies, why the two metrics say what they say)
CASES = [
    ("o1", "SELECT avg(age) FROM singer", "SELECT avg(age) FROM singer",
     "DuckDB refuses AVG over text; SQLite averages the numbers the text holds"),
    ("o2", "SELECT avg(age) FROM singer", "SELECT avg(age::DOUBLE) FROM singer",
     "both right; SQLite cannot parse '::', so the query runs there transpiled"),
    ("o3", "SELECT avg(id) FROM singer", "SELECT sum(id) / count(*) FROM singer",
     "DuckDB's '/' divides as REAL (2.5); SQLite runs it as written, integer division (2)"),
    ("o4", 'SELECT count(*) FROM "order"', "SELECT count(*) FROM t_order",
     "the catalog renamed the keyword table 'order' to t_order; mapped back for SQLite"),
]


def run_baseline(club: Path, out: Path) -> dict[str, ResultRecord]:
    items = [SpiderItem(id=qid, db_id="club", question=why, gold_sql=gold, db_path=str(club))
             for qid, gold, _, why in CASES]
    engine = ScriptedEngine([f"```sql\n{reply}\n```" for _, _, reply, _ in CASES])
    strategy = BaselineStrategy(Config(), engine)
    try:
        EvalRunner(strategy, out, dataset="spider").run(items)
    finally:
        strategy.close()
    return {r.id: r for r in read_records(out / "results-baseline.jsonl")}


def test_both_metrics_per_record_and_why_they_differ(club: Path, tmp_path: Path) -> None:
    recs = run_baseline(club, tmp_path / "run")
    assert [recs[q].correct for q in ("o1", "o2", "o3", "o4")] == [False, True, True, True]
    assert [recs[q].official_correct for q in ("o1", "o2", "o3", "o4")] == [True, True, False, True]
    assert recs["o1"].error is not None and "avg(VARCHAR)" in recs["o1"].error
    assert recs["o1"].official == {"sql": "SELECT avg(age) FROM singer", "transpiled": False,
                                   "error": None, "n_rows": 1, "rows": [[37.0]]}
    assert recs["o2"].prediction["rows"] == [[37.0]]
    assert (recs["o2"].official["sql"], recs["o2"].official["transpiled"]) == (
        "SELECT AVG(CAST(age AS REAL)) FROM singer", True)
    assert recs["o3"].prediction["rows"] == [[2.5]]
    assert (recs["o3"].official["rows"], recs["o3"].official["transpiled"]) == ([[2]], False)
    assert recs["o4"].official == {"sql": 'SELECT COUNT(*) FROM "order"', "transpiled": True,
                                   "error": None, "n_rows": 1, "rows": [[3]]}

    text = write_report(tmp_path / "run", plot=False).read_text(encoding="utf-8")
    lines = text.splitlines()
    assert ("| strategy | questions | correct | accuracy | official EX (SQLite) | errors | "
            "median latency (s) | prompt tok/q | completion tok/q | prefix reuse |") in lines
    assert any(line.startswith("| baseline | 4 | 3 | 75.0% | 75.0% | 1 | ") for line in lines)
    assert "| category | value | baseline (n, acc, official) |" in lines
    assert "| aggregation | yes | 4, 75.0%, 75.0% |" in lines
    assert ("- baseline: 1 right only on SQLite (1 failed on DuckDB, 0 returned other rows); "
            "1 right only as answered (0 failed on SQLite, 1 returned other rows); "
            "2 predicted queries ran on SQLite only once transpiled from DuckDB") in lines


def test_results_written_before_the_official_metric_still_read_and_report(tmp_path: Path) -> None:
    old = {"id": "q1", "strategy": "agents", "dataset": "spider", "question": "?", "correct": True,
           "latency_s": 1.0, "categories": {"joins": "no"}}
    (tmp_path / "results-agents.jsonl").write_text(json.dumps(old) + "\n", encoding="utf-8")
    [rec] = read_records(tmp_path / "results-agents.jsonl")
    assert (rec.correct, rec.official_correct, rec.official) == (True, None, {})
    text = write_report(tmp_path, plot=False).read_text(encoding="utf-8")
    assert "| agents | 1 | 1 | 100.0% | 0 | 1.00 | 0 | 0 | 0.0% |" in text.splitlines()
    assert "official" not in text.lower()


def test_pandas_answers_and_missing_sql_score_wrong_officially(club: Path, tmp_path: Path) -> None:
    class Fixed:
        name = "fixed"

        def answer(self, task: Task) -> Prediction:
            if task.id == "p1":  # right rows, but from pandas code: nothing the evaluator can run
                return Prediction(language="pandas", sql="result = singer['id'].mean()",
                                  columns=["x"], rows=[[2.5]], n_rows=1)
            return Prediction(error="no_result: out of rounds")

        def close(self) -> None:
            pass

    items = [SpiderItem(id=q, db_id="club", question="?", gold_sql="SELECT avg(id) FROM singer",
                        db_path=str(club)) for q in ("p1", "p2")]
    EvalRunner(Fixed(), tmp_path, dataset="spider").run(items)
    recs = {r.id: r for r in read_records(tmp_path / "results-fixed.jsonl")}
    assert (recs["p1"].correct, recs["p1"].official_correct) == (True, False)
    assert recs["p1"].official["error"] == "not_sql: the answer came from pandas code"
    assert (recs["p2"].correct, recs["p2"].official_correct) == (False, False)
    assert recs["p2"].official["error"] == "no_sql: the prediction has no SQL query"


def test_sqlite_errors_are_kept_and_transpiling_is_tried_only_when_it_changes_something(club: Path) -> None:
    s = score_official(club, "SELECT nope FROM singer", [(1,)], ordered=False)
    assert (s.correct, s.sql, s.transpiled, s.error) == (
        False, "SELECT nope FROM singer", False, "OperationalError: no such column: nope")
    s = score_official(club, "SELECT list_sum([1, 2]) FROM singer", [(3,)], ordered=False)
    assert (s.correct, s.transpiled) == (False, True)
    assert s.error is not None and s.error.startswith("OperationalError: ")
    s = score_official(club, "SELECT name FROM singer ORDER BY age::INT DESC", [("Di",), ("Bo",), ("Ann",), ("Cy",)],
                       ordered=True)
    assert (s.correct, s.transpiled) == (True, True)


def test_catalog_names_are_mapped_back(club: Path) -> None:
    assert catalog_renames(club) == {"t_order": "order"}
    assert to_sqlite("SELECT o.qty FROM t_order AS o JOIN singer s ON s.id = o.singer_id",
                     {"t_order": "order"}) == \
        'SELECT o.qty FROM "order" AS o JOIN singer AS s ON s.id = o.singer_id'
    # A CTE that happens to share a catalog name is the CTE, not the table.
    assert to_sqlite("WITH t_order AS (SELECT 1 AS x) SELECT x FROM t_order", {"t_order": "order"}) == \
        "WITH t_order AS (SELECT 1 AS x) SELECT x FROM t_order"


def test_renames_mirror_the_catalog_even_when_a_safe_name_is_a_real_table(tmp_path: Path) -> None:
    from autotqa.catalog import Catalog

    db = tmp_path / "two.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute('CREATE TABLE "order" (id INTEGER)')
        conn.execute("CREATE TABLE t_order (id INTEGER, x INTEGER)")
        conn.executemany('INSERT INTO "order" VALUES (?)', [(1,), (2,)])
        conn.execute("INSERT INTO t_order VALUES (1, 1)")
    conn.close()
    catalog = Catalog.from_sources([db])
    assert catalog_renames(db) == {t: info.display_name for t, info in catalog.tables.items()
                                   if t != info.display_name.lower()} == {"t_order": "order", "t_order_2": "t_order"}
    # As written, t_order would read SQLite's own t_order (1 row); the catalog's t_order is "order".
    s = score_official(db, "SELECT count(*) FROM t_order", [(2,)], ordered=False)
    assert (s.correct, s.sql, s.transpiled) == (True, 'SELECT COUNT(*) FROM "order"', True)
    s = score_official(db, "SELECT count(*) FROM t_order_2", [(1,)], ordered=False)
    assert (s.correct, s.sql) == (True, 'SELECT COUNT(*) FROM "t_order"')


def test_untrusted_sql_only_reads_and_is_bounded(club: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "created.sqlite"
    for hostile in (f"ATTACH DATABASE '{elsewhere}' AS x", "PRAGMA writable_schema = 1",
                    "DELETE FROM singer", "CREATE TABLE t (x)", "SELECT load_extension('x')"):
        with pytest.raises(sqlite3.Error):
            run_untrusted(club, hostile)
    assert not elsewhere.exists()
    with sqlite3.connect(club) as conn:
        assert conn.execute("SELECT count(*) FROM singer").fetchone() == (4,)
    conn.close()
    with pytest.raises(sqlite3.DataError, match="more than 10 rows"):
        run_untrusted(club, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50) "
                            "SELECT x FROM c", max_rows=10)
    with pytest.raises(sqlite3.OperationalError, match="interrupted"):
        run_untrusted(club, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                            "SELECT count(*) FROM c", timeout_s=0.3)
