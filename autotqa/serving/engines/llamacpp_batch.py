"""Forked branches decoded together on one llama.cpp context (llama.cpp sequences).

A fork's k requests share a prompt prefix (header + schema, usually the whole prompt). Serially
they cost k decodes of every output token; together, one ``llama_decode`` per step carries one
token of each live branch, so a step costs about one token's weights pass (decoding on a CPU is
bound by reading the weights, not by the batch size). The engine evaluates the shared prefix once
in sequence 0; each branch gets its own sequence (1..k) holding a copy of that prefix
(``llama_memory_seq_cp``: in a unified KV cache the cells are shared, not copied), evaluates its
own prompt suffix (at least the last prompt token, so it has logits of its own), and samples
with its own sampler chain. Branches finish independently (end of generation, a stop string,
``max_tokens``); their sequences are dropped afterwards so only sequence 0 (the shared prefix)
stays live, which is what the engine's snapshot logic expects.

The context must be created with several sequences and a unified KV cache; ``Llama()`` does not
take those, so :func:`ensure_sequences` rebuilds its context once with them.
"""

from __future__ import annotations

import codecs
import ctypes
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...errors import EngineError
from ..types import FinishReason

#: Sampling settings of the serial path (``Llama.generate`` in llamacpp.py), shared by both paths.
TOP_K, TOP_P, MIN_P = 40, 0.95, 0.05


def ensure_sequences(llm: Any, n_seq: int) -> bool:
    """Give ``llm`` a context with at least ``n_seq`` sequences over one unified KV cache.

    ``Llama()`` builds its context with one sequence; the rebuilt context has the same size,
    threads and batch. Returns False (nothing changed) where llama.cpp refuses, so the caller
    keeps decoding branches one after another.
    """
    import llama_cpp
    from llama_cpp import _internals

    params = llm.context_params
    if params.n_seq_max >= n_seq and params.kv_unified:
        return True
    n_seq = min(n_seq, int(llama_cpp.llama_max_parallel_sequences()))
    if n_seq < 2:
        return False
    old_seq, old_unified = params.n_seq_max, params.kv_unified
    params.n_seq_max, params.kv_unified = n_seq, True
    old = llm._ctx
    old.close()  # free the old KV buffer before allocating the new one
    try:
        llm._ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
    except ValueError:
        params.n_seq_max, params.kv_unified = old_seq, old_unified
        llm._ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        llm.reset()
        return False
    llm.reset()
    return True


def _held_back(text: str, stops: list[str]) -> int:
    """How many trailing chars of ``text`` could still become a stop string (not safe to emit)."""
    hold = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), hold, -1):
            if text.endswith(s[:k]):
                hold = k
                break
    return hold


