"""Reading .xlsx workbooks within bounded time and memory, whatever the file claims.

An .xlsx is a zip of XML parts, and each layer can be hostile: a zip bomb (a small file that
inflates to gigabytes), XML entity expansion (billion laughs) or external entities (XXE) in a part,
and a sheet whose cells sit at ``A1`` and ``XFD1048576`` (an 8 KB file that pandas pads into 17
billion cells). So, before openpyxl reads anything, the zip's declared sizes and compression ratios
are checked (``zipfile`` never inflates past a declared size); openpyxl parses with ``defusedxml``
(a dependency: no entities at all); sheets are streamed in read-only mode, ignoring the declared
dimension, and reading stops at the column and cell caps. Rows become a DataFrame the way
``pandas.read_excel`` makes one (first row as header, pandas' type inference).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
from pandas.io.parsers import TextParser

from autotqa.catalog.limits import check_width
from autotqa.errors import DataLoadError

#: Cells of one workbook, counted as the padded rectangle pandas would allocate per sheet.
MAX_CELLS = 5_000_000
#: Bytes the workbook's parts may inflate to, all together.
MAX_UNZIPPED_BYTES = 256 * 1024 * 1024
#: Inflation ratio of one part (XML compresses ~5-20x; bombs 1000x), checked above RATIO_FLOOR.
MAX_RATIO = 100
RATIO_FLOOR = 1024 * 1024
MAX_PARTS = 10_000

_HINT = "open and re-save it as .xlsx, or export CSV"


def _refuse(path: Path, what: str, hint: str = _HINT) -> DataLoadError:
    return DataLoadError(f"{path}: {what}", path=str(path), hint=hint)


def check_zip(path: Path) -> None:
    """Refuse a workbook whose zip parts declare too much data or inflate suspiciously."""
    try:
        with zipfile.ZipFile(path) as zf:
            parts = zf.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        raise _refuse(path, f"could not be read as an Excel workbook: {e}") from None
    if len(parts) > MAX_PARTS:
        raise _refuse(path, f"workbook has {len(parts):,} parts; autotqa reads at most {MAX_PARTS:,}")
    total = sum(p.file_size for p in parts)
    if total > MAX_UNZIPPED_BYTES:
        raise _refuse(path, f"workbook inflates to {total:,} bytes; autotqa reads at most "
                            f"{MAX_UNZIPPED_BYTES:,}", hint="export the sheet you need as CSV")
    for p in parts:
        if p.file_size > RATIO_FLOOR and p.file_size > MAX_RATIO * max(p.compress_size, 1):
            raise _refuse(path, f"workbook part {p.filename} inflates {p.file_size // max(p.compress_size, 1):,}"
                                f" times (a zip bomb?); autotqa allows at most {MAX_RATIO}")


def _cell(value: Any) -> Any:
    """A cell as pandas.read_excel sees it: empty -> "", whole floats -> int."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _sheet_rows(path: Path, ws: Any, budget: int) -> tuple[list[list[Any]], int]:
    """Rows of one sheet (trailing empties cut, padded to one width) and the cells still allowed."""
    ws.reset_dimensions()  # the declared range is a claim; the cells present are the data
    rows: list[list[Any]] = []
    width = last = 0
    for values in ws.iter_rows(values_only=True):
        row = [_cell(v) for v in values]
        while row and row[-1] == "":
            row.pop()
        if row:
            width = max(width, len(row))
            check_width(path, width, ws.title)
            last = len(rows) + 1
        rows.append(row)
        if (last or 1) * max(width, 1) > budget or len(rows) > budget:
            raise _refuse(path, f"sheet {ws.title!r} spans more than {MAX_CELLS:,} cells; autotqa reads at "
                                f"most that many per workbook", hint="export the sheet you need as CSV")
    rows = rows[:last]
    return [r + [""] * (width - len(r)) for r in rows], budget - last * width


def _root_cause(exc: BaseException) -> str:
    """The innermost error's type and first line: openpyxl wraps a defusedxml refusal in a
    three-line ValueError that names neither."""
    while (inner := exc.__cause__ or exc.__context__) is not None:
        exc = inner
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"


def read_workbook(path: Path) -> dict[str, pd.DataFrame]:
    """Every sheet with at least one column, as ``pandas.read_excel(path, sheet_name=None)`` would."""
    check_zip(path)
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True, keep_links=False)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, TypeError, SyntaxError) as e:
        # defusedxml's refusals (entities, external references) are ValueErrors; expat's SyntaxErrors.
        raise _refuse(path, f"could not be read as an Excel workbook: {_root_cause(e)}") from None
    sheets: dict[str, pd.DataFrame] = {}
    budget = MAX_CELLS
    try:
        for ws in book.worksheets:
            rows, budget = _sheet_rows(path, ws, budget)
            if rows and rows[0]:
                sheets[ws.title] = TextParser(rows, header=0, skip_blank_lines=False).read()
    except (KeyError, ValueError, OSError, TypeError, SyntaxError, zipfile.BadZipFile) as e:
        raise _refuse(path, f"could not be read as an Excel workbook: {_root_cause(e)}") from None
    finally:
        book.close()
    return sheets
