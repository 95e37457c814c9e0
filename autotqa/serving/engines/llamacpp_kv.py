"""KV-state snapshots for the embedded llama.cpp engine: in memory (per session, LRU) and on disk.

Why not ``Llama.save_state``/``LlamaRAMCache``: each of their states also copies the ~300 MB logits
array (n_batch x vocab x fp32) and takes ~1 s (FINDINGS.md). A snapshot here is only sequence 0's
KV cells (``llama_state_seq_get_data``, ~12 KB a token with the 0.5B model: ~19 ms to save, ~3 ms to
restore 2k tokens) plus the token ids they encode. Logits are never needed: the engine always
re-evaluates at least one prompt token after a restore.

>>> lru = SnapshotLRU(budget_bytes=30)
>>> lru.put("a", KVSnapshot(tokens=(1, 2, 3), data=b"123456"))
>>> lru.put("b", KVSnapshot(tokens=(1, 2, 9), data=b"12345"))  # over budget: "a" is evicted
>>> list(lru.keys()), lru.best_match([1, 2, 9, 4])
(['b'], ('b', 3))
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import struct
import tempfile
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SEQ_ID = 0


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences (vectorised)."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(np.asarray(a[:n], dtype=np.int64) != np.asarray(b[:n], dtype=np.int64))
    return int(diff[0]) if diff.size else n


@dataclass(frozen=True)
class KVSnapshot:
    """Sequence 0's KV cells for exactly ``tokens`` (positions 0..len-1)."""

    tokens: tuple[int, ...]
    data: bytes

    @property
    def nbytes(self) -> int:
        return len(self.data) + 4 * len(self.tokens)


def capture(llm: Any) -> KVSnapshot:
    """Copy the live KV of sequence 0 (first trimmed to ``llm.n_tokens``) without touching logits."""
    import llama_cpp

    n = int(llm.n_tokens)
    llm._ctx.kv_cache_seq_rm(-1, n, -1)  # cells past n_tokens (never-evaluated tails) are not state
    size = llama_cpp.llama_state_seq_get_size(llm.ctx, SEQ_ID)
    buf = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data(llm.ctx, buf, size, SEQ_ID)
    return KVSnapshot(tokens=tuple(int(t) for t in llm.input_ids[:n]), data=bytes(buf)[:written])


def restore(llm: Any, snap: KVSnapshot) -> bool:
    """Load ``snap`` into sequence 0 and make ``llm`` believe it evaluated ``snap.tokens``.

    Returns False (and leaves an empty context) when llama.cpp rejects the data, e.g. a state file
    written by another build; the caller then recomputes.
    """
    import llama_cpp

    buf = (ctypes.c_uint8 * len(snap.data)).from_buffer_copy(snap.data)
    ok = llama_cpp.llama_state_seq_set_data(llm.ctx, buf, len(snap.data), SEQ_ID) == len(snap.data)
    if not ok or len(snap.tokens) > llm.n_ctx():
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        llm.reset()
        return False
    llm.input_ids[: len(snap.tokens)] = snap.tokens
    llm.n_tokens = len(snap.tokens)
    llm._requires_eval = True  # restored state has no logits: sample only after a fresh decode
    return True


