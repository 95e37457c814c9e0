"""Size and depth limits a query must pass before anything parses it.

sqlglot's parser, its scope builder and its generator recurse once per nesting level, so a short,
deeply nested query (40 parentheses, 100 subqueries: ~100 characters DuckDB runs happily) ends in
``RecursionError``; and a huge flat one (a 20,000-branch UNION) keeps the guard busy for half a
minute and gigabytes. Counting tokens is linear and cheap, so the guard does that first, under fixed
bounds no question about tables needs, and refuses with an error the model can act on. The bounds
also cap the guard's own work, which is how it stays inside the executor's time limit.

>>> check_limits("SELECT (((1)))")
>>> check_limits("SELECT " + "(" * 30 + "1" + ")" * 30)
Traceback (most recent call last):
...
autotqa.errors.SQLError: the query nests 30 levels deep; at most 24 are allowed (hint: write it flatter: name the parts in WITH (CTEs) and join them)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError
from sqlglot.tokens import TokenType

from ..errors import SQLError


@dataclass(frozen=True)
class SQLLimits:
    """Bounds on one model-written query; generous for questions about tables, fatal for bombs."""

    #: Characters in the statement (checked before tokenizing: tokenizing is the next cost).
    max_chars: int = 20_000
    #: Tokens: bounds the parse, scope and generator work (a long IN list of ~2,000 values fits).
    max_tokens: int = 5_000
    #: Brackets, parentheses and CASE ... END open at once (sqlglot recurses per level).
    max_depth: int = 24
    #: SELECT keywords: the query plus its subqueries and CTEs.
    max_selects: int = 64
    #: UNION / INTERSECT / EXCEPT operators (branches - 1).
    max_set_operations: int = 64


_OPEN = {TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.CASE}
_CLOSE = {TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.END}
_SET_OPS = {TokenType.UNION, TokenType.INTERSECT, TokenType.EXCEPT}
_FLATTEN = "write it flatter: name the parts in WITH (CTEs) and join them"


def _too(kind_text: str, hint: str) -> SQLError:
    return SQLError(kind_text, kind="too_complex", hint=hint)


def check_limits(sql: str, limits: SQLLimits = SQLLimits()) -> None:
    """Raise SQLError (kind ``too_complex``) when ``sql`` passes one of ``limits``."""
    if len(sql) > limits.max_chars:
        raise _too(f"the query is {len(sql):,} characters long; at most {limits.max_chars:,} are allowed",
                   "write a shorter query: aggregate or filter instead of listing values or branches")
    try:
        types = [t.token_type for t in Dialect.get_or_raise("duckdb").tokenize(sql)]
    except SqlglotError:
        types = _rough_tokens(sql)  # the parser reports what is wrong; the bounds still apply
    if len(types) > limits.max_tokens:
        raise _too(f"the query has {len(types):,} tokens; at most {limits.max_tokens:,} are allowed",
                   "write a shorter query: aggregate or filter instead of listing values or branches")
    depth = deepest = selects = set_ops = 0
    for token_type in types:
        if token_type in _OPEN:
            depth += 1
            deepest = max(deepest, depth)
        elif token_type in _CLOSE:
            depth = max(0, depth - 1)
        elif token_type is TokenType.SELECT:
            selects += 1
        elif token_type in _SET_OPS:
            set_ops += 1
    if deepest > limits.max_depth:
        raise _too(f"the query nests {deepest} levels deep; at most {limits.max_depth} are allowed", _FLATTEN)
    if selects > limits.max_selects:
        raise _too(f"the query has {selects} SELECTs; at most {limits.max_selects} are allowed", _FLATTEN)
    if set_ops > limits.max_set_operations:
        raise _too(f"the query combines {set_ops + 1} branches with UNION/INTERSECT/EXCEPT; at most "
                   f"{limits.max_set_operations + 1} are allowed",
                   "use one SELECT with WHERE ... IN (...) or GROUP BY instead of many branches")


_ROUGH = re.compile(r"\w+|[()\[\]]|[^\w\s]")
_ROUGH_TYPES = {"(": TokenType.L_PAREN, ")": TokenType.R_PAREN, "[": TokenType.L_BRACKET,
                "]": TokenType.R_BRACKET, "case": TokenType.CASE, "end": TokenType.END,
                "select": TokenType.SELECT, "union": TokenType.UNION, "intersect": TokenType.INTERSECT,
                "except": TokenType.EXCEPT}


def _rough_tokens(sql: str) -> list[TokenType]:
    """Token types by a plain scan, for text the tokenizer refuses (e.g. an unclosed quote).

    Counts inside literals too, so it can only over-count: the safe side.
    """
    return [_ROUGH_TYPES.get(m.group(0).lower(), TokenType.VAR) for m in _ROUGH.finditer(sql)]
