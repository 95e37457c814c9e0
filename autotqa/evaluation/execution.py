"""Execution accuracy for Spider-style questions.

The gold query runs on the **original** SQLite file with :mod:`sqlite3` (read-only); the prediction is
whatever rows autotqa's own executor returned on its catalog of that file. They are compared the way
Spider's test-suite evaluation does, loosely:

* rows are tuples; the results are compared as **multisets** of rows, or as lists when the gold query
  has a top-level ``ORDER BY`` (then row order matters);
* cells compare by value, not type: ``3 == 3.0 == Decimal("3")``; numbers (and strings that are
  numbers) are equal within ``rel 1e-6`` (``abs 1e-9`` near zero); ``NULL`` equals ``NULL``;
  ISO timestamps match with ``T`` or a space and a zero time part equals a bare date; other strings
  compare exactly;
* column order does not matter (as in the test suite): when the identity order fails, every
  permutation of the predicted columns whose per-column values fit the gold's is tried (up to
  8 columns); column *names* never matter. The number of columns must be equal.

>>> results_match([(1, "a"), (2, "b")], [["b", 2.0], ["a", 1]], ordered=False)
True
>>> results_match([(1,), (2,)], [[2], [1]], ordered=True)
False
"""

from __future__ import annotations

import datetime as _dt
import decimal
import itertools
import math
import re
import sqlite3
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

REL_TOL = 1e-6
ABS_TOL = 1e-9
MAX_PERMUTED_COLUMNS = 8
_TS = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[ T](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?))?$")
_NUM = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")


def _cell(value: Any) -> tuple[int, Any]:
    """A comparable form of one cell: (0, None) | (1, float) | (2, str) | (3, repr)."""
    if value is None:
        return (0, None)
    if isinstance(value, bool):
        return (1, float(value))
    if isinstance(value, int | float | decimal.Decimal):
        f = float(value)
        return (0, None) if math.isnan(f) else (1, f)
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        value = value.isoformat()
    if isinstance(value, bytes):
        value = value.hex()
    if isinstance(value, str):
        if _NUM.match(value):
            return (1, float(value))
        m = _TS.match(value)
        if m:
            date, time = m.groups()
            if time is None or re.fullmatch(r"00:00(:00(\.0+)?)?", time):
                return (2, date)
            return (2, f"{date} {time}")
        return (2, value)
    return (3, repr(value))


