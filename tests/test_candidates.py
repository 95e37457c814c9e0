"""Candidates and execution-guided selection before the loop, follow-ups that edit the earlier
query, and rule repairs, on the scripted engine with exact call sequences."""

from __future__ import annotations

from autotqa.agents.selection import Candidate, result_key, select
from autotqa.config import AgentConfig, Config
from autotqa.executors.base import ExecutionResult

from test_orchestrator import ACCEPT, COUNT, PLAN1, ask, calls, scripted, sql, workspace  # noqa: F401

VOTE = Config(agents=AgentConfig(candidates=4, escalate="none"))
VOTE_LOOP = Config(agents=AgentConfig(candidates=4, escalate="loop", max_rounds=1, max_repairs=0))
WRONG = "SELECT count(*) AS n FROM orders"


def engineer_calls(eng) -> list:
    return [r for r in calls(eng) if r.agent == "engineer"]


def test_agreeing_candidates_answer_with_no_plan_and_no_critic_call(workspace):
    eng = scripted(engineer=[sql(COUNT), sql(WRONG), sql(COUNT), sql(COUNT + " ")])
    eng.supports_batch = True  # the engine decodes a fork's branches together
    ans = ask(eng, workspace, "How many orders were delivered?", config=VOTE)
    assert (ans.values, ans.verified, ans.sql) == ([3], True, COUNT)
    assert [r.agent for r in calls(eng)] == ["engineer"] * 4  # one fork, nothing else
    assert [len(b) for b in eng.batches] == [4]  # ... reaching the engine as one call
    temps = [r.temperature for r in engineer_calls(eng)]
    assert temps[0] == 0.0 and all(t > 0 for t in temps[1:])  # greedy first, then samples
    # Candidates see header + schema only (no board), so all four share one prompt.
    assert len({r.segments for r in engineer_calls(eng)}) == 1
    assert engineer_calls(eng)[0].segments.transcript == ""
    # A repeated query (same parse, whatever the spacing) ran once: two executions for four.
    assert sum(1 for e in ans.trace if e["kind"] == "result") == 2
    vote = next(e for e in ans.trace if e["kind"] == "critique")
    assert vote["data"]["vote"]["groups"][0]["members"] == [0, 2, 3]


def test_no_agreement_returns_the_greedy_result_unverified(workspace):
    other = "SELECT count(*) AS n FROM orders WHERE status = 'shipped'"
    eng = scripted(engineer=[sql(COUNT), sql(WRONG), sql(other), "no code here"])
    ans = ask(eng, workspace, "How many orders were delivered?", config=VOTE)
    assert (ans.values, ans.verified, ans.sql) == ([3], False, COUNT)
    assert [r.agent for r in calls(eng)] == ["engineer"] * 4


def test_no_agreement_escalates_to_the_loop_whose_verified_answer_wins(workspace):
    other = "SELECT count(*) AS n FROM orders WHERE status = 'shipped'"
    eng = scripted(engineer=[sql(WRONG), sql(other), "none", "none", sql(COUNT)], planner=[PLAN1],
                   critic=[ACCEPT])
    ans = ask(eng, workspace, "How many orders were delivered?", config=VOTE_LOOP)
    assert [r.agent for r in calls(eng)] == ["engineer"] * 4 + ["planner", "engineer", "critic"]
    assert (ans.values, ans.verified, ans.sql) == ([3], True, COUNT)


def test_a_failed_loop_falls_back_to_the_voted_candidate(workspace):
    eng = scripted(engineer=[sql(COUNT), "none", "none", "none", sql("SELECT nope FROM orders")],
                   planner=[PLAN1])
    ans = ask(eng, workspace, "How many orders were delivered?", config=VOTE_LOOP)
    assert (ans.values, ans.verified, ans.sql) == ([3], False, COUNT)


