"""Strategies: the ways of answering a benchmark question that ``autotqa eval`` compares.

A strategy turns a gold-free :class:`~autotqa.evaluation.datasets.Task` into a :class:`Prediction`.
Two are built in, both on the same engine, model, catalog and SQL executor:

* ``agents`` — the full five-agent loop through :class:`autotqa.Session`; one session per database
  or table, kept open across that source's questions so the warm shared prefix is reused;
* ``baseline`` — one LLM call: the schema block and the question in, one query in a ```sql fence out,
  run once through the same executor. No repair, no plan, no critic.

Both charge the cost of opening a source (loading the catalog, warming the prefix) to the first
question asked on it, which is what a person asking that question would wait for.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, Field

from ..config import Config
from ..executors.base import ExecutionResult, Executor, Language, to_jsonable
from .datasets import Task

T = TypeVar("T")

#: Row cap used when the harness runs predicted SQL: results are compared in full, not as previews.
EVAL_ROW_CAP = 100_000


class Prediction(BaseModel):
    """What a strategy answered for one question, with its cost.

    ``values`` are the answer values (WTQ compares these); ``columns``/``rows`` are the result of the
    final query (Spider compares these); ``error`` is set when no usable result came out.
    ``tokens`` holds prompt/reused/completion token counts; ``reuse`` is reused/prompt.
    """

    values: list[Any] = Field(default_factory=list)
    answer: str = ""
    sql: str | None = None
    #: What ``sql`` holds: "sql" (DuckDB) or "pandas" code (the official Spider metric runs only SQL).
    language: Language = "sql"
    columns: list[str] = Field(default_factory=list)
    rows: list[list[Any]] = Field(default_factory=list)
    n_rows: int = 0
    truncated: bool = False
    error: str | None = None
    verified: bool = False
    tokens: dict[str, int] = Field(default_factory=dict)
    reuse: float = 0.0
    latency_s: float = 0.0
    trace: Any = None


class Strategy(Protocol):
    """Anything that answers tasks; ``close`` releases sessions and engines."""

    name: str

    def answer(self, task: Task) -> Prediction: ...

    def close(self) -> None: ...


def extract_sql(text: str) -> str | None:
    """The query in a model reply: the first ```sql fence (closed or not), else a bare SELECT/WITH.

    >>> extract_sql("```sql\\nSELECT 1\\n```\\nThis selects one.")
    'SELECT 1'
    >>> extract_sql("```sql\\nSELECT name FROM t")
    'SELECT name FROM t'
    >>> extract_sql("WITH x AS (SELECT 1) SELECT * FROM x;")
    'WITH x AS (SELECT 1) SELECT * FROM x'
    >>> extract_sql("I cannot answer that.") is None
    True
    """
    m = re.search(r"```(?:sql|sqlite|duckdb)?[ \t]*\n(.*?)(?:```|$)", text, re.S | re.I)
    body = m.group(1) if m else text
    body = body.strip()
    start = re.search(r"\b(SELECT|WITH)\b", body, re.I)
    if start is None:
        return None
    body = body[start.start():].strip().rstrip(";").strip()
    return body or None


def values_from_result(result: ExecutionResult) -> list[Any]:
    """Answer values from a result table: the single cell, else the first column.

    >>> values_from_result(ExecutionResult(ok=True, columns=["a", "b"], rows=[[1, 2], [3, 4]], n_rows=2))
    [1, 3]
    """
    if not result.ok or not result.rows:
        return []
    return [row[0] for row in result.rows if row]


def prediction_from_result(result: ExecutionResult, pred: Prediction) -> Prediction:
    """Copy an execution result into ``pred`` (rows made JSON-friendly)."""
    pred.columns = list(result.columns)
    pred.rows = [[to_jsonable(v) for v in row] for row in result.rows]
    pred.n_rows = result.n_rows
    pred.truncated = result.truncated
    if not result.ok:
        pred.error = f"{result.error_type}: {result.error}"
    return pred


class LoopThread:
    """One private event loop on a daemon thread, so worker threads can share async engines.

    >>> lt = LoopThread()
    >>> async def two(): return 2
    >>> lt.run(two())
    2
    >>> lt.close()
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="eval-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            # Wake up now and then: a SIGTERM/SIGINT that the kernel delivered to another thread
            # only runs its Python handler once the main thread executes bytecode again.
            while True:
                try:
                    return future.result(timeout=0.2)
                except concurrent.futures.TimeoutError:
                    continue
        except KeyboardInterrupt:
            future.cancel()
            raise

    def close(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
        self.loop.close()


class _Sources:
    """An LRU of per-source objects (catalogs, sessions), each with its own lock.

    A source is opened once even when several threads ask for it at the same time. The LRU should
    hold more sources than can be in flight (see :func:`build_strategy`), so an object is not closed
    while another question still uses it.
    """

    def __init__(self, open_fn: Callable[[Task], Any], close_fn: Callable[[Any], None], size: int) -> None:
        self._open = open_fn
        self._close = close_fn
        self._size = max(1, size)
        self._items: OrderedDict[str, tuple[Any, threading.Lock]] = OrderedDict()
        self._opening: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, task: Task) -> tuple[Any, threading.Lock, bool]:
        """The open object for the task's source (opened now if needed), its lock, and whether it is new."""
        key = task.source_key
        with self._guard:
            key_lock = self._opening.setdefault(key, threading.Lock())
        with key_lock:
            with self._guard:
                if key in self._items:
                    self._items.move_to_end(key)
                    obj, lock = self._items[key]
                    return obj, lock, False
            obj = self._open(task)
            lock = threading.Lock()
            with self._guard:
                self._items[key] = (obj, lock)
                evicted: list[tuple[Any, threading.Lock]] = []
                while len(self._items) > self._size:
                    old_key, old = self._items.popitem(last=False)
                    self._opening.pop(old_key, None)
                    evicted.append(old)
        for old_obj, old_lock in evicted:
            with old_lock:
                self._close(old_obj)
        return obj, lock, True

    def close(self) -> None:
        with self._guard:
            items = list(self._items.values())
            self._items.clear()
            self._opening.clear()
        for obj, lock in items:
            with lock:
                self._close(obj)