def _cell_eq(a: tuple[int, Any], b: tuple[int, Any]) -> bool:
    if a[0] != b[0]:
        return False
    if a[0] == 1:
        return math.isclose(a[1], b[1], rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return bool(a[1] == b[1])


def _sort_key(cell: tuple[int, Any]) -> tuple[int, Any]:
    # Round numbers for sorting only, so two near-equal values land next to each other.
    if cell[0] == 1:
        return (1, float(f"{cell[1]:.5g}"))
    if cell[0] == 0:
        return (0, "")
    return (cell[0], str(cell[1]))


def _rows_eq(gold: list[tuple[tuple[int, Any], ...]], pred: list[tuple[tuple[int, Any], ...]],
             ordered: bool) -> bool:
    if len(gold) != len(pred):
        return False
    if not ordered:
        gold = sorted(gold, key=lambda r: tuple(_sort_key(c) for c in r))
        pred = sorted(pred, key=lambda r: tuple(_sort_key(c) for c in r))
    return all(len(g) == len(p) and all(_cell_eq(x, y) for x, y in zip(g, p)) for g, p in zip(gold, pred))


def _column_signature(rows: list[tuple[tuple[int, Any], ...]], col: int) -> Counter[Any]:
    return Counter(_sort_key(r[col]) for r in rows)


def results_match(gold_rows: Sequence[Sequence[Any]], pred_rows: Sequence[Sequence[Any]], *,
                  ordered: bool) -> bool:
    """True when the predicted rows equal the gold rows under the rules of this module.

    >>> results_match([(None, 3)], [(None, 3.0000000001)], ordered=False)
    True
    >>> results_match([(1, 2)], [(1,)], ordered=False)
    False
    """
    gold = [tuple(_cell(v) for v in row) for row in gold_rows]
    pred = [tuple(_cell(v) for v in row) for row in pred_rows]
    if len(gold) != len(pred):
        return False
    if not gold:
        return True
    width = len(gold[0])
    if any(len(r) != width for r in gold) or any(len(r) != width for r in pred):
        return False
    if _rows_eq(gold, pred, ordered):
        return True
    if width < 2 or width > MAX_PERMUTED_COLUMNS:
        return False
    gold_sigs = [_column_signature(gold, c) for c in range(width)]
    pred_sigs = [_column_signature(pred, c) for c in range(width)]
    # For gold column i, the predicted columns whose values could be the same column.
    options = [[j for j in range(width) if pred_sigs[j] == gold_sigs[i]] for i in range(width)]
    if any(not o for o in options):
        return False
    for perm in itertools.product(*options):
        if len(set(perm)) != width or list(perm) == list(range(width)):
            continue
        permuted = [tuple(r[j] for j in perm) for r in pred]
        if _rows_eq(gold, permuted, ordered):
            return True
    return False


def has_top_level_order_by(sql: str) -> bool:
    """True when the outermost query of ``sql`` sorts its result (so row order is part of the answer).

    >>> has_top_level_order_by("SELECT a FROM t ORDER BY a LIMIT 1")
    True
    >>> has_top_level_order_by("SELECT a FROM (SELECT a FROM t ORDER BY a)")
    False
    """
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except sqlglot.errors.ParseError:
        return bool(re.search(r"\border\s+by\b", sql, re.I))
    return tree.args.get("order") is not None if isinstance(tree, exp.Query) else False


def run_gold(db_path: str | Path, sql: str, timeout_s: float = 30.0) -> list[tuple[Any, ...]]:
    """Run the gold query on the original SQLite file, read-only, and return all rows.

    Raises :class:`sqlite3.Error` when the gold query fails (the item is then reported as a gold error,
    never as a wrong prediction).
    """
    conn = _connect_ro(db_path, timeout_s)
    try:
        return [tuple(r) for r in conn.execute(sql).fetchall()]
    finally:
        conn.close()


#: What a query of untrusted text may do on the source file: read tables and call functions, nothing
#: else (no ATTACH, PRAGMA, writes or schema changes), on top of the read-only connection.
_READ_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                           sqlite3.SQLITE_RECURSIVE})


def _only_reads(action: int, *_args: object) -> int:
    return sqlite3.SQLITE_OK if action in _READ_ACTIONS else sqlite3.SQLITE_DENY


def run_untrusted(db_path: str | Path, sql: str, *, timeout_s: float = 10.0,
                  max_rows: int = 100_000) -> list[tuple[Any, ...]]:
    """Run model-written SQL on the original SQLite file: read-only, reads only, bounded.

    Beyond :func:`run_gold`'s read-only connection and deadline, an authorizer refuses every action
    but reading (so ``ATTACH`` cannot create a file), strings and blobs are capped at 10 MB, and
    more than ``max_rows`` rows is an error rather than an unbounded fetch.
    Raises :class:`sqlite3.Error` on any refusal or failure.
    """
    conn = _connect_ro(db_path, timeout_s)
    conn.set_authorizer(_only_reads)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 10_000_000)
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    try:
        rows = conn.execute(sql).fetchmany(max_rows + 1)
    finally:
        conn.close()
    if len(rows) > max_rows:
        raise sqlite3.DataError(f"more than {max_rows} rows")
    return [tuple(r) for r in rows]


def _connect_ro(db_path: str | Path, timeout_s: float) -> sqlite3.Connection:
    """A read-only connection whose queries stop (``interrupted``) once ``timeout_s`` has passed."""
    uri = f"file:{Path(db_path).resolve()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=timeout_s)
    conn.text_factory = lambda b: b.decode("utf-8", errors="replace")
    conn.set_progress_handler(_Deadline(timeout_s).expired, 10_000)
    return conn


class _Deadline:
    def __init__(self, seconds: float) -> None:
        import time
        self._time = time.monotonic
        self._end = time.monotonic() + seconds

    def expired(self) -> int:
        return 1 if self._time() > self._end else 0
