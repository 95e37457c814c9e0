"""The evaluation loop: scoring in the harness, resume after an interrupt, concurrency, failures."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from autotqa.errors import EngineError, OutputParseError
from autotqa.evaluation.datasets import SpiderItem, Task, WTQItem
from autotqa.evaluation.results import read_records
from autotqa.evaluation.runner import EvalRunner
from autotqa.evaluation.strategies import Prediction

GOLD = {f"q{i}": str(i * 10) for i in range(8)}


def wtq_items() -> list[WTQItem]:
    # Two tables interleaved, so the runner's grouping by source is visible.
    return [WTQItem(id=f"q{i}", question=f"question {i}?", context=f"t{i % 2}.csv",
                    table_path=f"/nowhere/t{i % 2}.csv", target_values=[GOLD[f"q{i}"]]) for i in range(8)]


class FakeStrategy:
    """Answers from a table of replies; records every task it saw; can blow up on the n-th call."""

    name = "fake"

    def __init__(self, answers: dict[str, list[object]], *, interrupt_at: int | None = None,
                 raise_on: dict[str, BaseException] | None = None) -> None:
        self.answers = answers
        self.interrupt_at = interrupt_at
        self.raise_on = raise_on or {}
        self.seen: list[Task] = []
        self._lock = threading.Lock()

    def answer(self, task: Task) -> Prediction:
        with self._lock:
            self.seen.append(task)
            n = len(self.seen)
        if self.interrupt_at is not None and n == self.interrupt_at:
            raise KeyboardInterrupt
        if task.id in self.raise_on:
            raise self.raise_on[task.id]
        return Prediction(values=self.answers.get(task.id, []), latency_s=0.5,
                          tokens={"prompt": 100, "reused": 80, "completion": 5}, reuse=0.8,
                          trace=[{"agent": "fake", "q": task.question}])

    def close(self) -> None:
        pass


def right_answers() -> dict[str, list[object]]:
    return {qid: [int(v)] for qid, v in GOLD.items()}


def test_tasks_carry_no_gold(tmp_path: Path) -> None:
    strategy = FakeStrategy(right_answers())
    EvalRunner(strategy, tmp_path, dataset="wtq").run(wtq_items())
    assert all(type(t) is Task for t in strategy.seen)
    assert set(Task.model_fields) == {"id", "question", "source", "source_key", "dataset"}
    assert [t.id for t in strategy.seen] == ["q0", "q2", "q4", "q6", "q1", "q3", "q5", "q7"]


def test_resume_after_keyboard_interrupt_evaluates_each_question_once(tmp_path: Path) -> None:
    items = wtq_items()
    first = FakeStrategy(right_answers(), interrupt_at=3)
    with pytest.raises(KeyboardInterrupt):
        EvalRunner(first, tmp_path, dataset="wtq").run(items)
    path = tmp_path / "results-fake.jsonl"
    assert [r.id for r in read_records(path)] == ["q0", "q2"]

    # A kill in the middle of writing leaves half a line behind: tolerated and dropped.
    with path.open("a", encoding="utf-8") as fh:
        fh.write('{"id": "q4", "strategy": "fa')

    second = FakeStrategy(right_answers())
    summary = EvalRunner(second, tmp_path, dataset="wtq").run(items)
    assert [t.id for t in second.seen] == ["q4", "q6", "q1", "q3", "q5", "q7"]
    assert (summary.skipped, summary.evaluated, summary.correct) == (2, 6, 6)

    lines = path.read_text(encoding="utf-8").splitlines()
    ids = [json.loads(line)["id"] for line in lines]
    assert sorted(ids) == sorted(GOLD) and len(ids) == len(set(ids)) == 8

    third = FakeStrategy(right_answers())
    summary = EvalRunner(third, tmp_path, dataset="wtq").run(items)
    assert third.seen == [] and (summary.skipped, summary.evaluated) == (8, 0)


def test_records_score_and_traces(tmp_path: Path) -> None:
    answers = right_answers()
    answers["q1"] = ["wrong"]
    answers["q3"] = []
    EvalRunner(FakeStrategy(answers), tmp_path, dataset="wtq").run(wtq_items())
    recs = {r.id: r for r in read_records(tmp_path / "results-fake.jsonl")}
    assert {qid for qid, r in recs.items() if not r.correct} == {"q1", "q3"}
    q2 = recs["q2"]
    assert q2.gold == {"values": ["20"]} and q2.prediction["values"] == [20]
    assert q2.categories == {"answer_type": "number"}
    assert (q2.tokens, q2.reuse, q2.latency_s, q2.source) == (
        {"prompt": 100, "reused": 80, "completion": 5}, 0.8, 0.5, "t0.csv")
    assert q2.trace_path == "traces/fake/q2.json"
    assert json.loads((tmp_path / q2.trace_path).read_text()) == [{"agent": "fake", "q": "question 2?"}]


def test_concurrent_run_writes_every_question_once(tmp_path: Path) -> None:
    strategy = FakeStrategy(right_answers())
    summary = EvalRunner(strategy, tmp_path, dataset="wtq", concurrency=4).run(wtq_items())
    assert (summary.evaluated, summary.correct) == (8, 8)
    ids = [json.loads(x)["id"] for x in (tmp_path / "results-fake.jsonl").read_text().splitlines()]
    assert sorted(ids) == sorted(GOLD)


def test_concurrent_interrupt_then_resume(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        EvalRunner(FakeStrategy(right_answers(), interrupt_at=5), tmp_path, dataset="wtq",
                   concurrency=2).run(wtq_items())
    done = {r.id for r in read_records(tmp_path / "results-fake.jsonl")}
    assert 1 <= len(done) <= 7
    again = FakeStrategy(right_answers())
    EvalRunner(again, tmp_path, dataset="wtq", concurrency=2).run(wtq_items())
    assert {t.id for t in again.seen} == set(GOLD) - done
    ids = [json.loads(x)["id"] for x in (tmp_path / "results-fake.jsonl").read_text().splitlines()]
    assert sorted(ids) == sorted(GOLD)


def test_question_failures_are_recorded_program_failures_stop(tmp_path: Path) -> None:
    items = wtq_items()
    crashing = FakeStrategy(right_answers(), raise_on={
        "q2": ValueError("boom"), "q4": OutputParseError("bad json", raw="{")})
    EvalRunner(crashing, tmp_path, dataset="wtq").run(items)
    recs = {r.id: r for r in read_records(tmp_path / "results-fake.jsonl")}
    assert recs["q2"].error == "crash: ValueError: boom" and not recs["q2"].correct
    assert recs["q4"].error == "crash: OutputParseError: bad json"
    assert len(recs) == 8

    out2 = tmp_path / "second"
    down = FakeStrategy(right_answers(), raise_on={"q4": EngineError("server unreachable")})
    with pytest.raises(EngineError):
        EvalRunner(down, out2, dataset="wtq").run(items)
    assert [r.id for r in read_records(out2 / "results-fake.jsonl")] == ["q0", "q2"]


def test_spider_scoring_runs_gold_on_the_sqlite_file(tmp_path: Path) -> None:
    db = tmp_path / "shop.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE item (id INTEGER, name TEXT, price REAL)")
        conn.executemany("INSERT INTO item VALUES (?, ?, ?)", [(1, "pen", 2.0), (2, "ink", 5.5)])
    items = [SpiderItem(id="s1", db_id="shop", question="prices?", db_path=str(db),
                        gold_sql="SELECT name, price FROM item ORDER BY price DESC"),
             SpiderItem(id="s2", db_id="shop", question="count?", db_path=str(db),
                        gold_sql="SELECT count(*) FROM item"),
             SpiderItem(id="s3", db_id="shop", question="broken gold", db_path=str(db),
                        gold_sql="SELECT nope FROM item")]

    class RowsStrategy(FakeStrategy):
        def answer(self, task: Task) -> Prediction:
            rows = {"s1": [[5.5, "ink"], [2, "pen"]], "s2": [[3]], "s3": [[1]]}[task.id]
            return Prediction(columns=["a"] * len(rows[0]), rows=rows, n_rows=len(rows), sql="SELECT ...")

    EvalRunner(RowsStrategy({}), tmp_path / "out", dataset="spider").run(items)
    recs = {r.id: r for r in read_records(tmp_path / "out" / "results-fake.jsonl")}
    assert recs["s1"].correct and recs["s1"].gold["ordered"] is True
    assert recs["s1"].gold["rows"] == [["ink", 5.5], ["pen", 2.0]]
    assert not recs["s2"].correct and recs["s2"].gold["rows"] == [[2]]
    assert recs["s2"].categories == {"joins": "no", "nesting": "no", "aggregation": "yes"}
    assert not recs["s3"].correct and recs["s3"].gold_error == "OperationalError: no such column: nope"
