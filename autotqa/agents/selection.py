"""Execution-guided selection among candidate queries (self-consistency, as in MCS-SQL / CHESS).

The Engineer samples several queries for one question from the same warm prefix; each is run, and
the results -- not the texts -- are compared: queries that return the same rows agree. The group
that wins is the one that passes the Critic's deterministic checks, with the most candidates behind
it, then the one holding the greedy candidate (the single-shot answer), then the earliest. Agreement
of two or more independent samples on a result that passes the checks is what "verified" means
here; anything less goes back to the loop (escalation) or comes out unverified.

Pure functions over :class:`~autotqa.executors.base.ExecutionResult`: no model, no I/O.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..executors.base import ExecutionResult


@dataclass(frozen=True)
class Candidate:
    """One sampled query and what running it gave. ``index`` 0 is the greedy sample."""

    index: int
    code: str
    result: ExecutionResult


@dataclass(frozen=True)
class Group:
    """Candidates whose results are the same rows."""

    key: tuple[Any, ...]
    members: tuple[Candidate, ...]
    passes: bool
    note: str = ""

    @property
    def support(self) -> int:
        return len(self.members)

    @property
    def best(self) -> Candidate:
        """The representative: the earliest member (the greedy one when it is there)."""
        return min(self.members, key=lambda c: c.index)


@dataclass(frozen=True)
class Selection:
    """The groups in rank order; ``chosen`` is the first, or None when no candidate returned rows."""

    groups: tuple[Group, ...]
    failed: tuple[Candidate, ...] = field(default=())

    @property
    def candidates(self) -> list[Candidate]:
        """Every candidate voted on: the groups' members, then the failed ones."""
        return [c for g in self.groups for c in g.members] + list(self.failed)

    @property
    def chosen(self) -> Group | None:
        return self.groups[0] if self.groups else None

    @property
    def agreed(self) -> bool:
        """At least two candidates agree on a result that passes the checks, and no other group
        that passes has as many behind it."""
        top = self.chosen
        if top is None or not top.passes or top.support < 2:
            return False
        rivals = [g for g in self.groups[1:] if g.passes and g.support >= top.support]
        return not rivals


def _norm_cell(value: Any) -> Any:
    """A comparable form of a cell: numbers as rounded floats, text stripped and case-folded.

    >>> _norm_cell(3) == _norm_cell(3.0000000001) == _norm_cell(decimal.Decimal("3"))
    True
    >>> _norm_cell(" Oslo ") == _norm_cell("oslo")
    True
    """
    if value is None:
        return (0, "")
    if isinstance(value, bool):
        return (1, float(value))
    if isinstance(value, int | float | decimal.Decimal):
        f = float(value)
        if math.isnan(f):
            return (0, "")
        return (1, float(f"{f:.6g}"))
    if isinstance(value, _dt.date | _dt.datetime | _dt.time):
        return (2, value.isoformat())
    return (2, str(value).strip().casefold())


def result_key(result: ExecutionResult) -> tuple[Any, ...]:
    """What makes two results the same answer: the multiset of rows, each row a multiset of cells
    (column order and names do not matter; row order does not either).

    >>> a = ExecutionResult(ok=True, columns=["n", "c"], rows=[[1, "x"], [2, "y"]], n_rows=2)
    >>> b = ExecutionResult(ok=True, columns=["c", "count"], rows=[["y", 2.0], ["x", 1]], n_rows=2)
    >>> result_key(a) == result_key(b)
    True
    """
    rows = [tuple(sorted((_norm_cell(v) for v in row), key=repr)) for row in result.rows]
    return (result.n_rows, tuple(sorted(rows, key=repr)))


Check = Callable[[ExecutionResult], str | None]


def select(candidates: Sequence[Candidate], check: Check) -> Selection:
    """Group candidates by result and rank the groups.

    ``check`` is the Critic's deterministic check: None when a result looks like an answer, else
    the reason it does not (empty, only NULL, many rows for "how many", ...).

    >>> ok = lambda rows, code: ExecutionResult(ok=True, columns=["v"], rows=rows, n_rows=len(rows), code=code)
    >>> cands = [Candidate(0, "q0", ok([[3]], "q0")), Candidate(1, "q1", ok([[4]], "q1")),
    ...          Candidate(2, "q2", ok([[4]], "q2")), Candidate(3, "q3", ExecutionResult(ok=False))]
    >>> sel = select(cands, lambda r: None)
    >>> [c.index for c in sel.chosen.members], sel.agreed, [c.index for c in sel.failed]
    ([1, 2], True, [3])
    """
    groups: dict[tuple[Any, ...], list[Candidate]] = {}
    failed: list[Candidate] = []
    for cand in candidates:
        res = cand.result
        if not res.ok or res.n_rows == 0:
            failed.append(cand)
            continue
        groups.setdefault(result_key(res), []).append(cand)
    built = []
    for key, members in groups.items():
        note = check(members[0].result)
        built.append(Group(key=key, members=tuple(members), passes=note is None, note=note or ""))
    built.sort(key=lambda g: (not g.passes, -g.support, min(c.index for c in g.members)))
    return Selection(groups=tuple(built), failed=tuple(failed))


def candidate_summary(selection: Selection) -> Mapping[str, Any]:
    """A small JSON-friendly record of the vote, for the board and traces."""
    return {"groups": [{"support": g.support, "passes": g.passes, "note": g.note,
                        "members": [c.index for c in g.members], "n_rows": g.best.result.n_rows}
                       for g in selection.groups],
            "failed": [c.index for c in selection.failed], "agreed": selection.agreed}
