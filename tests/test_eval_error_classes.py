"""Error classes of wrong answers: one hand-built record (and trace) per class, and the report's table.

Traces come in the three shapes the harness has written: the agents' board entries, the baseline's
list of calls, and the ``--trace`` object (entries + calls). A missing or odd trace must leave the
record alone to decide, never crash the report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from autotqa.evaluation.errors import classify, load_trace, trace_facts
from autotqa.evaluation.report import render_markdown, write_report
from autotqa.evaluation.results import ResultRecord, ResultStore, results_path


def rec(strategy: str = "agents", *, dataset: str = "wtq", error: str | None = None, sql: str | None = None,
        values: list[Any] | None = None, rows: list[list[Any]] | None = None, n_rows: int | None = None,
        verified: bool = False, gold: dict[str, Any] | None = None, qid: str = "q1",
        correct: bool = False) -> ResultRecord:
    rows = rows if rows is not None else [[v] for v in values or []]
    prediction = {"sql": sql, "values": values or [], "rows": rows,
                  "n_rows": len(rows) if n_rows is None else n_rows, "verified": verified}
    return ResultRecord(id=qid, strategy=strategy, dataset=dataset, question="?", prediction=prediction,
                        gold=gold or {"values": ["8"]}, error=error, correct=correct)


def code(step: str, sql: str, mode: str = "candidate") -> dict[str, Any]:
    return {"kind": "code", "role": "engineer", "content": sql, "round": 1, "step": step,
            "data": {"language": "sql", "mode": mode}}


def ran(step: str, rows: list[list[Any]], sql: str = "SELECT x FROM t") -> dict[str, Any]:
    result = {"ok": True, "language": "sql", "columns": ["x"], "rows": rows, "n_rows": len(rows),
              "truncated": False, "error_type": None, "error": None, "code": sql}
    return {"kind": "result", "role": "executor", "content": "x", "round": 1, "step": step,
            "data": {"result": result}}


def failed(step: str, error_type: str) -> dict[str, Any]:
    result = {"ok": False, "language": "sql", "columns": [], "rows": [], "n_rows": 0,
              "error_type": error_type, "error": "it failed", "code": "SELECT y FROM t"}
    return {"kind": "error", "role": "executor", "content": f"{error_type}: it failed", "round": 1,
            "step": step, "data": {"result": result}}


REPEATED = {"kind": "error", "role": "system", "round": 2, "step": "s1", "data": {"repeated": True},
            "content": "repeated: this exact query was already tried (its result was rejected); write a different one"}
GAVE_UP = "no_result: No supported answer was found within the limits."


def board(*entries: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"kind": "question", "role": "user", "content": "?", "round": 1, "step": "", "data": {}}, *entries]


def baseline_trace(sql: str | None, result: str | None) -> list[dict[str, Any]]:
    return [{"agent": "baseline", "prompt_tail": "Question: ?", "reply": "```sql\n...", "sql": sql,
             "result": result}]


SPIDER_GOLD = {"sql": "SELECT T1.name FROM singer AS T1 JOIN singer_in_concert AS T2 ON T1.singer_id = "
                      "T2.singer_id WHERE T1.country = 'France'", "ordered": False}

CASES: list[tuple[str, ResultRecord, Any, str]] = [
    ("baseline's own unknown column", rec("baseline", error='unknown_column: unknown column "Key"', sql="SELECT Key FROM t"),
     baseline_trace("SELECT Key FROM t", 'ERROR (unknown_column): unknown column "Key"'), "unknown column"),
    ("loop gave up after its last query named a missing table", rec(error=GAVE_UP),
     board(code("c1", "SELECT a FROM t"), ran("c1", [[1]]), failed("s1", "unknown_table")), "unknown column"),
    ("every candidate named a missing column, a later repair hit a binder error", rec(error="unanswerable: no"),
     board(code("c1", "q1"), code("c2", "q2"), failed("c1", "unknown_column"), failed("c2", "unknown_table"),
           failed("s1", "binder")), "unknown column"),
    ("baseline binder error", rec("baseline", error="binder: No function matches year(VARCHAR)", sql="SELECT year(d) FROM t"),
     None, "other SQL error"),
    ("loop gave up after a parse error", rec(error=GAVE_UP),
     board(code("c1", "q1"), failed("c1", "unknown_column"), code("c2", "q2"), failed("c2", "parse")),
     "other SQL error"),
    ("empty result", rec("baseline", sql="SELECT n FROM t WHERE a = 'x'", rows=[]), None, "wrong filter value"),
    ("a COUNT of 0", rec("baseline", sql="SELECT COUNT(*) FROM t WHERE a = 'x'", values=[0]), None,
     "wrong filter value"),
    ("a SUM(CASE ...) count of 0", rec(sql="SELECT SUM(CASE WHEN r = 'L' THEN 1 ELSE 0 END) FROM t", values=[0],
                                        verified=True), None, "wrong filter value"),
    ("MAX over no rows", rec(sql="SELECT MAX(n) FROM t WHERE a = 'x'", rows=[[None]]), None, "wrong filter value"),
    ("loop gave up after its last query returned nothing", rec(error="unanswerable: no"),
     board(code("c1", "q1"), failed("c1", "unknown_column"), code("c2", "q2"), ran("c2", [])),
     "wrong filter value"),
    ("Spider filter on a literal the gold never uses",
     rec("baseline", dataset="spider", gold=SPIDER_GOLD, values=["Joe"],
         sql="SELECT s.name FROM singer AS s JOIN singer_in_concert AS c ON s.singer_id = c.singer_id "
             "WHERE s.country = 'Frankreich'"), None, "wrong filter value"),
    ("repair loop repeated itself and gave up", rec(error=GAVE_UP),
     board(code("c1", "q1"), ran("c1", [[3]]), code("s1", "q1", "write"), REPEATED), "repeated repair"),
    ("the reply held no SQL", rec("baseline", error="no_sql: the reply held no SQL query"),
     baseline_trace(None, None), "no answer"),
    ("judged unanswerable, no trace", rec(error="unanswerable: the loop found no answer in the tables"), None,
     "no answer"),
    ("the strategy crashed", rec(error="crash: RuntimeError: boom"), None, "no answer"),
    ("Spider join of the wrong tables",
     rec("agents", dataset="spider", gold=SPIDER_GOLD, values=["Joe"], verified=True,
         sql="SELECT s.name FROM singer AS s JOIN concert AS c ON s.singer_id = c.concert_id "
             "WHERE s.country = 'france'"), None, "wrong join"),
    ("agents verified a wrong answer", rec(sql="SELECT COUNT(*) FROM t", values=[4], verified=True),
     board(code("c1", "SELECT COUNT(*) FROM t"), ran("c1", [[4]])), "verified but wrong"),
    ("the baseline's flag only says its query ran", rec("baseline", sql="SELECT COUNT(*) FROM t", values=[4],
                                                          verified=True), None, "wrong result"),
    ("Spider: right tables, wrong rows, not verified",
     rec("agents", dataset="spider", gold=SPIDER_GOLD, values=["Joe", "Ann"],
         sql="SELECT T1.name FROM singer AS T1 JOIN singer_in_concert AS T2 ON T1.singer_id = T2.singer_id"),
     None, "wrong result"),
]


@pytest.mark.parametrize(("record", "trace", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_class_from_record_and_trace(record: ResultRecord, trace: Any, expected: str) -> None:
    assert classify(record, trace_facts(trace) if trace is not None else None) == expected


def test_the_trace_decides_where_the_record_cannot() -> None:
    record = rec(error=GAVE_UP)
    trace = board(code("c1", "q1"), failed("c1", "unknown_column"))
    assert classify(record, None) == "no answer"
    assert classify(record, trace_facts(trace)) == "unknown column"
    # The --trace object (entries + calls) reads the same as the bare entries.
    wrapped = {"format": "autotqa-trace", "question": "?", "entries": trace, "calls": [{"agent": "engineer"}]}
    assert classify(record, trace_facts(wrapped)) == "unknown column"


def test_candidate_steps_and_repeats_are_read_from_the_board() -> None:
    facts = trace_facts(board(code("c1", "q1"), code("c2", "q2"), failed("c1", "unknown_column"),
                              code("c1", "q1 fixed", "adopted"), ran("c1", [[2]]), REPEATED))
    assert facts is not None
    assert (facts.shape, facts.candidates, facts.repeated) == ("board", ("c1", "c2"), True)
    assert [(x.step, x.ok, x.error_type, x.rows) for x in facts.executions] == [
        ("c1", False, "unknown_column", ()), ("c1", True, None, ((2,),))]


@pytest.mark.parametrize("content", [
    None, "not json {", "[1, 2, 3]", '{"entries": 5}', '[{"kind": "code", "data": 7, "step": [1]}]',
    "[" * 100_000 + "]" * 100_000, b"\xff\xfe\x00garbage",
], ids=["missing", "bad-json", "list-of-ints", "entries-not-a-list", "odd-entry-fields", "deep", "not-utf8"])
def test_a_missing_or_odd_trace_leaves_the_record_to_decide(tmp_path: Path, content: str | bytes | None) -> None:
    record = rec(error=GAVE_UP).model_copy(update={"trace_path": "traces/agents/q1.json"})
    if content is not None:
        path = tmp_path / "traces" / "agents" / "q1.json"
        path.parent.mkdir(parents=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    facts = load_trace(tmp_path, record)
    assert facts is None or facts.executions == ()
    assert classify(record, facts) == "no answer"


def test_a_trace_path_outside_the_run_folder_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps(board(failed("c1", "unknown_column"))), encoding="utf-8")
    run = tmp_path / "run"
    run.mkdir()
    for escape in ("../secret.json", str(secret)):
        record = rec(error=GAVE_UP).model_copy(update={"trace_path": escape})
        assert load_trace(run, record) is None
    inside = rec(error=GAVE_UP).model_copy(update={"trace_path": "t.json"})
    (run / "t.json").write_text(secret.read_text(encoding="utf-8"), encoding="utf-8")
    assert classify(inside, load_trace(run, inside)) == "unknown column"


def write_run(out: Path, records: list[tuple[ResultRecord, Any]]) -> None:
    for record, trace in records:
        if trace is not None:
            rel = f"traces/{record.strategy}/{record.id}.json"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_text(json.dumps(trace), encoding="utf-8")
            record = record.model_copy(update={"trace_path": rel})
        ResultStore(results_path(out, record.strategy)).append(record)


def test_report_table_counts_classes_and_right_only_answers(tmp_path: Path) -> None:
    unknown_in_trace = board(code("c1", "q1"), failed("c1", "unknown_column"))
    write_run(tmp_path, [
        (rec(qid="a", error=GAVE_UP), unknown_in_trace),
        (rec(qid="b", error=GAVE_UP), unknown_in_trace),
        (rec(qid="c", sql="SELECT COUNT(*) FROM t", values=[4], verified=True), None),
        (rec(qid="d", sql="SELECT 1", values=[8], correct=True), None),
        (rec(qid="e", sql="SELECT 1", values=[8], correct=True), None),
        (rec("baseline", qid="a", sql="SELECT 1", values=[8], correct=True), None),
        (rec("baseline", qid="b", error="binder: no"), baseline_trace("SELECT x", "ERROR (binder): no")),
        (rec("baseline", qid="c", sql="SELECT n FROM t WHERE a = 'x'", rows=[]), None),
        (rec("baseline", qid="d", sql="SELECT 1", values=[8], correct=True), None),
    ])
    lines = write_report(tmp_path, plot=False).read_text(encoding="utf-8").splitlines()
    table = lines[lines.index("## Why answers were wrong"):]
    table = table[table.index("| class | agents | baseline |"):]
    assert table[:12] == [
        "| class | agents | baseline |",
        "|---|---:|---:|",
        "| unknown column | 2 | 0 |",
        "| other SQL error | 0 | 1 |",
        "| wrong filter value | 0 | 1 |",
        "| repeated repair | 0 | 0 |",
        "| no answer | 0 | 0 |",
        "| wrong join | 0 | 0 |",
        "| verified but wrong | 1 | 0 |",
        "| wrong result | 0 | 0 |",
        "| wrong, all classes | 3 | 2 |",
        # Shared questions a-d: agents alone right on none of them (e is agents-only), baseline on a.
        "| right only by this strategy | 0 | 1 |",
    ]
    # Without the traces (render from records alone) the gave-up records fall back to "no answer".
    from autotqa.evaluation.report import load_run
    alone = render_markdown(load_run(tmp_path)).splitlines()
    assert "| unknown column | 0 | 0 |" in alone and "| no answer | 2 | 0 |" in alone


def test_one_strategy_has_no_right_only_row(tmp_path: Path) -> None:
    write_run(tmp_path, [(rec(qid="a", error="crash: X"), None)])
    text = write_report(tmp_path, plot=False).read_text(encoding="utf-8")
    assert "| no answer | 1 |" in text.splitlines()
    assert "right only" not in text
