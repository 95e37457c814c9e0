"""Deterministic schema linking: which tables a question needs, and how they join.

Why not trust the Planner's table list: a 0.5B model adds tables "to be safe" and then joins them
on columns that do not exist. The question's own words (table names, distinctive column names)
pick the tables; key columns shared by name (``*_id``) connect them, adding the tables in between
when two named tables only meet through a third.

>>> cols = {"customers": ["customer_id", "name", "country"], "orders": ["order_id", "customer_id"],
...         "order_items": ["order_id", "product_id", "quantity"],
...         "products": ["product_id", "name", "unit_price"]}
>>> link_tables("Which customer ordered the most products?", cols)
['customers', 'orders', 'order_items', 'products']
>>> link_tables("What is the total quantity sold?", cols)
['order_items']
>>> join_hints(["orders", "customers"], cols)
['orders JOIN customers USING (customer_id)']
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from collections.abc import Mapping, Sequence

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_GENERIC = frozenset({"id", "pct", "num", "no", "nr", "code", "key", "date", "name", "type", "value"})
_STOP = frozenset(
    "the and for with what which who whom how many much are was were has have had did does from "
    "that this there their per each all any most least more less than into over under between "
    "give show list tell find number total average sum count top".split())


def stem(word: str) -> str:
    """A crude English stem, enough to match "customers"/"customer", "ordered"/"order".

    >>> [stem(w) for w in ["Customers", "categories", "ordered", "status", "class"]]
    ['customer', 'category', 'order', 'status', 'class']
    """
    w = word.lower()
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 5 and w.endswith("ed"):
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us")):
        return w[:-1]
    return w


def content_words(text: str) -> list[str]:
    return [stem(w) for w in _WORD.findall(text) if len(w) >= 3 and w.lower() not in _STOP]


def name_parts(name: str) -> list[str]:
    return [stem(p) for p in re.split(r"[_\W]+", name) if p]


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
        parts = name_parts(table)
        named = stem(table) in words or (parts and parts[-1] in words)
        by_column = any(
            len(owners[c.lower()]) == 1 and (ps := [p for p in name_parts(c) if p not in _GENERIC])
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
