"""The serving ablation on the agents' real calls: what each app-aware technique is worth.

``K`` sessions open at once, each on its own catalog (one Spider database per session, or a folder
of tables), and each asks its questions one after another through the real orchestrator (candidate
forks, repairs, critic...). All sessions share one :class:`LLMClient` (one scheduler) on one engine,
as sessions of one server would. The same sessions and questions run once per row of ``LADDER``,
each row on a fresh engine of the same kind and model (no KV state carried over), cumulative:

    naive -> + stable layout -> + engine KV reuse -> + session locality -> + warm-up -> + priority

The last row is every technique on: what users get. Each row reports the serving figures of
``serving.bench.figures`` plus the calls per session and the workload's *distinct* tokens: the
size of the prefix tree of every prompt the row sent, i.e. the least any KV reuse has to compute
(``computed_vs_distinct``; warm-up tokens are counted apart, in ``warmup_tokens``, and with them in
``with_warmup_vs_distinct``). Later rows may
send slightly different prompts (greedy decoding is not bit-identical with and without a reused
prefix), so the distinct count is per row.

Ground truth never enters: sessions carry questions only.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..answer import Answer
from ..api import build_workspace, open_catalog
from ..config import Config
from ..errors import ConfigError
from ..orchestrator import Orchestrator, Workspace
from ..serving.bench import figures
from ..serving.client import LLMClient
from ..serving.engine import Engine
from ..serving.options import ServingOptions
from ..serving.types import PromptSegments
from .datasets import load_spider

_OFF = dict(kv_reuse=False, locality=False, warm_up=False, priority=False)

#: (row name, switches), cumulative; the last row is the default (all on).
LADDER: tuple[tuple[str, ServingOptions], ...] = (
    ("naive", ServingOptions(layout="role_first", **_OFF)),  # type: ignore[arg-type]
    ("layout", ServingOptions(**_OFF)),  # type: ignore[arg-type]
    ("kv_reuse", ServingOptions(locality=False, warm_up=False, priority=False)),
    ("locality", ServingOptions(warm_up=False, priority=False)),
    ("warm_up", ServingOptions(priority=False)),
    ("priority", ServingOptions()),
)
ROWS = tuple(name for name, _ in LADDER)

NOTE = ("rows are cumulative (each adds one technique to the row above; the last is all on, the default); "
        "latency per call = submit -> result; per session = start -> its last answer; warm-up tokens are "
        "not in prompt/computed tokens but their time is in every latency; distinct_tokens = prefix tree "
        "of the row's prompts (the least any reuse computes); absolute times depend on machine load")

OnAnswer = Callable[[str, str, Answer], None]


@dataclass(frozen=True)
class AgentSession:
    """One simulated user: a catalog's workspace and the questions asked in it, in order."""

    session_id: str
    source: str
    workspace: Workspace
    questions: tuple[str, ...]


def spider_sessions(root: Path, k: int, questions: int, config: Config) -> tuple[list[AgentSession], list[Any]]:
    """One Spider database per session (sorted by name), its first ``questions`` questions.

    Returns the sessions and the catalogs to close afterwards.
    """
    by_db: dict[str, list[Any]] = {}
    for item in load_spider(root):
        by_db.setdefault(item.db_id, []).append(item)
    chosen = [db for db in sorted(by_db) if len(by_db[db]) >= questions][:k]
    if len(chosen) < k:
        raise ConfigError(f"{root} has {len(chosen)} databases with {questions} questions; {k} sessions asked")
    sessions, catalogs = [], []
    for i, db in enumerate(chosen, 1):
        catalog = open_catalog(by_db[db][0].db_path, config)
        catalogs.append(catalog)
        sessions.append(AgentSession(f"s{i}-{db}", db, build_workspace(catalog, config, prestart_pandas=False),
                                     tuple(it.question for it in by_db[db][:questions])))
    return sessions, catalogs


def folder_sessions(folder: Path, question_file: Path, k: int, questions: int,
                    config: Config) -> tuple[list[AgentSession], list[Any]]:
    """``k`` sessions on the same tables (each its own catalog), session i asking questions
    ``i*questions ..`` of ``question_file`` (a JSON list of ``{"question": ...}``; wraps around)."""
    try:
        pool = [q["question"] for q in json.loads(question_file.read_text(encoding="utf-8"))]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read questions from {question_file}: {exc}") from None
    if not pool:
        raise ConfigError(f"no questions in {question_file}")
    sessions, catalogs = [], []
    for i in range(k):
        catalog = open_catalog(folder, config)
        catalogs.append(catalog)
        asked = tuple(pool[(i * questions + j) % len(pool)] for j in range(questions))
        sessions.append(AgentSession(f"s{i + 1}-{folder.name}", folder.name,
                                     build_workspace(catalog, config, prestart_pandas=False), asked))
    return sessions, catalogs


def distinct_tokens(prompts: Sequence[Sequence[Any]]) -> int:
    """Nodes of the prefix tree of ``prompts``: each distinct token computed once (shared prefixes
    once), which no KV reuse can beat.

    >>> distinct_tokens([[1, 2, 3], [1, 2, 4], [1, 2, 3], [5]])
    5
    """
    total, prev = 0, ()
    for seq in sorted({tuple(p) for p in prompts}):
        common = 0
        for a, b in zip(prev, seq):
            if a != b:
                break
            common += 1
        total += len(seq) - common
        prev = seq
    return total


