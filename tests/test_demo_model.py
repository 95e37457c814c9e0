"""End to end with the real embedded 0.5B model on the demo tables: the answer values must be right.

Slow on a CPU (seconds per question): marked ``model``. One session answers all questions, as in
``autotqa chat``, so the warmed schema prefix is shared. Questions and expected values live in
``datasets/demo_questions.json`` (computed by SQL, see the demo README); they only score here.
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


def _same(expected: Any, got: Any) -> bool:
    if isinstance(expected, int | float) and isinstance(got, int | float):
        return abs(float(expected) - float(got)) <= 0.01
    return str(expected).strip().lower() == str(got).strip().lower()


@pytest.fixture(scope="module")
def session():
    import autotqa

    with autotqa.Session([DEMO]) as s:
        yield s


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.parametrize("item", CHOSEN, ids=[q["question"] for q in CHOSEN])
def test_demo_question_end_to_end(session, item):
    ans = session.ask(item["question"])
    assert ans.sql, ans.trace
    assert all(any(_same(e, g) for g in ans.values) for e in item["values"]), (ans.values, ans.sql)
    assert ans.provenance and ans.provenance[-1].n_rows >= 1
    assert ans.metrics["llm_calls"] >= 2