class SnapshotLRU:
    """Per-session snapshots under a byte budget; the least recently used go first."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._items: OrderedDict[str, KVSnapshot] = OrderedDict()
        self.total_bytes = 0

    def put(self, key: str, snap: KVSnapshot) -> None:
        self.pop(key)
        if snap.nbytes > self.budget_bytes:
            return  # one snapshot larger than the whole budget is not worth evicting everything for
        self._items[key] = snap
        self.total_bytes += snap.nbytes
        while self.total_bytes > self.budget_bytes:
            _, old = self._items.popitem(last=False)
            self.total_bytes -= old.nbytes

    def get(self, key: str) -> KVSnapshot | None:
        snap = self._items.get(key)
        if snap is not None:
            self._items.move_to_end(key)
        return snap

    def pop(self, key: str) -> KVSnapshot | None:
        snap = self._items.pop(key, None)
        if snap is not None:
            self.total_bytes -= snap.nbytes
        return snap

    def keys(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def best_match(self, tokens: Sequence[int]) -> tuple[str | None, int]:
        """The snapshot sharing the longest token prefix with ``tokens`` (most recent wins ties)."""
        best: tuple[str | None, int] = (None, 0)
        for key in reversed(self._items):
            n = common_prefix(self._items[key].tokens, tokens)
            if n > best[1]:
                best = (key, n)
        return best


class HeldPrefixes:
    """The warmed prefixes the engine still holds, for a reader on another thread.

    The worker registers each warm-up's tokens (``add``) and after every job recomputes which are
    still an exact prefix of the live state or of a snapshot (``refresh``); the answer is one
    frozenset swapped in by a single assignment, so the event loop reads a whole answer without a
    lock. It can be one job stale: a prefix evicted by the job running now is then recomputed by
    the question's first call (what its warm-up would have computed, only later).

    >>> lru = SnapshotLRU(budget_bytes=100)
    >>> held = HeldPrefixes()
    >>> held.add("schema A", [1, 2, 3]); held.add("schema B", [1, 5])
    >>> lru.put("s1", KVSnapshot(tokens=(1, 2, 3, 4), data=b""))
    >>> held.refresh(live=[1, 5, 6], snapshots=lru); sorted(held.held)
    ['schema A', 'schema B']
    >>> _ = lru.pop("s1"); held.refresh(live=[1, 5, 6], snapshots=lru); sorted(held.held)
    ['schema B']
    """

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[int, ...]] = {}
        #: Keys (the warm-up's prompt text) of the prefixes held after the last job.
        self.held: frozenset[str] = frozenset()

    def add(self, key: str, tokens: Sequence[int]) -> None:
        self._tokens[key] = tuple(tokens)

    def refresh(self, live: Sequence[int], snapshots: SnapshotLRU) -> None:
        held = {k for k, t in self._tokens.items()
                if common_prefix(live, t) == len(t) or snapshots.best_match(t)[1] == len(t)}
        self._tokens = {k: self._tokens[k] for k in held}  # gone: its next warm-up registers it again
        self.held = frozenset(held)


_MAGIC = b"ATQAKV1\n"


class PrefixStore:
    """Shared-prefix KV states on disk, keyed by sha256(model sha256 + exact token ids).

    File layout: magic, a 4-byte header length, a JSON header (model sha, token ids, payload
    sha256 and size), the payload. Anything that does not check out (truncated, other model,
    other tokens, bad checksum) is treated as absent, so the caller recomputes and rewrites it.
    The directory is kept under ``max_bytes`` by deleting the least recently used files (mtime is
    refreshed on every hit).
    """

    def __init__(self, directory: Path, model_sha256: str, max_bytes: int = 2 * 1024**3) -> None:
        self.directory = Path(directory)
        self.model_sha256 = model_sha256
        self.max_bytes = max_bytes

    def key(self, tokens: Sequence[int]) -> str:
        h = hashlib.sha256(self.model_sha256.encode())
        h.update(np.asarray(tokens, dtype="<i4").tobytes())
        return h.hexdigest()

    def path(self, tokens: Sequence[int]) -> Path:
        return self.directory / f"{self.key(tokens)}.kv"

    def load(self, tokens: Sequence[int]) -> KVSnapshot | None:
        path = self.path(tokens)
        try:
            raw = path.read_bytes()
            if not raw.startswith(_MAGIC):
                return None
            (hlen,) = struct.unpack_from("<I", raw, len(_MAGIC))
            start = len(_MAGIC) + 4
            header = json.loads(raw[start:start + hlen])
            payload = raw[start + hlen:]
        except (OSError, ValueError, struct.error):
            return None
        if (header.get("model_sha256") != self.model_sha256 or header.get("tokens") != list(tokens)
                or header.get("size") != len(payload)
                or header.get("sha256") != hashlib.sha256(payload).hexdigest()):
            return None
        os.utime(path)  # LRU by mtime
        return KVSnapshot(tokens=tuple(tokens), data=payload)

    def save(self, snap: KVSnapshot) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        header = json.dumps({"model_sha256": self.model_sha256, "tokens": list(snap.tokens),
                             "size": len(snap.data), "sha256": hashlib.sha256(snap.data).hexdigest()}).encode()
        path = self.path(snap.tokens)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".kv-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_MAGIC + struct.pack("<I", len(header)) + header + snap.data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.evict(keep=path)
        return path

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Delete least recently used files until the directory fits ``max_bytes``."""
        files = []
        for p in self.directory.glob("*.kv"):
            try:
                st = p.stat()
            except OSError:
                continue
            files.append((st.st_mtime_ns, st.st_size, p))
        files.sort()
        total = sum(size for _, size, _ in files)
        removed = []
        for _, size, p in files:
            if total <= self.max_bytes:
                break
            if p == keep:
                continue
            p.unlink(missing_ok=True)
            total -= size
            removed.append(p)
        return removed
