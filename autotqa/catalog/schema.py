"""``SchemaInfo``: everything the agents are told about the tables, and its text rendering."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from autotqa.catalog.linking import link
from autotqa.catalog.models import ForeignKey, TableSchema
from autotqa.catalog.render import estimate_tokens, render_block


@dataclass(frozen=True)
class SchemaInfo:
    """Tables with column statistics, key candidates and foreign-key candidates.

    ``primary_keys`` maps a table to its unique, null-free columns (best candidate first; tables
    without any are absent). ``foreign_keys`` is ordered by child table and column.

    >>> from autotqa.catalog.models import ColumnSchema
    >>> t = TableSchema("t", "t", "<dataframe>", 2, [ColumnSchema("id", "BIGINT", 2, 0.0, ["1", "2"],
    ...                                                             "1", "2", 2, True)])
    >>> print(SchemaInfo([t], {"t": ["id"]}, []).render())
    Table t (2 rows)
      id BIGINT, primary key, 1..2
    """

    tables: list[TableSchema]
    primary_keys: dict[str, list[str]] = field(default_factory=dict)
    foreign_keys: list[ForeignKey] = field(default_factory=list)

    @cached_property
    def full_text(self) -> str:
        """The complete schema block (computed once)."""
        return render_block(self.tables, self.primary_keys, self.foreign_keys)

    def table(self, name: str) -> TableSchema:
        """The table called ``name`` (case-insensitive)."""
        for t in self.tables:
            if t.name.lower() == name.lower():
                return t
        raise KeyError(f"no table {name!r}; tables: {', '.join(t.name for t in self.tables)}")

    def render(self, question: str | None = None, token_budget: int | None = None,
               count_tokens: Callable[[str], int] | None = None) -> str:
        """The schema block; deterministic, byte-identical for the same data and arguments.

        Without a budget, or when the whole block fits, the full block, whatever the question.
        Otherwise only what ``linking.link`` picks for the question. Tokens are counted by
        ``count_tokens``: the model's own tokenizer where the engine has one (``Engine.token_counter``),
        else ``estimate_tokens`` (characters / 3.5).
        """
        count = count_tokens or estimate_tokens
        if token_budget is None or count(self.full_text) <= token_budget:
            return self.full_text
        return link(self.tables, self.primary_keys, self.foreign_keys, question, token_budget, count)
