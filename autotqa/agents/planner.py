"""The Planner: a short ordered plan, each step naming tables, columns and the operation.

The model's plan is checked against the catalog before anyone acts on it: unknown tables and
columns are dropped, dependencies may only point backwards. A plan that cannot be parsed is a model
mistake, recorded on the board, and replaced by the one-step plan "answer the question" — which is
the right plan for most questions anyway.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, Field

from ..errors import OutputParseError
from .base import RunContext, render_prompt
from ..catalog.linking import link_tables


_CODE = re.compile(r"^\s*(SELECT|WITH|FROM)\b|```", re.I)


class PlanStep(BaseModel):
    goal: str = Field(max_length=90)
    tables: list[str] = Field(max_length=4)
    columns: list[str] = Field(default_factory=list, max_length=8)
    lang: Literal["sql", "pandas"] = "sql"
    after: list[int] = Field(default_factory=list, max_length=3)


class Plan(BaseModel):
    steps: list[PlanStep] = Field(min_length=1, max_length=3)


class Step(BaseModel):
    """A validated plan step as the orchestrator runs it."""

    id: str
    goal: str
    tables: list[str] = Field(default_factory=list)
    columns: list[str] = Field(default_factory=list)
    language: Literal["sql", "pandas"] = "sql"
    after: list[str] = Field(default_factory=list)

    def render(self) -> str:
        parts = [f"{self.id}: {self.goal}"]
        if self.tables:
            parts.append(f" (tables: {', '.join(self.tables)}")
            parts.append(f"; columns: {', '.join(self.columns)})" if self.columns else ")")
        if self.language != "sql":
            parts.append(f" [{self.language}]")
        if self.after:
            parts.append(f" after {', '.join(self.after)}")
        return "".join(parts)


def validate_plan(plan: Plan, columns: Mapping[str, Sequence[str]], languages: Sequence[str]) -> list[Step]:
    """Keep only what exists; dependencies must point to earlier steps.

    >>> cols = {"orders": ["order_id", "status"]}
    >>> p = Plan(steps=[PlanStep(goal="count", tables=["orders", "nope"], columns=["status", "x"],
    ...                          lang="pandas", after=[1])])
    >>> validate_plan(p, cols, ["sql"])[0].render()
    's1: count (tables: orders; columns: status)'
    """
    lower = {t.lower(): t for t in columns}
    steps: list[Step] = []
    ids: dict[int, str] = {}  # the model's step number -> our step id (repeats map to the first)
    for i, raw in enumerate(plan.steps, start=1):
        goal = " ".join(raw.goal.split())
        if not goal or _CODE.match(goal):  # code in a goal is copied verbatim by the Engineer
            goal = "answer the question"
        same = next((s for s in steps if s.goal == goal), None)
        if same is not None:  # a repeated step adds nothing but calls
            ids[i] = same.id
            continue
        tables = list(dict.fromkeys(lower[t.lower()] for t in raw.tables if t.lower() in lower))
        known = {c.lower(): c for t in (tables or columns) for c in columns[t]}
        cols = list(dict.fromkeys(known[c.split(".")[-1].lower()] for c in raw.columns
                                  if c.split(".")[-1].lower() in known))
        after = list(dict.fromkeys(ids[j] for j in raw.after if 1 <= j < i))
        ids[i] = f"s{len(steps) + 1}"
        steps.append(Step(id=ids[i], goal=goal, tables=tables, columns=cols,
                          language=raw.lang if raw.lang in languages else "sql", after=after))
    return steps


class PlannerAgent:
    role = "planner"

    def __init__(self, columns: Mapping[str, Sequence[str]], languages: Sequence[str] = ("sql",)) -> None:
        self.columns = columns
        self.languages = tuple(languages)

    def fallback(self, question: str) -> list[Step]:
        return [Step(id="s1", goal="answer the question", tables=link_tables(question, self.columns))]

    async def run(self, ctx: RunContext, *, replan: bool = False) -> list[Step]:
        req = ctx.request("planner", render_prompt("planner", replan=replan), output_model=Plan,
                          max_tokens=200, step_id=f"plan{ctx.round}")
        try:
            steps = validate_plan((await ctx.generate(req)).parsed, self.columns, self.languages)
        except OutputParseError as err:
            ctx.board.add("error", "planner", f"the plan could not be read: {err.message[:200]}",
                          round=ctx.round, data={"raw": err.raw[:500]})
            steps = self.fallback(ctx.question)
        ctx.board.add("plan", "planner", "\n".join(s.render() for s in steps), round=ctx.round,
                      data={"steps": [s.model_dump() for s in steps], "replan": replan})
        return steps
