"""Configuration: one explicit pydantic object passed down (no globals).

Precedence (applied by the CLI): command-line flags > ``AUTOTQA_*`` environment variables > the
TOML file ``config.toml`` in the user config directory > these defaults.
"""

from __future__ import annotations

import os
import sys
from typing import Literal

from pydantic import BaseModel, Field

EngineKind = Literal["local", "openai", "vllm", "scripted"]


class EngineConfig(BaseModel):
    kind: EngineKind = "local"
    #: GGUF path or Hugging Face repo id (local); model name (openai/vllm). None: the packaged 0.5B model.
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    n_ctx: int = 8192
    #: Most prompt tokens llama.cpp evaluates in one decode call (the embedded engine). Another
    #: size changes the float arithmetic of prefill (and so, at the margin, greedy outputs) and
    #: the size of the logits buffer; 512 is llama-cpp-python's default.
    n_batch: int = Field(default=512, ge=1)
    n_threads: int = Field(default_factory=lambda: max(1, len(os.sched_getaffinity(0))))
    #: "adaptive": before each request the embedded engine uses the cores other processes leave
    #: idle (at most n_threads), because llama.cpp's spinning threads collapse on a busy machine;
    #: "fixed": always n_threads. Adaptive reads /proc/stat, so it is the default on Linux only.
    thread_policy: Literal["adaptive", "fixed"] = Field(
        default_factory=lambda: "adaptive" if sys.platform.startswith("linux") else "fixed")
    #: Memory budget for per-session KV snapshots of the embedded engine.
    kv_cache_bytes: int = 512 * 1024 * 1024
    #: Where KV state of a dataset's shared prefix is persisted across runs (None: user cache dir).
    prefix_cache_dir: str | None = None
    persist_prefix: bool = True
    request_timeout_s: float = 120.0
    #: An HTTP server's prefix cache cannot be inspected: a session's prefix (header + schema) is
    #: warmed again before a question only when no request carried it for this long (0: always).
    rewarm_after_s: float = Field(default=300.0, ge=0)
    seed: int = 0


class ExecutorConfig(BaseModel):
    row_cap: int = 1000
    sql_timeout_s: float = 10.0
    pandas_timeout_s: float = 20.0
    pandas_cpu_s: int = 15
    pandas_memory_mb: int = 1024
    #: Most bytes a result may bring back (its rows as JSON), for every executor: past it the code
    #: gets "result too large" and is asked to aggregate or select less.
    result_max_bytes: int = 8 * 1024 * 1024
    #: DuckDB memory for query work on top of the loaded data (its default is 80 % of RAM).
    sql_memory_limit_mb: int = 2048
    #: DuckDB threads for queries (its default is every core).
    sql_threads: int = Field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)))
    #: Run pandas code even where the OS confinement (executors/confine.py: bubblewrap namespaces +
    #: seccomp) is unavailable, e.g. macOS. Off: there the pandas executor refuses to run.
    pandas_unconfined_ok: bool = False


class AgentConfig(BaseModel):
    max_rounds: int = 3
    max_repairs: int = 2
    max_total_tokens: int = 12000
    time_budget_s: float = 180.0
    sample_values: int = 3
    preview_rows: int = 8
    #: Schema render budget in tokens; larger schemas are linked to the question. Counted by the
    #: model's tokenizer for the embedded and in-process vLLM engines; for an HTTP server (whose
    #: tokenizer is remote) and the scripted engine estimated as characters / 3.5. 2300 real tokens
    #: is about what the earlier 1800 estimated ones held (Spider baseball_1: 2341), the size the
    #: accuracy reports were measured with.
    schema_token_budget: int = 2300
    #: Keep each LLM call's prompt and reply on the answer (``Answer.calls``) for ``--trace`` files.
    trace_prompts: bool = False
    #: Queries sampled for a question before any plan (the first greedy); 0 or 1 turns voting off.
    candidates: int = 4
    candidate_temperature: float = 0.8
    #: When the candidates do not agree: "repair" asks the Engineer once to fix the failed ones
    #: (their query and error in the prompt) and votes again; "loop" runs Planner/Engineer/Critic
    #: (its verified answer wins); "none" returns the best candidate unverified at once. In every
    #: mode the voted candidate is the fallback.
    escalate: Literal["repair", "loop", "none"] = "repair"
    #: Failed candidates the "repair" escalation sends back (one forked call each).
    repair_candidates: int = 2
    #: Every second candidate (and its fix) is written without the linker's "Tables:"/"Join on:"
    #: lines (several tables only), so a table linked by a stray word ("seat 50 students")
    #: misleads only half the votes. Measured (eval/results/attribution.md): with the 1.5B model
    #: Spider +6 of 50; with the default 0.5B neutral on Spider and 2 of the 12 demo questions
    #: lost, so off by default. Turn it on with the larger model.
    unhinted_candidates: bool = False


class Config(BaseModel):
    engine: EngineConfig = Field(default_factory=EngineConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    agents: AgentConfig = Field(default_factory=AgentConfig)
