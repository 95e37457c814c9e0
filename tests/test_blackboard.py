"""The blackboard is append-only, renders deterministically, and round-trips as the trace."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from autotqa.blackboard import Blackboard


def _board() -> Blackboard:
    b = Blackboard()
    b.add("history", "user", "Q: How many orders?\nA: 12.")
    b.add("question", "user", "How many of them were delivered?", round=1, data={"answerable": True})
    b.add("plan", "planner", "s1: count delivered orders (tables: orders)", round=1)
    b.add("code", "engineer", "SELECT count(*) AS n\nFROM orders WHERE status = 'delivered'", round=1,
          step="s1", data={"language": "sql"})
    b.add("error", "executor", "unknown_column: no column stat", round=1, step="s1")
    b.add("code", "engineer", "result = orders.shape[0]", round=1, step="s1", data={"language": "pandas"})
    b.add("result", "executor", "n\n7\n(1 row)", round=1, step="s1", data={"result": {"n_rows": 1}})
    b.add("critique", "critic", "revise: count only delivered", round=1, step="s1")
    b.add("answer", "critic", "Seven orders were delivered.", round=2, step="s1", data={"values": [7]})
    return b


def test_render_is_exact_and_labelled():
    assert _board().render() == (
        "EARLIER:\nQ: How many orders?\nA: 12.\n"
        "QUESTION: How many of them were delivered?\n"
        "PLAN: s1: count delivered orders (tables: orders)\n"
        "SQL s1:\nSELECT count(*) AS n\nFROM orders WHERE status = 'delivered'\n"
        "ERROR s1: unknown_column: no column stat\n"
        "PANDAS s1:\nresult = orders.shape[0]\n"
        "RESULT s1:\nn\n7\n(1 row)\n"
        "CRITIQUE s1: revise: count only delivered\n"
        "ANSWER s1: Seven orders were delivered.")


def test_every_rendering_is_a_byte_prefix_of_the_next():
    board = _board()
    renders = [board.render(upto=n) for n in range(len(board) + 1)]
    assert renders[0] == ""
    for shorter, longer in zip(renders, renders[1:]):
        assert longer.startswith(shorter)
        assert len(longer) > len(shorter)


def test_json_round_trip_keeps_every_field():
    board = _board()
    back = Blackboard.from_json(board.to_json())
    assert back.entries == board.entries
    assert back.render() == board.render()
    assert Blackboard.from_trace(board.to_trace()).sequence() == board.sequence()
    assert back.entries[3].data == {"language": "sql"}
    assert back.entries[3].step == "s1" and back.entries[3].round == 1


def test_entries_are_immutable_and_typed():
    board = _board()
    with pytest.raises(ValidationError):
        board.entries[0].content = "rewritten"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        board.add("gossip", "user", "x")  # type: ignore[arg-type]
    assert len(board) == 9


def test_last_finds_most_recent_by_kind_and_step():
    board = _board()
    assert board.last("code").data["language"] == "pandas"
    assert board.last("code", step="s2") is None
    assert board.sequence()[:3] == [("history", "user"), ("question", "user"), ("plan", "planner")]
