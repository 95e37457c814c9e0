"""One thread that calls ``interrupt()`` on whatever overstays its deadline.

A ``threading.Timer`` per query costs a thread start, and ``Thread.start`` waits until the new thread
is scheduled: milliseconds on a busy machine, on every query. The watchdog keeps one thread per owner
instead, started on first use and ended after it has been idle a while.

>>> import time
>>> class Slow:
...     interrupted = False
...     def interrupt(self): self.interrupted = True
>>> dog, job = Watchdog(), Slow()
>>> token = dog.watch(job, 0.05); time.sleep(0.3); dog.done(token)
>>> job.interrupted
True
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Protocol


class Interruptible(Protocol):
    def interrupt(self) -> None: ...


class Watchdog:
    """Interrupts watched objects whose deadline passes before ``done`` is called."""

    def __init__(self, idle_exit_s: float = 30.0, poll_s: float = 0.25) -> None:
        self._cond = threading.Condition()
        self._jobs: dict[int, tuple[float, Interruptible]] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._idle_exit_s = idle_exit_s
        self._poll_s = poll_s
        self._wake_at = float("inf")  # when the thread next wakes by itself
        self.thread_name = f"autotqa-watchdog-{id(self):x}"

    def watch(self, target: Interruptible, timeout_s: float) -> int:
        """Start watching ``target``; returns the token to pass to ``done``."""
        with self._cond:
            token = next(self._ids)
            self._jobs[token] = (time.monotonic() + timeout_s, target)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
                self._thread.start()
            elif self._jobs[token][0] < self._wake_at:
                # Waking the thread costs a context switch (milliseconds on a busy machine): only
                # when it would otherwise sleep past this deadline.
                self._cond.notify()
            return token

    def done(self, token: int) -> None:
        """Stop watching (the work finished or failed in time)."""
        with self._cond:
            self._jobs.pop(token, None)

    def _loop(self) -> None:
        with self._cond:
            idle_since = time.monotonic()
            while True:
                now = time.monotonic()
                for token, (deadline, target) in list(self._jobs.items()):
                    if deadline <= now:
                        del self._jobs[token]
                        target.interrupt()
                if self._jobs:
                    idle_since = now
                    wait = min(d for d, _ in self._jobs.values()) - now
                elif now - idle_since >= self._idle_exit_s:
                    self._thread = None
                    return
                else:  # idle: short naps, so a new job rarely needs a notify
                    wait = min(self._poll_s, self._idle_exit_s - (now - idle_since))
                self._wake_at = now + wait
                self._cond.wait(wait)
                self._wake_at = float("inf")
