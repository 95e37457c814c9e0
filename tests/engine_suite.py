"""One engine-conformance suite, run on every engine (the SGLang ``test_programs.py`` idea).

A test module adds a thin subclass of :class:`EngineConformance` that provides an ``engine_case``
fixture; every check below then runs on that engine. Checks that depend on what a backend can
report (e.g. an HTTP server that does not return cached-token counts) are skipped by capability
flags on the case, never weakened.

Also here: the session-scoped ``model_path`` fixture (the packaged 0.5B model, assembled and
verified once per test session) for the modules that use the real model.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from autotqa.serving.engine import Engine
from autotqa.serving.structured import parse_output
from autotqa.serving.types import GenerationRequest, GenerationResult, PromptSegments, StreamChunk

HEADER = ("You are a careful data analyst. You answer questions about the tables below with short, "
          "exact replies and no explanations.")
SCHEMA = """Table orders (1200 rows): order_id INTEGER key; customer_id INTEGER -> customers.customer_id;
  order_date DATE 2021-01-03..2023-12-30; status VARCHAR ('shipped', 'pending', 'cancelled');
  total_amount DOUBLE 3.5..1890.0
Table customers (310 rows): customer_id INTEGER key; name VARCHAR ('Ana Lima', 'Bo Chen', 'Carl Ode');
  country VARCHAR ('Brazil', 'China', 'Germany'); signup_date DATE 2019-05-01..2023-11-02
Table products (85 rows): product_id INTEGER key; title VARCHAR ('Desk Lamp', 'Chair', 'Mug');
  category VARCHAR ('home', 'office', 'kitchen'); price DOUBLE 2.0..420.0
Table order_items (3400 rows): order_id INTEGER -> orders.order_id; product_id INTEGER ->
  products.product_id; quantity INTEGER 1..12"""

_sessions = itertools.count(1)


def segments(tail: str, transcript: str = "", schema: str = SCHEMA) -> PromptSegments:
    return PromptSegments(header=HEADER, schema_block=schema, transcript=transcript, tail=tail)


def fresh_session(tag: str = "s") -> str:
    """A session id no other test used, so cached state of other tests never leaks in."""
    return f"{tag}-{next(_sessions)}"


class Answer(BaseModel):
    table: str
    rows: int


@dataclass
class EngineCase:
    """An engine under test plus what its backend can report."""

    engine: Engine
    #: Exact prompt-token count of the shared prefix (header + schema) for this engine.
    prefix_tokens: Callable[[PromptSegments], int]
    #: False for servers that do not report cached tokens (llama-cpp-python's server).
    reports_reuse: bool = True
    #: Granularity of the prefix cache: vLLM caches whole KV blocks only, so of a shared prefix it
    #: reuses exactly the part that fills whole blocks; llama.cpp reuses token by token (1).
    reuse_block: int = 1

    def reusable(self, seg: PromptSegments) -> int:
        """Prompt tokens of ``seg``'s shared prefix this engine must serve from its cache."""
        n = self.prefix_tokens(seg)
        return n - n % self.reuse_block


def run(coro):  # noqa: ANN001, ANN201 - test helper
    return asyncio.run(coro)


async def collect(engine: Engine, request: GenerationRequest) -> tuple[list[str], GenerationResult]:
    texts: list[str] = []
    result: GenerationResult | None = None
    chunk: StreamChunk
    async for chunk in engine.stream(request):
        if chunk.result is not None:
            result = chunk.result
        elif chunk.text:
            texts.append(chunk.text)
    assert result is not None
    return texts, result


