"""The evaluation loop: ask, score, record — resumable and optionally concurrent.

Scoring happens here, in the harness: the strategy sees only the :class:`Task`, then the prediction
is compared with the gold (Spider: the gold SQL run on the original SQLite file; WTQ: the target
values). Questions on the same source run next to each other so a strategy can reuse its session.

Failures are split the way the rest of autotqa splits them: a mistake of the model or a problem with
one question (bad SQL, an unreadable table, an unexpected crash in the loop) is recorded on that
question as ``error`` and scored wrong; a problem of the *program* (configuration, engine down) stops
the run without recording the question, so the next run retries it.
"""

from __future__ import annotations

import concurrent.futures as cf
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, EngineError, OutputParseError, SourceUnavailableError
from ..executors.base import to_jsonable
from .categories import spider_categories, wtq_categories
from .datasets import EvalItem, SpiderItem, WTQItem
from .denotation import denotation_match
from .execution import has_top_level_order_by, results_match, run_gold
from .official import OfficialScore, score_official
from .results import KEEP_ROWS, ResultRecord, ResultStore, results_path, write_trace
from .strategies import Prediction, Strategy


def is_fatal(exc: BaseException) -> bool:
    """Errors of the program, which stop the run (the question stays unevaluated)."""
    if isinstance(exc, OutputParseError):
        return False
    return isinstance(exc, ConfigError | EngineError | SourceUnavailableError)


@dataclass(frozen=True)
class Scored:
    """A prediction compared with the gold.

    ``correct`` scores the answer the user got (the rows autotqa's executor returned); ``official``
    (Spider only) scores the predicted query run on the source SQLite file, as the official
    evaluator does. ``gold`` is the gold summary kept on the record.
    """

    correct: bool
    gold: dict[str, Any]
    gold_error: str | None = None
    official: OfficialScore | None = None


def score(item: EvalItem, pred: Prediction) -> Scored:
    """Compare a prediction with the gold (both Spider metrics run the gold query once)."""
    if isinstance(item, WTQItem):
        gold = {"values": item.target_values}
        return Scored(bool(pred.values) and denotation_match(item.target_values, pred.values), gold)
    assert isinstance(item, SpiderItem)
    ordered = has_top_level_order_by(item.gold_sql)
    gold = {"sql": item.gold_sql, "ordered": ordered}
    try:
        rows = run_gold(item.db_path, item.gold_sql)
    except sqlite3.Error as exc:
        return Scored(False, gold, f"{type(exc).__name__}: {exc}")
    gold["n_rows"] = len(rows)
    gold["rows"] = [[to_jsonable(v) for v in r] for r in rows[:KEEP_ROWS]]
    if pred.language == "sql":
        official = score_official(item.db_path, pred.sql, rows, ordered=ordered)
    else:  # the official evaluator can only run SQL
        official = OfficialScore(correct=False, error=f"not_sql: the answer came from {pred.language} code")
    if pred.error is not None or (not pred.columns and not pred.rows) or pred.truncated:
        return Scored(False, gold, official=official)
    return Scored(results_match(rows, pred.rows, ordered=ordered), gold, official=official)


def categories_of(item: EvalItem) -> dict[str, str]:
    if isinstance(item, SpiderItem):
        return spider_categories(item.gold_sql)
    return wtq_categories(item.target_values)


def _compact(pred: Prediction) -> dict[str, Any]:
    return {"answer": pred.answer[:500], "values": pred.values[:50], "sql": pred.sql,
            "columns": pred.columns, "rows": pred.rows[:KEEP_ROWS], "n_rows": pred.n_rows,
            "truncated": pred.truncated, "verified": pred.verified}


def group_by_source(items: Sequence[EvalItem]) -> list[EvalItem]:
    """Order items so that each source's questions are adjacent (first-seen source order kept).

    >>> from autotqa.evaluation.datasets import SpiderItem
    >>> mk = lambda i, db: SpiderItem(id=i, db_id=db, question="?", gold_sql="", db_path="")
    >>> [x.id for x in group_by_source([mk("1", "a"), mk("2", "b"), mk("3", "a")])]
    ['1', '3', '2']
    """
    groups: dict[str, list[EvalItem]] = {}
    for item in items:
        groups.setdefault(item.task().source_key, []).append(item)
    return [item for group in groups.values() for item in group]


