"""The Python API: ``autotqa.ask(sources, question)`` and ``autotqa.Session`` for follow-ups.

A session owns one catalog, one serving client (one engine) and one orchestrator, and runs them on
its own event loop in a background thread. Why a thread: the session warms the schema prefix the
moment it opens, while the person is still typing, and the synchronous ``ask`` works the same in a
script, a notebook (which already runs a loop) or the chat UI.

>>> import pandas as pd
>>> from autotqa.serving.engines.scripted import ScriptedEngine
>>> replies = {"planner": '{"steps": [{"goal": "count", "tables": ["sales"]}]}',
...            "engineer": "```sql\\nSELECT count(*) AS n FROM sales\\n```",
...            "critic": '{"verdict": "accept", "note": "There are 2 sales."}'}
>>> eng = ScriptedEngine(fn=lambda req: replies[req.agent])
>>> ask({"sales": pd.DataFrame({"x": [1, 2]})}, "How many sales are there?", engine=eng).values
[2]
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from .agents.events import AnswerReady, Event
from .answer import Answer
from .config import Config
from .executors.base import Executor, Language
from .orchestrator import EventHandler, Orchestrator, Workspace
from .serving.client import LLMClient
from .serving.engine import Engine

T = TypeVar("T")


def _is_catalog(obj: Any) -> bool:
    return hasattr(obj, "tables") and hasattr(obj, "schema") and hasattr(obj, "columns_by_table")


def open_catalog(sources: Any, config: Config | None = None) -> Any:
    """A Catalog from a path, a DataFrame, ``{name: DataFrame}``, or a list of those; a
    ServerCatalog from one database URL (``postgresql://...``, ``mysql://...``).

    ``config.executor`` sets the DuckDB memory and threads its queries get.
    """
    from .catalog.server import open_sources  # the data layer, imported when a session opens

    if isinstance(sources, str | Path | Mapping) or not isinstance(sources, Sequence):
        sources = [sources]
    return open_sources(list(sources), limits=(config or Config()).executor)


def build_workspace(catalog: Any, config: Config, *, prestart_pandas: bool = True,
                    count_tokens: Callable[[str], int] | None = None) -> Workspace:
    """Schema text, column names and executors of a catalog: what the orchestrator needs.

    ``prestart_pandas`` keeps a spare sandbox child ready (worth it in chat; a one-shot question
    rarely needs pandas and should not pay for a child process it never uses). ``count_tokens``
    counts ``agents.schema_token_budget`` (the engine's tokenizer; None: the catalog's estimate).
    """
    from .executors.server_sql import sql_executor_for

    executors: dict[Language, Executor] = {"sql": sql_executor_for(catalog, config.executor)}
    try:
        from .executors.pandas_exec import PandasExecutor
    except ImportError:  # pandas steps then run as SQL steps
        pass
    else:
        # A database server's tables stay on the server (no arrow()): SQL steps only there.
        if hasattr(catalog, "arrow"):
            executors["pandas"] = PandasExecutor.from_catalog(catalog, config.executor, prestart=prestart_pandas)
    columns = {table: [getattr(c, "name", c) for c in cols]
               for table, cols in catalog.columns_by_table().items()}
    schema = catalog.schema().render(token_budget=config.agents.schema_token_budget, count_tokens=count_tokens)
    return Workspace(schema_text=schema, columns=columns, executors=executors)


class Session:
    """Questions and follow-ups over the same tables, with a warm prefix and chat history.

    ``events`` is a list of callables; each receives every event of every question (called on the
    session's worker thread). ``stream(question)`` yields the same events; the last is the answer.
    ``engine`` is a ready engine (tests pass a ScriptedEngine); None builds one from the config.
    """

    def __init__(self, sources: Any, *, config: Config | None = None, engine: Engine | None = None,
                 warm: bool = True, close_engine: bool | None = None,
                 prestart_pandas: bool = True) -> None:
        self.config = config or Config()
        self._owns_catalog = not _is_catalog(sources)
        self.catalog = open_catalog(sources, self.config) if self._owns_catalog else sources
        # An engine passed in belongs to the caller unless close_engine says otherwise.
        self._owns_engine = engine is None if close_engine is None else close_engine
        if engine is None:
            from .serving.factory import build_engine

            engine = build_engine(self.config.engine)
        self.engine = engine
        self.events: list[EventHandler] = []
        #: (question, answer, sql) per answered turn: a follow-up edits the last turn's query.
        self.history: list[tuple[str, str, str]] = []
        self.session_id = f"session-{uuid.uuid4().hex[:8]}"
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="autotqa-session", daemon=True)
        self._thread.start()
        try:
            workspace = build_workspace(self.catalog, self.config, prestart_pandas=prestart_pandas,
                                        count_tokens=self.engine.token_counter())
            self._executors = dict(workspace.executors)
            self.client: LLMClient = self._call(self._make_client())
            self.orchestrator = Orchestrator(self.client, workspace, self.config, session_id=self.session_id)
            self._warm = self._submit(self.orchestrator.warm()) if warm else None
        except BaseException:
            self.close()
            raise

    async def _make_client(self) -> LLMClient:
        return LLMClient(self.engine)  # built on the session loop: its scheduler lives there

    def _submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        if self._closed:
            coro.close()
            raise RuntimeError("this session is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._submit(coro).result()

    def _await_warm(self) -> None:
        """A failed warm-up (engine down) is a program error: it surfaces on the next question."""
        if self._warm is not None:
            warm, self._warm = self._warm, None
            warm.result()

    def _dispatch(self, event: Event) -> None:
        for handler in list(self.events):
            handler(event)

    def ask(self, question: str) -> Answer:
        """Answer ``question``; earlier questions and answers of this session are its context.

        A KeyboardInterrupt (Ctrl-C) while waiting cancels the run on the session's loop and waits
        until it has unwound, so the session stays usable, the engine is free for the next
        question, and the cancelled question does not enter the history.
        """
        self._await_warm()
        unwound = threading.Event()

        async def run() -> Answer:
            try:
                return await self.orchestrator.answer(question, history=tuple(self.history),
                                                      on_event=self._dispatch)
            finally:
                unwound.set()

        future = self._submit(run())
        try:
            answer = future.result()
        except KeyboardInterrupt:
            future.cancel()
            unwound.wait(timeout=10)
            raise
        self.history.append((answer.question, answer.answer, answer.sql or ""))
        return answer

    def stream(self, question: str) -> Iterator[Event]:
        """The events of answering ``question`` as they happen; the last is ``AnswerReady``."""
        self._await_warm()
        events: queue.Queue[Event | None] = queue.Queue()

        def both(event: Event) -> None:
            self._dispatch(event)
            events.put(event)

        future = self._submit(self.orchestrator.answer(question, history=tuple(self.history), on_event=both))
        future.add_done_callback(lambda _f: events.put(None))
        while (event := events.get()) is not None:
            if isinstance(event, AnswerReady):
                self.history.append((event.answer.question, event.answer.answer, event.answer.sql or ""))
            yield event
        future.result()  # re-raise a program error

    def close(self) -> None:
        """Release the engine (when this session built it), the catalog and the worker thread."""
        if self._closed:
            return
        try:
            if self._warm is not None:
                self._warm.cancel()
            for executor in getattr(self, "_executors", {}).values():
                if hasattr(executor, "close"):  # the pandas sandbox's spare child process
                    executor.close()
            client = getattr(self, "client", None)
            if client is not None:
                if self._owns_engine:
                    self._call(client.close())
                elif hasattr(client, "end_session"):
                    client.end_session(self.session_id)
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
            if self._owns_catalog and hasattr(self.catalog, "close"):
                self.catalog.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def ask(sources: Any, question: str, *, config: Config | None = None, engine: Engine | None = None) -> Answer:
    """Answer one question about ``sources`` (paths, DataFrames, ``{name: DataFrame}``, a Catalog)."""
    with Session(sources, config=config, engine=engine, prestart_pandas=False) as session:
        return session.ask(question)
