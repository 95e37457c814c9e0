"""Forks on the embedded llama.cpp engine with the real 0.5B model: branches decode together (one
``llama_decode`` a step, not one per branch per token), each with its own sampling, stops and
usage; the session continues from the shared prefix afterwards; the thread policy reaches
llama.cpp. Threads: AUTOTQA_ENGINE__N_THREADS (default 2), generations <= 40 tokens."""

from __future__ import annotations

from typing import Any

import pytest
from engine_suite import COUNT_TAIL, THREADS, llm, make_engine, model_path, run, segments  # noqa: F401

from autotqa.serving.chat_template import ChatMLTemplate, prefill_text
from autotqa.serving.client import LLMClient
from autotqa.serving.engines.llamacpp_kv import common_prefix
from autotqa.serving.engines.threads import ThreadPolicy
from autotqa.serving.layout import render_chatml, shared_prefix_text
from autotqa.serving.types import GenerationRequest

SQL_TAIL = "Write one DuckDB SQL query that counts the orders. Reply with a ```sql code block only."


def _tok(llm: Any, text: str) -> list[int]:
    return llm.tokenize(text.encode(), add_bos=False, special=True)


def _candidates(session: str, k: int = 4, **kw: Any) -> list[GenerationRequest]:
    kw.setdefault("max_tokens", 40)
    kw.setdefault("stop", ["\n```"])
    return [GenerationRequest(session_id=session, agent="engineer", segments=segments(SQL_TAIL),
                              temperature=0.0 if i == 0 else 0.8, **kw) for i in range(k)]


@pytest.mark.model
def test_fork_of_four_decodes_in_shared_steps(make_engine: Any, llm: Any) -> None:
    eng = make_engine()
    seg = segments(SQL_TAIL)
    prompt = _tok(llm, render_chatml(seg))

    async def main() -> tuple[list[Any], Any]:
        client = LLMClient(eng)
        async with client.begin_program("s", seg.model_copy(update={"tail": ""})) as prog:
            forked = await prog.fork(_candidates("s"))
            after = await prog.generate(_candidates("s", k=1)[0])
        return forked, after

    forked, after = run(main())
    assert (eng.stats["forks_batched"], eng.stats["forks_serial"]) == (1, 0)
    # A branch samples its counted tokens, plus an end-of-generation token if it ended on one.
    # One decode for the branches' last prompt token, then one a step while any branch lives:
    # the longest branch, not the sum (a serial engine makes sum(samples) decodes).
    lengths = sorted(r.usage.completion_tokens for r in forked)
    assert lengths[-1] <= eng.stats["decode_calls"] <= lengths[-1] + 1
    assert eng.stats["batched_steps"] >= lengths[-2]  # while the two longest both lived
    greedy = forked[0]
    # It ended at the closing fence (cut off): a query, at most the opening fence left.
    assert greedy.finish_reason == "stop" and "SELECT" in greedy.text.upper() and greedy.text.count("```") <= 1
    assert all(r.text.strip() for r in forked)
    # Usage: the warm-up computed header + schema; the greedy branch computed the rest of the
    # prompt once, the other branches reused all of it but their own last token.
    warm = common_prefix(_tok(llm, prefill_text(ChatMLTemplate(), seg.model_copy(update={"tail": ""}))), prompt)
    assert warm >= len(_tok(llm, shared_prefix_text(seg)))
    assert [(r.usage.prompt_tokens, r.usage.reused_tokens) for r in forked] == (
        [(len(prompt), warm)] + [(len(prompt), len(prompt) - 1)] * 3)
    assert all(0 < r.timings.ttft_s <= r.timings.total_s for r in forked)
    # The live state is the shared prompt: the next call of the session recomputes one token,
    # and greedy decoding from it writes the greedy branch's query again.
    assert after.usage.reused_tokens == len(prompt) - 1
    assert after.text.splitlines()[0] == greedy.text.splitlines()[0]


@pytest.mark.model
def test_forks_that_cannot_share_steps_run_one_by_one(make_engine: Any) -> None:
    eng = make_engine()
    # Structured output (a grammar per branch) goes request by request.
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    js = run(eng.generate_batch([GenerationRequest(session_id="j", segments=segments(COUNT_TAIL),
                                                   json_schema=schema, max_tokens=8)] * 2))
    assert all(r.text.startswith("{") for r in js)
    # A context that cannot hold the prompt plus 4 x 600 new tokens: one by one as well.
    big = run(eng.generate_batch([GenerationRequest(session_id="b", segments=segments(COUNT_TAIL), stop=[","],
                                                    max_tokens=600)] * 4))
    assert [(r.text, r.finish_reason) for r in big] == [("1", "stop")] * 4
    assert (eng.stats["forks_batched"], eng.stats["forks_serial"], eng.stats["decode_calls"]) == (0, 2, 0)
    # The naive baseline (no session cache: nothing reused) and the ablation switch: no batching,
    # so the client sends such an engine each branch as its own request.
    assert (make_engine(session_cache=False).supports_batch, make_engine(batch_forks=False).supports_batch,
            make_engine().supports_batch) == (False, False, True)


@pytest.mark.model
def test_adaptive_threads_reach_llama_cpp(make_engine: Any, llm: Any) -> None:
    import llama_cpp

    # A machine of 4 CPUs where other processes keep one core busy: use the 3 idle cores (a
    # count neither this module's context nor llama.cpp's default has).
    machine = iter([(0, 0), (100, 400), (200, 800)])
    clock = iter([0.0, 1.0, 2.0])
    policy = ThreadPolicy(4, read_machine=lambda: next(machine), read_own=lambda: 0.0,
                          clock=lambda: next(clock), n_cpus=4)
    eng = make_engine(threads=policy)
    run(eng.generate(GenerationRequest(session_id="t", segments=segments(COUNT_TAIL), max_tokens=1)))
    try:
        assert eng.stats["threads"] == 3 and llama_cpp.llama_n_threads(llm.ctx) == 3
    finally:
        llama_cpp.llama_set_n_threads(llm.ctx, THREADS, THREADS)
