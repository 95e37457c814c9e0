"""The synthetic multi-agent workload replayed by ``autotqa bench serving``.

Each session is one Spider database: a 1–2k-token schema block rendered here with ``sqlite3``
(table/column names and types, row counts, a few sample values; opened read-only, never copied),
a question, and "execution results" made of the database's own rows. A session is a chain of
calls (user, planner, engineer..., critic); after each call the transcript grows by the call's
output plus a fake execution result, ~150 tokens in all — the shape measured in FINDINGS.md.

The serving layer knows nothing of tables; this module only builds *text* for the benchmark.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from .layout import role_first
from .types import PromptSegments

HEADER = ("You are one of five cooperating agents (user, planner, engineer, executor, critic) that "
          "answer questions about the tables of one database. Read the schema and the transcript; "
          "reply briefly and exactly as your role asks. SQL is DuckDB SQL.")

#: Role instructions, ~60 tokens each. Naive layout puts them first; the stable layout last.
ROLE_TEXT = {
    "user": ("Role: user. Restate the question as one self-contained sentence that names the tables "
             "and columns it needs. If it cannot be answered from these tables, say exactly which "
             "information is missing. Keep every number and name the question gives. Do not write SQL "
             "and do not add explanations."),
    "planner": ("Role: planner. Write a short numbered plan of at most three steps: which tables to "
                "read, how to join them (name the key columns), which filters and aggregations to "
                "apply, and what the final result columns are. Prefer one query when one is enough. No SQL, no "
                "prose around the plan."),
    "engineer": ("Role: engineer. Write one DuckDB SQL query for the next step of the plan, using "
                 "only tables and columns from the schema and quoting identifiers when needed. If "
                 "the last execution failed, read its error and fix the query. Limit large results. Reply with "
                 "the query only, no comments."),
    "critic": ("Role: critic. Decide whether the execution results answer the question. Reply with "
               "ACCEPT and the final answer in a few words, or REJECT, the one thing that is wrong, "
               "and whether the planner or the engineer must redo their part. Check units, filters and "
               "joins against the question. Be brief."),
}

_RESULT_CHARS = 260  # ~110 tokens of fake execution result, so output + result grow ~150 tokens


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _value(v: object, width: int = 24) -> str:
    s = repr(v) if isinstance(v, str) else str(v)
    return s if len(s) <= width else s[: width - 3] + "..."


@dataclass(frozen=True)
class TableSample:
    name: str
    columns: tuple[str, ...]
    rows: tuple[tuple[object, ...], ...]


@dataclass(frozen=True)
class SessionSpec:
    """Everything one benchmark session needs, as plain text and rows."""

    session_id: str
    database: str
    schema_text: str
    question: str
    samples: tuple[TableSample, ...]

    def result_text(self, call_index: int) -> str:
        """A deterministic fake execution result: previews of the database's tables (~110 tokens)."""
        lines: list[str] = []
        for j in range(len(self.samples)):
            t = self.samples[(call_index + j) % len(self.samples)]
            lines.append(f"ok, {len(t.rows)} rows from {t.name}: " + " | ".join(t.columns))
            lines += [" | ".join(_value(v, 16) for v in row) for row in t.rows]
            if sum(len(x) + 1 for x in lines) >= _RESULT_CHARS:
                break
        return "\n".join(lines)[:_RESULT_CHARS].rstrip() if lines else "ok, 0 rows"


def render_schema(path: Path, *, samples: int = 3) -> tuple[str, tuple[TableSample, ...]]:
    """Schema text of a SQLite file (deterministic: sorted tables, declared column order)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        out = [f"Database {path.stem}: {len(tables)} tables."]
        table_samples = []
        for t in tables:
            cols = [(r[1], r[2] or "TEXT", r[5]) for r in conn.execute(f"PRAGMA table_info({_quote(t)})")]
            n = conn.execute(f"SELECT COUNT(*) FROM {_quote(t)}").fetchone()[0]
            out.append(f"Table {t} ({n} rows)")
            for name, typ, pk in cols:
                vals = [r[0] for r in conn.execute(
                    f"SELECT DISTINCT {_quote(name)} FROM {_quote(t)} WHERE {_quote(name)} IS NOT NULL "
                    f"ORDER BY 1 LIMIT {samples}")]
                key = " primary key" if pk else ""
                ex = ", ".join(_value(v) for v in vals)
                out.append(f"  {name} {typ}{key}" + (f"; e.g. {ex}" if ex else ""))
            for fk in conn.execute(f"PRAGMA foreign_key_list({_quote(t)})"):
                out.append(f"  foreign key {fk[3]} -> {fk[2]}.{fk[4]}")
            rows = conn.execute(f"SELECT * FROM {_quote(t)} LIMIT 6").fetchall()
            table_samples.append(TableSample(t, tuple(c[0] for c in cols), tuple(tuple(r) for r in rows)))
        return "\n".join(out), tuple(table_samples)
    finally:
        conn.close()


def estimate_tokens(text: str) -> int:
    """~2.3 characters a token for schema text (ids, dates, numbers) with the Qwen tokenizer."""
    return round(len(text) / 2.3)


def build_sessions(data_dir: Path, k: int, *, min_tokens: int = 1000, max_tokens: int = 2000) -> list[SessionSpec]:
    """``k`` sessions from the first databases (sorted by name) whose schema is 1–2k tokens."""
    db_dir = data_dir / "databases" if (data_dir / "databases").is_dir() else data_dir
    specs: list[SessionSpec] = []
    for path in sorted(db_dir.glob("*.sqlite")):
        text, samples = render_schema(path)
        if not min_tokens <= estimate_tokens(text) <= max_tokens or not samples:
            continue
        first = samples[0]
        question = (f"How many rows of {first.name} are there for each distinct value of "
                    f"{first.columns[-1]}, and which value has the most?")
        specs.append(SessionSpec(f"s{len(specs) + 1}-{path.stem}", path.stem, text, question, samples))
        if len(specs) == k:
            return specs
    raise FileNotFoundError(
        f"found {len(specs)} of {k} SQLite databases with a {min_tokens}-{max_tokens}-token schema in {db_dir}")


def roles_for(calls: int) -> list[str]:
    """user, planner, engineer..., critic — ``calls`` in all."""
    if calls < 3:
        return ["planner", "engineer"][:calls] if calls < 2 else ["planner", "critic"]
    return ["user", "planner"] + ["engineer"] * (calls - 3) + ["critic"]


def segments_for(layout: str, role: str, spec: SessionSpec, transcript: str) -> PromptSegments:
    """``stable``: header + schema first, role text last. ``naive``: role text first (prefixes differ)."""
    if layout == "stable":
        return PromptSegments(header=HEADER, schema_block=spec.schema_text, transcript=transcript,
                              tail=ROLE_TEXT[role])
    if layout == "naive":
        return role_first(segments_for("stable", role, spec, transcript))
    raise ValueError(f"unknown layout {layout!r} (stable or naive)")


def shared_prefix(spec: SessionSpec) -> PromptSegments:
    return PromptSegments(header=HEADER, schema_block=spec.schema_text)