@dataclass
class OpenedSource:
    """A source made ready for the baseline: an executor on its catalog and the schema block."""

    executor: Executor
    schema: str
    close: Callable[[], None] = lambda: None


def open_catalog_source(task: Task, config: Config,
                        count_tokens: Callable[[str], int] | None = None) -> OpenedSource:
    """Load the task's source into a catalog (or reflect it, for a server URL); the executor gets the
    evaluation row cap; ``count_tokens`` counts the schema budget (None: the catalog's estimate)."""
    from ..catalog.server import open_sources
    from ..executors.server_sql import sql_executor_for

    catalog = open_sources([task.source])
    executor = sql_executor_for(catalog, _eval_executor_config(config))
    schema = catalog.schema().render(token_budget=config.agents.schema_token_budget, count_tokens=count_tokens)
    return OpenedSource(executor, schema, getattr(catalog, "close", lambda: None))


def _eval_executor_config(config: Config) -> Any:
    return config.executor.model_copy(update={"row_cap": max(config.executor.row_cap, EVAL_ROW_CAP)})


BASELINE_HEADER = (
    "You translate a question about the tables below into one DuckDB SQL query.\n"
    "Use only the tables and columns listed. Quote identifiers with double quotes when needed.")
BASELINE_TAIL = ("Question: {question}\n"
                 "Reply with only the SQL query that answers it, in a ```sql fenced block.")


