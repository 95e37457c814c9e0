"""Report categories of a question, derived from its gold data (in the harness only).

Spider questions are described by three facets of the gold SQL, read with sqlglot:
``joins`` (more than one table, by JOIN or a comma list), ``nesting`` (a subquery or a set operation
UNION/INTERSECT/EXCEPT) and ``aggregation`` (an aggregate function or GROUP BY). WTQ questions are
described by the type of their gold answer (see :func:`autotqa.evaluation.denotation.answer_type`).

>>> spider_categories('SELECT count(*) FROM a JOIN b ON a.x = b.x')
{'joins': 'yes', 'nesting': 'no', 'aggregation': 'yes'}
>>> spider_categories('SELECT name FROM a WHERE id IN (SELECT id FROM b)')
{'joins': 'no', 'nesting': 'yes', 'aggregation': 'no'}
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from .denotation import answer_type


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def spider_categories(gold_sql: str) -> dict[str, str]:
    """Facets ``joins``/``nesting``/``aggregation`` of a gold query ("yes"/"no", "unparsed" on failure)."""
    try:
        tree = sqlglot.parse_one(gold_sql, read="sqlite")
    except sqlglot.errors.ParseError:
        tree = None
    if not isinstance(tree, exp.Query):
        return {"joins": "unparsed", "nesting": "unparsed", "aggregation": "unparsed"}
    joins = False
    for select in tree.find_all(exp.Select):
        from_ = select.args.get("from") or select.args.get("from_")
        n_from = len(from_.expressions) if from_ is not None and from_.expressions else 1
        if select.args.get("joins") or n_from > 1:
            joins = True
    nesting = any(True for _ in tree.find_all(exp.Subquery)) or \
        any(True for _ in tree.find_all(exp.SetOperation))
    aggregation = any(True for _ in tree.find_all(exp.AggFunc)) or \
        any(True for _ in tree.find_all(exp.Group))
    return {"joins": _yes(joins), "nesting": _yes(nesting), "aggregation": _yes(aggregation)}


def wtq_categories(target_values: list[str]) -> dict[str, str]:
    """The one WTQ facet: ``answer_type`` (number, date, string or multiple).

    >>> wtq_categories(["1,000"])
    {'answer_type': 'number'}
    """
    return {"answer_type": answer_type(target_values)}
