"""The loop: User -> Planner -> Engineer <-> Executor -> Critic -> accept | revise | replan.

One question is one serving *program*: every call shares the session's warmed prefix (header +
schema) and the board so far, independent plan steps are forked, and the program ends with the
question. Limits (``config.agents``) bound every loop: rounds, repairs per step, computed tokens
and wall time. When they run out the best *supported* result (one that ran and returned rows) is
returned with ``verified=False``; with none, no values at all — never an invented answer.

Mistakes of the model (unparsable reply, failing SQL) are written on the board and fed back;
errors of the program (engine down, bad configuration) propagate as exceptions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .agents.base import RunContext, shared_prefix
from .agents.critic import CriticAgent, Verdict, check_result, zero_count
from .agents.engineer import RETRY_TEMPERATURE, EngineerAgent, code_key
from .agents.events import (AgentFinished, AgentStarted, AnswerReady, CodeWritten, Event, ModelMistake,
                            PlanMade, QuestionPosted, StepResult, VerdictGiven)
from .agents.executor import ExecutorAgent
from .agents.planner import PlannerAgent, Step
from .agents.repairs import relink_values, repair_sql
from .agents.selection import Candidate, Selection, candidate_summary, select
from .agents.user import UserAgent, missing_concept
from .agents.values import answer_sentence, extract_values, fallback_sentence
from .answer import Answer, LLMCall, Provenance
from .blackboard import Blackboard, Entry
from .config import Config
from .executors.base import ExecutionResult, Executor, Language
from .serving.client import LLMClient, Program
from .serving.layout import to_messages
from .serving.types import GenerationResult

EventHandler = Callable[[Event], None]


@dataclass(frozen=True)
class Workspace:
    """What the agents may know of the data: the schema text (the shared prompt prefix), table ->
    column names (for checks and hints) and one executor per language."""

    schema_text: str
    columns: Mapping[str, Sequence[str]]
    executors: Mapping[Language, Executor]


class _BudgetSpent(Exception):
    """Internal: the token or time budget ran out; the run returns its best supported answer."""


@dataclass
class _Run:
    """Everything one question's run accumulates."""

    ctx: RunContext
    emit: EventHandler
    emitted: int = 0
    tokens: int = 0
    steps: list[Step] = field(default_factory=list)
    code: dict[str, str] = field(default_factory=dict)
    results: dict[str, ExecutionResult] = field(default_factory=dict)
    fix: str | None = None
    #: code already run -> why it is no good (its error, or the critique of its result): the model
    #: often re-emits a failing query verbatim, and running it again can only fail the same way.
    tried: dict[tuple[str, str], str] = field(default_factory=dict)
    best: tuple[Step, str, ExecutionResult, dict[str, tuple[str, ExecutionResult]]] | None = None
    #: The candidates' winner when they did not agree: what the run returns unless the loop verifies
    #: something (a single prompt's answer is never thrown away for a worse, unverified one).
    voted: tuple[Step, str, ExecutionResult, dict[str, tuple[str, ExecutionResult]]] | None = None

    def count(self, result: GenerationResult) -> None:
        u = result.usage
        self.tokens += u.prompt_tokens - u.reused_tokens + u.completion_tokens


