"""The typed result every executor returns, and the interface agents see.

Model mistakes (bad SQL, a failing pandas step) are *results* with ``ok=False``, never exceptions:
the Engineer reads ``error_type`` and ``error`` and repairs.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import math
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

Language = Literal["sql", "pandas"]


def to_jsonable(value: Any) -> Any:
    """Turn a cell value from DuckDB/pandas into a JSON-friendly Python value.

    >>> to_jsonable(decimal.Decimal("1.50"))
    1.5
    >>> to_jsonable(float("nan")) is None
    True
    """
    if value is None:
        return None
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, decimal.Decimal):
        exact_int = value == value.to_integral_value() and value.as_tuple().exponent >= 0
        return int(value) if exact_int else float(value)
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return to_jsonable(item())
        except (TypeError, ValueError):
            pass
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return str(value)


class ExecutionResult(BaseModel):
    """What running one piece of code produced.

    ``rows`` holds at most the executor's row cap; ``n_rows`` is the full count and ``truncated`` says
    whether rows were cut. ``code`` is the code as actually run (after transpiling / row capping).
    """

    ok: bool
    language: Language = "sql"
    columns: list[str] = Field(default_factory=list)
    rows: list[list[Any]] = Field(default_factory=list)
    n_rows: int = 0
    truncated: bool = False
    error_type: str | None = None
    error: str | None = None
    elapsed_s: float = 0.0
    code: str = ""

    @classmethod
    def failure(cls, language: Language, code: str, error_type: str, error: str,
                elapsed_s: float = 0.0) -> ExecutionResult:
        return cls(ok=False, language=language, code=code, error_type=error_type, error=error,
                   elapsed_s=elapsed_s)

    def preview(self, max_rows: int = 10, max_chars: int = 60) -> str:
        """A compact, deterministic text rendering for prompts and traces."""
        if not self.ok:
            return f"ERROR ({self.error_type}): {self.error}"
        if not self.columns:
            return "(no columns)"

        def cell(v: Any) -> str:
            s = "NULL" if v is None else str(v)
            return s if len(s) <= max_chars else s[: max_chars - 3] + "..."

        lines = [" | ".join(self.columns)]
        lines += [" | ".join(cell(v) for v in row) for row in self.rows[:max_rows]]
        shown = min(len(self.rows), max_rows)
        if self.n_rows > shown:
            lines.append(f"... ({self.n_rows} rows in total, {shown} shown)")
        else:
            lines.append(f"({self.n_rows} row{'s' if self.n_rows != 1 else ''})")
        return "\n".join(lines)


class Executor(Protocol):
    """Anything that runs code of one language against the catalog."""

    language: Language

    def run(self, code: str) -> ExecutionResult: ...
