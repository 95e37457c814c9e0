"""The catalog's typed records: what was loaded (``TableInfo``) and what it looks like (``TableSchema``).

Frozen dataclasses: they cross layer boundaries (agents, executors, serving) and must not change under
a cached schema render.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    """A column as DuckDB holds it: its name and DuckDB type (``BIGINT``, ``VARCHAR``, ...)."""

    name: str
    type: str


@dataclass(frozen=True, slots=True)
class TableInfo:
    """A loaded table.

    ``name`` is the safe SQL name in the connection; ``display_name`` the original (file stem, sheet,
    SQLite table, dict key); ``source`` the file path as given, or ``"<dataframe>"``.
    """

    name: str
    display_name: str
    source: str
    columns: list[ColumnInfo] = field(default_factory=list)
    n_rows: int = 0


@dataclass(frozen=True, slots=True)
class ColumnSchema:
    """Statistics of one column.

    ``samples`` are up to N most frequent non-null values (ties broken by value) as text, long ones cut
    to ~40 characters; ``min``/``max`` (as text) only for numeric and date/time columns.
    """

    name: str
    type: str
    n_rows: int
    null_share: float
    samples: list[str] = field(default_factory=list)
    min: str | None = None
    max: str | None = None
    n_distinct: int | None = None  # approximate (HyperLogLog); exact where it decides uniqueness
    unique: bool = False  # exactly unique and without nulls, in a table of two or more rows


@dataclass(frozen=True, slots=True)
class TableSchema:
    """Statistics of one table, columns in table order."""

    name: str
    display_name: str
    source: str
    n_rows: int
    columns: list[ColumnSchema] = field(default_factory=list)

    def column(self, name: str) -> ColumnSchema:
        """The column called ``name`` (case-insensitive, as in DuckDB)."""
        for c in self.columns:
            if c.name.lower() == name.lower():
                return c
        raise KeyError(f"{self.name} has no column {name!r}")


@dataclass(frozen=True, slots=True)
class ForeignKey:
    """A foreign-key candidate ``from_table.from_column -> to_table.to_column``.

    ``score`` in [0, 1] mixes name evidence and value containment (see ``keys.py``).
    """

    from_table: str
    from_column: str
    to_table: str
    to_column: str
    score: float = 1.0

    def pair(self) -> tuple[str, str, str, str]:
        """The four names, lowercased: handy for comparing with declared keys."""
        return (self.from_table.lower(), self.from_column.lower(), self.to_table.lower(),
                self.to_column.lower())
