"""The deterministic parts of the agents: code extraction, linking, checks, values, prompts."""

from __future__ import annotations

import jinja2
import pytest

from autotqa.agents.base import common_header, render_prompt
from autotqa.agents.critic import check_result
from autotqa.agents.engineer import extract_code, using_joins
from autotqa.catalog.linking import join_hints, link_tables, mentioned_tables
from autotqa.agents.planner import Plan, PlanStep, validate_plan
from autotqa.agents.user import UserAgent
from autotqa.agents.values import answer_sentence, expects_single_value, extract_values
from autotqa.executors.base import ExecutionResult

DEMO = {"customers": ["customer_id", "name", "email", "city", "country", "segment", "signup_date"],
        "order_items": ["order_id", "product_id", "quantity", "discount_pct"],
        "orders": ["order_id", "customer_id", "order_date", "ship_date", "status"],
        "products": ["product_id", "name", "category", "unit_price"]}


def res(columns, rows):
    return ExecutionResult(ok=True, columns=columns, rows=rows, n_rows=len(rows))


@pytest.mark.parametrize("reply,code", [
    ("```sql\nSELECT 1\n", "SELECT 1"),
    ("```SQL\nWITH t AS (SELECT 1 AS a) SELECT a FROM t;\n```", "WITH t AS (SELECT 1 AS a) SELECT a FROM t"),
    ("Sure! Here is the query:\n```sql\nSELECT a FROM t", "SELECT a FROM t"),
    ("SELECT a\nFROM t;", "SELECT a\nFROM t"),
    ("I cannot answer that.", ""),
    # the model went on copying the board inside its block: the copy is not SQL
    ("```sql\nSELECT Name FROM t WHERE d < 3\nRESULT s1:\nName\n(0 rows)\nCRITIQUE s1: revise: empty",
     "SELECT Name FROM t WHERE d < 3"),
    ("```sql\nSELECT a FROM t\nERROR s2: binder: no column b", "SELECT a FROM t"),
    ("SQL s1:\n```sql\nSELECT a FROM t\n```", "SELECT a FROM t"),  # a label before the block is harmless
    ("```sql\nSELECT 'RESULT s1: x' AS label\n```", "SELECT 'RESULT s1: x' AS label"),  # not at a line start
])
def test_extract_sql(reply, code):
    assert extract_code(reply, "sql") == code


def test_extract_pandas():
    assert extract_code("```python\nresult = len(orders)\n", "pandas") == "result = len(orders)"


def test_using_joins_keeps_other_sql_unchanged():
    assert using_joins("SELECT a FROM t") == "SELECT a FROM t"
    assert using_joins("SELECT * FROM a JOIN b ON a.x = b.y") == "SELECT * FROM a JOIN b ON a.x = b.y"
    assert using_joins("not sql at all (") == "not sql at all ("
    assert using_joins("SELECT c.name FROM customers AS c JOIN orders AS o ON c.customer_id = o.customer_id") == \
        "SELECT c.name FROM customers AS c JOIN orders AS o USING (customer_id)"


@pytest.mark.parametrize("question,tables", [
    ("How many customers are there?", ["customers"]),
    ("How many orders were placed by customers from Germany?", ["customers", "orders"]),
    ("Which product was ordered in the largest total quantity?", ["order_items", "orders", "products"]),
    ("Which customers bought an Espresso Machine product?", ["customers", "order_items", "orders", "products"]),
    ("What is the average unit price per category?", ["products"]),
    ("What is the weather tomorrow?", []),
])
def test_link_tables_on_demo_schema(question, tables):
    assert link_tables(question, DEMO) == tables


def test_mentioned_tables_ignores_columns_shared_by_several_tables():
    assert mentioned_tables("list every name", DEMO) == []


def test_join_hints_only_on_keys():
    assert join_hints(["customers", "products"], DEMO) == []
    assert join_hints(["order_items", "products"], DEMO) == ["order_items JOIN products USING (product_id)"]