class Orchestrator:
    """Runs questions against one workspace through one LLM client (one session)."""

    def __init__(self, client: LLMClient, workspace: Workspace, config: Config | None = None, *,
                 session_id: str = "session") -> None:
        self.client = client
        self.workspace = workspace
        self.config = config or Config()
        self.session_id = session_id
        self.prefix = shared_prefix(workspace.schema_text)
        cols = workspace.columns
        self.executor = ExecutorAgent(workspace.executors, preview_rows=self.config.agents.preview_rows)
        self.user = UserAgent(cols)
        self.planner = PlannerAgent(cols, self.executor.languages)
        self.engineer = EngineerAgent(cols)
        self.critic = CriticAgent(cols)

    async def warm(self) -> GenerationResult:
        """Prefill header + schema as soon as the session opens, before the first question."""
        return await self.client.warm(self.session_id, self.prefix)

    async def stream(self, inquiry: str, *, history: Sequence[Sequence[str]] = ()) -> AsyncIterator[Event]:
        """The run's events as an async iterator; the last one is ``AnswerReady``."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        task = asyncio.create_task(self.answer(inquiry, history=history, on_event=queue.put_nowait))
        task.add_done_callback(lambda _t: queue.put_nowait(None))
        while (event := await queue.get()) is not None:
            yield event
        await task  # re-raises a program error

    async def answer(self, inquiry: str, *, history: Sequence[Sequence[str]] = (),
                     on_event: EventHandler | None = None) -> Answer:
        t0 = time.perf_counter()
        program = self.client.begin_program(self.session_id, self.prefix)
        board = Blackboard()
        run = _Run(ctx=RunContext(program=program, board=board, prefix=self.prefix,
                                  config=self.config.agents, question=inquiry),
                   emit=on_event or (lambda _e: None))
        run.ctx.on_call = run.count
        run.emitted = len(board)
        try:
            answer = await self._solve(run, inquiry, history)
        finally:
            await program.end()
        answer.elapsed_s = time.perf_counter() - t0
        answer.trace = board.to_trace()
        answer.metrics = self._metrics(program, answer.elapsed_s)
        answer.calls = self._calls(program)
        run.emit(AnswerReady(answer=answer))
        return answer

    # -- the loop ---------------------------------------------------------------------------------

    async def _solve(self, run: _Run, inquiry: str, history: Sequence[Sequence[str]]) -> Answer:
        ctx = run.ctx
        question = await self._agent(run, "user", "", self.user.run(ctx, inquiry, history))
        if not question.answerable:
            missing = f": {question.missing}" if question.missing else ""
            text = f"The tables cannot answer this question{missing}."
            ctx.board.add("answer", "user", text, round=ctx.round, data={"unanswerable": True})
            return Answer(question=ctx.question, answer=text, unanswerable=True, verified=False)
        cfg = self.config.agents
        mode = "plan"
        try:
            if ctx.doubtful:
                # No word of the question names a table or column: one greedy attempt first. When
                # it needed a column for a word of the question that the tables lack ("weather"),
                # the tables cannot answer it: two model calls, not a whole loop.
                first: Selection | None = await self._vote(run, 1)
                failed = first.failed[0].result if first.failed else None
                lacking = missing_concept(ctx.question, failed.error or "", self.user.vocabulary) \
                    if failed is not None and not failed.ok else None
                if lacking is not None:
                    text = f'The tables cannot answer this question: they have nothing on "{lacking}".'
                    ctx.board.add("answer", "system", text, round=ctx.round, data={"unanswerable": True})
                    return Answer(question=ctx.question, answer=text, unanswerable=True, verified=False)
            else:
                first = None
            if cfg.candidates > 1:
                selection = await self._vote(run, cfg.candidates, first)
                if not selection.agreed and cfg.escalate == "repair":
                    selection = await self._repair_vote(run, selection)
                if selection.agreed:
                    run.best = run.voted
                    return self._compose(run, verified=True, note="")
                if cfg.escalate != "loop":
                    raise _BudgetSpent
            for rnd in range(1, cfg.max_rounds + 1):
                ctx.round = rnd
                if mode == "plan":
                    self._check_budget(run)
                    run.steps = await self._agent(run, "planner", "",
                                                  self.planner.run(ctx, replan=rnd > 1))
                    run.results.clear()
                    todo = run.steps
                else:
                    todo = run.steps[-1:]
                final = run.steps[-1]
                if not await self._run_steps(run, todo, mode):
                    failed = next(s for s in todo if not run.results.get(s.id, _FAILED).ok)
                    note = f"step {failed.id} still fails after {cfg.max_repairs} repairs; try another approach"
                    verdict = Verdict(verdict="replan", note=note)
                    ctx.board.add("critique", "critic", f"replan: {note}", round=rnd, step=failed.id,
                                  data={"verdict": "replan", "deterministic": True})
                    self._flush(run)
                    run.emit(VerdictGiven(round=rnd, step=failed.id, verdict="replan", note=note,
                                          deterministic=True))
                    mode = "plan"
                    continue
                result = run.results[final.id]
                if result.n_rows > 0:
                    run.best = (final, run.code[final.id], result,
                                {s.id: (run.code[s.id], run.results[s.id]) for s in run.steps})
                self._check_budget(run)
                verdict = await self._agent(run, "critic", final.id, self.critic.run(ctx, final, result))
                last = ctx.board.entries[-1]
                run.emit(VerdictGiven(round=rnd, step=final.id, verdict=verdict.verdict, note=verdict.note,
                                      deterministic=last.kind == "critique" and last.data.get("deterministic", False)))
                if verdict.verdict == "accept":
                    return self._compose(run, verified=True, note=verdict.note)
                run.tried[code_key(final.language, run.code[final.id])] = \
                    f"its result was rejected: {verdict.note or verdict.verdict}"
                mode = "revise" if verdict.verdict == "revise" else "plan"
                run.fix = verdict.fix
            if run.best is None and run.voted is None and cfg.candidates <= 1:
                await self._direct(run)
        except _BudgetSpent:
            pass
        if run.voted is not None:
            run.best = run.voted
        return self._compose(run, verified=False, note="")

    async def _vote(self, run: _Run, n: int, earlier: Selection | None = None) -> Selection:
        """Sample ``n`` queries for the question from the warm prefix (one fork; the greedy one
        already among ``earlier``'s candidates when given), run each once (an error that names its fix
        is repaired without a model call), and group them by result. The winner is ``run.voted``;
        the caller decides whether it is agreed."""
        ctx = run.ctx
        cfg = self.config.agents
        kept = earlier.candidates if earlier else []
        steps = [Step(id=f"c{i + 1}", goal=ctx.question) for i in range(len(kept), n)]
        if not steps:
            return self._select(run, kept)
        self._check_budget(run)
        codes = await self._agent(run, "engineer", "c", self.engineer.candidates(
            ctx, steps, cfg.candidate_temperature, first=len(kept), alternate=cfg.unhinted_candidates))
        seen: dict[tuple[str, str], tuple[str, ExecutionResult]] = {
            code_key("sql", c.code): (c.code, c.result) for c in kept if c.code}
        candidates = list(kept)
        for i, (step, code) in enumerate(zip(steps, codes), start=len(kept)):
            if not code:
                candidates.append(Candidate(i, "", ExecutionResult.failure("sql", "", "NoCode", "no code")))
                continue
            key = code_key("sql", code)
            if key not in seen:  # a repeated sample is one more vote, not one more execution
                seen[key] = await self._run_fixing(run, step, code)
            final_code, result = seen[key]
            candidates.append(Candidate(i, final_code, result))
        return self._select(run, candidates)

    def _select(self, run: _Run, candidates: list[Candidate]) -> Selection:
        """Vote over ``candidates``, post the vote on the board; the winner becomes ``run.voted``."""
        ctx = run.ctx
        selection = select(candidates, lambda r: _check_note(self.critic, ctx.question, r))
        top = selection.chosen
        ctx.board.add("critique", "critic", _vote_text(selection), round=ctx.round,
                      step=f"c{top.best.index + 1}" if top else "",
                      data={"verdict": "accept" if selection.agreed else "vote", "deterministic": True,
                            "vote": dict(candidate_summary(selection))})
        self._flush(run)
        if top is not None:
            step = Step(id=f"c{top.best.index + 1}", goal=ctx.question)
            run.voted = (step, top.best.code, top.best.result, {step.id: (top.best.code, top.best.result)})
        return selection

    async def _repair_vote(self, run: _Run, selection: Selection) -> Selection:
        """No agreement: send up to ``repair_candidates`` failed candidates (an error, no rows, or a
        result the checks reject) back to the Engineer with their query and what went wrong, in one
        fork, run the fixes and vote again over all candidates (MAC-SQL's refiner, then selection)."""
        ctx = run.ctx
        cands = selection.candidates
        broken: list[tuple[Candidate, str]] = []
        for c in sorted(selection.failed, key=lambda c: c.index):
            if c.code and all(c.code != b.code for b, _ in broken):
                res = c.result
                broken.append((c, f"{res.error_type}: {res.error}" if not res.ok else
                               "It returned no rows; check the filter values against the samples."))
        for g in selection.groups:
            if not g.passes:
                broken.append((g.best, f"Its result is wrong: {g.note}."))
        broken = sorted(broken, key=lambda b: b[0].index)[:self.config.agents.repair_candidates]
        if not broken:
            return selection
        self._check_budget(run)
        first = len(cands)
        steps = [Step(id=f"c{first + i + 1}", goal=ctx.question) for i in range(len(broken))]
        codes = await self._agent(run, "engineer", "fix", self.engineer.fixes(
            ctx, [(s, c.code, why, c.index) for s, (c, why) in zip(steps, broken)],
            alternate=self.config.agents.unhinted_candidates))
        for i, (step, code) in enumerate(zip(steps, codes)):
            if code and code_key("sql", code) not in run.tried:
                final_code, result = await self._run_fixing(run, step, code)
                cands.append(Candidate(first + i, final_code, result))
        return self._select(run, cands)

    async def _run_fixing(self, run: _Run, step: Step, code: str) -> tuple[str, ExecutionResult]:
        """Run ``code``; when it fails with an error that names its own fix, run the fixed query."""
        result = await self._run_code(run, step, code)
        for _ in range(MAX_RULE_REPAIRS):  # one error at a time: "Date" -> "Date:", then "Location"
            if result.ok:
                break
            error = f"{result.error_type}: {result.error}"
            run.tried[code_key("sql", code)] = error
            fixed = repair_sql(code, error)
            if fixed is None or code_key("sql", fixed) in run.tried:
                break
            code = self.engineer.adopt(run.ctx, step, fixed)
            result = await self._run_code(run, step, code)
        if not result.ok:
            run.tried[code_key("sql", code)] = f"{result.error_type}: {result.error}"
        elif result.n_rows == 0 or zero_count(result):
            # Nothing passed a filter: a text literal spelled unlike the data ('north america' for
            # 'North America') is relinked to the one value it matches, looked up in the table.
            fixed = relink_values(code, {t: list(c) for t, c in self.workspace.columns.items()}, self._lookup)
            if fixed is not None and code_key("sql", fixed) not in run.tried:
                relinked = await self._run_code(run, step, self.engineer.adopt(run.ctx, step, fixed))
                if relinked.ok and relinked.n_rows > 0 and not zero_count(relinked):
                    return fixed, relinked
        return code, result

    def _lookup(self, sql: str) -> list[list[Any]] | None:
        """A read query of the Orchestrator's own (value lookups), not the model's: not on the board."""
        result = self.workspace.executors["sql"].run(sql)
        return result.rows if result.ok else None

    async def _direct(self, run: _Run) -> None:
        """Rounds spent and nothing supported: one single-shot query from the schema alone (see
        :meth:`EngineerAgent.direct`). Its rows are returned unverified; a query already tried is not
        run again."""
        self._check_budget(run)
        step = Step(id="direct", goal=run.ctx.question, tables=run.steps[-1].tables if run.steps else [])
        code = await self._agent(run, "engineer", step.id, self.engineer.direct(run.ctx, step))
        if not code or code_key("sql", code) in run.tried:
            return
        result = await self._run_code(run, step, code)
        if result.ok and result.n_rows > 0:
            run.best = (step, code, result, {step.id: (code, result)})

    async def _run_steps(self, run: _Run, todo: Sequence[Step], mode: str) -> bool:
        """Write and execute ``todo`` in dependency order, forking independent steps; False when a
        step still fails after its repairs (downstream steps cannot run)."""
        final_id = run.steps[-1].id
        done = {s.id for s in run.steps if s not in todo}
        pending = list(todo)
        while pending:
            ready = [s for s in pending if all(a in done for a in s.after)] or pending[:1]
            self._check_budget(run)
            if mode == "revise":
                critique = run.ctx.board.last("critique")
                note = critique.content if critique is not None else ""
                if run.fix:
                    codes = [await self._agent(run, "engineer", ready[0].id,
                                               _call(self.engineer.adopt, run.ctx, ready[0], run.fix))]
                else:
                    codes = [await self._agent(run, "engineer", ready[0].id, self.engineer.write(
                        run.ctx, ready[0], final=True, mode="revise", error=note))]
                run.fix = None
            else:
                label = ",".join(s.id for s in ready)
                codes = await self._agent(run, "engineer", label,
                                          self.engineer.write_many(run.ctx, ready, final_id))
            for step, code in zip(ready, codes):
                if not await self._execute(run, step, code, final=step.id == final_id):
                    return False
            done.update(s.id for s in ready)
            pending = [s for s in pending if s not in ready]
        return True

    async def _execute(self, run: _Run, step: Step, code: str, *, final: bool) -> bool:
        """Run a step's code; on failure let the Engineer repair, at most ``max_repairs`` times.

        Code that was already run and failed (or whose result the Critic rejected) is not run
        again: the board says so and the repair samples wider (``RETRY_TEMPERATURE``)."""
        repairs = 0
        while True:
            key = code_key(step.language, code) if code else None
            seen = run.tried.get(key) if key is not None else None
            repeated = seen is not None
            if repeated:
                what = "code" if step.language == "pandas" else "query"
                message = f"this exact {what} was already tried ({seen}); write a different one"
                result = ExecutionResult.failure(step.language, code, "repeated", message)
                run.ctx.board.add("error", "system", f"repeated: {message}", round=run.ctx.round, step=step.id,
                                  data={"repeated": True})
                self._flush(run)
            elif code:
                result = await self._run_code(run, step, code)
                if not result.ok:
                    run.tried[key] = f"{result.error_type}: {result.error}"
            else:  # the reply had no code: the error is already on the board
                result = ExecutionResult.failure(step.language, "", "NoCode", "no code in the reply")
            run.code[step.id] = code
            run.results[step.id] = result
            if result.ok:
                return True
            if repairs >= self.config.agents.max_repairs:
                return False
            repairs += 1
            self._check_budget(run)
            code = await self._agent(run, "engineer", step.id, self.engineer.write(
                run.ctx, step, final=final, mode="repair", error=f"{result.error_type}: {result.error}",
                temperature=RETRY_TEMPERATURE if repeated else None))

    async def _run_code(self, run: _Run, step: Step, code: str) -> ExecutionResult:
        """The Executor agent on ``code``, its time reported as non-LLM work."""
        t0 = time.perf_counter()
        result = await self._agent(run, "executor", step.id, _call(self.executor.run, run.ctx, step, code))
        self._non_llm(run, time.perf_counter() - t0, step.language)
        return result

    # -- bookkeeping ------------------------------------------------------------------------------

    def _non_llm(self, run: _Run, seconds: float, label: str) -> None:
        """Report execution time to the serving layer's recorder (its LLM vs non-LLM split)."""
        recorder = getattr(self.client, "metrics", None)
        if recorder is not None and hasattr(recorder, "add_non_llm"):
            recorder.add_non_llm(self.session_id, seconds, label, program_id=run.ctx.program.program_id)

    def _check_budget(self, run: _Run) -> None:
        cfg = self.config.agents
        if run.tokens >= cfg.max_total_tokens or time.perf_counter() - run.ctx.started >= cfg.time_budget_s:
            run.ctx.board.add("error", "system", f"budget spent ({run.tokens} tokens, "
                              f"{time.perf_counter() - run.ctx.started:.1f} s)", round=run.ctx.round,
                              data={"tokens": run.tokens})
            self._flush(run)
            raise _BudgetSpent

    async def _agent(self, run: _Run, agent: str, step: str, work: Any) -> Any:
        """Run one agent's work, framed by started/finished events and the entries it posted."""
        run.emit(AgentStarted(agent=agent, round=run.ctx.round, step=step))
        t0 = time.perf_counter()
        try:
            return await work
        finally:
            self._flush(run)
            run.emit(AgentFinished(agent=agent, round=run.ctx.round, step=step,
                                   elapsed_s=time.perf_counter() - t0))

    def _flush(self, run: _Run) -> None:
        entries = run.ctx.board.entries
        for entry in entries[run.emitted:]:
            event = _entry_event(entry)
            if event is not None:
                run.emit(event)
        run.emitted = len(entries)

    def _compose(self, run: _Run, *, verified: bool, note: str) -> Answer:
        ctx = run.ctx
        plan = [s.render() for s in run.steps]
        if run.best is None:
            text = "No supported answer was found within the limits."
            ctx.board.add("answer", "system", text, round=ctx.round, data={"verified": False, "values": []})
            return Answer(question=ctx.question, answer=text, verified=False, plan=plan)
        step, code, result, by_step = run.best
        values = extract_values(ctx.question, result)
        text = answer_sentence(note, values, result.n_rows) if verified else \
            f"{fallback_sentence(values, result.n_rows)} (not verified)"
        ctx.board.add("answer", "critic" if verified else "system", text, round=ctx.round, step=step.id,
                      data={"values": values, "verified": verified})
        provenance = [Provenance(step_id=sid, language=res.language, code=res.code or c, columns=res.columns,
                                 rows=res.rows, n_rows=res.n_rows) for sid, (c, res) in by_step.items()]
        return Answer(question=ctx.question, answer=text, values=values, sql=code, language=step.language,
                      verified=verified, plan=plan, result=result, provenance=provenance)

    def _calls(self, program: Program) -> list[LLMCall]:
        """The program's LLM calls in submit order; prompts and replies only with ``trace_prompts``
        (they are most of a trace's size and may hold data values)."""
        keep = self.config.agents.trace_prompts
        calls = []
        for res in program.results:
            at, req = program.sent.get(res.request_id, (0.0, None))
            calls.append(LLMCall(
                request_id=res.request_id, agent=res.agent, step_id=req.step_id if req else "", started_at=at,
                queued_s=res.timings.queued_s, ttft_s=res.timings.ttft_s, total_s=res.timings.total_s,
                prompt_tokens=res.usage.prompt_tokens, cached_tokens=res.usage.reused_tokens,
                completion_tokens=res.usage.completion_tokens, finish_reason=res.finish_reason,
                prompt=[m.model_dump() for m in to_messages(req.segments)] if keep and req else None,
                reply=res.text if keep else None))
        return sorted(calls, key=lambda c: c.started_at)

    def _metrics(self, program: Program, elapsed: float) -> dict[str, Any]:
        """Token and time figures of this program: the serving layer's recorder when it has one,
        otherwise summed from the program's results."""
        by_agent: dict[str, dict[str, float]] = {}
        totals = {"prompt_tokens": 0, "reused_tokens": 0, "completion_tokens": 0}
        llm_s = 0.0
        for res in program.results:
            agg = by_agent.setdefault(res.agent, {"calls": 0, "prompt_tokens": 0, "reused_tokens": 0,
                                                  "completion_tokens": 0, "llm_s": 0.0})
            agg["calls"] += 1
            for key in totals:
                totals[key] += getattr(res.usage, key)
                agg[key] += getattr(res.usage, key)
            agg["llm_s"] += res.timings.total_s
            llm_s += res.timings.total_s
        summary: dict[str, Any] = {
            **totals, "llm_calls": len(program.results), "llm_s": round(llm_s, 3),
            "reuse_ratio": round(totals["reused_tokens"] / totals["prompt_tokens"], 4)
            if totals["prompt_tokens"] else 0.0, "by_agent": by_agent}
        recorder = getattr(self.client, "metrics", None)
        if recorder is not None and hasattr(recorder, "summary"):
            return {**summary, **recorder.summary(program.program_id)}
        summary["non_llm_s"] = round(max(0.0, elapsed - llm_s), 3)
        return summary


_FAILED = ExecutionResult(ok=False)
#: Rule repairs in a row for one query (each fixes the one error the executor reported).
MAX_RULE_REPAIRS = 4


def _check_note(critic: CriticAgent, question: str, result: ExecutionResult) -> str | None:
    verdict = check_result(question, result, critic.columns)
    return None if verdict is None else verdict.note


def _vote_text(selection: Selection) -> str:
    """One board line on the vote, e.g. ``vote: c2,c3 agree (2 of 4); c1 differs; c4 failed``."""
    total = sum(g.support for g in selection.groups) + len(selection.failed)
    if selection.chosen is None:
        return f"vote: none of {total} candidates returned rows"
    parts = []
    for n, group in enumerate(selection.groups):
        names = ",".join(f"c{c.index + 1}" for c in group.members)
        what = f"agree ({group.support} of {total})" if n == 0 and group.support > 1 else \
            ("returns this" if n == 0 else "differs")
        parts.append(f"{names} {what}" + (f" but {group.note}" if not group.passes else ""))
    if selection.failed:
        parts.append(",".join(f"c{c.index + 1}" for c in selection.failed) + " failed or empty")
    verdict = "accept" if selection.agreed else "no agreement"
    return f"vote ({verdict}): " + "; ".join(parts)


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a synchronous agent (the Executor) when awaited, so ``_agent`` frames it like the others."""
    return fn(*args)


def _entry_event(entry: Entry) -> Event | None:
    if entry.kind == "question":
        return QuestionPosted(question=entry.content, answerable=bool(entry.data.get("answerable", True)))
    if entry.kind == "plan":
        return PlanMade(round=entry.round, steps=entry.content.splitlines())
    if entry.kind == "code":
        return CodeWritten(round=entry.round, step=entry.step, language=entry.data.get("language", "sql"),
                           code=entry.content)
    if entry.kind == "result" or (entry.kind == "error" and entry.role == "executor"):
        res = entry.data.get("result", {})
        return StepResult(round=entry.round, step=entry.step, ok=entry.kind == "result", preview=entry.content,
                          n_rows=res.get("n_rows", 0), error=res.get("error"))
    if entry.kind == "error":
        return ModelMistake(round=entry.round, step=entry.step, agent=entry.role, message=entry.content)
    return None
