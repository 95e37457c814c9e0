"""End to end with the real embedded 0.5B model on the demo tables: what the pipeline guarantees on
any CPU.

Greedy decoding is not the same on every CPU (AVX2 and AVX-512 kernels, thread counts and batch
sizes add floats in different orders), so one hard question that a 0.5B model gets right on one
machine can end with no answer on another. These tests therefore assert what holds everywhere:
every question calls the model, runs a query and returns an answer of the right shape, and the
model answers most of the questions right (a threshold with a wide margin, not particular ones).
Accuracy on particular questions is the demo benchmark's business (``autotqa eval``, eval/).

Slow on a CPU (seconds per question): marked ``model``. One session answers all questions, as in
``autotqa chat``, so the warmed schema prefix is shared; settings come from the environment like
the CLI's (``AUTOTQA_ENGINE__N_THREADS=1`` runs the same tests on one thread).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DEMO = Path(__file__).resolve().parent.parent / "datasets" / "demo"
QUESTIONS = json.loads((DEMO.parent / "demo_questions.json").read_text())
# Single-table and multi-table (join + aggregation) questions.
CHOSEN = [q for q in QUESTIONS if q["question"] in {
    "How many customers are there?",
    "How many orders were delivered?",
    "What is the most expensive product?",
    "How many products are in the Coffee category?",
    "How many customers are from Germany?",
    "How many orders were placed by customers from Germany?",
    "Which product was ordered in the largest total quantity?",
    "Which customer placed the most orders?",
}]
#: Right answers needed out of the eight: 8 of 8 on the AVX2 machines and 7 of 8 on an AVX-512 one
#: (issue 15); 6 leaves room for one more question to flip on another CPU or thread count.
MIN_RIGHT = 6


def _same(expected: Any, got: Any) -> bool:
    if isinstance(expected, int | float) and isinstance(got, int | float):
        return abs(float(expected) - float(got)) <= 0.01
    return str(expected).strip().lower() == str(got).strip().lower()


def _right(item: dict[str, Any], answer: Any) -> bool:
    return all(any(_same(e, g) for g in answer.values) for e in item["values"])


@pytest.fixture(scope="module")
def answers() -> dict[str, Any]:
    import autotqa
    from autotqa.settings import load_config

    with autotqa.Session([DEMO], config=load_config()) as session:
        return {item["question"]: session.ask(item["question"]) for item in CHOSEN}


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.parametrize("item", CHOSEN, ids=[q["question"] for q in CHOSEN])
def test_every_question_runs_the_whole_pipeline(answers: dict[str, Any], item: dict[str, Any]) -> None:
    ans = answers[item["question"]]
    assert ans.metrics["llm_calls"] >= 1 and ans.metrics["completion_tokens"] >= 1  # the model was called
    assert any(e["kind"] == "code" for e in ans.trace), ans.trace  # it wrote a query ...
    assert any(e["kind"] in ("result", "error") and e["role"] == "executor" for e in ans.trace)  # ... that ran
    assert ans.answer.strip() and isinstance(ans.values, list)
    if ans.verified:  # an accepted answer carries the query and the rows it came from
        assert ans.sql and ans.values and ans.provenance and ans.provenance[-1].n_rows >= 1
    else:
        assert ans.values or ans.answer == "No supported answer was found within the limits."


@pytest.mark.model
@pytest.mark.slow
def test_most_questions_are_answered_right(answers: dict[str, Any]) -> None:
    right = [item["question"] for item in CHOSEN if _right(item, answers[item["question"]])]
    wrong = {q: (a.values, a.sql) for q, a in answers.items() if q not in right}
    assert len(right) >= MIN_RIGHT, f"{len(right)} of {len(CHOSEN)} right; wrong: {wrong}"
