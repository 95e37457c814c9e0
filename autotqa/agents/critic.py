"""The Critic: accept, revise (back to the Engineer) or replan (back to the Planner).

Deterministic checks come first and cost no LLM call: an empty or all-NULL result, a filtered
count of 0, or many rows where the question asks for one number, is sent back with a precise note. Only a result that
passes them is shown to the model, which then writes the verdict and one short sentence; the
answer values themselves are taken from the rows (``values.py``).
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, Field

from ..errors import OutputParseError
from ..executors.base import ExecutionResult
from .base import RunContext, render_prompt
from .planner import Step
from ..catalog.linking import key_like
from ..catalog.words import stem
from .values import expects_single_value

_WHICH = re.compile(r"^\s*(which|who|what)\b", re.I)

VerdictKind = Literal["accept", "revise", "replan"]


class Verdict(BaseModel):
    verdict: VerdictKind
    note: str = Field(max_length=110)
    #: A concrete corrected query, when a deterministic check knows one (never asked of the model).
    fix: str | None = Field(default=None, exclude=True)


def _ids_instead_of_names(question: str, result: ExecutionResult,
                          columns: Mapping[str, Sequence[str]]) -> Verdict | None:
    """"Which customer ..." answered with ``customer_id`` only: select the customer's name instead.

    A small model keeps the id even when told, so the verdict carries the rewritten query too.
    """
    if not _WHICH.search(question) or not result.rows:
        return None
    if any(isinstance(v, str) for v in result.rows[0]):
        return None
    for col in result.columns:
        if not key_like(col) or col.lower() == "id":
            continue
        entity = stem(col.lower().removesuffix("_id"))
        for table, cols in columns.items():
            label = next((c for c in cols if "name" in c.lower() or "title" in c.lower()), None)
            if stem(table) == entity and label:
                return Verdict(verdict="revise", note=f"the question asks which {entity}: select "
                               f"{table}.{label}, not {col}", fix=swap_id_for_label(result.code, col, table, label))
    return None


def swap_id_for_label(sql: str, id_col: str, table: str, label: str) -> str | None:
    """Replace the selected ``id_col`` by ``table.label`` (joining ``table`` when absent).

    >>> swap_id_for_label("SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id "
    ...                   "ORDER BY n DESC LIMIT 1", "customer_id", "customers", "name")
    'SELECT customers.name, COUNT(*) AS n FROM orders JOIN customers USING (customer_id) GROUP BY customer_id, customers.name ORDER BY n DESC LIMIT 1'
    """
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.SqlglotError:
        return None
    select = tree if isinstance(tree, exp.Select) else tree.find(exp.Select)
    if select is None:
        return None
    source = next((t for t in select.find_all(exp.Table) if t.name.lower() == table.lower()), None)
    qualifier = source.alias_or_name if source is not None else table
    label_col = exp.column(label, table=qualifier)
    replaced = False
    items = []
    for item in select.expressions:
        inner = item.this if isinstance(item, exp.Alias) else item
        if isinstance(inner, exp.Column) and inner.name.lower() == id_col.lower() and not replaced:
            items.append(label_col.copy())
            replaced = True
        else:
            items.append(item)
    if not replaced:
        return None
    select.set("expressions", items)
    if source is None:
        select.join(exp.to_table(table), join_type="", using=[id_col], copy=False)
    group = select.args.get("group")
    if group is not None:
        group.append("expressions", label_col.copy())
    return tree.sql(dialect="duckdb")


def zero_count(result: ExecutionResult) -> bool:
    """One row, one column, 0, from a COUNT under a WHERE: no row passed the filter — as empty as an
    empty result, and usually the same cause (a filter value spelled unlike the data).

    >>> zero_count(ExecutionResult(ok=True, columns=["n"], rows=[[0]], n_rows=1,
    ...                             code="SELECT count(*) AS n FROM t WHERE city = 'oslo'"))
    True
    >>> zero_count(ExecutionResult(ok=True, columns=["n"], rows=[[0]], n_rows=1, code="SELECT count(*) AS n FROM t"))
    False
    """
    if result.n_rows != 1 or len(result.columns) != 1 or not result.rows or result.rows[0] != [0]:
        return False
    try:
        tree = sqlglot.parse_one(result.code or "", read="duckdb")
    except sqlglot.errors.SqlglotError:
        return False
    select = tree if isinstance(tree, exp.Select) else tree.find(exp.Select)
    return (select is not None and len(select.expressions) == 1
            and select.expressions[0].find(exp.Count) is not None and tree.find(exp.Where) is not None)


def check_result(question: str, result: ExecutionResult,
                 columns: Mapping[str, Sequence[str]] | None = None) -> Verdict | None:
    """A verdict that needs no model, or None when the result looks like an answer.

    >>> r = ExecutionResult(ok=True, columns=["n"], rows=[], n_rows=0)
    >>> check_result("How many orders?", r).verdict
    'revise'
    """
    if not result.ok:
        return Verdict(verdict="revise", note=f"the code failed: {result.error_type}: {result.error}")
    if result.n_rows == 0:
        return Verdict(verdict="revise", note="the result is empty; check filter values against the "
                                              "sample values (exact spelling and case) and the joins")
    if all(v is None for row in result.rows for v in row):
        return Verdict(verdict="revise", note="the result is only NULL; check the columns and filters")
    if zero_count(result):
        # A true zero survives: it stays the best supported result, returned unverified.
        return Verdict(verdict="revise", note="the count is 0: no row passed the filter; check filter values "
                                              "against the sample values (spelling, case)")
    if expects_single_value(question) and result.n_rows > 1:
        return Verdict(verdict="revise", note=f"the question asks for one value but the result has "
                                              f"{result.n_rows} rows; aggregate to a single row")
    return _ids_instead_of_names(question, result, columns or {})


class CriticAgent:
    role = "critic"

    def __init__(self, columns: Mapping[str, Sequence[str]] | None = None) -> None:
        self.columns = columns or {}

    async def run(self, ctx: RunContext, step: Step, result: ExecutionResult, *,
                  use_model: bool = True) -> Verdict:
        """Judge the final step's result. Posts a critique for revise/replan; accept posts nothing
        (the orchestrator posts the answer). ``use_model=False`` (budget spent) accepts what passes
        the deterministic checks without a call."""
        verdict = check_result(ctx.question, result, self.columns)
        if verdict is not None:
            self._post(ctx, step, verdict, deterministic=True)
            return verdict
        if not use_model:
            return Verdict(verdict="accept", note="")
        req = ctx.request("critic", render_prompt("critic", step_id=step.id, question=ctx.question),
                          output_model=Verdict, max_tokens=80, step_id=f"critic{ctx.round}")
        try:
            verdict = (await ctx.generate(req)).parsed
        except OutputParseError as err:
            # An unreadable verdict on a result that passed every check: accept it, and record why.
            ctx.board.add("error", "critic", f"the verdict could not be read: {err.message[:200]}",
                          round=ctx.round, step=step.id, data={"raw": err.raw[:500]})
            return Verdict(verdict="accept", note="")
        if verdict.verdict != "accept":
            self._post(ctx, step, verdict, deterministic=False)
        return verdict

    @staticmethod
    def _post(ctx: RunContext, step: Step, verdict: Verdict, *, deterministic: bool) -> None:
        ctx.board.add("critique", "critic", f"{verdict.verdict}: {verdict.note}", round=ctx.round,
                      step=step.id, data={"verdict": verdict.verdict, "deterministic": deterministic})
