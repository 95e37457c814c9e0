"""Schema linking: choose the tables and columns a question needs when the full block is too long.

Relevance is lexical and deterministic: words of the question (lowercased, singularised, stop words
dropped) are matched against table names (weight 3), column names (2) and sample values (1). The
block is then grown greedily, each addition kept only if the rendered text still fits the budget:

1. relevant tables, best first, with their key columns, foreign-key columns and relevant columns;
2. tables linked by a foreign key to a chosen one (join paths), with their keys;
3. the other columns of chosen tables, most relevant first, one table after the other in turns;
4. the remaining tables with their keys, in catalog order, then their other columns.

Ties are broken by catalog order, so the same question and data always give the same text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from autotqa.catalog.keys import name_tokens, singular
from autotqa.catalog.models import ForeignKey, TableSchema
from autotqa.catalog.render import estimate_tokens, render_block

STOP_WORDS = frozenset("""
a about after all also an and any are as at be been before by can did do does each every find for
from get give had has have how i in into is it its list me more most much my not of on or per show
than that the their them there these they this those to was were what when where which who whom
whose why will with you your
""".split())


def question_terms(text: str) -> set[str]:
    """Content words of a question, singularised.

    >>> sorted(question_terms("Which customers from Lisbon placed the most orders?"))
    ['customer', 'lisbon', 'order', 'placed']
    """
    return {singular(w) for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOP_WORDS}


def _terms(text: str) -> set[str]:
    return {singular(w) for w in name_tokens(text) if w not in STOP_WORDS}


def _scores(tables: Sequence[TableSchema], q: set[str]) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """Per-table and per-column relevance. A table counts each matched word once, so a wide table
    repeating ``team_id`` in ten columns does not outrank the table the question is about."""
    col_score: dict[tuple[str, str], int] = {}
    table_score: dict[str, int] = {}
    for t in tables:
        names: set[str] = set()
        values: set[str] = set()
        for c in t.columns:
            col_names = q & _terms(c.name)
            col_values: set[str] = set()
            for s in c.samples:
                col_values |= q & question_terms(s)
            col_score[(t.name, c.name)] = 2 * len(col_names) + len(col_values)
            names |= col_names
            values |= col_values
        own = q & (_terms(t.name) | _terms(t.display_name))
        table_score[t.name] = 3 * len(own) + 2 * len(names) + len(values)
    return table_score, col_score


def link(tables: Sequence[TableSchema], primary_keys: dict[str, list[str]],
         fks: Sequence[ForeignKey], question: str | None, token_budget: int) -> str:
    """The schema block restricted to what fits ``token_budget`` (see the module docstring)."""
    q = question_terms(question or "")
    table_score, col_score = _scores(tables, q)
    position = {t.name: i for i, t in enumerate(tables)}
    by_name = {t.name: t for t in tables}
    keep: dict[str, list[str]] = {}
    # Naming the left-out tables helps the model, unless the names alone overflow the budget.
    hidden = estimate_tokens(render_block(tables, primary_keys, fks, {})) <= token_budget

    def fits(candidate: dict[str, list[str]]) -> bool:
        text = render_block(tables, primary_keys, fks, candidate, list_hidden=hidden)
        return estimate_tokens(text) <= token_budget

    def key_columns(t: TableSchema) -> list[str]:
        keys = set(primary_keys.get(t.name, [])[:1])
        keys |= {f.from_column for f in fks if f.from_table == t.name}
        keys |= {f.to_column for f in fks if f.to_table == t.name}
        return [c.name for c in t.columns if c.name in keys]

    def try_table(t: TableSchema, with_relevant: bool) -> None:
        if t.name in keep:
            return
        cols = key_columns(t)
        if with_relevant:
            cols += [c.name for c in t.columns if col_score[(t.name, c.name)] > 0 and c.name not in cols]
        candidate = {**keep, t.name: cols}
        if fits(candidate):
            keep.clear()
            keep.update(candidate)

    def fill_columns(names: list[str]) -> None:
        """Round robin over ``names``: each table in turn gets its next most relevant column."""
        pending = {}
        for name in names:
            cols = by_name[name].columns
            pending[name] = sorted((i for i, c in enumerate(cols) if c.name not in keep[name]),
                                   key=lambda i, n=name, cs=cols: (-col_score[(n, cs[i].name)], i))
        while any(pending.values()):
            for name in names:
                if not pending[name]:
                    continue
                col = by_name[name].columns[pending[name].pop(0)].name
                candidate = {**keep, name: keep[name] + [col]}
                if fits(candidate):
                    keep[name] = candidate[name]

    relevant = sorted((t for t in tables if table_score[t.name] > 0),
                      key=lambda t: (-table_score[t.name], position[t.name]))
    for t in relevant:
        try_table(t, with_relevant=True)
    chosen = list(keep)
    linked = {f.to_table for f in fks if f.from_table in chosen} | {
        f.from_table for f in fks if f.to_table in chosen}
    for t in tables:
        if t.name in linked:
            try_table(t, with_relevant=True)
    fill_columns(sorted(keep, key=lambda n: (-table_score[n], position[n])))
    rest = [t.name for t in tables if t.name not in keep]
    for t in tables:
        if t.name in rest:
            try_table(t, with_relevant=False)
    fill_columns([n for n in rest if n in keep])
    return render_block(tables, primary_keys, fks, keep, list_hidden=hidden)