@dataclass
class RunSummary:
    strategy: str
    total: int
    skipped: int
    evaluated: int
    correct: int
    elapsed_s: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.evaluated if self.evaluated else 0.0


ProgressFn = Callable[[ResultRecord], None]


class EvalRunner:
    """Runs one strategy over items, appending each scored question to ``DIR/results-<strategy>.jsonl``."""

    def __init__(self, strategy: Strategy, out_dir: str | Path, *, dataset: str,
                 concurrency: int = 1, stop: threading.Event | None = None) -> None:
        # ``stop`` is set by a signal handler. The KeyboardInterrupt it raises can be swallowed when
        # it lands inside a library callback (sqlite3's text factory or progress handler turn it
        # into their own errors), so the run also checks the flag: the question in flight then is
        # not recorded (a resumed run asks it again) and nothing after it starts.
        self.stop = stop
        self.strategy = strategy
        self.out_dir = Path(out_dir)
        self.dataset = dataset
        self.concurrency = max(1, concurrency)
        self.store = ResultStore(results_path(self.out_dir, strategy.name))

    def pending(self, items: Sequence[EvalItem]) -> list[EvalItem]:
        """Items not yet in the results file, grouped by source (the same order on every resume)."""
        done = self.store.done_ids()
        return [i for i in group_by_source(items) if i.id not in done]

    def evaluate_one(self, item: EvalItem) -> ResultRecord:
        """Ask, score and build the record of one item (does not write it)."""
        task = item.task()
        t0 = time.perf_counter()
        try:
            pred = self.strategy.answer(task)
        except Exception as exc:  # noqa: BLE001 - per-question failures become data; fatal ones re-raise
            if is_fatal(exc):
                raise
            pred = Prediction(error=f"crash: {type(exc).__name__}: {exc}",
                              latency_s=time.perf_counter() - t0)
        scored = score(item, pred)
        trace_path = None
        if pred.trace is not None:
            trace_path = write_trace(self.out_dir, self.strategy.name, item.id, pred.trace)
        return ResultRecord(
            id=item.id, strategy=self.strategy.name, dataset=self.dataset, question=task.question,
            source=task.source_key, prediction=_compact(pred), gold=scored.gold, correct=scored.correct,
            official_correct=scored.official.correct if scored.official else None,
            official=scored.official.summary() if scored.official else {},
            error=pred.error, gold_error=scored.gold_error, tokens=pred.tokens, reuse=pred.reuse,
            latency_s=round(pred.latency_s, 4), trace_path=trace_path, categories=categories_of(item))

    def run(self, items: Sequence[EvalItem], on_result: ProgressFn | None = None) -> RunSummary:
        """Evaluate every pending item; ``on_result`` is called after each record is written."""
        t0 = time.perf_counter()
        todo = self.pending(items)
        summary = RunSummary(self.strategy.name, total=len(items), skipped=len(items) - len(todo),
                             evaluated=0, correct=0, elapsed_s=0.0)

        def record(rec: ResultRecord) -> None:
            if self.stop is not None and self.stop.is_set():
                raise KeyboardInterrupt
            self.store.append(rec)
            summary.evaluated += 1
            summary.correct += int(rec.correct)
            if on_result is not None:
                on_result(rec)

        if self.concurrency == 1:
            for item in todo:
                record(self.evaluate_one(item))
        else:
            self._run_parallel(todo, record)
        summary.elapsed_s = time.perf_counter() - t0
        return summary

    def _run_parallel(self, todo: list[EvalItem], record: Callable[[ResultRecord], None]) -> None:
        # Keep at most 2*C questions in flight so an interrupt loses little and stops quickly.
        pool = cf.ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="eval")
        it = iter(todo)
        in_flight: set[cf.Future[ResultRecord]] = set()
        try:
            for item in it:
                in_flight.add(pool.submit(self.evaluate_one, item))
                if len(in_flight) >= 2 * self.concurrency:
                    break
            while in_flight:
                done, in_flight = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    record(fut.result())
                    nxt = next(it, None)
                    if nxt is not None:
                        in_flight.add(pool.submit(self.evaluate_one, nxt))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