class BaselineStrategy:
    """Single-shot text-to-SQL: schema + question -> one query -> one execution."""

    name = "baseline"

    def __init__(self, config: Config, engine: Any, *, max_tokens: int = 256, open_sources: int = 2,
                 opener: Callable[[Task, Config], OpenedSource] | None = None) -> None:
        from ..serving.client import LLMClient  # serving only; no agents involved
        from ..serving.engine import Engine

        self.config = config
        self.engine = engine
        self.max_tokens = max_tokens
        # The schema budget counted as the agents' sessions count it: the same text for both.
        counter = engine.token_counter() if isinstance(engine, Engine) else None
        self._opener = opener or (lambda task, cfg: open_catalog_source(task, cfg, counter))
        self._loop = LoopThread()

        async def make_client() -> LLMClient:
            return LLMClient(engine)  # built on the loop that runs it: its scheduler lives there

        self._client = self._loop.run(make_client())
        self._sources = _Sources(self._open, self._close, open_sources)

    def _open(self, task: Task) -> tuple[OpenedSource, str]:
        return self._opener(task, self.config), f"baseline/{task.source_key}"

    def _close(self, opened: tuple[OpenedSource, str]) -> None:
        source, session_id = opened
        source.close()
        end_session = getattr(self._client, "end_session", None)
        if callable(end_session):
            async def end() -> None:  # on the loop that owns the client, not the caller's thread
                end_session(session_id)  # let the engine drop this source's cached prefix state

            self._loop.run(end())

    def answer(self, task: Task) -> Prediction:
        from ..serving.types import GenerationRequest, PromptSegments

        t0 = time.perf_counter()
        (source, session_id), lock, _ = self._sources.get(task)
        executor, schema = source.executor, source.schema
        segments = PromptSegments(header=BASELINE_HEADER, schema_block=schema,
                                  tail=BASELINE_TAIL.format(question=task.question))
        with lock:
            # One call: a separate warm-up of the prefix would only add a second prefill.
            program = self._client.begin_program(session_id,
                                                 PromptSegments(header=BASELINE_HEADER, schema_block=schema),
                                                 warm=False)
            request = GenerationRequest(segments=segments, max_tokens=self.max_tokens, stop=["\n```"],
                                        agent="baseline")
            result = self._loop.run(program.generate(request))
            self._loop.run(program.end())
            sql = extract_sql(result.text)
            exec_result = executor.run(sql) if sql else None
        usage = result.usage
        pred = Prediction(
            sql=sql, answer=result.text,
            tokens={"prompt": usage.prompt_tokens, "reused": usage.reused_tokens,
                    "completion": usage.completion_tokens},
            reuse=usage.reused_tokens / usage.prompt_tokens if usage.prompt_tokens else 0.0,
            trace=[{"agent": "baseline", "prompt_tail": segments.tail, "reply": result.text,
                    "sql": sql, "result": exec_result.preview() if exec_result else None}])
        if exec_result is None:
            pred.error = "no_sql: the reply held no SQL query"
        else:
            prediction_from_result(exec_result, pred)
            pred.values = values_from_result(exec_result)
            pred.verified = exec_result.ok
        pred.latency_s = time.perf_counter() - t0
        return pred

    def close(self) -> None:
        self._sources.close()
        self._loop.close()


class AgentsStrategy:
    """The full loop: one :class:`autotqa.Session` per source, reused across its questions."""

    name = "agents"

    def __init__(self, config: Config, engine: Any, *, open_sources: int = 2,
                 session_factory: Callable[[Task], Any] | None = None) -> None:
        self.config = config
        self.engine = engine
        self._session_factory = session_factory or self._open
        self._sources = _Sources(self._session_factory, lambda s: s.close(), open_sources)
        self._rerun = _Sources(lambda task: open_catalog_source(task, config), lambda src: src.close(), 1)

    def _open(self, task: Task) -> Any:
        from .. import Session  # type: ignore[attr-defined]  # the agents API (autotqa/__init__.py)

        return Session([task.source], config=self.config, engine=self.engine)

    def answer(self, task: Task) -> Prediction:
        t0 = time.perf_counter()
        session, lock, _ = self._sources.get(task)
        with lock:
            # Benchmark questions are independent: no earlier question may act as chat context.
            history = getattr(session, "history", None)
            if isinstance(history, list):
                history.clear()
            ans = session.ask(task.question)
        m = ans.metrics
        pred = Prediction(
            values=[to_jsonable(v) for v in ans.values], answer=ans.answer, sql=ans.sql, language=ans.language,
            verified=ans.verified,
            tokens={"prompt": int(m.get("prompt_tokens", 0)), "reused": int(m.get("reused_tokens", 0)),
                    "completion": int(m.get("completion_tokens", 0))},
            reuse=float(m.get("reuse_ratio", 0.0) or 0.0), trace=ans.trace)
        result = ans.result
        if result is not None and result.truncated and ans.sql and ans.language == "sql":
            # The loop saw a capped preview; the metric needs every row of the final query.
            source, _, _ = self._rerun.get(task)
            result = source.executor.run(ans.sql)
        if result is not None:
            prediction_from_result(result, pred)
        elif ans.unanswerable:
            pred.error = "unanswerable: the loop found no answer in the tables"
        else:  # e.g. the round, token or time budget ran out before any result
            pred.error = f"no_result: {ans.answer[:200]}"
        pred.latency_s = time.perf_counter() - t0
        return pred

    def close(self) -> None:
        self._sources.close()
        self._rerun.close()


STRATEGIES = ("agents", "baseline")


def build_strategy(name: str, config: Config, engine: Any, *, concurrency: int = 1) -> Strategy:
    """Instantiate a built-in strategy by name on an engine the caller owns.

    The runner keeps up to ``2 * concurrency`` questions in flight, so that many sources (+1) stay open.
    """
    open_sources = 2 * max(1, concurrency) + 1
    if name == "agents":
        return AgentsStrategy(config, engine, open_sources=open_sources)
    if name == "baseline":
        return BaselineStrategy(config, engine, open_sources=open_sources)
    from ..errors import ConfigError

    raise ConfigError(f"unknown strategy {name!r}", hint=f"use one of: {', '.join(STRATEGIES)}")
