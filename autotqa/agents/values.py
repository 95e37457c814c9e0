"""Answer values come from result rows by rule, never from the model's retyping.

A 0.5B model copies numbers badly; the rows the Executor returned are exact. The model writes the
sentence only, and the sentence is kept only when it agrees with the values.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ..executors.base import ExecutionResult

_SINGLE = re.compile(r"^\s*(how (many|much)|what (is|was|are|were) the (total|average|mean|sum|number|count|"
                     r"maximum|minimum|max|min|highest|lowest|largest|smallest|median)|count )", re.I)
_GROUPED = re.compile(r"\b(per|each|every|by|for all|breakdown|list|grouped)\b", re.I)
_WHICH = re.compile(r"^\s*(which|who|what|name|list|show|give)\b", re.I)
_HOW = re.compile(r"^\s*(how (many|much|long|old)|what (is|was) the (total|average|mean|sum|number|count))", re.I)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def expects_single_value(question: str) -> bool:
    """Questions like "How many orders..." want one number, unless they ask per group.

    >>> expects_single_value("How many orders were delivered?")
    True
    >>> expects_single_value("How many orders per status?")
    False
    """
    return bool(_SINGLE.search(question)) and not _GROUPED.search(question)


def tidy(value: Any) -> Any:
    """Round float noise away (``94.87999999999`` -> ``94.88``); exact values pass unchanged.

    >>> tidy(94.87999999999), tidy(3), tidy("x")
    (94.88, 3, 'x')
    """
    if isinstance(value, float) and math.isfinite(value):
        return round(value, 6)
    return value


def extract_values(question: str, result: ExecutionResult) -> list[Any]:
    """The answer values of a result, by the shape of the result and the kind of question.

    - one cell: that value; one column: the column;
    - one row of several cells: "how many/much" questions keep the numbers, "which/who/what"
      questions keep the labels (the number is usually the ORDER BY key), otherwise the row;
    - several rows and columns: the single label column if there is exactly one, else the first.

    >>> r = ExecutionResult(ok=True, columns=["name", "n"], rows=[["Ann", 3]], n_rows=1)
    >>> extract_values("Which customer placed the most orders?", r)
    ['Ann']
    >>> extract_values("How many orders did the top customer place?", r)
    [3]
    """
    if not result.ok or not result.rows:
        return []
    rows = result.rows
    if len(rows[0]) == 1:
        return [tidy(r[0]) for r in rows]
    if len(rows) == 1:
        row = [tidy(v) for v in rows[0]]
        numbers = [v for v in row if _is_number(v)]
        labels = [v for v in row if not _is_number(v) and v is not None]
        if _HOW.search(question) and numbers:
            return numbers
        if _WHICH.search(question) and labels:
            return labels
        return row
    label_cols = [i for i in range(len(rows[0])) if not any(_is_number(r[i]) for r in rows if r[i] is not None)]
    col = label_cols[0] if len(label_cols) == 1 else 0
    return [tidy(r[col]) for r in rows]


def _spellings(value: Any) -> set[str]:
    if _is_number(value):
        f = float(value)
        out = {str(value), f"{f:,.2f}", f"{f:.2f}", f"{f:.1f}", f"{f:g}", f"{f:,g}"}
        if f.is_integer():
            out |= {str(int(f)), f"{int(f):,}"}
        return out
    return {str(value).lower()}


def mentions_all(sentence: str, values: list[Any]) -> bool:
    """Does the sentence state every value (numbers in any usual spelling, text case-insensitively)?"""
    text = sentence.lower()
    return all(any(s.lower() in text for s in _spellings(v)) for v in values)


def fallback_sentence(values: list[Any], total: int) -> str:
    """A plain sentence built only from the values, for when the model's sentence disagrees."""
    if not values:
        return "The query returned no rows."
    shown = ", ".join(str(v) for v in values[:10])
    more = f" (and {total - 10} more)" if total > 10 else ""
    return f"The answer is {shown}{more}."


def answer_sentence(note: str, values: list[Any], total: int) -> str:
    """The model's sentence when it states the values correctly, otherwise the plain one."""
    note = " ".join(note.split())
    if note and len(values) <= 5 and mentions_all(note, values):
        return note
    return fallback_sentence(values, total)
