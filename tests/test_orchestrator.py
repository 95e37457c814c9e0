"""Every path of the agent loop on the scripted engine, asserting the exact blackboard sequence.

The data is a tiny DuckDB database; the SQL executor here is a minimal stand-in with the
``Executor`` protocol (the real guarded executor is tested on its own), so these tests pin the
loop's logic, not the executor's.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import duckdb
import pandas as pd
import pytest

from autotqa.agents.base import common_header
from autotqa.config import AgentConfig, Config
from autotqa.errors import EngineError
from autotqa.executors.base import ExecutionResult, to_jsonable
from autotqa.orchestrator import Orchestrator, Workspace
from autotqa.serving.client import LLMClient
from autotqa.serving.engines.scripted import ScriptedEngine
from autotqa.serving.types import GenerationRequest

SCHEMA = ("TABLE orders (5 rows): order_id BIGINT, customer_id BIGINT, status VARCHAR "
          "[delivered, shipped], amount DOUBLE\n"
          "TABLE customers (3 rows): customer_id BIGINT, name VARCHAR [Ann, Bob, Cy], city VARCHAR")
COLUMNS = {"orders": ["order_id", "customer_id", "status", "amount"],
           "customers": ["customer_id", "name", "city"]}


class DuckSQL:
    language = "sql"

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def run(self, code: str) -> ExecutionResult:
        try:
            cur = self.con.execute(code)
            rows = cur.fetchall()
        except duckdb.Error as exc:
            return ExecutionResult.failure("sql", code, type(exc).__name__, str(exc).splitlines()[0])
        cols = [d[0] for d in cur.description]
        return ExecutionResult(ok=True, columns=cols, rows=[[to_jsonable(v) for v in r] for r in rows],
                               n_rows=len(rows), code=code)


class FramePandas:
    """In-process stand-in for the sandboxed pandas executor: tables as DataFrames, ``result``."""

    language = "pandas"

    def __init__(self, frames: dict[str, pd.DataFrame]) -> None:
        self.frames = frames

    def run(self, code: str) -> ExecutionResult:
        scope = {"pd": pd, **{k: v.copy() for k, v in self.frames.items()}}
        try:
            exec(code, scope)  # noqa: S102 - test double only
        except Exception as exc:  # noqa: BLE001 - reported as data, like the real executor
            return ExecutionResult.failure("pandas", code, type(exc).__name__, str(exc))
        value = scope["result"]
        frame = value.reset_index() if isinstance(value, pd.Series) else \
            value if isinstance(value, pd.DataFrame) else pd.DataFrame({"result": [value]})
        return ExecutionResult(ok=True, language="pandas", columns=[str(c) for c in frame.columns],
                               rows=[[to_jsonable(v) for v in r] for r in frame.itertuples(index=False)],
                               n_rows=len(frame), code=code)


@pytest.fixture
def workspace() -> Workspace:
    con = duckdb.connect()
    con.execute("CREATE TABLE orders AS SELECT * FROM (VALUES (1, 1, 'delivered', 10.5), "
                "(2, 1, 'shipped', 20.0), (3, 2, 'delivered', 5.25), (4, 3, 'delivered', 7.0), "
                "(5, 3, 'shipped', 1.0)) t(order_id, customer_id, status, amount)")
    con.execute("CREATE TABLE customers AS SELECT * FROM (VALUES (1, 'Ann', 'Oslo'), (2, 'Bob', 'Rome'), "
                "(3, 'Cy', 'Oslo')) t(customer_id, name, city)")
    frames = {t: con.execute(f"SELECT * FROM {t}").df() for t in COLUMNS}
    return Workspace(schema_text=SCHEMA, columns=COLUMNS,
                     executors={"sql": DuckSQL(con), "pandas": FramePandas(frames)})


def scripted(**queues: list[str]) -> ScriptedEngine:
    """Replies per agent, consumed in order; an agent with no reply left fails the test."""
    pending = {agent: list(replies) for agent, replies in queues.items()}

    def reply(req: GenerationRequest) -> str:
        assert pending.get(req.agent), f"unexpected call by {req.agent} ({req.step_id})"
        return pending[req.agent].pop(0)

    return ScriptedEngine(fn=reply)


def sql(code: str) -> str:
    return f"```sql\n{code}\n```\nThis query counts."


PLAN1 = json.dumps({"steps": [{"goal": "count delivered orders", "tables": ["orders"],
                               "columns": ["status"], "lang": "sql", "after": []}]})
COUNT = "SELECT count(*) AS n FROM orders WHERE status = 'delivered'"
ACCEPT = '{"verdict": "accept", "note": "3 orders were delivered."}'


#: These tests pin the Planner/Engineer/Critic loop itself: no candidate vote before it.
LOOP = Config(agents=AgentConfig(candidates=1))


def ask(engine: ScriptedEngine, ws: Workspace, question: str, *, config: Config | None = None,
        history=(), on_event: Callable | None = None):
    async def main():
        orch = Orchestrator(LLMClient(engine), ws, config or LOOP)
        return await orch.answer(question, history=history, on_event=on_event)
    return asyncio.run(main())


def seq(answer) -> list[tuple[str, str]]:
    return [(e["kind"], e["role"]) for e in answer.trace]


def calls(engine: ScriptedEngine) -> list[GenerationRequest]:
    return [r for r in engine.requests if not r.prefill_only]


def test_accepted_first_time(workspace):
    eng = scripted(planner=[PLAN1], engineer=[sql(COUNT)], critic=[ACCEPT])
    ans = ask(eng, workspace, "How many orders were delivered?")
    assert seq(ans) == [("question", "user"), ("plan", "planner"), ("code", "engineer"),
                        ("result", "executor"), ("answer", "critic")]
    assert (ans.values, ans.verified, ans.answer, ans.sql) == ([3], True, "3 orders were delivered.", COUNT)
    assert [r.agent for r in calls(eng)] == ["planner", "engineer", "critic"]  # the User made no call
    assert ans.provenance[0].rows == [[3]] and ans.provenance[0].code == COUNT
    assert ans.metrics["llm_calls"] == 3 and ans.plan == ["s1: count delivered orders (tables: orders; columns: status)"]


def test_sql_error_is_repaired(workspace):
    eng = scripted(planner=[PLAN1], engineer=[sql("SELECT count(*) FROM order_table"), sql(COUNT)],
                   critic=[ACCEPT])
    ans = ask(eng, workspace, "How many orders were delivered?")
    assert seq(ans) == [("question", "user"), ("plan", "planner"), ("code", "engineer"), ("error", "executor"),
                        ("code", "engineer"), ("result", "executor"), ("answer", "critic")]
    repair = calls(eng)[2]
    assert repair.step_id == "s1:repair" and "failed" in repair.segments.tail
    assert "order_table" in repair.segments.transcript  # the error was fed back, on the board
    assert "order_table" in repair.segments.tail.split("\n")[1]  # and right before the reply
    assert (repair.temperature, calls(eng)[1].temperature) == (0.5, 0.0)
    assert ans.values == [3] and ans.verified


def test_critic_revise_goes_back_to_engineer(workspace):
    revise = '{"verdict": "revise", "note": "count only delivered orders"}'
    eng = scripted(planner=[PLAN1], engineer=[sql("SELECT count(*) AS n FROM orders"), sql(COUNT)],
                   critic=[revise, ACCEPT])
    ans = ask(eng, workspace, "How many orders were delivered?")
    assert seq(ans) == [("question", "user"), ("plan", "planner"), ("code", "engineer"), ("result", "executor"),
                        ("critique", "critic"), ("code", "engineer"), ("result", "executor"), ("answer", "critic")]
    assert calls(eng)[3].step_id == "s1:revise"
    assert ans.values == [3] and ans.trace[-1]["round"] == 2


def test_deterministic_critique_needs_no_model_call(workspace):
    grouped = "SELECT status, count(*) AS n FROM orders GROUP BY status ORDER BY status"
    eng = scripted(planner=[PLAN1], engineer=[sql(grouped), sql(COUNT)], critic=[ACCEPT])
    ans = ask(eng, workspace, "How many orders were delivered?")
    assert seq(ans) == [("question", "user"), ("plan", "planner"), ("code", "engineer"), ("result", "executor"),
                        ("critique", "critic"), ("code", "engineer"), ("result", "executor"), ("answer", "critic")]
    assert ans.trace[4]["data"] == {"verdict": "revise", "deterministic": True}
    assert [r.agent for r in calls(eng)] == ["planner", "engineer", "engineer", "critic"]


def test_critic_replan_goes_back_to_planner(workspace):
    replan = '{"verdict": "replan", "note": "use the customers table"}'
    plan2 = json.dumps({"steps": [{"goal": "customers in Oslo", "tables": ["customers"], "lang": "sql"}]})
    q = "SELECT count(*) AS n FROM customers WHERE city = 'Oslo'"
    eng = scripted(planner=[PLAN1, plan2], engineer=[sql(COUNT), sql(q)],
                   critic=[replan, '{"verdict": "accept", "note": "2 customers live in Oslo."}'])
    ans = ask(eng, workspace, "How many customers live in Oslo?")
    assert seq(ans) == [("question", "user"), ("plan", "planner"), ("code", "engineer"), ("result", "executor"),
                        ("critique", "critic"), ("plan", "planner"), ("code", "engineer"), ("result", "executor"),
                        ("answer", "critic")]
    assert "the previous plan failed" in calls(eng)[3].segments.tail
    assert (ans.values, ans.sql, ans.answer) == ([2], q, "2 customers live in Oslo.")


def test_rounds_exhausted_returns_best_supported_unverified(workspace):
    revise = '{"verdict": "revise", "note": "not sure"}'
    also = "SELECT count(*) AS n FROM orders WHERE status = 'delivered' AND amount > 0"
    eng = scripted(planner=[PLAN1], engineer=[sql(COUNT), sql(also)], critic=[revise, revise])
    cfg = Config(agents=AgentConfig(candidates=1, max_rounds=2))
    ans = ask(eng, workspace, "How many orders were delivered?", config=cfg)
    assert seq(ans) == [("question", "user"), ("plan", "planner"), ("code", "engineer"), ("result", "executor"),
                        ("critique", "critic"), ("code", "engineer"), ("result", "executor"),
                        ("critique", "critic"), ("answer", "system")]
    assert (ans.verified, ans.values, ans.answer) == (False, [3], "The answer is 3. (not verified)")


def test_token_budget_exhausted_without_result_invents_nothing(workspace):
    bad = sql("SELECT nope FROM orders")
    eng = scripted(planner=[PLAN1], engineer=[bad, bad, bad])
    cfg = Config(agents=AgentConfig(candidates=1, max_total_tokens=200))
    ans = ask(eng, workspace, "How many orders were delivered?", config=cfg)
    kinds = seq(ans)
    assert kinds[-2:] == [("error", "system"), ("answer", "system")]
    assert ("result", "executor") not in kinds
    assert (ans.verified, ans.values, ans.sql) == (False, [], None)
    assert ans.trace[-2]["content"].startswith("budget spent")


def test_repairs_exhausted_trigger_replan(workspace):
    bad = [sql(f"SELECT nope{i} FROM orders") for i in range(3)]
    eng = scripted(planner=[PLAN1, PLAN1], engineer=[*bad, sql(COUNT)], critic=[ACCEPT])
    ans = ask(eng, workspace, "How many orders were delivered?")
    assert seq(ans) == [("question", "user"), ("plan", "planner")] + [("code", "engineer"), ("error", "executor")] * 3 \
        + [("critique", "critic"), ("plan", "planner"), ("code", "engineer"), ("result", "executor"),
           ("answer", "critic")]
    assert ans.values == [3] and ans.verified


def test_repeated_failing_code_is_not_run_again(workspace):
    bad = "SELECT nope FROM orders"
    eng = scripted(planner=[PLAN1], engineer=[sql(bad), sql(bad.lower().replace("select", "select ")), sql(COUNT)],
                   critic=[ACCEPT])
    ans = ask(eng, workspace, "How many orders were delivered?")
    assert seq(ans) == [("question", "user"), ("plan", "planner"), ("code", "engineer"), ("error", "executor"),
                        ("code", "engineer"), ("error", "system"), ("code", "engineer"), ("result", "executor"),
                        ("answer", "critic")]
    assert ans.trace[5]["content"].startswith("repeated: this exact query was already tried (")
    assert "nope" in ans.trace[5]["content"]  # the first run's error, not a second run's
    first_repair, second_repair = calls(eng)[2:4]
    assert (first_repair.temperature, second_repair.temperature) == (0.5, 1.0)  # wider after a repeat
    assert "already tried" in second_repair.segments.tail
    assert ans.values == [3] and ans.verified


def test_revision_identical_to_a_rejected_query_is_not_run(workspace):
    revise = '{"verdict": "revise", "note": "count only delivered orders"}'
    wrong = "SELECT count(*) AS n FROM orders"
    eng = scripted(planner=[PLAN1], engineer=[sql(wrong), sql(wrong), sql(COUNT)], critic=[revise, ACCEPT])
    ans = ask(eng, workspace, "How many orders were delivered?")
    assert seq(ans) == [("question", "user"), ("plan", "planner"), ("code", "engineer"), ("result", "executor"),
                        ("critique", "critic"), ("code", "engineer"), ("error", "system"), ("code", "engineer"),
                        ("result", "executor"), ("answer", "critic")]
    assert "its result was rejected: count only delivered orders" in ans.trace[6]["content"]
    assert calls(eng)[4].temperature == 1.0
    assert ans.values == [3] and ans.verified


def test_direct_attempt_when_rounds_end_without_a_result(workspace):
    bad = sql("SELECT nope FROM orders")
    eng = scripted(planner=[PLAN1], engineer=[bad, sql(COUNT)])
    cfg = Config(agents=AgentConfig(candidates=1, max_rounds=1, max_repairs=0))
    ans = ask(eng, workspace, "How many orders were delivered?", config=cfg)
    assert seq(ans) == [("question", "user"), ("plan", "planner"), ("code", "engineer"), ("error", "executor"),
                        ("critique", "critic"), ("code", "engineer"), ("result", "executor"), ("answer", "system")]
    direct = calls(eng)[-1]
    assert direct.step_id == "direct:direct" and direct.temperature == 0.0
    assert direct.segments.transcript == ""  # the schema alone: no failed attempts to copy
    assert direct.segments.header == common_header() and "How many orders were delivered?" in direct.segments.tail
    assert ans.trace[5]["data"]["mode"] == "direct"
    assert (ans.verified, ans.values, ans.sql) == (False, [3], COUNT)
    assert ans.answer == "The answer is 3. (not verified)"


def test_a_true_zero_count_is_still_returned_unverified(workspace):
    zero = [sql(f"SELECT count(*) AS n FROM orders WHERE status = '{s}'") for s in ("lost", "Lost")]
    eng = scripted(planner=[PLAN1], engineer=zero)  # no Critic call, and no direct attempt: a result exists
    ans = ask(eng, workspace, "How many orders were lost?", config=Config(agents=AgentConfig(candidates=1, max_rounds=2)))
    assert [e["content"] for e in ans.trace if e["kind"] == "critique"] == [
        "revise: the count is 0: no row passed the filter; check filter values against the sample values "
        "(spelling, case)"] * 2
    assert (ans.verified, ans.values, ans.answer) == (False, [0], "The answer is 0. (not verified)")


def test_direct_attempt_repeating_a_failed_query_is_not_run(workspace):
    bad = sql("SELECT nope FROM orders")
    eng = scripted(planner=[PLAN1], engineer=[bad, bad])
    cfg = Config(agents=AgentConfig(candidates=1, max_rounds=1, max_repairs=0))
    ans = ask(eng, workspace, "How many orders were delivered?", config=cfg)
    assert seq(ans)[-3:] == [("critique", "critic"), ("code", "engineer"), ("answer", "system")]
    assert (ans.verified, ans.values, ans.sql) == (False, [], None)


def test_unanswerable_question_is_flagged(workspace):
    eng = scripted(user=['{"question": "What will the weather be in Paris tomorrow?", "answerable": false, '
                         '"missing": "weather forecasts"}'])
    ans = ask(eng, workspace, "What will the weather be in Paris tomorrow?")
    assert seq(ans) == [("question", "user"), ("answer", "user")]
    assert (ans.unanswerable, ans.verified, ans.values) == (True, False, [])
    assert ans.answer == "The tables cannot answer this question: weather forecasts."


def test_pandas_step(workspace):
    plan = json.dumps({"steps": [{"goal": "median amount", "tables": ["orders"], "columns": ["amount"],
                                  "lang": "pandas", "after": []}]})
    code = "```python\nresult = orders['amount'].median()\n```"
    eng = scripted(planner=[plan], engineer=[code], critic=['{"verdict": "accept", "note": "The median is 7."}'])
    ans = ask(eng, workspace, "What is the median order amount?")
    assert seq(ans) == [("question", "user"), ("plan", "planner"), ("code", "engineer"), ("result", "executor"),
                        ("answer", "critic")]
    assert (ans.language, ans.values, ans.sql) == ("pandas", [7.0], "result = orders['amount'].median()")
    assert ans.trace[2]["data"]["language"] == "pandas" and "pandas" in calls(eng)[1].segments.tail


def test_independent_steps_are_forked_and_final_step_answers(workspace):
    plan = json.dumps({"steps": [
        {"goal": "delivered count", "tables": ["orders"], "after": []},
        {"goal": "customer count", "tables": ["customers"], "after": []},
        {"goal": "delivered orders per customer", "tables": ["orders", "customers"], "after": [1, 2]}]})
    final = "SELECT 3 / 3 AS per_customer"
    eng = scripted(planner=[plan], engineer=[sql(COUNT), sql("SELECT count(*) AS c FROM customers"), sql(final)],
                   critic=['{"verdict": "accept", "note": "1 delivered order per customer."}'])
    eng.supports_batch = True  # the engine decodes a fork's branches together
    ans = ask(eng, workspace, "How many delivered orders per customer on average?")
    assert seq(ans) == [("question", "user"), ("plan", "planner"), ("code", "engineer"), ("code", "engineer"),
                        ("result", "executor"), ("result", "executor"), ("code", "engineer"),
                        ("result", "executor"), ("answer", "critic")]
    eng_calls = [r for r in calls(eng) if r.agent == "engineer"]
    assert [r.step_id for r in eng_calls] == ["s1:write", "s2:write", "s3:write"]
    assert eng_calls[0].segments == eng_calls[1].segments.model_copy(update={"tail": eng_calls[0].segments.tail})
    assert eng_calls[2].depends_on == ["s1", "s2"]
    assert eng.batches == [[eng_calls[0].request_id, eng_calls[1].request_id]]  # s1, s2: one fork
    assert "Join on: orders JOIN customers USING (customer_id)." in eng_calls[2].segments.tail
    assert [p.step_id for p in ans.provenance] == ["s1", "s2", "s3"] and ans.values == [1.0]


def test_prompts_share_a_growing_prefix(workspace):
    eng = scripted(planner=[PLAN1], engineer=[sql("SELECT nope FROM orders"), sql(COUNT)], critic=[ACCEPT])
    ans = ask(eng, workspace, "How many orders were delivered?", history=[("How many customers?", "3")])
    reqs = calls(eng)
    prompts = [p for p, r in zip(eng.prompts, eng.requests) if not r.prefill_only]
    assert len(prompts) == 4 and ans.verified
    for prev_req, prev, cur in zip(reqs, prompts, prompts[1:]):
        common = 0
        while common < min(len(prev), len(cur)) and prev[common] == cur[common]:
            common += 1
        seg = prev_req.segments
        must_share = f"<|im_start|>system\n{seg.header}\n\n{seg.schema_block}<|im_end|>\n<|im_start|>user\n" \
                     f"{seg.transcript}"
        assert common >= len(must_share)
    assert all(r.segments.header == common_header() and r.segments.schema_block == SCHEMA for r in reqs)
    assert reqs[0].segments.transcript == "QUESTION: How many orders were delivered?"  # history stays out


def test_follow_up_with_reference_asks_the_user_agent(workspace):
    eng = scripted(user=['{"question": "How many orders did Ann place?", "answerable": true}'],
                   planner=[PLAN1], engineer=[sql("SELECT count(*) AS n FROM orders WHERE customer_id = 1")],
                   critic=['{"verdict": "accept", "note": "Ann placed 2 orders."}'])
    ans = ask(eng, workspace, "And how many did she place?", history=[("Who is customer 1?", "Ann")])
    assert seq(ans) == [("question", "user"), ("plan", "planner"), ("code", "engineer"),
                        ("result", "executor"), ("answer", "critic")]
    assert (ans.question, ans.values) == ("How many orders did Ann place?", [2])
    user_tail = calls(eng)[0].segments.tail
    assert "Earlier question: Who is customer 1?\nEarlier answer: Ann\nInquiry: And how many did she place?" in user_tail
    assert calls(eng)[0].segments.transcript == ""
    assert ans.trace[0]["data"]["history"] == [["Who is customer 1?", "Ann"]]


def test_unparsable_plan_is_recorded_and_replaced(workspace):
    eng = scripted(planner=["I think we should count.", "still no json"], engineer=[sql(COUNT)], critic=[ACCEPT])
    ans = ask(eng, workspace, "How many orders were delivered?")
    assert seq(ans) == [("question", "user"), ("error", "planner"), ("plan", "planner"), ("code", "engineer"),
                        ("result", "executor"), ("answer", "critic")]
    assert ans.trace[2]["content"] == "s1: answer the question (tables: orders)"


def test_wrong_sentence_is_replaced_by_values(workspace):
    eng = scripted(planner=[PLAN1], engineer=[sql(COUNT)],
                   critic=['{"verdict": "accept", "note": "There were 4 delivered orders."}'])
    ans = ask(eng, workspace, "How many orders were delivered?")
    assert (ans.answer, ans.values, ans.verified) == ("The answer is 3.", [3], True)


def test_events_are_typed_and_ordered(workspace):
    events = []
    eng = scripted(planner=[PLAN1], engineer=[sql(COUNT)], critic=[ACCEPT])
    ask(eng, workspace, "How many orders were delivered?", on_event=events.append)
    assert [e.kind for e in events] == [
        "agent_started", "question", "agent_finished", "agent_started", "plan", "agent_finished",
        "agent_started", "code", "agent_finished", "agent_started", "result", "agent_finished",
        "agent_started", "agent_finished", "verdict", "answer"]
    assert events[-1].answer.values == [3] and events[-2].verdict == "accept"


def test_stream_yields_events_until_the_answer(workspace):
    async def main():
        orch = Orchestrator(LLMClient(scripted(planner=[PLAN1], engineer=[sql(COUNT)], critic=[ACCEPT])), workspace,
                            LOOP)
        return [e async for e in orch.stream("How many orders were delivered?")]
    events = asyncio.run(main())
    assert events[-1].kind == "answer" and events[-1].answer.verified
    assert sum(e.kind == "code" for e in events) == 1


def test_engine_failure_is_a_program_error(workspace):
    def down(_req):
        raise EngineError("engine unreachable")
    with pytest.raises(EngineError, match="unreachable"):
        ask(ScriptedEngine(fn=down), workspace, "How many orders were delivered?")


def test_ids_instead_of_names_are_fixed_without_another_engineer_call(workspace):
    by_id = "SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id ORDER BY n DESC, customer_id LIMIT 1"
    eng = scripted(planner=[PLAN1], engineer=[sql(by_id)],
                   critic=['{"verdict": "accept", "note": "Ann placed the most orders."}'])
    ans = ask(eng, workspace, "Which customer placed the most orders?")
    assert seq(ans) == [("question", "user"), ("plan", "planner"), ("code", "engineer"), ("result", "executor"),
                        ("critique", "critic"), ("code", "engineer"), ("result", "executor"), ("answer", "critic")]
    assert ans.trace[4]["content"] == "revise: the question asks which customer: select customers.name, not customer_id"
    assert ans.trace[5]["data"]["mode"] == "adopted"
    assert ans.sql == ("SELECT customers.name, COUNT(*) AS n FROM orders JOIN customers USING (customer_id) "
                       "GROUP BY customer_id, customers.name ORDER BY n DESC, customer_id LIMIT 1")
    assert (ans.values, ans.verified) == (["Ann"], True)
    assert [r.agent for r in calls(eng)] == ["planner", "engineer", "critic"]
