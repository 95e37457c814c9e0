"""The Engineer: writes DuckDB SQL (or pandas) for a plan step, and repairs it from the error.

Code is generated as plain text in a fenced block, not JSON: a small model writes better SQL when
it does not have to escape it, and the stop sequence at the closing fence ends decoding the moment
the block is complete, so execution starts without waiting for trailing prose.
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp
from collections.abc import Mapping, Sequence

from ..executors.base import Language
from ..serving.types import GenerationRequest, new_request_id
from .base import RunContext, render_prompt
from ..catalog.linking import join_hints, link_tables
from .planner import Step
from .repairs import ordinal_offset, quote_known_names

#: Stop at the closing fence. The opening fence is the first thing in the reply, so it has no newline
#: before it and does not trigger the stop.
CODE_STOP = "\n```"
_LANG_TAG = re.compile(r"^[ \t]*(?:sql|duckdb|postgresql|sqlite|python3?|py|pandas)?[ \t]*\n?", re.I)
MAX_CODE_TOKENS = 240
REPAIR_TEMPERATURE = 0.5
#: After the model repeated a query already tried: sample wider, or it repeats it again.
RETRY_TEMPERATURE = 1.0
_SQL_START = re.compile(r"^\s*(WITH|SELECT|FROM)\b", re.I | re.M)
#: A board label at the start of a line (``RESULT s1:``, ``CRITIQUE s1: ...``): the model went on
#: copying the transcript inside its code block. Never the start of a line of SQL or Python.
_BOARD_ECHO = re.compile(r"^(?:QUESTION|PLAN|SQL|PANDAS|RESULT|ERROR|CRITIQUE|ANSWER|EARLIER)(?: s\d+)?:", re.M)


def using_joins(sql: str) -> str:
    """Rewrite ``JOIN t ON a.k = t.k`` (same column name) as ``JOIN t USING (k)``.

    Same rows for an equi-join on equal names, but the key becomes one column, so the unqualified
    ``k`` a small model writes in SELECT/GROUP BY is no longer ambiguous. Unparsable or unaffected
    SQL is returned unchanged (the executor reports the real error).

    >>> using_joins("SELECT customer_id, count(*) FROM c JOIN o ON c.customer_id = o.customer_id GROUP BY customer_id")
    'SELECT customer_id, COUNT(*) FROM c JOIN o USING (customer_id) GROUP BY customer_id'
    """
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.SqlglotError:
        return sql
    changed = False
    for join in tree.find_all(exp.Join):
        on = join.args.get("on")
        if (isinstance(on, exp.EQ) and isinstance(on.this, exp.Column) and isinstance(on.expression, exp.Column)
                and on.this.name == on.expression.name and on.this.table and on.expression.table
                and on.this.table != on.expression.table and not join.args.get("using")):
            join.set("on", None)
            join.set("using", [exp.to_identifier(on.this.name)])
            changed = True
    return tree.sql(dialect="duckdb") if changed else sql


def requalify_columns(sql: str, columns: Mapping[str, Sequence[str]]) -> str:
    """Move ``alias.col`` to the one joined table that has ``col`` when the named one has not.

    A small model often puts a column on the wrong side of a join (``orders.country`` where only
    ``customers`` has ``country``) and, decoding greedily, repeats the mistake on every repair.
    Only references that cannot bind are touched, and only when exactly one table of the same
    SELECT has the column, so a query that runs is never changed.

    >>> requalify_columns("SELECT count(*) FROM customers AS c JOIN orders AS o USING (id) WHERE o.country = 'DE'",
    ...                   {"customers": ["id", "country"], "orders": ["id", "status"]})
    "SELECT COUNT(*) FROM customers AS c JOIN orders AS o USING (id) WHERE c.country = 'DE'"
    """
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.SqlglotError:
        return sql
    known = {t.lower(): {c.lower() for c in cols} for t, cols in columns.items()}
    changed = False
    for select in tree.find_all(exp.Select):
        from_ = select.args.get("from_") or select.args.get("from")
        tables = [from_.this] if from_ is not None else []
        tables += [j.this for j in select.args.get("joins") or []]
        sources = {t.alias_or_name.lower(): t.name.lower() for t in tables
                   if isinstance(t, exp.Table) and t.name.lower() in known}
        for col in select.find_all(exp.Column):
            qualifier = col.table.lower()
            if (not qualifier or qualifier not in sources or col.find_ancestor(exp.Select) is not select
                    or col.name.lower() in known[sources[qualifier]]):
                continue
            holders = [alias for alias, table in sources.items() if col.name.lower() in known[table]]
            if len(holders) == 1:
                col.set("table", exp.to_identifier(holders[0]))
                changed = True
    return tree.sql(dialect="duckdb") if changed else sql


def argmax_without_group(sql: str) -> str:
    """``SELECT name, MAX(price) FROM t [ORDER BY ...] [LIMIT 1]`` means "the row with the largest
    price", but is invalid SQL (no GROUP BY). Rewrite it as that: the plain column, ordered, one row.

    >>> argmax_without_group("SELECT product_id, MAX(unit_price) FROM products ORDER BY unit_price DESC LIMIT 1")
    'SELECT product_id, unit_price FROM products ORDER BY unit_price DESC LIMIT 1'
    >>> argmax_without_group("SELECT name, MIN(price) AS p FROM t")
    'SELECT name, price AS p FROM t ORDER BY price ASC LIMIT 1'
    >>> argmax_without_group("SELECT MAX(price) FROM t")
    'SELECT MAX(price) FROM t'
    """
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.SqlglotError:
        return sql
    if not isinstance(tree, exp.Select) or tree.args.get("group"):
        return sql
    aggs = [a for item in tree.expressions for a in item.find_all(exp.AggFunc)]
    plain = [item for item in tree.expressions if not any(True for _ in item.find_all(exp.AggFunc))]
    extreme = [a for a in aggs if isinstance(a, exp.Max | exp.Min) and isinstance(a.this, exp.Column)]
    if not plain or len(aggs) != 1 or len(extreme) != 1:
        return sql
    agg = extreme[0]
    column = agg.this.copy()
    descending = isinstance(agg, exp.Max)
    agg.replace(column)
    if not tree.args.get("order"):
        tree = tree.order_by(exp.Ordered(this=column.copy(), desc=descending), copy=False).limit(1, copy=False)
    return tree.sql(dialect="duckdb")


def like_on_dates(sql: str) -> str:
    """``order_date LIKE '2023%'`` fails in DuckDB (no LIKE on DATE); compare the text form instead.

    Applied when the pattern starts with a digit (a date or number prefix); text LIKEs are untouched.

    >>> like_on_dates("SELECT count(*) FROM orders WHERE order_date LIKE '2023%'")
    "SELECT COUNT(*) FROM orders WHERE CAST(order_date AS TEXT) LIKE '2023%'"
    """
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.SqlglotError:
        return sql
    changed = False
    for like in list(tree.find_all(exp.Like, exp.ILike)):
        pattern = like.expression
        if isinstance(like.this, exp.Column) and isinstance(pattern, exp.Literal) and pattern.is_string \
                and pattern.this[:1].isdigit():
            like.set("this", exp.cast(like.this.copy(), "text"))
            changed = True
    return tree.sql(dialect="duckdb") if changed else sql


def code_key(language: Language, code: str) -> tuple[str, str]:
    """What makes two pieces of code the same: SQL by its parsed form (case of keywords, spacing
    and a trailing ``;`` do not matter; literals do), anything else by its whitespace-separated words.

    >>> code_key("sql", "select a  from t;") == code_key("sql", "SELECT a\\nFROM t")
    True
    >>> code_key("sql", "SELECT a FROM t WHERE c = 'Oslo'") == code_key("sql", "SELECT a FROM t WHERE c = 'oslo'")
    False
    """
    text = code.strip().rstrip(";")
    if language == "sql":
        try:
            return language, sqlglot.parse_one(text, read="duckdb").sql(dialect="duckdb")
        except sqlglot.errors.SqlglotError:
            pass
    return language, " ".join(text.split())


def _cut_echo(code: str) -> str:
    echo = _BOARD_ECHO.search(code)
    return code if echo is None else code[:echo.start()]


def extract_code(text: str, language: Language) -> str:
    """The code inside a (possibly unterminated) fenced block, or the bare code.

    >>> extract_code("```sql\\nSELECT 1;", "sql")
    'SELECT 1'
    >>> extract_code("Here it is:\\nSELECT a FROM t\\n```", "sql")
    'SELECT a FROM t'
    >>> extract_code("```sql\\nSELECT a FROM t\\nRESULT s1:\\na\\n(0 rows)", "sql")
    'SELECT a FROM t'
    """
    parts = text.split("```")
    # Inside the first fence first (the usual reply), then whatever came before a fence.
    candidates = [_LANG_TAG.sub("", parts[1], count=1)] if len(parts) > 1 else []
    candidates.append(parts[0])
    for body in candidates:
        if language == "sql":
            start = _SQL_START.search(body)
            if start is not None:
                return _cut_echo(body[start.start():]).strip().rstrip(";").strip()
        elif body.strip():
            return _cut_echo(body).strip()
    return ""


class EngineerAgent:
    role = "engineer"

    def __init__(self, columns: Mapping[str, Sequence[str]]) -> None:
        self.columns = columns

    def _request(self, ctx: RunContext, step: Step, *, final: bool, mode: str, error: str = "",
                 temperature: float | None = None, failed: str = "", hints: bool = True) -> GenerationRequest:
        # The final step is phrased as "answer the QUESTION" and uses the tables linked from the
        # question itself: a small model follows the tail closely, and the Planner's paraphrase and
        # table list are worse guides than the question. ``hints=False`` leaves the tables and
        # joins out (the model reads the schema alone).
        about = f"{ctx.followup[0]} {ctx.question}" if ctx.followup else ctx.question
        linked = link_tables(about, self.columns) if final else []
        tables = (linked or step.tables) if hints else []
        tail = render_prompt(
            "engineer", step_id=step.id, goal=step.goal, final=final, question=ctx.question,
            tables=tables, joins=join_hints(tables, self.columns), language=step.language,
            repair=mode == "repair", revise=mode == "revise", error=error, followup=ctx.followup, failed=failed)
        # Greedy decoding repeats the same failing code for a near-identical prompt: fixes sample.
        return ctx.request("engineer", tail, stop=[CODE_STOP], max_tokens=MAX_CODE_TOKENS,
                           step_id=f"{step.id}:{mode}", depends_on=step.after, priority=0,
                           temperature=temperature if temperature is not None else
                           REPAIR_TEMPERATURE if mode in ("repair", "revise") else 0.0)

    def _post(self, ctx: RunContext, step: Step, text: str, mode: str) -> str:
        code = extract_code(text, step.language)
        if code and step.language == "sql":
            code = quote_known_names(code, [c for cols in self.columns.values() for c in cols])
            code = ordinal_offset(code, ctx.question) or code
            code = like_on_dates(argmax_without_group(requalify_columns(using_joins(code), self.columns)))
        if code:
            ctx.board.add("code", "engineer", code, round=ctx.round, step=step.id,
                          data={"language": step.language, "mode": mode})
        else:
            ctx.board.add("error", "engineer", f"the reply for {step.id} contained no {step.language} code",
                          round=ctx.round, step=step.id, data={"raw": text[:500]})
        return code

    async def write(self, ctx: RunContext, step: Step, *, final: bool, mode: str = "write",
                    error: str = "", temperature: float | None = None) -> str:
        """Write (mode ``write``), repair after ``error`` (``repair``) or rewrite after a critique
        (``revise``). Returns the code, or "" when the reply held none (recorded as an error).
        ``temperature`` overrides the mode's (greedy for writing, sampled for fixes)."""
        result = await ctx.generate(self._request(ctx, step, final=final, mode=mode, error=error,
                                                  temperature=temperature))
        return self._post(ctx, step, result.text, mode)

    def _board_free(self, ctx: RunContext, step: Step, *, error: str = "", failed: str = "",
                    hints: bool = True) -> GenerationRequest:
        """The final-step request with only the warm header + schema before its tail (no board)."""
        request = self._request(ctx, step, final=True, mode="direct", error=error, failed=failed, hints=hints)
        return request.model_copy(update={"segments": ctx.prefix.model_copy(update={"tail": request.segments.tail})})

    async def direct(self, ctx: RunContext, step: Step) -> str:
        """A last attempt when the loop found nothing: one query for the question from the schema
        alone, greedy, without the board (what single-shot text-to-SQL would do). The board's failed
        attempts are what the model kept copying; here only the warm header + schema precede it."""
        result = await ctx.generate(self._board_free(ctx, step))
        return self._post(ctx, step, result.text, "direct")

    def hinted(self, index: int, alternate: bool) -> bool:
        """Whether candidate ``index`` (and its fix) gets the linker's tables and joins: with
        ``alternate`` the odd ones do not, where there are several tables (with one, the hint names
        the only table there is, so a second prompt would add nothing but noise)."""
        return not (alternate and len(self.columns) > 1 and index % 2)

    async def candidates(self, ctx: RunContext, steps: Sequence[Step], temperature: float, *,
                         first: int = 0, alternate: bool = False) -> list[str]:
        """One query per step for the same question, from header + schema alone (no board), forked
        from one warm prefix. Step ``i`` is candidate ``first + i``. With ``alternate`` the odd
        candidates get a tail without the linker's tables and joins when there are several tables
        (two prompts, as MCS-SQL varies its prompts: a linker that names one table too many then
        misleads only half the votes).
        Candidate 0 is greedy (the single-shot answer), and candidate 1 too when its prompt
        differs; the others are sampled at ``temperature``. Each costs its own decode tokens and
        the short tail, not the schema."""
        hinted = self._board_free(ctx, steps[0])
        plain = hinted if self.hinted(1, alternate) else self._board_free(ctx, steps[0], hints=False)
        two = plain.segments.tail != hinted.segments.tail
        requests = []
        for i, s in enumerate(steps, start=first):
            base = plain if two and not self.hinted(i, alternate) else hinted
            greedy = i == 0 or (two and i == 1 and base is plain)
            requests.append(base.model_copy(update={"request_id": new_request_id(), "step_id": f"{s.id}:candidate",
                                                    "temperature": 0.0 if greedy else temperature}))
        results = await ctx.fork(requests)
        return [self._post(ctx, s, r.text, "candidate") for s, r in zip(steps, results)]

    async def fixes(self, ctx: RunContext, failures: Sequence[tuple[Step, str, str, int]], *,
                    alternate: bool = False) -> list[str]:
        """One corrected query per (step, failed query, what went wrong, the candidate's index),
        forked from the warm prefix like the candidates (no board): the failed query and its error
        are in the tail, with the linker's hints where its candidate had them (:meth:`hinted`)."""
        requests = [self._board_free(ctx, step, error=error, failed=code, hints=self.hinted(index, alternate))
                    .model_copy(update={"step_id": f"{step.id}:fix"}) for step, code, error, index in failures]
        results = await ctx.fork(requests)
        return [self._post(ctx, s, r.text, "fix") for (s, *_), r in zip(failures, results)]

    def adopt(self, ctx: RunContext, step: Step, code: str) -> str:
        """Take a corrected query the Critic derived deterministically: no LLM call needed."""
        ctx.board.add("code", "engineer", code, round=ctx.round, step=step.id,
                      data={"language": step.language, "mode": "adopted"})
        return code

    async def write_many(self, ctx: RunContext, steps: Sequence[Step], final_id: str) -> list[str]:
        """Independent steps: one fork, so the serving layer can batch them on a shared prefix."""
        if len(steps) == 1:
            return [await self.write(ctx, steps[0], final=steps[0].id == final_id)]
        reqs = [self._request(ctx, s, final=s.id == final_id, mode="write") for s in steps]
        results = await ctx.fork(reqs)
        return [self._post(ctx, s, r.text, "write") for s, r in zip(steps, results)]
