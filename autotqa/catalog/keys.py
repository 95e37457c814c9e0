"""Primary-key and foreign-key candidates, from column names and the values themselves.

Primary-key candidates are the exactly-unique, null-free columns of a table, best first: ``id``, then
names built from the table (``customer_id`` in ``customers``), then other key-like names (``*_code``,
``*_num``, ``*ID``), then the rest in table order.

A foreign-key candidate ``C.c -> P.p`` needs both kinds of evidence:

* name: ``c`` equals ``p`` where ``p`` is key-like (``orders.customer_id -> customers.customer_id``),
  or ``c`` is ``p`` prefixed with the parent's singular name (``orders.customer_id -> customers.id``);
* values: ``p`` is a primary-key candidate of ``P`` and at least ``MIN_CONTAINMENT`` of the distinct
  non-null values of ``c`` occur in ``p``.

``score = 0.5 * name evidence + 0.5 * containment``. Value overlap alone is not enough: small integer
columns overlap everywhere. When both directions of a pair qualify (1:1 tables) only the better
scoring one is kept.
"""

from __future__ import annotations

import duckdb

from autotqa.catalog.models import ColumnSchema, ForeignKey, TableSchema
from autotqa.catalog.naming import quote_ident
from autotqa.catalog.stats import is_numeric, is_temporal
from autotqa.catalog.words import name_tokens, stem as word_stem

MIN_CONTAINMENT = 0.95
KEY_TOKENS = ("id", "code", "key", "num", "no", "nr", "number", "uuid")


def _norm(name: str) -> str:
    return "".join(name_tokens(name))


def table_stem(table: str) -> str:
    """The table's name, singular, without separators: ``media_types`` -> ``mediatype``.

    >>> table_stem("media_types"), table_stem("Order_Items")
    ('mediatype', 'orderitem')
    """
    tokens = name_tokens(table) or [table.lower()]
    return "".join(tokens[:-1]) + word_stem(tokens[-1])


def is_key_name(column: str, table: str) -> bool:
    """Whether a column's *name* says it identifies something.

    >>> is_key_name("customer_id", "orders"), is_key_name("dormid", "dorm"), is_key_name("grape", "grapes")
    (True, True, True)
    >>> is_key_name("amenid", "dorm_amenity"), is_key_name("paid", "invoices"), is_key_name("name", "x")
    (True, False, False)
    """
    tokens = name_tokens(column)
    if tokens and tokens[-1] in KEY_TOKENS:
        return True
    norm, stem = _norm(column), table_stem(table)
    if norm == stem or any(norm == stem + k for k in KEY_TOKENS):
        return True
    # "amenid" in "dorm_amenity": an abbreviation of a table word plus "id".
    head = norm[:-2] if norm.endswith("id") else ""
    return len(head) >= 3 and any(t.startswith(head) for t in name_tokens(table))


def _key_rank(col: ColumnSchema, index: int, table: str) -> tuple[int, int]:
    norm, stem = _norm(col.name), table_stem(table)
    if norm == "id":
        return (0, index)
    if norm == stem or any(norm == stem + k for k in KEY_TOKENS):
        return (1, index)
    if is_key_name(col.name, table):
        return (2, index)
    return (3, index)


def primary_keys(tables: list[TableSchema]) -> dict[str, list[str]]:
    """Table name -> its unique, null-free columns, most key-like first (tables with none omitted)."""
    out: dict[str, list[str]] = {}
    for t in tables:
        ranked = sorted((_key_rank(c, i, t.name), c.name) for i, c in enumerate(t.columns) if c.unique)
        if ranked:
            out[t.name] = [name for _, name in ranked]
    return out


def _name_evidence(child: str, parent_col: str, parent_table: str, top_key: bool) -> float:
    """0 when the names do not suggest a reference, else up to 1 (see the module docstring)."""
    c, p, stem = _norm(child), _norm(parent_col), table_stem(parent_table)
    key_like = is_key_name(parent_col, parent_table)
    if key_like and c in (stem + p, stem + "_" + p) and c != p:
        base = 0.9
    elif c == p and p in KEY_TOKENS:
        return 0.0  # "id" = "id" says nothing: every table has one
    elif c == p and key_like:
        base = 0.8
    elif c == p and top_key:
        base = 0.6
    else:
        return 0.0
    return min(1.0, base + (0.1 if stem in c else 0.0))


