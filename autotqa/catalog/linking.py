"""Schema linking: which tables a question needs, how they join, and what of the schema to render.

This is the project's one linker; words are cut and stemmed by :mod:`autotqa.catalog.words`.

**Tables a question names** (``link_tables``, used by the Planner and the Engineer). Why not trust
the Planner's table list: a 0.5B model adds tables "to be safe" and then joins them on columns that
do not exist. The question's own words (table names, distinctive column names) pick the tables;
key columns shared by name (``*_id``) connect them, adding the tables in between when two named
tables only meet through a third.

>>> cols = {"customers": ["customer_id", "name", "country"], "orders": ["order_id", "customer_id"],
...         "order_items": ["order_id", "product_id", "quantity"],
...         "products": ["product_id", "name", "unit_price"]}
>>> link_tables("Which customer ordered the most products?", cols)
['customers', 'orders', 'order_items', 'products']
>>> link_tables("What is the total quantity sold?", cols)
['order_items']
>>> join_hints(["orders", "customers"], cols)
['orders JOIN customers USING (customer_id)']

**The schema block within a token budget** (``link``, when the full block is too long). Relevance
is lexical and deterministic: the question's terms are matched against table names (weight 3),
column names (2) and sample values (1). The block is then grown greedily, each addition kept only
if the rendered text still fits the budget:

1. relevant tables, best first, with their key columns, foreign-key columns and relevant columns;
2. tables linked by a foreign key to a chosen one (join paths), with their keys;
3. the other columns of chosen tables, most relevant first, one table after the other in turns;
4. the remaining tables with their keys, in catalog order, then their other columns.

Ties are broken by catalog order, so the same question and data always give the same text.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Mapping, Sequence

from autotqa.catalog.models import ForeignKey, TableSchema
from autotqa.catalog.render import estimate_tokens, render_block
from autotqa.catalog.words import STOP_WORDS, content_words, name_terms, name_tokens, question_terms, stem

#: Name parts too common to say which table a column belongs to.
_GENERIC = frozenset({"id", "pct", "num", "no", "nr", "code", "key", "date", "name", "type", "value"})


def key_like(column: str) -> bool:
    low = column.lower()
    return low == "id" or low.endswith(("_id", "id", "_key", "_code"))


def join_hints(tables: Sequence[str], columns: Mapping[str, Sequence[str]]) -> list[str]:
    """Key columns two tables share by name (``*_id``-like only: a shared ``name`` is no join).

    Written as ``USING``: the joined key is then one column, so an unqualified ``customer_id`` in
    the SELECT is not ambiguous — the mistake a small model makes most often after a join."""
    hints = []
    for a, b in itertools.combinations(tables, 2):
        other = set(columns.get(b, ()))
        hints += [f"{a} JOIN {b} USING ({c})" for c in columns.get(a, ()) if c in other and key_like(c)]
    return hints


def mentioned_tables(question: str, columns: Mapping[str, Sequence[str]]) -> list[str]:
    """Tables named by the question (whole name or its last part), or owning a column it names
    that no other table has; in catalog order."""
    words = set(content_words(question))
    owners: dict[str, list[str]] = {}
    for table, cols in columns.items():
        for col in cols:
            owners.setdefault(col.lower(), []).append(table)
    hits = []
    for table, cols in columns.items():
        parts = name_terms(table)
        named = stem(table) in words or (parts and parts[-1] in words)
        by_column = any(
            len(owners[c.lower()]) == 1 and (ps := [p for p in name_terms(c) if p not in _GENERIC])
            and all(p in words for p in ps) for c in cols)
        if named or by_column:
            hits.append(table)
    return hits


def _path(start: str, goal: str, edges: Mapping[str, set[str]]) -> list[str]:
    seen = {start: ""}
    todo = deque([start])
    while todo:
        node = todo.popleft()
        if node == goal:
            path = [node]
            while seen[path[-1]]:
                path.append(seen[path[-1]])
            return path[::-1]
        for nxt in sorted(edges.get(node, ())):
            if nxt not in seen:
                seen[nxt] = node
                todo.append(nxt)
    return []


def link_tables(question: str, columns: Mapping[str, Sequence[str]]) -> list[str]:
    """The mentioned tables plus those needed to join them, in catalog order ([] if none named)."""
    found = mentioned_tables(question, columns)
    if len(found) < 2:
        return found
    edges: dict[str, set[str]] = {}
    for a, b in itertools.combinations(columns, 2):
        if join_hints([a, b], columns):
            edges.setdefault(a, set()).add(b)
            edges.setdefault(b, set()).add(a)
    needed = set(found)
    for a, b in itertools.combinations(found, 2):
        if not join_hints([a, b], columns):
            needed.update(_path(a, b, edges))
    return [t for t in columns if t in needed]


def _terms(name: str) -> set[str]:
    return {stem(w) for w in name_tokens(name) if w not in STOP_WORDS}


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
         fks: Sequence[ForeignKey], question: str | None, token_budget: int,
         count_tokens: Callable[[str], int] = estimate_tokens) -> str:
    """The schema block restricted to what fits ``token_budget`` tokens as ``count_tokens`` counts
    them (see the module docstring)."""
    q = question_terms(question or "")
    table_score, col_score = _scores(tables, q)
    position = {t.name: i for i, t in enumerate(tables)}
    by_name = {t.name: t for t in tables}
    keep: dict[str, list[str]] = {}
    # Naming the left-out tables helps the model, unless the names alone overflow the budget.
    hidden = count_tokens(render_block(tables, primary_keys, fks, {})) <= token_budget

    def fits(candidate: dict[str, list[str]]) -> bool:
        text = render_block(tables, primary_keys, fks, candidate, list_hidden=hidden)
        return count_tokens(text) <= token_budget

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