def test_an_error_that_names_its_fix_is_repaired_without_a_model_call(workspace):
    # "stat" is not a column; the guard-like executor error names "status".
    class Naming:
        language = "sql"

        def __init__(self, inner):
            self.inner = inner

        def run(self, code):
            if "stat " in code or "stat=" in code or code.endswith("stat"):
                return ExecutionResult.failure("sql", code, "unknown_column",
                                               'unknown column "stat" in table "orders" — did you mean "status"?')
            return self.inner.run(code)

    ws = workspace.__class__(schema_text=workspace.schema_text, columns=workspace.columns,
                             executors={"sql": Naming(workspace.executors["sql"])})
    bad = "SELECT count(*) AS n FROM orders WHERE stat = 'delivered'"
    eng = scripted(engineer=[sql(bad), sql(bad), sql(COUNT), sql(WRONG)])
    ans = ask(eng, ws, "How many orders were delivered?", config=VOTE)
    assert [r.agent for r in calls(eng)] == ["engineer"] * 4
    assert (ans.values, ans.verified) == ([3], True)
    adopted = [e for e in ans.trace if e["kind"] == "code" and e["data"].get("mode") == "adopted"]
    assert [e["content"] for e in adopted] == ["SELECT COUNT(*) AS n FROM orders WHERE status = 'delivered'"]


def test_follow_up_edits_the_earlier_query_without_a_user_agent_call(workspace):
    germany = "SELECT count(*) AS n FROM customers WHERE city = 'Oslo'"
    eng = scripted(engineer=[sql(germany)] * 4)
    history = [("How many customers are there?", "There are 3.", "SELECT count(*) FROM customers")]
    ans = ask(eng, workspace, "And how many of them are from Oslo?", config=VOTE, history=history)
    assert [r.agent for r in calls(eng)] == ["engineer"] * 4  # no rewrite by the User agent
    tail = engineer_calls(eng)[0].segments.tail
    assert "Earlier question: How many customers are there?" in tail
    assert "Earlier query:\n```sql\nSELECT count(*) FROM customers\n```" in tail
    assert tail.index("Earlier query") < tail.index("Question: And how many of them are from Oslo?")
    assert (ans.values, ans.verified) == ([2], True)


def test_a_follow_up_without_earlier_sql_still_asks_the_user_agent(workspace):
    rewrite = '{"question": "How many customers are from Oslo?", "answerable": true, "missing": ""}'
    eng = scripted(user=[rewrite], engineer=[sql("SELECT count(*) FROM customers WHERE city = 'Oslo'")] * 4)
    ans = ask(eng, workspace, "and those from Oslo?", config=VOTE,
              history=[("How many customers?", "3")])
    assert [r.agent for r in calls(eng)] == ["user"] + ["engineer"] * 4
    assert ans.question == "How many customers are from Oslo?" and ans.values == [2]


def test_selection_prefers_results_that_pass_the_checks_over_bigger_groups():
    def ok(rows):
        return ExecutionResult(ok=True, columns=["v"], rows=rows, n_rows=len(rows))
    empty_note = "empty"
    cands = [Candidate(0, "a", ok([[1], [2]])), Candidate(1, "b", ok([[1], [2]])), Candidate(2, "c", ok([[7]]))]
    sel = select(cands, lambda r: empty_note if r.n_rows > 1 else None)
    assert [g.best.index for g in sel.groups] == [2, 0]
    assert not sel.agreed  # the winner has one vote only
    assert result_key(ok([[1.0000000001]])) == result_key(ok([[1]]))