def _family(type_: str) -> str:
    if is_numeric(type_):
        return "number"
    return "time" if is_temporal(type_) else type_.upper()


def _containment(con: duckdb.DuckDBPyConnection, child: TableSchema, c: ColumnSchema,
                 parent: TableSchema, p: ColumnSchema) -> tuple[int, float]:
    """(distinct non-null child values, share of them found among the parent's values)."""
    cq, pq = quote_ident(c.name), quote_ident(p.name)
    if _family(c.type) != _family(p.type):  # SQLite's loose typing: compare as text
        cq, pq = f"CAST({cq} AS VARCHAR)", f"CAST({pq} AS VARCHAR)"
    row = con.execute(
        f"SELECT count(*), count(__p.__v) FROM (SELECT DISTINCT {cq} AS __v FROM "
        f"{quote_ident(child.name)} WHERE {cq} IS NOT NULL) __c LEFT JOIN (SELECT DISTINCT {pq} AS __v "
        f"FROM {quote_ident(parent.name)}) __p ON __c.__v = __p.__v").fetchall()[0]
    n, hit = int(row[0]), int(row[1])
    return n, (hit / n if n else 0.0)


def foreign_keys(con: duckdb.DuckDBPyConnection, tables: list[TableSchema],
                 pks: dict[str, list[str]]) -> list[ForeignKey]:
    """Foreign-key candidates, ordered by child table (catalog order), child column, then parent."""
    order = {t.name: i for i, t in enumerate(tables)}
    found: dict[tuple[str, str, str, str], ForeignKey] = {}
    for parent in tables:
        for rank, pcol_name in enumerate(pks.get(parent.name, [])):
            p = parent.column(pcol_name)
            for child in tables:
                if child.name == parent.name:
                    continue
                for c in child.columns:
                    name_ev = _name_evidence(c.name, p.name, parent.name, rank == 0)
                    if name_ev == 0.0 or c.type.upper() == "BOOLEAN":
                        continue
                    n, share = _containment(con, child, c, parent, p)
                    if n == 0 or share < MIN_CONTAINMENT:
                        continue
                    score = round(0.5 * name_ev + 0.5 * share, 3)
                    found[(child.name, c.name, parent.name, p.name)] = ForeignKey(
                        child.name, c.name, parent.name, p.name, score)
    kept = _one_parent(
        [fk for (ct, cc, pt, pc), fk in found.items()
         if not ((back := found.get((pt, pc, ct, cc))) is not None and _prefer(back, fk, tables))])
    col_pos = {(t.name, c.name): i for t in tables for i, c in enumerate(t.columns)}
    return sorted(kept, key=lambda f: (order[f.from_table], col_pos[(f.from_table, f.from_column)],
                                       order[f.to_table], f.to_column))


def _one_parent(fks: list[ForeignKey]) -> list[ForeignKey]:
    """Per child column, the best-scoring parents; of a chain ``a -> b -> c`` of parents, the root.

    ``department.emp_num`` fits both ``professor.emp_num`` and ``employee.emp_num``; since
    ``professor.emp_num -> employee.emp_num`` holds too, the reference is to ``employee``.
    """
    edges = {(f.from_table, f.from_column): [] for f in fks}
    for f in fks:
        edges[(f.from_table, f.from_column)].append(f)
    kept = []
    for group in edges.values():
        best = max(f.score for f in group)
        top = [f for f in group if f.score == best]
        parents = {(f.to_table, f.to_column) for f in top}
        for f in top:
            up = edges.get((f.to_table, f.to_column), [])
            if not any((g.to_table, g.to_column) in parents for g in up):
                kept.append(f)
    return kept


def _prefer(a: ForeignKey, b: ForeignKey, tables: list[TableSchema]) -> bool:
    """Whether ``a`` beats ``b``, its reverse: higher score, then the larger parent, then name order."""
    rows = {t.name: t.n_rows for t in tables}
    return (a.score, rows[a.to_table], b.to_table) > (b.score, rows[b.to_table], a.to_table)
