"""Save an answer's result rows to a file people keep: CSV, Parquet, JSON or Excel.

The rows written are the final query's rows as the executor returned them (``Answer.result``), not
the few a terminal shows; the executor stops at its row cap (``executor.row_cap``), and the
message says so when a query returned more.

>>> from autotqa.answer import Answer
>>> from autotqa.executors.base import ExecutionResult
>>> a = Answer(question="q", answer="a", result=ExecutionResult(ok=True, columns=["n"], rows=[[1], [2]],
...            n_rows=5, truncated=True))
>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "r.csv"
>>> save_result(a, out).message().replace(str(out), "r.csv")
"saved 2 of 5 rows to r.csv (the executor's row cap; raise it with AUTOTQA_EXECUTOR__ROW_CAP)"
>>> out.read_text()
'n\\n1\\n2\\n'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..answer import Answer
from ..errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

SAVE_FORMATS = (".csv", ".parquet", ".json", ".xlsx")


@dataclass(frozen=True)
class Saved:
    """What was written: ``rows`` of the query's ``total`` rows."""

    path: Path
    rows: int
    total: int

    @property
    def capped(self) -> bool:
        return self.total > self.rows

    def message(self) -> str:
        if self.capped:
            return (f"saved {self.rows:,} of {self.total:,} rows to {self.path} "
                    "(the executor's row cap; raise it with AUTOTQA_EXECUTOR__ROW_CAP)")
        return f"saved {self.rows:,} row{'s' * (self.rows != 1)} to {self.path}"


def check_save_path(path: Path) -> None:
    """Refuse a file type we cannot write before any work is done (a usage error)."""
    if path.suffix.lower() not in SAVE_FORMATS:
        raise ConfigError(f"cannot save as {path.suffix or 'a file without a suffix'!r}: {path}",
                          hint=f"name the file with one of: {', '.join(SAVE_FORMATS)}")


def unique_names(names: Sequence[str]) -> list[str]:
    """Column names made unique (``SELECT a, a`` gives ``a``, ``a_2``): files need distinct headers.

    >>> unique_names(["a", "b", "a", "a_2"])
    ['a', 'b', 'a_3', 'a_2']
    """
    taken = set(names)
    seen: set[str] = set()
    out = []
    for name in names:
        new, i = name, 2
        while new in seen:
            while f"{name}_{i}" in taken:
                i += 1
            new = f"{name}_{i}"
            taken.add(new)
        seen.add(new)
        out.append(new)
    return out


def _text_if_mixed(frame: pd.DataFrame) -> pd.DataFrame:
    """Parquet needs one type a column; a model's query can mix (``CASE ... THEN 1 ELSE 'n/a'``)."""
    for col in frame.columns[frame.dtypes == object]:
        kinds = {type(v) for v in frame[col] if v is not None}
        if len(kinds) > 1:
            frame[col] = frame[col].map(lambda v: None if v is None else str(v))
    return frame


def save_result(answer: Answer, path: str | Path) -> Saved:
    """Write ``answer``'s result rows to ``path``; the format follows the suffix."""
    path = Path(path)
    check_save_path(path)
    result = answer.result
    if result is None or not result.ok or not result.columns:
        raise ConfigError("this answer has no result rows to save",
                          hint="save after a question whose answer shows a result table")
    frame = answer.to_pandas()
    frame.columns = unique_names([str(c) for c in frame.columns])
    suffix = path.suffix.lower()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".csv":
            frame.to_csv(path, index=False)
        elif suffix == ".parquet":
            _text_if_mixed(frame).to_parquet(path, index=False)
        elif suffix == ".json":
            frame.to_json(path, orient="records", force_ascii=False, indent=1)
        else:
            frame.to_excel(path, index=False)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}", hint="choose a writable path") from None
    return Saved(path=path, rows=len(frame), total=max(result.n_rows, len(frame)))