def test_checks_before_the_model():
    assert check_result("How many orders?", res(["n"], [])).note.startswith("the result is empty")
    assert check_result("How many orders?", res(["n"], [[None]])).note.startswith("the result is only NULL")
    many = check_result("How many orders were delivered?", res(["s", "n"], [["a", 1], ["b", 2]]))
    assert many.note == "the question asks for one value but the result has 2 rows; aggregate to a single row"
    assert check_result("How many orders per status?", res(["s", "n"], [["a", 1], ["b", 2]])) is None
    ids = check_result("Which customer placed the most orders?", res(["customer_id", "n"], [[7, 11]]), DEMO)
    assert (ids.verdict, ids.note) == ("revise", "the question asks which customer: select customers.name, "
                                                 "not customer_id")
    assert check_result("Which customer placed the most orders?", res(["name", "n"], [["Ann", 11]]), DEMO) is None
    failed = ExecutionResult.failure("sql", "x", "parse", "bad")
    assert check_result("How many?", failed).note == "the code failed: parse: bad"


@pytest.mark.parametrize("code,rows,zero", [
    ("SELECT count(*) FROM orders WHERE status = 'Shipped'", [[0]], True),
    ("SELECT COUNT(DISTINCT customer_id) AS n FROM orders WHERE amount > 1e9", [[0]], True),
    ("SELECT count(*) FROM orders WHERE status = 'shipped'", [[2]], False),  # rows matched
    ("SELECT count(*) FROM orders", [[0]], False),  # no filter: an empty table really has 0 rows
    ("SELECT sum(amount) FROM orders WHERE status = 'x'", [[0]], False),  # not a count
    ("SELECT status, count(*) FROM orders WHERE amount > 5 GROUP BY status", [["a", 0]], False),
])
def test_filtered_count_of_zero_is_sent_back(code, rows, zero):
    result = ExecutionResult(ok=True, columns=[f"c{i}" for i in range(len(rows[0]))], rows=rows, n_rows=1,
                             code=code)
    verdict = check_result("How many orders were shipped?", result)
    if zero:
        assert (verdict.verdict, verdict.note) == ("revise", "the count is 0: no row passed the filter; check "
                                                             "filter values against the sample values (spelling, case)")
    else:
        assert verdict is None


@pytest.mark.parametrize("question,result,values", [
    ("How many customers are there?", res(["n"], [[80]]), [80]),
    ("List the categories", res(["category"], [["Tea"], ["Coffee"]]), ["Tea", "Coffee"]),
    ("Which customer placed the most orders?", res(["name", "n"], [["Ann", 11]]), ["Ann"]),
    ("How many orders did the top customer place?", res(["name", "n"], [["Ann", 11]]), [11]),
    ("Top products by revenue", res(["name", "rev"], [["A", 3.5], ["B", 2.0]]), ["A", "B"]),
    ("Average price", res(["avg"], [[94.87500000000001]]), [94.875]),
    ("Anything", ExecutionResult.failure("sql", "", "x", "y"), []),
])
def test_extract_values(question, result, values):
    assert extract_values(question, result) == values


def test_sentence_kept_only_when_it_states_the_values():
    assert answer_sentence("There are 80 customers.", [80], 1) == "There are 80 customers."
    assert answer_sentence("The average is 94.88.", [94.88], 1) == "The average is 94.88."
    assert answer_sentence("There are 81 customers.", [80], 1) == "The answer is 80."
    assert answer_sentence("", ["Tea", "Coffee"], 2) == "The answer is Tea, Coffee."
    assert expects_single_value("What is the total revenue?") and not expects_single_value("Which city?")


