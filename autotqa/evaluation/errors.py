"""Why a wrong answer was wrong: one error class per wrong record, for the evaluation report.

The class is derived deterministically from the record (prediction, error, gold) and, where it can
be read, the question's trace. A trace that is missing, unreadable or of an unknown shape is ignored
and the record alone decides. The first class that applies wins:

- ``unknown column``: no result came out, and the record's error, the last query the trace shows
  executed, or every candidate query failed with ``unknown_column`` / ``unknown_table``;
- ``other SQL error``: no result came out, and the same holds for any other executor error
  (binder, parse, timeout, ...);
- ``wrong filter value``: the final result (the record's, else the last query executed) is empty, a
  single 0 from COUNT/SUM or a single NULL from an aggregate (no row passed the filter); or, on
  Spider, the predicted query filters on a string literal the gold query never uses;
- ``repeated repair``: no answer, and the trace shows the repair loop writing a query already tried;
- ``no answer``: no values came out (the loop gave up or judged the question unanswerable, the reply
  held no SQL, the strategy crashed);
- ``wrong join``: Spider only: the predicted query joins tables, and the gold query reads another set;
- ``verified but wrong``: the strategy's checker verified the answer (the baseline's flag only says
  that its query ran, so a baseline answer never lands here);
- ``wrong result``: anything else.

"no answer" is checked after the classes that say *why* no answer came out; first, it would
swallow them.

>>> from autotqa.evaluation.results import ResultRecord
>>> r = ResultRecord(id="q", strategy="baseline", dataset="wtq", question="?",
...                  prediction={"sql": "SELECT n FROM t WHERE a = 'x'", "columns": ["n"], "n_rows": 0})
>>> classify(r, None)
'wrong filter value'
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import sqlglot
from sqlglot import exp

from ..catalog.naming import safe_table_name
from .results import ResultRecord

CLASSES = ("unknown column", "other SQL error", "wrong filter value", "repeated repair", "no answer",
           "wrong join", "verified but wrong", "wrong result")

UNKNOWN_NAME = frozenset({"unknown_column", "unknown_table"})
#: Record errors that no executor raised: nothing ran, or the strategy stopped by itself.
NOT_EXECUTION = frozenset({"unanswerable", "no_result", "no_sql", "crash"})
#: Strategies whose ``verified`` flag is no verdict (the baseline sets it when its query ran).
UNJUDGED = frozenset({"baseline"})
#: A trace larger than this is not read (a report must not stall on one odd file).
MAX_TRACE_BYTES = 20_000_000

_ERROR_PREFIX = re.compile(r"^([a-z_]+): ")
_BASELINE_ERROR = re.compile(r"^ERROR \(([a-z_]+)\)")
_ROW_COUNT = re.compile(r"\((\d+) rows?(?: in total|\))")
_COUNTING = re.compile(r"\b(count|sum)\s*\(", re.IGNORECASE)
_AGGREGATE = re.compile(r"\b(count|sum|avg|min|max)\s*\(", re.IGNORECASE)


@dataclass(frozen=True)
class Execution:
    """One query as the trace shows it ran; ``n_rows`` is None where the trace does not say."""

    step: str
    ok: bool
    error_type: str | None = None
    rows: tuple[tuple[Any, ...], ...] = ()
    n_rows: int | None = None
    code: str = ""


@dataclass(frozen=True)
class TraceFacts:
    """What classification needs from a trace, whatever shape it came in."""

    shape: Literal["board", "baseline"]
    executions: tuple[Execution, ...] = ()
    #: Steps of the candidate queries (``c1``, ``c2``, ...), in the order they were written.
    candidates: tuple[str, ...] = ()
    repeated: bool = False


def trace_facts(raw: Any) -> TraceFacts | None:
    """Facts of a trace: the agents' board entries (a list, or the ``--trace`` object's ``entries``),
    or the baseline's list of calls. Anything else is None.

    >>> trace_facts([{"agent": "baseline", "sql": "SELECT 1", "result": "ERROR (parse): bad"}])
    TraceFacts(shape='baseline', executions=(Execution(step='', ok=False, error_type='parse', rows=(), n_rows=None, code='SELECT 1'),), candidates=(), repeated=False)
    >>> trace_facts({"unexpected": 1}) is None
    True
    """
    if isinstance(raw, dict) and isinstance(raw.get("entries"), list):
        raw = raw["entries"]
    if not isinstance(raw, list) or not raw or not all(isinstance(e, dict) for e in raw):
        return None
    if all("kind" in e for e in raw):
        return _board_facts(raw)
    if all("agent" in e for e in raw):
        return _baseline_facts(raw)
    return None


def _board_facts(entries: list[dict[str, Any]]) -> TraceFacts:
    executions: list[Execution] = []
    candidates: list[str] = []
    repeated = False
    for e in entries:
        data = e.get("data") if isinstance(e.get("data"), dict) else {}
        kind, step, content = e.get("kind"), str(e.get("step") or ""), str(e.get("content") or "")
        if kind == "code" and data.get("mode") == "candidate" and step not in candidates:
            candidates.append(step)
        elif kind in ("result", "error") and e.get("role") == "executor":
            executions.append(_execution(step, data.get("result"), content))
        elif kind == "error" and (data.get("repeated") is True or content.startswith("repeated:")):
            repeated = True
    return TraceFacts("board", tuple(executions), tuple(candidates), repeated)


def _execution(step: str, result: Any, content: str) -> Execution:
    if not isinstance(result, dict):  # an entry without its payload: its text still names the error
        m = _ERROR_PREFIX.match(content)
        return Execution(step, ok=m is None, error_type=m.group(1) if m else None)
    rows = result.get("rows")
    n_rows = result.get("n_rows")
    return Execution(
        step, ok=result.get("ok") is True,
        error_type=result.get("error_type") if isinstance(result.get("error_type"), str) else None,
        rows=tuple(tuple(r) for r in rows if isinstance(r, list)) if isinstance(rows, list) else (),
        n_rows=n_rows if isinstance(n_rows, int) and not isinstance(n_rows, bool) else None,
        code=result.get("code") if isinstance(result.get("code"), str) else "")


def _baseline_facts(calls: list[dict[str, Any]]) -> TraceFacts:
    executions: list[Execution] = []
    for call in calls:
        result, sql = call.get("result"), call.get("sql")
        if not isinstance(result, str):
            continue  # no query in the reply: nothing ran
        err = _BASELINE_ERROR.match(result)
        count = _ROW_COUNT.search(result)
        executions.append(Execution("", ok=err is None, error_type=err.group(1) if err else None,
                                    n_rows=int(count.group(1)) if count else None,
                                    code=sql if isinstance(sql, str) else ""))
    return TraceFacts("baseline", tuple(executions))


def load_trace(run_dir: str | Path, record: ResultRecord) -> TraceFacts | None:
    """The facts of a record's trace file, or None when it is absent, outside the run folder,
    too large or not a trace."""
    if not record.trace_path:
        return None
    try:
        root = Path(run_dir).resolve()
        path = (root / record.trace_path).resolve()
        if not path.is_relative_to(root) or not path.is_file() or path.stat().st_size > MAX_TRACE_BYTES:
            return None
        return trace_facts(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, RecursionError):  # ValueError covers bad JSON and bad UTF-8
        return None


def _error_type(record: ResultRecord) -> str | None:
    m = _ERROR_PREFIX.match(record.error or "")
    return m.group(1) if m else None


def _candidate_outcomes(facts: TraceFacts) -> list[Execution]:
    """The last execution of each candidate step that ran (a repair may rerun a candidate)."""
    last = {x.step: x for x in facts.executions if x.step in facts.candidates}
    return [last[s] for s in facts.candidates if s in last]


def _failed_with(record: ResultRecord, facts: TraceFacts | None, types: frozenset[str] | None) -> bool:
    """The record's error, the last execution or every candidate failed with one of ``types``
    (None: with any executor error)."""
    def hit(error_type: str | None) -> bool:
        return error_type is not None and (error_type in types if types is not None
                                           else error_type not in NOT_EXECUTION)

    if hit(_error_type(record)):
        return True
    if facts is None or not facts.executions:
        return False
    last = facts.executions[-1]
    if not last.ok and hit(last.error_type):
        return True
    outcomes = _candidate_outcomes(facts)
    return bool(outcomes) and all(not x.ok and hit(x.error_type) for x in outcomes)


def _final_result(record: ResultRecord, facts: TraceFacts | None) -> Execution | None:
    p = record.prediction
    if record.error is None and isinstance(p.get("sql"), str):
        rows = p.get("rows") if isinstance(p.get("rows"), list) else []
        n_rows = p.get("n_rows")
        return Execution("", ok=True, rows=tuple(tuple(r) for r in rows if isinstance(r, list)),
                         n_rows=n_rows if isinstance(n_rows, int) else None, code=p["sql"])
    if facts is not None and facts.executions and facts.executions[-1].ok:
        return facts.executions[-1]
    return None


def _nothing_passed(result: Execution) -> bool:
    """An empty result, or one cell that an aggregate over no rows returns."""
    if result.n_rows == 0:
        return True
    if len(result.rows) != 1 or len(result.rows[0]) != 1:
        return False
    value = result.rows[0][0]
    if value is None:
        return bool(_AGGREGATE.search(result.code))
    return (isinstance(value, int | float) and not isinstance(value, bool) and value == 0
            and bool(_COUNTING.search(result.code)))


def _parse(sql: str, dialect: str) -> exp.Expression | None:
    try:
        return sqlglot.parse_one(sql, read=dialect)
    except (sqlglot.errors.SqlglotError, RecursionError):
        return None


def _filter_literals(tree: exp.Expression) -> set[str]:
    """String literals compared in WHERE, HAVING or a join condition, lowercased, LIKE wildcards off."""
    return {lit.this.strip("%").strip().lower() for lit in tree.find_all(exp.Literal)
            if lit.is_string and lit.find_ancestor(exp.Where, exp.Having, exp.Join) is not None}


def _tables(tree: exp.Expression) -> set[str]:
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    return {safe_table_name(t.name) for t in tree.find_all(exp.Table)
            if t.name and t.name.lower() not in ctes}


def _spider_trees(record: ResultRecord) -> tuple[exp.Expression, exp.Expression] | None:
    pred, gold = record.prediction.get("sql"), record.gold.get("sql")
    if record.dataset != "spider" or not isinstance(pred, str) or not isinstance(gold, str):
        return None
    pred_tree, gold_tree = _parse(pred, "duckdb"), _parse(gold, "sqlite")
    return (pred_tree, gold_tree) if pred_tree is not None and gold_tree is not None else None


def _wrong_literal(trees: tuple[exp.Expression, exp.Expression] | None) -> bool:
    return trees is not None and bool(_filter_literals(trees[0]) - _filter_literals(trees[1]))


def _wrong_join(trees: tuple[exp.Expression, exp.Expression] | None) -> bool:
    if trees is None:
        return False
    pred, gold = trees
    joins = any(True for _ in pred.find_all(exp.Join)) or len(_tables(pred)) > 1
    return joins and _tables(pred) != _tables(gold)


def classify(record: ResultRecord, facts: TraceFacts | None) -> str:
    """The error class of a wrong record (see the module docstring for the rules, in order)."""
    p = record.prediction
    no_result = record.error is not None or not p.get("sql")
    answered = record.error is None and bool(p.get("values") or p.get("rows"))
    if no_result and _failed_with(record, facts, UNKNOWN_NAME):
        return "unknown column"
    if no_result and _failed_with(record, facts, None):
        return "other SQL error"
    final = _final_result(record, facts)
    trees = _spider_trees(record) if record.error is None else None
    if (final is not None and _nothing_passed(final)) or _wrong_literal(trees):
        return "wrong filter value"
    if not answered and facts is not None and facts.repeated:
        return "repeated repair"
    if not answered:
        return "no answer"
    if _wrong_join(trees):
        return "wrong join"
    judged = record.strategy not in UNJUDGED and (facts is None or facts.shape != "baseline")
    if p.get("verified") is True and judged:
        return "verified but wrong"
    return "wrong result"


def classify_run(run_dir: str | Path | None,
                 runs: Mapping[str, Sequence[ResultRecord]]) -> dict[str, dict[str, str]]:
    """Strategy -> question id -> error class, for every wrong record; traces are read from
    ``run_dir`` (None: from the records alone)."""
    return {name: {r.id: classify(r, load_trace(run_dir, r) if run_dir is not None else None)
                   for r in recs if not r.correct}
            for name, recs in runs.items()}