def test_repair_escalation_sends_failed_candidates_back_with_their_query_and_error(workspace):
    bad = "SELECT nope FROM orders"
    empty = "SELECT count(*) AS n FROM orders WHERE status = 'lost'"
    eng = scripted(engineer=[sql(bad), sql(bad), sql(empty), "none", sql(COUNT), sql(COUNT)])
    cfg = Config(agents=AgentConfig(candidates=4, escalate="repair", repair_candidates=2))
    ans = ask(eng, workspace, "How many orders were delivered?", config=cfg)
    assert [r.agent for r in calls(eng)] == ["engineer"] * 6  # 4 candidates, then one fork of 2 fixes
    fixes = engineer_calls(eng)[4:]
    assert "This query failed:\n```sql\nSELECT nope FROM orders\n```" in fixes[0].segments.tail
    assert "the count is 0" in fixes[1].segments.tail and empty in fixes[1].segments.tail
    assert fixes[0].segments.transcript == ""  # fixes see header + schema, not the board
    # The two fixes agree on a result that passes the checks: verified.
    assert (ans.values, ans.verified, ans.sql) == ([3], True, COUNT)


def test_a_filter_value_spelled_unlike_the_data_is_relinked_by_lookup(workspace):
    cased = "SELECT count(*) AS n FROM orders WHERE status = 'Delivered'"
    part = "SELECT count(*) AS n FROM orders WHERE status = 'deliver'"
    eng = scripted(engineer=[sql(cased), sql(part), sql(WRONG), "none"])
    ans = ask(eng, workspace, "How many orders were delivered?", config=VOTE)
    assert [r.agent for r in calls(eng)] == ["engineer"] * 4  # relinked without a model call
    relinked = COUNT.replace("count(*)", "COUNT(*)")
    assert (ans.values, ans.verified, ans.sql) == ([3], True, relinked)
    adopted = [e["content"] for e in ans.trace if e["kind"] == "code" and e["data"].get("mode") == "adopted"]
    assert adopted == [relinked] * 2  # by exact value ignoring case, then by containment


def test_a_question_about_something_the_tables_lack_ends_after_two_calls(workspace):
    eng = scripted(user=['{"question": "What will the weather be in Oslo tomorrow?", "answerable": true}'],
                   engineer=[sql("SELECT weather FROM customers WHERE city = 'Oslo'")])
    ans = ask(eng, workspace, "What will the weather be in Oslo tomorrow?", config=VOTE)
    assert [r.agent for r in calls(eng)] == ["user", "engineer"]
    assert ans.unanswerable and ans.values == [] and '"weather"' in ans.answer


def test_a_doubtful_question_that_runs_goes_on_to_the_vote_without_resampling_the_greedy_query(workspace):
    eng = scripted(user=['{"question": "How many purchases were delivered?", "answerable": true}'],
                   engineer=[sql(COUNT)] * 4)
    ans = ask(eng, workspace, "How many purchases were delivered?", config=VOTE)
    assert [r.agent for r in calls(eng)] == ["user"] + ["engineer"] * 4
    assert [r.temperature for r in engineer_calls(eng)][0] == 0.0
    assert all(r.temperature > 0 for r in engineer_calls(eng)[1:])  # the greedy query is not asked twice
    assert (ans.values, ans.verified) == ([3], True)


def test_the_second_one_keeps_only_the_row_in_second_place(workspace):
    top2 = "SELECT order_id FROM orders ORDER BY amount DESC LIMIT 2"
    eng = scripted(engineer=[sql(top2)] * 4)
    history = [("Which order is the largest?", "Order 2.", "SELECT order_id FROM orders ORDER BY amount DESC LIMIT 1")]
    ans = ask(eng, workspace, "And the second one?", config=VOTE, history=history)
    assert (ans.values, ans.sql) == ([1], "SELECT order_id FROM orders ORDER BY amount DESC LIMIT 1 OFFSET 1")


JOINED = "How many orders did customers from Oslo place?"
TWO = Config(agents=AgentConfig(candidates=4, escalate="none", unhinted_candidates=True))
REPAIR_TWO = Config(agents=AgentConfig(candidates=4, escalate="repair", repair_candidates=2, unhinted_candidates=True))
OSLO = "SELECT count(*) AS n FROM orders JOIN customers USING (customer_id) WHERE city = 'Oslo'"


