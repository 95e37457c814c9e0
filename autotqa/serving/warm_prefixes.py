"""When a remote server last saw a session's shared prefix: all we can know of its prefix cache.

A server (vLLM, llama.cpp's server) keeps a prefix's KV state until its own cache needs the room,
and never tells us when that happens. So a prefix counts as warm for ``idle_s`` after the last
request that carried it (a warm-up or any call whose system message is that header + schema,
byte for byte): a question in that window sends no warm-up of its own; after it, one more.

>>> from autotqa.serving.types import PromptSegments
>>> now = [0.0]
>>> seen = IdlePrefixes(300.0, clock=lambda: now[0])
>>> p = PromptSegments(header="H", schema_block="S")
>>> seen.touch("s1", p.model_copy(update={"tail": "count rows"}))  # a call carries the prefix too
>>> seen.warm("s1", p), seen.warm("s2", p), seen.warm("s1", p.model_copy(update={"schema_block": "S2"}))
(True, False, False)
>>> now[0] = 300.0
>>> seen.warm("s1", p)
False
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from .layout import to_messages
from .types import PromptSegments


def _prefix_key(session_id: str, segments: PromptSegments) -> tuple[str, str]:
    """The session and a digest of the system message (header + schema: the shared prefix)."""
    system = to_messages(segments)[0].content
    return session_id, hashlib.sha256(system.encode()).hexdigest()


class IdlePrefixes:
    """(session, prefix) -> when a request last carried it; warm while idle less than ``idle_s``."""

    def __init__(self, idle_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s = idle_s
        self.clock = clock
        self._last: dict[tuple[str, str], float] = {}

    def touch(self, session_id: str, segments: PromptSegments) -> None:
        now = self.clock()
        # Forget what has gone cold: a long-lived engine serving many sessions stays small.
        self._last = {k: t for k, t in self._last.items() if now - t < self.idle_s}
        self._last[_prefix_key(session_id, segments)] = now

    def warm(self, session_id: str, segments: PromptSegments) -> bool:
        last = self._last.get(_prefix_key(session_id, segments))
        return last is not None and self.clock() - last < self.idle_s

    def forget(self, session_id: str) -> None:
        self._last = {k: t for k, t in self._last.items() if k[0] != session_id}