class StopScanner:
    """Turns one branch's tokens into text, applying end-of-generation, stop strings and a limit.

    ``emit`` receives the text that can no longer turn into a stop string (for streaming).
    """

    def __init__(self, llm: Any, stops: Sequence[str], max_new: int,
                 emit: Callable[[str], None] | None = None) -> None:
        import llama_cpp

        self._is_eog = lambda tok: llama_cpp.llama_vocab_is_eog(llm._model.vocab, tok)
        self._detok = llm.detokenize
        self.stops = [s for s in stops if s]
        self.max_new = max_new
        self.emit = emit or (lambda _s: None)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text, self.n_out, self._emitted, self._cut = "", 0, 0, False

    def feed(self, token: int) -> FinishReason | None:
        """Take one sampled token; the finish reason once this branch is done, else None."""
        if self._is_eog(token):
            return "stop"
        self.n_out += 1
        self.text += self._decoder.decode(self._detok([token]))
        cut = min((i for i in (self.text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.text, self._cut = self.text[:cut], True
            return "stop"
        safe = len(self.text) - _held_back(self.text, self.stops)
        if safe > self._emitted:
            self.emit(self.text[self._emitted:safe])
            self._emitted = safe
        return "length" if self.n_out >= self.max_new else None

    def close(self) -> str:
        """Flush what is left (a multi-byte character cut by the limit becomes U+FFFD)."""
        if not self._cut:
            self.text += self._decoder.decode(b"", final=True)
        if len(self.text) > self._emitted:
            self.emit(self.text[self._emitted:])
            self._emitted = len(self.text)
        return self.text


@dataclass(frozen=True)
class BranchSpec:
    """What one branch asks for: its whole prompt, sampling and limits."""

    prompt: tuple[int, ...]
    temperature: float
    stop: tuple[str, ...]
    max_new: int
    seed: int


@dataclass
class BranchOutput:
    text: str
    finish: FinishReason
    completion_tokens: int
    ttft_s: float
    total_s: float


@dataclass
class _Branch:
    spec: BranchSpec
    seq: int
    scanner: StopScanner
    sampler: Any
    pending: list[int]
    pos: int
    finish: FinishReason | None = None
    ttft_s: float = 0.0
    total_s: float = 0.0
    stepped: list[int] = field(default_factory=list)


def _sampler(spec: BranchSpec) -> Any:
    """Greedy at temperature 0; else the serial path's chain, seeded per branch."""
    import llama_cpp

    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    if spec.temperature <= 0:
        parts = [llama_cpp.llama_sampler_init_greedy()]
    else:
        parts = [llama_cpp.llama_sampler_init_top_k(TOP_K), llama_cpp.llama_sampler_init_top_p(TOP_P, 1),
                 llama_cpp.llama_sampler_init_min_p(MIN_P, 1), llama_cpp.llama_sampler_init_temp(spec.temperature),
                 llama_cpp.llama_sampler_init_dist(spec.seed & 0xFFFFFFFF)]
    for part in parts:
        llama_cpp.llama_sampler_chain_add(chain, part)  # the chain owns and frees its parts
    return chain


def decode_branches(llm: Any, specs: Sequence[BranchSpec], shared: int, t0: float,
                    cancel: threading.Event, stats: dict[str, int],
                    between_steps: Callable[[], None] = lambda: None) -> list[BranchOutput]:
    """Decode ``specs`` together; sequence 0 must hold exactly their first ``shared`` prompt tokens.

    Every ``llama_decode`` packs up to ``n_batch`` tokens: first each branch's prompt suffix, then
    one token per live branch a step. On return sequences 1..k are gone and sequence 0 is as given.
    ``stats`` counts ``decode_calls`` and ``batched_steps`` (decodes that carried 2+ branches).
    """
    import llama_cpp

    ctx = llm.ctx
    mem = llama_cpp.llama_get_memory(ctx)
    n_batch = int(llama_cpp.llama_n_batch(ctx))
    branches = [_Branch(spec, i + 1, StopScanner(llm, spec.stop, spec.max_new), _sampler(spec),
                        list(spec.prompt[shared:]), shared) for i, spec in enumerate(specs)]
    batch = llama_cpp.llama_batch_init(max(n_batch, len(branches)), 0, 1)
    try:
        for b in branches:
            llama_cpp.llama_memory_seq_rm(mem, b.seq, -1, -1)
            if shared:
                llama_cpp.llama_memory_seq_cp(mem, 0, b.seq, 0, shared)
        while live := [b for b in branches if b.finish is None]:
            if cancel.is_set():
                for b in live:
                    b.finish, b.total_s = "cancelled", time.perf_counter() - t0
                break
            outputs = _fill(batch, live, n_batch)
            rc = llama_cpp.llama_decode(ctx, batch)
            if rc != 0:
                raise EngineError(f"llama.cpp could not decode {len(live)} branches together (code {rc})",
                                  hint="raise n_ctx or ask for fewer candidates")
            stats["decode_calls"] += 1
            stats["batched_steps"] += len({b.seq for b in live if b.stepped}) > 1
            now = time.perf_counter() - t0
            for b, idx in outputs:
                token = int(llama_cpp.llama_sampler_sample(b.sampler, ctx, idx))
                b.ttft_s = b.ttft_s or now
                b.finish = b.scanner.feed(token)
                b.pending = [token]
                if b.finish is not None:
                    b.total_s = now
            between_steps()
    finally:
        llama_cpp.llama_batch_free(batch)
        for b in branches:
            llama_cpp.llama_sampler_free(b.sampler)
            llama_cpp.llama_memory_seq_rm(mem, b.seq, -1, -1)
    return [BranchOutput(b.scanner.close(), b.finish or "length", b.scanner.n_out, b.ttft_s, b.total_s)
            for b in branches]


def _fill(batch: Any, live: list[_Branch], capacity: int) -> list[tuple[_Branch, int]]:
    """Pack pending tokens of the live branches; return (branch, batch index) of each logits row."""
    n, outputs = 0, []
    for b in live:
        b.stepped = []
        take = b.pending[: capacity - n]
        if not take:
            continue
        for tok in take:
            batch.token[n], batch.pos[n], batch.n_seq_id[n] = tok, b.pos, 1
            batch.seq_id[n][0], batch.logits[n] = b.seq, 0
            b.pos += 1
            n += 1
        b.pending = b.pending[len(take):]
        b.stepped = take
        if not b.pending:  # its last prompt token or its newest sample: sample the next one
            batch.logits[n - 1] = 1
            outputs.append((b, n - 1))
    batch.n_tokens = n
    return outputs
