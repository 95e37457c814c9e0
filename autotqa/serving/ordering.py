"""What the scheduler ranks, and how: queued calls, programs, engine slots and the ordering key.

Kept apart from ``scheduler.py`` (which dispatches, runs and finishes calls) so the one rule that
decides *which* ready call a free slot takes next can be read, and changed, in one place.

For each free slot the ready call with the smallest key runs. Under ``"app_aware"`` the key is
(warm-up last, priority minus aging, critical first, started program first, session live on this
slot first, older program first, FIFO); ``priority=False`` flattens the two urgency parts,
``locality=False`` the three togetherness parts. ``"fifo"`` ranks by submission order alone.

>>> from autotqa.serving.types import GenerationRequest, PromptSegments
>>> def call(seq, session, priority=0, warmup=False):
...     req = GenerationRequest(segments=PromptSegments(header="h"), session_id=session, priority=priority)
...     return Entry(req, seq, 0.0, warmup, None)
>>> order, slot = Ordering(), Slot(0, live_session="B")
>>> [order.key(e, slot, None, critical=False)[-1] for e in sorted(
...     [call(1, "A"), call(2, "B"), call(3, "B", warmup=True), call(4, "A", priority=-1)],
...     key=lambda e: order.key(e, slot, None, critical=False))]
[4, 2, 1, 3]
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from .types import GenerationRequest


@dataclass(eq=False)
class Entry:
    """One queued unit: a request, a stream, or a fork's branches (``request`` is the first)."""

    request: GenerationRequest
    seq: int
    submitted_at: float
    warmup: bool
    future: asyncio.Future[Any]  # a GenerationResult; a list of them for a fork
    chunks: asyncio.Queue[Any] | None = None  # set for streams
    started_at: float = 0.0
    skipped: int = 0  # dispatches that passed this ready request over (aging)
    task: asyncio.Task[None] | None = None
    batch: tuple[GenerationRequest, ...] = ()  # a fork's branches

    @property
    def requests(self) -> tuple[GenerationRequest, ...]:
        return self.batch or (self.request,)


@dataclass(eq=False)
class ProgramState:
    """What the scheduler knows of an open program (one question)."""

    program_id: str
    session_id: str
    seq: int
    started: bool = False
    ended: bool = False
    outstanding: int = 0  # real requests queued or running


@dataclass(eq=False)
class Slot:
    """One unit of engine concurrency."""

    index: int
    live_session: str | None = None
    running: Entry | None = field(default=None, repr=False)
    held_for: str | None = None  # program id that may use this slot next
    hold_timer: asyncio.TimerHandle | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Ordering:
    """The ordering switches; ``aging_skips`` passed-over dispatches buy one priority level."""

    fifo: bool = False
    priority: bool = True
    locality: bool = True
    aging_skips: int = 32

    def key(self, entry: Entry, slot: Slot, program: ProgramState | None, *, critical: bool) -> tuple[int, ...]:
        """Rank ``entry`` for ``slot`` (smaller runs first); ``critical``: a queued call waits on it."""
        if self.fifo:
            return (entry.seq,)
        req = entry.request
        aged = entry.skipped // self.aging_skips if self.aging_skips > 0 else 0
        urgency = (req.priority - aged, 0 if critical else 1) if self.priority else (0, 0)
        together = (0 if program is None or program.started else 1,
                    0 if slot.live_session == req.session_id else 1,
                    program.seq if program is not None else entry.seq) if self.locality else (0, 0, 0)
        return (1 if entry.warmup else 0, *urgency, *together, entry.seq)
