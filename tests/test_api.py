"""The Python API and the ``ask`` command on the demo tables, with the scripted engine."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import autotqa
from autotqa.agents.events import AnswerReady
from autotqa.config import AgentConfig, Config
from autotqa.serving.engines.scripted import ScriptedEngine
from autotqa.serving.types import GenerationRequest

DEMO = Path(__file__).resolve().parent.parent / "datasets" / "demo"
PLAN = json.dumps({"steps": [{"goal": "count customers", "tables": ["customers"], "lang": "sql"}]})

#: These scripts are Planner/Engineer/Critic loops: no candidate vote before them.
LOOP = Config(agents=AgentConfig(candidates=1))


def by_agent(**replies: list[str]) -> ScriptedEngine:
    pending = {k: list(v) for k, v in replies.items()}

    def reply(req: GenerationRequest) -> str:
        assert pending.get(req.agent), f"unexpected call by {req.agent}"
        return pending[req.agent].pop(0)

    return ScriptedEngine(fn=reply)


def test_ask_on_demo_files_returns_values_and_provenance():
    eng = by_agent(planner=[PLAN], engineer=["```sql\nSELECT count(*) AS n FROM customers\n```"],
                   critic=['{"verdict": "accept", "note": "There are 80 customers."}'])
    ans = autotqa.ask([DEMO / "customers.csv", DEMO / "orders.csv"], "How many customers are there?", engine=eng,
                      config=LOOP)
    assert isinstance(ans, autotqa.Answer)
    assert (ans.answer, ans.values, ans.verified, ans.sql) == (
        "There are 80 customers.", [80], True, "SELECT count(*) AS n FROM customers")
    assert ans.provenance[0].rows == [[80]]
    assert [e["kind"] for e in ans.trace] == ["question", "plan", "code", "result", "answer"]
    assert ans.metrics["llm_calls"] == 3 and ans.elapsed_s > 0
    # The schema block of every call is the catalog's render, byte for byte.
    calls = [r for r in eng.requests if not r.prefill_only]
    assert len({r.segments.schema_block for r in eng.requests}) == 1
    assert "customers" in calls[0].segments.schema_block


def test_session_follow_up_uses_history_and_events():
    frames = {"sales": pd.DataFrame({"region": ["north", "south", "north"], "amount": [10, 20, 5]})}
    eng = by_agent(
        planner=[json.dumps({"steps": [{"goal": "total", "tables": ["sales"]}]})] * 2,
        engineer=["```sql\nSELECT sum(amount) AS total FROM sales\n```",
                  "```sql\nSELECT sum(amount) AS total FROM sales WHERE region = 'north'\n```"],
        critic=['{"verdict": "accept", "note": "The total is 35."}',
                '{"verdict": "accept", "note": "The north total is 15."}'])
    seen: list[str] = []
    with autotqa.Session(frames, engine=eng, config=LOOP) as session:
        session.events.append(lambda e: seen.append(e.kind))
        first = session.ask("What is the total amount of sales?")
        events = list(session.stream("And for that in the north?"))
    assert (first.values, first.answer) == ([35], "The total is 35.")
    final = events[-1]
    assert isinstance(final, AnswerReady)
    # A follow-up is not paraphrased: the Engineer edits the earlier query (no User agent call).
    assert (final.answer.question, final.answer.values) == ("And for that in the north?", [15])
    assert final.answer.trace[0]["data"]["history"] == [
        ["What is the total amount of sales?", "The total is 35.", "SELECT sum(amount) AS total FROM sales"]]
    assert final.answer.trace[0]["data"]["followup"] == [
        "What is the total amount of sales?", "SELECT sum(amount) AS total FROM sales"]
    assert "user" not in [r.agent for r in eng.requests]
    assert seen.count("answer") == 2 and seen[-1] == "answer"
    assert session.history[-1] == ("And for that in the north?", "The north total is 15.",
                                   "SELECT sum(amount) AS total FROM sales WHERE region = 'north'")
    # One warm-up when the session opened; the follow-up's prompts share its header and schema.
    warm = [r for r in eng.requests if r.prefill_only and r.agent == "warmup"]
    assert warm and warm[0].segments.transcript == ""
    with pytest.raises(RuntimeError, match="closed"):
        session.ask("again?")


def test_program_errors_raise_from_the_api():
    from autotqa.errors import EngineError

    def down(req: GenerationRequest) -> str:
        if req.prefill_only:
            return ""
        raise EngineError("engine unreachable")

    with pytest.raises(EngineError, match="unreachable"):
        autotqa.ask({"t": pd.DataFrame({"x": [1]})}, "How many x values are in t?", engine=ScriptedEngine(fn=down))


def test_cli_ask_json(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from autotqa.cli import _register, app

    replies = {"by_agent": {"planner": [PLAN], "engineer": ["```sql\nSELECT count(*) AS n FROM customers\n```"],
                            "critic": ['{"verdict": "accept", "note": "There are 80 customers."}']}}
    script = tmp_path / "replies.json"
    script.write_text(json.dumps(replies))
    monkeypatch.setenv("AUTOTQA_SCRIPTED_REPLIES", str(script))
    monkeypatch.setenv("AUTOTQA_AGENTS__CANDIDATES", "1")
    monkeypatch.setenv("AUTOTQA_CONFIG", "")
    _register()
    out = CliRunner().invoke(app, ["ask", str(DEMO / "customers.csv"), str(DEMO / "orders.csv"),
                                   "How many customers are there?", "--json", "--engine", "scripted"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert (data["answer"], data["values"], data["sql"], data["verified"]) == (
        "There are 80 customers.", [80], "SELECT count(*) AS n FROM customers", True)
    assert data["metrics"]["llm_calls"] == 3


def test_cli_ask_needs_a_question():
    from typer.testing import CliRunner

    from autotqa.cli import _register, app

    _register()
    out = CliRunner().invoke(app, ["ask", "How many?"])
    assert out.exit_code == 2


def test_session_counts_the_schema_budget_with_the_engines_tokenizer():
    class OneTokenACharacter(ScriptedEngine):
        def token_counter(self):
            return len

    frames = {f"t{i}": pd.DataFrame({"alpha": [1, 2], "beta": ["x", "y"]}) for i in range(20)}
    cfg = Config(agents=AgentConfig(schema_token_budget=300))
    with autotqa.Session(frames, engine=OneTokenACharacter(), config=cfg, warm=False,
                         prestart_pandas=False) as session:
        text = session.orchestrator.workspace.schema_text
    # Counted by the estimate (3.5 characters a token) the block would be ~1050 characters long.
    assert 240 <= len(text) <= 300 and text.startswith("Table t0 (2 rows)")