def test_every_second_candidate_and_its_fix_are_written_without_the_linker_hints(workspace):
    # Candidates 1 and 3 fail; the repair sends back 0's twin (index 1) and 3: their fixes keep
    # their candidate's prompt kind.
    bad = "SELECT nope FROM orders"
    eng = scripted(engineer=[sql(OSLO), sql(bad), sql(WRONG), sql("SELECT nada FROM orders"),
                             sql(OSLO), sql(OSLO)])
    ans = ask(eng, workspace, JOINED, config=REPAIR_TWO)
    reqs = engineer_calls(eng)
    hinted = ["Tables: orders, customers." in r.segments.tail for r in reqs]
    joins = ["Join on: orders JOIN customers USING (customer_id)." in r.segments.tail for r in reqs]
    assert hinted == joins == [True, False, True, False, False, False]
    assert [r.temperature for r in reqs[:4]] == [0.0, 0.0, 0.8, 0.8]
    assert all(f"Question: {JOINED}" in r.segments.tail for r in reqs)
    assert (ans.values, ans.verified) == ([4], True)


def test_a_hinted_candidate_fix_keeps_the_hints(workspace):
    empty = "SELECT count(*) AS n FROM orders JOIN customers USING (customer_id) WHERE city = 'Paris'"
    eng = scripted(engineer=[sql(empty), sql(OSLO), sql(WRONG), sql("SELECT nada FROM orders"),
                             sql(OSLO), sql(OSLO)])
    ask(eng, workspace, JOINED, config=REPAIR_TWO)
    fixes = engineer_calls(eng)[4:]
    assert len(fixes) == 2 and empty in fixes[0].segments.tail
    assert "Tables: orders, customers." in fixes[0].segments.tail  # candidate 0 was hinted
    assert "Tables:" not in fixes[1].segments.tail  # candidate 3 was not


def test_one_prompt_when_switched_off_or_when_the_linker_names_nothing(workspace):
    off = Config(agents=AgentConfig(candidates=4, escalate="none", unhinted_candidates=False))
    eng = scripted(engineer=[sql(OSLO)] * 4)
    ask(eng, workspace, JOINED, config=off)
    reqs = engineer_calls(eng)
    assert len({r.segments for r in reqs}) == 1 and "Tables: orders, customers." in reqs[0].segments.tail
    assert [r.temperature for r in reqs] == [0.0, 0.8, 0.8, 0.8]
    # No table named: both prompts would be the same text, so only one greedy candidate (a second
    # greedy one would repeat it and count as a vote it is not).
    eng = scripted(engineer=[sql("SELECT name FROM customers")] * 4)
    ask(eng, workspace, "List every name.", config=TWO)
    reqs = engineer_calls(eng)
    assert len({r.segments for r in reqs}) == 1 and "Tables:" not in reqs[0].segments.tail
    assert [r.temperature for r in reqs] == [0.0, 0.8, 0.8, 0.8]


def test_a_single_table_gets_one_prompt(workspace):
    # The hint would name the only table there is: no second prompt (and one greedy candidate).
    one = workspace.__class__(schema_text=workspace.schema_text, columns={"orders": workspace.columns["orders"]},
                              executors=workspace.executors)
    eng = scripted(engineer=[sql(COUNT)] * 4)
    ask(eng, one, "How many orders were delivered?", config=TWO)
    reqs = engineer_calls(eng)
    assert len({r.segments for r in reqs}) == 1 and "Tables: orders." in reqs[0].segments.tail
    assert [r.temperature for r in reqs] == [0.0, 0.8, 0.8, 0.8]
    # ... and the fix of candidate 1 (which had the hint) keeps it.
    eng = scripted(engineer=[sql(COUNT), sql("SELECT nope FROM orders"), sql("SELECT nada FROM orders"),
                             sql(WRONG), sql(COUNT), sql(COUNT)])
    ask(eng, one, "How many orders were delivered?", config=REPAIR_TWO)
    fix = engineer_calls(eng)[4]
    assert "SELECT nope FROM orders" in fix.segments.tail and "Tables: orders." in fix.segments.tail
