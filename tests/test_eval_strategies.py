"""Strategies on a real Spider database: the single-shot baseline with a scripted engine replying fixed
SQL, and the agents strategy's use of sessions (with a stand-in Session until the agents API lands)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from autotqa.answer import Answer
from autotqa.config import Config
from autotqa.evaluation.datasets import SpiderItem, Task, load_spider
from autotqa.evaluation.results import read_records
from autotqa.evaluation.runner import EvalRunner
from autotqa.evaluation.strategies import AgentsStrategy, BaselineStrategy, OpenedSource
from autotqa.executors.base import ExecutionResult
from autotqa.serving.engines.scripted import ScriptedEngine


class SqliteExecutor:
    """Runs SQL on the SQLite file itself: lets the baseline's own logic be tested on its own."""

    language = "sql"

    def __init__(self, path: str) -> None:
        self.path = path

    def run(self, code: str) -> ExecutionResult:
        t0 = time.perf_counter()
        try:
            with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as conn:
                cur = conn.execute(code)
                rows = [list(r) for r in cur.fetchall()]
                cols = [d[0] for d in cur.description or []]
        except sqlite3.Error as exc:
            return ExecutionResult.failure("sql", code, "runtime", str(exc), time.perf_counter() - t0)
        return ExecutionResult(ok=True, columns=cols, rows=rows, n_rows=len(rows), code=code)


def sqlite_opener(task: Task, config: Config) -> OpenedSource:
    return OpenedSource(SqliteExecutor(task.source), schema=f"TABLES OF {task.source_key}")


@pytest.fixture()
def activity_items(spider_dir: Path) -> list[SpiderItem]:
    items = [i for i in load_spider(spider_dir)[:12]]
    assert items[0].gold_sql == 'SELECT COUNT(*) FROM "Faculty"' and items[2].db_id == "activity_1"
    return items[:3]


def test_baseline_end_to_end_with_fixed_sql(activity_items: list[SpiderItem], tmp_path: Path) -> None:
    replies = ["```sql\nSELECT count(*) FROM Faculty\n```",          # right
               "Sure! ```sql\nSELECT count(*) + 1 FROM Faculty;",   # wrong value (and unclosed fence)
               "I do not know."]                                     # no SQL at all
    engine = ScriptedEngine(replies)
    strategy = BaselineStrategy(Config(), engine, opener=sqlite_opener)
    try:
        EvalRunner(strategy, tmp_path, dataset="spider").run(activity_items)
    finally:
        strategy.close()
    recs = {r.id: r for r in read_records(tmp_path / "results-baseline.jsonl")}
    first, second, third = (recs[i.id] for i in activity_items)
    assert first.correct and first.prediction["sql"] == "SELECT count(*) FROM Faculty"
    assert first.prediction["rows"] == [[58]] and first.gold["rows"] == [[58]]
    assert not second.correct and second.prediction["rows"] == [[59]]
    assert not third.correct and third.error == "no_sql: the reply held no SQL query"
    # One call per question, all on the same session: the schema prefix is reused from question 2 on.
    assert len(engine.requests) == 3
    assert {r.session_id for r in engine.requests} == {"baseline/activity_1"}
    assert engine.requests[0].segments.schema_block == "TABLES OF activity_1"
    assert engine.requests[1].segments.tail.startswith("Question: What is the total number of faculty")
    assert first.tokens["reused"] == 0 and second.tokens["reused"] > 0
    assert second.reuse == pytest.approx(second.tokens["reused"] / second.tokens["prompt"])
    assert first.trace_path == "traces/baseline/spider-train-00000.json"


def test_baseline_on_the_real_catalog_and_executor(activity_items: list[SpiderItem], tmp_path: Path) -> None:
    catalog_mod = pytest.importorskip("autotqa.catalog")
    if not hasattr(catalog_mod, "Catalog"):
        pytest.skip("autotqa.catalog.Catalog has not landed yet")
    engine = ScriptedEngine(['```sql\nSELECT COUNT(*) FROM "Faculty"\n```',
                             "```sql\nSELECT COUNT(*) FROM Faculty WHERE 1 = 0\n```",
                             '```sql\nSELECT DISTINCT "rank" FROM "Faculty"\n```'])
    strategy = BaselineStrategy(Config(), engine)
    try:
        EvalRunner(strategy, tmp_path, dataset="spider").run(activity_items)
    finally:
        strategy.close()
    recs = [r for r in read_records(tmp_path / "results-baseline.jsonl")]
    assert [r.correct for r in recs] == [True, False, True]
    assert recs[0].prediction["rows"] == [[58]]
    assert "Faculty" in engine.requests[0].segments.schema_block or \
        "faculty" in engine.requests[0].segments.schema_block


