"""The embedded llama.cpp engine on the real 0.5B model: exact reuse accounting, session snapshots,
the persisted prefix, grammar, limits. Generations stay short (max_tokens <= 32)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from engine_suite import COUNT_TAIL, SCHEMA, Answer, collect, llm, make_engine, model_path, run, segments  # noqa: F401

from autotqa.config import EngineConfig
from autotqa.errors import EngineError
from autotqa.serving.engines.llamacpp_kv import PrefixStore, common_prefix
from autotqa.serving.layout import render_chatml, shared_prefix_text
from autotqa.serving.types import GenerationRequest, PromptSegments

OTHER_SCHEMA = "Table trips (88 rows): trip_id INTEGER key; city VARCHAR ('Oslo', 'Lima'); km DOUBLE 1.0..930.0"
TABLE_Q = "Which table holds the order totals? Reply with the table name only."


def test_missing_model_path_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    from autotqa.serving.engines.llamacpp import LlamaCppEngine

    with pytest.raises(EngineError, match=f"model file not found: {tmp_path}/none.gguf"):
        LlamaCppEngine.from_config(EngineConfig(model=str(tmp_path / "none.gguf")))


def test_unloadable_model_file_is_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    from autotqa.serving.engines.llamacpp import LlamaCppEngine

    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(EngineError, match=f"llama.cpp could not load the model {bad}"):
        LlamaCppEngine.from_config(EngineConfig(model=str(bad), prefix_cache_dir=str(tmp_path / "kv")))


def _tok(llm: Any, text: str) -> list[int]:
    return llm.tokenize(text.encode(), add_bos=False, special=True)


def _gen(eng: Any, sid: str, seg: PromptSegments, **kw: Any) -> Any:
    kw.setdefault("max_tokens", 8)
    return run(eng.generate(GenerationRequest(session_id=sid, segments=seg, **kw)))


@pytest.mark.model
def test_reuse_is_exact(make_engine: Any, llm: Any) -> None:
    eng = make_engine()
    s1, s2 = segments("Name one table."), segments("Which column links orders to customers?")
    p1, p2 = _tok(llm, render_chatml(s1)), _tok(llm, render_chatml(s2))
    r1 = _gen(eng, "a", s1)
    assert (r1.usage.prompt_tokens, r1.usage.reused_tokens) == (len(p1), 0)
    r2 = _gen(eng, "a", s2)
    assert (r2.usage.prompt_tokens, r2.usage.reused_tokens) == (len(p2), common_prefix(p1, p2))
    assert r2.usage.reused_tokens == len(_tok(llm, shared_prefix_text(s2)))  # tails differ at once
    r3 = _gen(eng, "a", s2)  # identical prompt: all but the one token that yields fresh logits
    assert r3.usage.reused_tokens == len(p2) - 1
    assert r3.text.strip() != ""


@pytest.mark.model
def test_session_switch_snapshots_and_restores(make_engine: Any, llm: Any) -> None:
    eng = make_engine()
    a1, a2 = segments("Name one table."), segments(TABLE_Q)
    b = segments("Name the table.", schema=OTHER_SCHEMA)
    _gen(eng, "A", a1)
    rb = _gen(eng, "B", b)
    pa1, pb, pa2 = (_tok(llm, render_chatml(s)) for s in (a1, b, a2))
    assert rb.usage.reused_tokens == common_prefix(pa1, pb)  # only the shared header part
    assert eng.stats["snapshots_saved"] == 1 and list(eng.snapshots.keys()) == ["A"]
    ra = _gen(eng, "A", a2, max_tokens=6)
    assert eng.stats["snapshots_restored"] == 1
    assert ra.usage.reused_tokens == common_prefix(pa1, pa2) == len(_tok(llm, shared_prefix_text(a2)))
    assert "orders" in ra.text.lower()  # restored KV gives a sensible greedy answer
    assert sorted(eng.snapshots.keys()) == ["A", "B"]


@pytest.mark.model
def test_new_session_on_same_schema_starts_warm(make_engine: Any, llm: Any) -> None:
    eng = make_engine()
    _gen(eng, "A", segments("Name one table."))
    _gen(eng, "B", segments("Name the table.", schema=OTHER_SCHEMA))
    rc = _gen(eng, "C", segments(TABLE_Q), max_tokens=6)  # best match: A's snapshot, not the live B
    assert rc.usage.reused_tokens >= len(_tok(llm, shared_prefix_text(segments(""))))
    assert eng.stats["snapshots_restored"] == 1 and "orders" in rc.text.lower()


@pytest.mark.model
def test_snapshot_lru_respects_budget(make_engine: Any) -> None:
    eng = make_engine()
    sessions = [("A", OTHER_SCHEMA), ("B", OTHER_SCHEMA + " "), ("C", OTHER_SCHEMA + "  "), ("D", SCHEMA)]
    _gen(eng, "A", segments("Name the table.", schema=sessions[0][1]), max_tokens=2)
    _gen(eng, "B", segments("Name the table.", schema=sessions[1][1]), max_tokens=2)
    one = eng.snapshots.get("A").nbytes  # ~12 KB a token
    eng.snapshots.budget_bytes = int(1.5 * one)  # room for one snapshot of this size, not two
    for sid, schema in sessions[2:]:
        _gen(eng, sid, segments("Name the table.", schema=schema), max_tokens=2)
    assert list(eng.snapshots.keys()) == ["C"]  # A and B evicted oldest first; D is the live state
    assert eng.snapshots.total_bytes == eng.snapshots.get("C").nbytes <= eng.snapshots.budget_bytes


@pytest.mark.model
def test_session_cache_off_recomputes_everything(make_engine: Any, llm: Any, tmp_path: Path) -> None:
    eng = make_engine(session_cache=False, prefix_dir=tmp_path / "kv")
    s = segments("Name one table.")
    r1, r2 = _gen(eng, "A", s), _gen(eng, "A", s)
    assert (r1.usage.reused_tokens, r2.usage.reused_tokens) == (0, 0)
    assert r2.usage.prompt_tokens == len(_tok(llm, render_chatml(s)))
    caches = ("snapshots_saved", "snapshots_restored", "disk_loads", "disk_saves")
    assert {k: eng.stats[k] for k in caches} == dict.fromkeys(caches, 0)
    assert not (tmp_path / "kv").exists()


@pytest.mark.model
def test_prefix_persists_across_engines(make_engine: Any, llm: Any, tmp_path: Path) -> None:
    kv_dir = tmp_path / "kv"
    seg = segments("")
    n_prefix = len(_tok(llm, shared_prefix_text(seg)))
    first = run(make_engine(prefix_dir=kv_dir).warm(GenerationRequest(session_id="x", segments=seg)))
    assert (first.finish_reason, first.usage.prompt_tokens, first.usage.reused_tokens) == ("prefill", n_prefix, 0)
    assert len(list(kv_dir.glob("*.kv"))) == 1
    eng2 = make_engine(prefix_dir=kv_dir)  # as a new process would: empty context and caches
    t0 = time.perf_counter()
    second = run(eng2.warm(GenerationRequest(session_id="y", segments=seg)))
    assert (second.usage.prompt_tokens, second.usage.reused_tokens) == (n_prefix, n_prefix)
    assert eng2.stats["disk_loads"] == 1 and eng2.stats["disk_saves"] == 0
    assert time.perf_counter() - t0 < first.timings.total_s / 3
    r = _gen(eng2, "y", segments(TABLE_Q), max_tokens=6)
    assert r.usage.reused_tokens >= n_prefix and "orders" in r.text.lower()


@pytest.mark.model
def test_corrupt_prefix_file_is_ignored_and_rewritten(make_engine: Any, llm: Any, tmp_path: Path) -> None:
    kv_dir = tmp_path / "kv"
    seg = segments("")
    run(make_engine(prefix_dir=kv_dir).warm(GenerationRequest(session_id="x", segments=seg)))
    (path,) = kv_dir.glob("*.kv")
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0xFF
    path.write_bytes(bytes(raw))
    eng = make_engine(prefix_dir=kv_dir)
    r = run(eng.warm(GenerationRequest(session_id="y", segments=seg)))
    assert r.usage.reused_tokens == 0 and eng.stats["disk_loads"] == 0 and eng.stats["disk_saves"] == 1
    tokens = _tok(llm, shared_prefix_text(seg))
    assert PrefixStore(kv_dir, "test-model-sha").load(tokens) is not None
    assert PrefixStore(kv_dir, "another-model").load(tokens) is None  # keyed by model hash too


@pytest.mark.model
def test_first_generation_persists_prefix(make_engine: Any, llm: Any, tmp_path: Path) -> None:
    eng = make_engine(prefix_dir=tmp_path / "kv")
    r = _gen(eng, "A", segments("Name one table."), max_tokens=4)
    assert r.usage.reused_tokens == 0 and eng.stats["disk_saves"] == 1
    eng2 = make_engine(prefix_dir=tmp_path / "kv")
    r2 = _gen(eng2, "B", segments(TABLE_Q), max_tokens=6)
    assert eng2.stats["disk_loads"] == 1
    assert r2.usage.reused_tokens == len(_tok(llm, shared_prefix_text(segments(""))))


@pytest.mark.model
def test_length_limit_and_grammar_cache(make_engine: Any) -> None:
    eng = make_engine()
    r = _gen(eng, "A", segments(COUNT_TAIL), max_tokens=4)
    assert (r.finish_reason, r.usage.completion_tokens) == ("length", 4)
    j1 = _gen(eng, "A", segments("Describe the orders table as JSON."), output_model=Answer, max_tokens=32)
    _gen(eng, "A", segments("Describe the customers table as JSON."), output_model=Answer, max_tokens=32)
    assert len(eng._grammars) == 1
    if j1.finish_reason == "stop":
        assert isinstance(Answer.model_validate_json(j1.text), Answer)
    else:  # cut by max_tokens: the grammar still held for every token, so the text is a JSON prefix
        import pydantic_core

        assert (j1.finish_reason, j1.usage.completion_tokens) == ("length", 32)
        partial = pydantic_core.from_json(j1.text, allow_partial=True)  # raises on anything but a prefix
        assert isinstance(partial, dict) and set(partial) <= set(Answer.model_fields), j1.text


@pytest.mark.model
def test_abandoned_stream_leaves_engine_usable(make_engine: Any) -> None:
    eng = make_engine()

    async def first_chunk_only() -> str:
        agen = eng.stream(GenerationRequest(session_id="A", segments=segments(COUNT_TAIL), max_tokens=32))
        async for chunk in agen:
            await agen.aclose()
            return chunk.text
        return ""

    assert run(first_chunk_only()) != ""
    texts, result = run(collect(eng, GenerationRequest(session_id="A", segments=segments(TABLE_Q), max_tokens=6)))
    assert "".join(texts) == result.text and "orders" in result.text.lower()


@pytest.mark.model
def test_prompt_longer_than_context(make_engine: Any) -> None:
    eng = make_engine()
    with pytest.raises(EngineError, match=r"the prompt has \d+ tokens; the context holds 2048"):
        _gen(eng, "A", segments("x " * 2100))
    assert _gen(eng, "A", segments("Name one table."), max_tokens=2).usage.completion_tokens >= 1


@pytest.mark.model
def test_factory_builds_local_engine(model_path: Path, tmp_path: Path) -> None:
    import llama_cpp

    from autotqa.serving.engines.llamacpp import LlamaCppEngine
    from autotqa.serving.factory import build_engine
    from autotqa.serving.model_store import QWEN_0_5B

    eng = build_engine(EngineConfig(kind="local", model=str(model_path), n_ctx=512, n_batch=64,
                                    prefix_cache_dir=str(tmp_path)), session_cache=False)
    assert isinstance(eng, LlamaCppEngine) and eng.session_cache is False and eng.store is None
    assert eng.model_sha == QWEN_0_5B.sha256 and eng.llm.n_ctx() == 512
    # engine.n_batch reaches the llama.cpp context itself, not only the Python wrapper
    assert eng.llm.n_batch == 64 and llama_cpp.llama_n_batch(eng.llm.ctx) == 64
    asyncio.run(eng.close())


@pytest.mark.model
def test_schema_budget_counted_with_the_model_tokenizer(make_engine: Any, llm: Any, spider_dir: Path) -> None:
    from autotqa.catalog import Catalog

    info = Catalog.from_sources([spider_dir / "databases" / "baseball_1.sqlite"]).schema()
    count = make_engine().token_counter()
    question = "Which players earned the highest salary?"
    text = info.render(question, 1800, count_tokens=count)
    real = len(llm.tokenize(text.encode(), add_bos=False, special=True))
    assert 1700 <= real <= 1800
    # The estimate (3.5 characters a token) overshoots on schema text: the reason for the tokenizer.
    assert len(llm.tokenize(info.render(question, 1800).encode(), add_bos=False, special=True)) > 1800