async def run_row(name: str, options: ServingOptions, engine: Engine, sessions: Sequence[AgentSession],
                  config: Config, *, on_answer: OnAnswer | None = None, anticipate_s: float = 0.05,
                  clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Every session concurrently on ``engine`` under ``options``; the row's figures.

    ``anticipate_s``: the scheduler's hold between a program's calls (tests lengthen it so a slow
    SQL execution on a loaded machine cannot change the schedule they assert)."""
    client = LLMClient(engine, options=options, clock=clock, anticipate_s=anticipate_s)
    answers: dict[str, list[Answer]] = {s.session_id: [] for s in sessions}
    t0 = clock()

    async def one(spec: AgentSession) -> float:
        orch = Orchestrator(client, spec.workspace, config, session_id=spec.session_id)
        if options.warm_up:  # as api.Session: warm at open, the first question waits for it
            await orch.warm()
        for question in spec.questions:
            answer = await orch.answer(question)
            answers[spec.session_id].append(answer)
            if on_answer is not None:
                on_answer(name, spec.session_id, answer)
        return clock() - t0

    session_s = await asyncio.gather(*(one(s) for s in sessions))
    out = figures(client, list(session_s), clock() - t0)
    calls = [c for a in answers.values() for ans in a for c in ans.calls]
    tokens = [engine.prompt_token_ids(_segments(c.prompt)) for c in calls if c.prompt]
    distinct = distinct_tokens([t for t in tokens if t is not None]) if tokens and None not in tokens else None
    out.update(
        options=options.as_dict(),
        calls_per_session={sid: sum(len(a.calls) for a in ans) for sid, ans in answers.items()},
        distinct_tokens=distinct,
        computed_vs_distinct=round(out["computed_tokens"] / distinct, 3) if distinct else None,
        # A warmed prefix is computed before the question, not skipped: with it, the row's total.
        with_warmup_vs_distinct=(round((out["computed_tokens"] + out["warmup_tokens"]) / distinct, 3)
                                 if distinct else None),
        answered=sum(1 for ans in answers.values() for a in ans if a.values or a.unanswerable),
        order=[f"{c.session_id.split('-')[0]}:{c.agent}" for c in client.metrics.calls],
    )
    return out


def _segments(prompt: list[dict[str, str]]) -> PromptSegments:
    """Back from a traced prompt (system, user message) to segments that render to the same text."""
    system, user = (m["content"] for m in prompt)
    return PromptSegments(header=system, transcript=user)


async def run_ablation(engine_factory: Callable[[ServingOptions], Engine], sessions: Sequence[AgentSession],
                       config: Config, *, rows: Sequence[str] = ROWS, on_answer: OnAnswer | None = None,
                       anticipate_s: float = 0.05) -> dict[str, Any]:
    """Run ``rows`` of ``LADDER`` one after another, each on a fresh engine; compare with the first."""
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise ValueError(f"unknown ablation row {unknown[0]!r} (one of {', '.join(ROWS)})")
    # Prompts must be kept on the answers to count distinct tokens (a trace-only setting).
    config = config.model_copy(update={"agents": config.agents.model_copy(update={"trace_prompts": True})})
    out: dict[str, Any] = {"rows": {}}
    for name, options in LADDER:
        if name not in rows:
            continue
        engine = engine_factory(options)
        try:
            out["rows"][name] = await run_row(name, options, engine, sessions, config, on_answer=on_answer,
                                              anticipate_s=anticipate_s)
        finally:
            await engine.close()
    out["workload"] = {"kind": "agents", "sessions": len(sessions),
                       "questions": {s.session_id: list(s.questions) for s in sessions}}
    out["speedups"] = speedups(out["rows"])
    out["note"] = NOTE
    return out


def speedups(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Each row against the first one run (naive when it ran): how many times faster."""
    if not rows:
        return {}
    base = next(iter(rows.values()))

    def ratio(key: str, row: dict[str, Any]) -> float | None:
        return round(base[key] / row[key], 2) if row[key] else None

    return {name: {"session_median": ratio("session_median_s", row), "session_p95": ratio("session_p95_s", row),
                   "call_median": ratio("median_latency_s", row), "wall": ratio("wall_s", row)}
            for name, row in rows.items()}


def table(result: dict[str, Any]) -> str:
    """The rows as a markdown table (for the report and stderr)."""
    head = ("| row | session median s | session p95 s | call median s | TTFT median s | computed / prompt "
            "| reuse | calls/min | compl. tok/s | computed (+ warm-up) / distinct | x naive (session median) |")
    lines = [head, "|" + "---|" * 11]
    for name, r in result["rows"].items():
        sp = result["speedups"][name]["session_median"]
        cvd = (f"{r['computed_vs_distinct']} ({r['with_warmup_vs_distinct']})"
               if r["distinct_tokens"] else None)
        lines.append(f"| {name} | {r['session_median_s']} | {r['session_p95_s']} | {r['median_latency_s']} | "
                     f"{r['ttft_median_s']} | {r['computed_tokens']} / {r['prompt_tokens']} | {r['reuse_ratio']} | "
                     f"{r['calls_per_min']} | {r['completion_tok_s']} | {cvd if cvd is not None else '-'} | "
                     f"{sp if sp is not None else '-'} |")
    return "\n".join(lines)
