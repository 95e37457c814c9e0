"""Limits every loader applies, so a small hostile file cannot cost minutes or gigabytes.

>>> check_width(Path("wide.csv"), 1_001)
Traceback (most recent call last):
...
autotqa.errors.DataLoadError: wide.csv has 1,001 columns; autotqa reads at most 1,000 (hint: select the columns you need and export them again)
"""

from __future__ import annotations

from pathlib import Path

from autotqa.errors import DataLoadError

#: Columns a table may have: wider files are refused, not profiled for minutes.
MAX_COLUMNS = 1_000


def check_width(path: str | Path, n_columns: int, table: str | None = None) -> None:
    """Refuse a table wider than ``MAX_COLUMNS`` (``path``: the file, or a name for in-memory data)."""
    if n_columns > MAX_COLUMNS:
        where = f" (table {table!r})" if table else ""
        raise DataLoadError(f"{path}{where} has {n_columns:,} columns; autotqa reads at most {MAX_COLUMNS:,}",
                            path=str(path), hint="select the columns you need and export them again")