class StandInSession:
    """Shape of ``autotqa.Session`` as the harness uses it: ``ask`` and ``close``."""

    opened: list[str] = []

    def __init__(self, task: Task) -> None:
        self.source = task.source_key
        self.closed = False
        self.asked: list[str] = []
        StandInSession.opened.append(task.source_key)

    def ask(self, question: str) -> Answer:
        self.asked.append(question)
        result = ExecutionResult(ok=True, columns=["n"], rows=[[58]], n_rows=1)
        return Answer(question=question, answer="58", values=[58], sql="SELECT count(*) FROM faculty",
                      verified=True, result=result, trace=[{"agent": "critic", "verdict": "accept"}],
                      metrics={"prompt_tokens": 900, "reused_tokens": 600, "completion_tokens": 40,
                               "reuse_ratio": 2 / 3})

    def close(self) -> None:
        self.closed = True


def test_agents_strategy_reuses_one_session_per_source(activity_items: list[SpiderItem], tmp_path: Path) -> None:
    StandInSession.opened = []
    sessions: list[StandInSession] = []

    def factory(task: Task) -> StandInSession:
        sessions.append(StandInSession(task))
        return sessions[-1]

    strategy = AgentsStrategy(Config(), engine=None, session_factory=factory)
    EvalRunner(strategy, tmp_path, dataset="spider").run(activity_items)
    strategy.close()
    assert StandInSession.opened == ["activity_1"] and len(sessions[0].asked) == 3 and sessions[0].closed
    recs = read_records(tmp_path / "results-agents.jsonl")
    assert [r.correct for r in recs] == [True, True, False]   # the third gold asks for ranks
    assert recs[0].tokens == {"prompt": 900, "reused": 600, "completion": 40}
    assert recs[0].reuse == pytest.approx(2 / 3) and recs[0].prediction["values"] == [58]


def test_agents_strategy_on_the_real_session(activity_items: list[SpiderItem], tmp_path: Path) -> None:
    replies = {"planner": '{"steps": [{"goal": "count faculty", "tables": ["Faculty"]}]}',
               "engineer": "```sql\nSELECT count(*) AS n FROM Faculty\n```",
               "critic": '{"verdict": "accept", "note": "58 faculty."}'}
    engine = ScriptedEngine(fn=lambda req: replies[req.agent])
    strategy = AgentsStrategy(Config(), engine)
    try:
        EvalRunner(strategy, tmp_path, dataset="spider").run(activity_items)
    finally:
        strategy.close()
    recs = read_records(tmp_path / "results-agents.jsonl")
    assert [r.correct for r in recs] == [True, True, False]
    assert recs[0].prediction["values"] == [58] and recs[0].prediction["sql"] == "SELECT count(*) AS n FROM Faculty"
    calls = [r for r in engine.requests if not r.prefill_only]
    # Four agreeing candidates per question (one fork), no plan and no critic call.
    assert [r.agent for r in calls] == ["engineer"] * 12
    assert len({r.session_id for r in engine.requests}) == 1          # one session for the database
    # Independent questions: the first question never appears in the prompts of the second.
    second = [engine.prompts[i] for i, r in enumerate(engine.requests) if r is calls[4]][0]
    assert activity_items[0].question not in second and activity_items[1].question in second
    assert recs[1].tokens["reused"] > 0 and 0 < recs[1].reuse < 1
    assert (tmp_path / recs[0].trace_path).is_file()


def test_baseline_closes_sources_it_no_longer_needs(spider_dir: Path, tmp_path: Path) -> None:
    items = load_spider(spider_dir)
    two_dbs = [items[0], next(i for i in items if i.db_id != items[0].db_id)]
    closed: list[str] = []

    def opener(task: Task, config: Config) -> OpenedSource:
        return OpenedSource(SqliteExecutor(task.source), schema=task.source_key,
                            close=lambda: closed.append(task.source_key))

    engine = ScriptedEngine(["```sql\nSELECT 1\n```"] * 2)
    strategy = BaselineStrategy(Config(), engine, opener=opener, open_sources=1)
    EvalRunner(strategy, tmp_path, dataset="spider").run(two_dbs)
    assert closed == [two_dbs[0].db_id]               # evicted when the second database opened
    strategy.close()
    assert closed == [two_dbs[0].db_id, two_dbs[1].db_id]


def test_agents_strategy_records_why_no_result_came_out(activity_items: list[SpiderItem], tmp_path: Path) -> None:
    class OutOfBudget(StandInSession):
        def ask(self, question: str) -> Answer:
            return Answer(question=question, answer="No supported answer was found within the limits.")

    strategy = AgentsStrategy(Config(), engine=None, session_factory=OutOfBudget)
    EvalRunner(strategy, tmp_path, dataset="spider").run(activity_items[:1])
    strategy.close()
    rec = read_records(tmp_path / "results-agents.jsonl")[0]
    assert not rec.correct
    assert rec.error == "no_result: No supported answer was found within the limits."
