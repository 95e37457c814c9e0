"""Turning in-memory data (pandas DataFrames, rows read through Python's sqlite3) into Arrow tables.

Arrow is the hand-over format to DuckDB: typed, columnar, zero-copy for numeric columns. Values that
Arrow cannot type as one column (SQLite's loose typing stores ``1`` and ``'abc'`` side by side; pandas
``object`` columns may mix anything) fall back to text rather than failing the whole load.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import pyarrow as pa

from autotqa.catalog.naming import dedupe_columns

_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError,
                 TypeError, ValueError)


def as_text(value: Any) -> str | None:
    """A value of a mixed column as text; bytes are decoded leniently so no row is lost.

    >>> as_text(b"caf\\xc3\\xa9"), as_text(2.5), as_text(None)
    ('café', '2.5', None)
    """
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _cell_text(value: Any) -> str | None:
    """A pandas cell of a mixed column as text; missing markers (None, NaN, NA, NaT) stay missing."""
    if isinstance(value, str):
        return value
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return None
    return as_text(value)


def sqlite_affinity(declared: str | None) -> pa.DataType:
    """Arrow type for an all-NULL SQLite column, from its declared type (SQLite's affinity rules).

    >>> sqlite_affinity("INTEGER"), sqlite_affinity("varchar(20)"), sqlite_affinity("REAL")
    (DataType(int64), DataType(string), DataType(double))
    """
    d = (declared or "").upper()
    if "INT" in d:
        return pa.int64()
    if any(k in d for k in ("CHAR", "CLOB", "TEXT")):
        return pa.string()
    if any(k in d for k in ("REAL", "FLOA", "DOUB")):
        return pa.float64()
    if any(k in d for k in ("NUMERIC", "DECIMAL")):
        return pa.float64()
    return pa.string()


def values_to_array(values: Sequence[Any], empty_type: pa.DataType = pa.string()) -> pa.Array:
    """One Arrow column from Python values: Arrow's own inference, text when the values disagree.

    >>> values_to_array([1, None, 3]).type
    DataType(int64)
    >>> values_to_array([1, 2.5]).type
    DataType(double)
    >>> values_to_array([1, "abc", b"x"]).to_pylist()
    ['1', 'abc', 'x']
    >>> values_to_array([None, None], pa.int64()).type
    DataType(int64)
    """
    try:
        arr = pa.array(values)
    except _ARROW_ERRORS:
        return pa.array([as_text(v) for v in values], type=pa.string())
    if pa.types.is_null(arr.type):
        return pa.nulls(len(values), type=empty_type)
    return arr


def rows_to_arrow(names: Sequence[object], rows: Sequence[Sequence[Any]],
                  empty_types: Sequence[pa.DataType] | None = None) -> pa.Table:
    """An Arrow table from row tuples (as ``sqlite3`` returns them), one column at a time.

    >>> rows_to_arrow(["id", "id"], [(1, "a"), (2, 3)]).to_pydict()
    {'id': [1, 2], 'id_1': ['a', '3']}
    """
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    types = list(empty_types) if empty_types is not None else [pa.string()] * len(names)
    arrays = [values_to_array(list(c), t) for c, t in zip(cols, types, strict=True)]
    return pa.table(arrays, names=dedupe_columns(names))


def frame_to_arrow(df: pd.DataFrame) -> pa.Table:
    """An Arrow table from a DataFrame without touching the caller's frame.

    A meaningful index (anything but the default 0..n-1 range) becomes ordinary columns, since a
    question may be about it. Column labels become unique strings (see ``dedupe_columns``).

    >>> frame_to_arrow(pd.DataFrame({"a": [1, 2], "b": ["x", 3]})).to_pydict()
    {'a': [1, 2], 'b': ['x', '3']}
    >>> frame_to_arrow(pd.DataFrame({"v": [5]}, index=pd.Index(["k"], name="key"))).column_names
    ['key', 'v']
    """
    if not isinstance(df.index, pd.RangeIndex) or df.index.start != 0 or df.index.step != 1:
        df = df.reset_index()
    names = dedupe_columns(list(df.columns))
    arrays = []
    for i in range(df.shape[1]):
        series = df.iloc[:, i]
        try:
            arrays.append(pa.Array.from_pandas(series))
        except _ARROW_ERRORS:
            arrays.append(pa.array([_cell_text(v) for v in series.tolist()], type=pa.string()))
    return pa.table(arrays, names=names)