COUNT_TAIL = "Count from 1 to 20, separated by commas. Reply with the numbers only."
JSON_TAIL = ('Which table holds the order totals, and how many rows does it have? '
             'Reply as JSON with keys "table" and "rows".')


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The packaged 0.5B model (assembled and sha256-verified once); skips if not installed."""
    pytest.importorskip("llama_cpp")
    from autotqa.errors import EngineError
    from autotqa.serving.model_store import resolve_model

    try:
        resolved = resolve_model(None, env={})
    except EngineError as exc:
        pytest.skip(f"packaged model unavailable: {exc}")
    assert resolved.path is not None
    return resolved.path


#: llama.cpp threads of the real-model fixtures (AUTOTQA_ENGINE__N_THREADS, default 2).
THREADS = int(os.environ.get("AUTOTQA_ENGINE__N_THREADS", "2"))


@pytest.fixture(scope="module")
def llm(model_path: Path) -> Iterator[Any]:
    """The packaged 0.5B loaded once per module that imports this fixture."""
    import llama_cpp

    obj = llama_cpp.Llama(model_path=str(model_path), n_ctx=2048, n_batch=512, n_threads=THREADS,
                          n_threads_batch=THREADS, logits_all=False, verbose=False, seed=0)
    yield obj
    obj.close()


@pytest.fixture
def make_engine(llm: Any) -> Iterator[Any]:
    """Fresh engines over the shared weights: the context is reset, caches start empty."""
    from autotqa.serving.engines.llamacpp import LlamaCppEngine

    made = []

    def make(**kw: Any) -> LlamaCppEngine:
        llm.reset()
        kw.setdefault("prefix_dir", None)
        eng = LlamaCppEngine(llm, model_sha="test-model-sha", **kw)
        made.append(eng)
        return eng

    yield make
    for eng in made:
        eng._pool.shutdown(wait=True)


class EngineConformance:
    """The checks every engine must pass. Subclasses provide the ``engine_case`` fixture."""

    def test_short_generation(self, engine_case: EngineCase) -> None:
        r = run(engine_case.engine.generate(GenerationRequest(
            session_id=fresh_session(), segments=segments("Name the table that lists customers."),
            max_tokens=16)))
        assert r.text.strip() != ""
        assert r.finish_reason in ("stop", "length")
        assert 1 <= r.usage.completion_tokens <= 16
        assert r.usage.prompt_tokens > engine_case.prefix_tokens(segments(""))
        assert r.timings.total_s >= r.timings.ttft_s > 0

    def test_json_schema_output_validates(self, engine_case: EngineCase) -> None:
        r = run(engine_case.engine.generate(GenerationRequest(
            session_id=fresh_session(), segments=segments(JSON_TAIL), output_model=Answer, max_tokens=32)))
        parsed = parse_output(Answer, r.text)
        assert isinstance(parsed, Answer)
        if engine_case.engine.supports_json_schema:  # constrained: the reply is nothing but the object
            assert Answer.model_validate_json(r.text) == parsed

    def test_repeated_prefix_is_reused(self, engine_case: EngineCase) -> None:
        if not engine_case.reports_reuse:
            pytest.skip("this backend does not report reused (cached) prompt tokens")
        sid = fresh_session()
        eng = engine_case.engine
        run(eng.generate(GenerationRequest(session_id=sid, segments=segments("Name one table."), max_tokens=8)))
        second = run(eng.generate(GenerationRequest(
            session_id=sid, segments=segments("Which column links orders to customers?"), max_tokens=8)))
        assert second.usage.reused_tokens >= engine_case.reusable(segments("")) > 0
        assert second.usage.reused_tokens < second.usage.prompt_tokens

    def test_streaming_concatenates_to_result(self, engine_case: EngineCase) -> None:
        texts, result = run(collect(engine_case.engine, GenerationRequest(
            session_id=fresh_session(), segments=segments(COUNT_TAIL), max_tokens=16)))
        assert len(texts) > 1
        assert "".join(texts) == result.text

    def test_stop_sequence_ends_generation(self, engine_case: EngineCase) -> None:
        eng = engine_case.engine
        free = run(eng.generate(GenerationRequest(session_id=fresh_session(), segments=segments(COUNT_TAIL),
                                                  max_tokens=32)))
        assert "7" in free.text, free.text  # precondition: unconstrained, the count passes 7
        texts, cut = run(collect(eng, GenerationRequest(session_id=fresh_session(), segments=segments(COUNT_TAIL),
                                                        max_tokens=32, stop=["7"])))
        assert "7" not in cut.text and "7" not in "".join(texts)
        assert "".join(texts) == cut.text
        assert "6" in cut.text  # it stopped at the stop string, not before
        assert cut.finish_reason == "stop"
        assert len(cut.text) < len(free.text)
        assert cut.usage.completion_tokens < free.usage.completion_tokens

    def test_prefill_then_reuse(self, engine_case: EngineCase) -> None:
        sid = fresh_session()
        eng = engine_case.engine
        warm = run(eng.warm(GenerationRequest(session_id=sid, segments=segments(""))))
        assert (warm.finish_reason, warm.text, warm.usage.completion_tokens) == ("prefill", "", 0)
        nxt = run(eng.generate(GenerationRequest(session_id=sid, segments=segments("Name one table."),
                                                 max_tokens=8)))
        assert nxt.text.strip() != ""
        if engine_case.reports_reuse:
            assert nxt.usage.reused_tokens >= engine_case.reusable(segments("")) > 0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def llama_server(model_path: Path):  # noqa: ANN201 - yields the base URL
    """A real llama-cpp-python OpenAI-compatible server on a free local port, for the whole session."""
    import os
    import subprocess
    import sys
    import tempfile
    import time

    import httpx

    pytest.importorskip("llama_cpp.server.app", reason="needs the `server` extra (fastapi, uvicorn, ...)")
    port = _free_port()
    log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--n_ctx", "2048",
         "--n_threads", str(len(os.sched_getaffinity(0))), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}: "
                            f"{Path(log.name).read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/models", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not come up on {base} within 120 s")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        Path(log.name).unlink(missing_ok=True)