def test_user_agent_calls_the_model_only_when_needed():
    user = UserAgent(DEMO)
    assert not user.needs_model("How many orders were delivered?", [])
    assert not user.needs_model("How many products are there?", [("How many customers?", "80")])
    assert user.needs_model("And how many of them are from Germany?", [("How many customers?", "80")])
    assert user.needs_model("What will the weather be tomorrow?", [])


def test_plan_validation_drops_unknown_names_and_forward_dependencies():
    plan = Plan(steps=[PlanStep(goal="a", tables=["ORDERS"], columns=["orders.status", "bogus"], after=[2]),
                       PlanStep(goal="b", tables=["customers", "nope"], lang="pandas", after=[1, 1, 5])])
    steps = validate_plan(plan, DEMO, ["sql", "pandas"])
    assert [s.model_dump() for s in steps] == [
        {"id": "s1", "goal": "a", "tables": ["orders"], "columns": ["status"], "language": "sql", "after": []},
        {"id": "s2", "goal": "b", "tables": ["customers"], "columns": [], "language": "pandas", "after": ["s1"]}]


def test_prompts_are_strict_and_the_header_is_stable():
    with pytest.raises(jinja2.UndefinedError):
        render_prompt("critic", step_id="s1")
    header = common_header()
    assert header == common_header()
    # The shared prefix frames the SQL writing that every question needs (the candidates' prompt is
    # header + schema + question, like single-shot text-to-SQL); each role's reply format lives in
    # its own tail, read only when that role is called.
    assert "DuckDB SQL" in header and "JSON" not in header
    assert '{"steps":' in render_prompt("planner", replan=False)
    assert '{"verdict":' in render_prompt("critic", step_id="s1", question="q")
    assert '"answerable"' in render_prompt("user", inquiry="q", history=[])
    tail = render_prompt("engineer", step_id="s1", goal="g", final=True, question="How many?", tables=["t"],
                         joins=[], language="sql", repair=True, revise=False, error="parse: bad")
    assert tail.splitlines()[:3] == ["Question: How many?", "The last query failed: parse: bad",
                                     "Write a corrected one that avoids this error."]
    fix = render_prompt("engineer", step_id="c1", goal="g", final=True, question="How many?", tables=[],
                        joins=[], language="sql", repair=False, revise=False, error="ERROR: unknown column",
                        failed="SELECT nope FROM t")
    assert fix.splitlines()[1:6] == ["This query failed:", "```sql", "SELECT nope FROM t", "```",
                                     "ERROR: unknown column"]


def test_plan_validation_removes_code_goals_and_repeats():
    sql = "SELECT product_id, MAX(unit_price) FROM products"
    plan = Plan(steps=[PlanStep(goal=sql, tables=["products"]), PlanStep(goal=sql, tables=["products"]),
                       PlanStep(goal="rank", tables=["products"], after=[2])])
    assert [s.render() for s in validate_plan(plan, DEMO, ["sql"])] == [
        "s1: answer the question (tables: products)", "s2: rank (tables: products) after s1"]


def test_requalify_columns_only_touches_references_that_cannot_bind():
    from autotqa.agents.engineer import requalify_columns

    cols = {"customers": ["customer_id", "country", "name"], "orders": ["order_id", "customer_id"],
            "stores": ["store_id", "country"]}
    wrong = "SELECT o.order_id FROM customers c JOIN orders o USING (customer_id) WHERE o.country = 'DE'"
    assert requalify_columns(wrong, cols) == (
        "SELECT o.order_id FROM customers AS c JOIN orders AS o USING (customer_id) WHERE c.country = 'DE'")
    fine = "SELECT c.name FROM customers c JOIN orders o USING (customer_id)"
    assert requalify_columns(fine, cols) == fine
    # Two joined tables have "country": no guess.
    ambiguous = ("SELECT 1 FROM orders o JOIN customers c USING (customer_id) "
                 "JOIN stores s ON s.store_id = o.order_id WHERE o.country = 'DE'")
    assert requalify_columns(ambiguous, cols) == ambiguous
