"""How many threads llama.cpp may use right now: the idle cores, not all of them.

llama.cpp's worker threads spin-wait for each other at every step of a decode. When another
CPU-bound process holds a core, a thread pinned behind it stalls all the others, and a decode
with every core requested ran ~10x slower than with one thread (FINDINGS.md, 2026-12-01). So
the adaptive policy reads the machine's CPU accounting (``/proc/stat``) over the recent
interval, subtracts this process's own CPU time (our spinning threads are not a competitor),
and asks for the cores the *others* leave idle, at least 1 and at most the configured
``n_threads``. Reading ``/proc/stat`` costs tens of microseconds; a new figure is computed at
most every ``interval_s``, so callers may ask before every request and between decode steps.
The very first look samples a short window (``first_window_s``) so that the first request (often
the schema warm-up, the longest prefill) already avoids a busy core.

>>> stats = iter([(0, 0), (150, 200)])  # /proc/stat (busy, total) jiffies: 2 CPUs x 100 a second
>>> own = iter([0.0, 0.5])              # our own CPU seconds: half a core of it was us
>>> clock = iter([0.0, 1.0])
>>> p = ThreadPolicy(2, read_machine=lambda: next(stats), read_own=lambda: next(own),
...                  clock=lambda: next(clock), n_cpus=2, first_window_s=0)
>>> p.threads(), p.threads(), p.others_busy  # no first window: the cap; then 1.5 - 0.5 = 1 core taken
(2, 1, 1.0)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable


def read_proc_stat(path: str = "/proc/stat") -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs together from the first ``cpu`` line."""
    with open(path, encoding="ascii") as f:
        fields = [float(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice: already inside user/nice]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    total = sum(fields[:8])
    return total - idle, total


def read_own_cpu() -> float:
    """CPU seconds of this process (all threads), user + system."""
    t = os.times()
    return t.user + t.system


def machine_cpus(path: str = "/proc/stat") -> int:
    """How many CPUs ``/proc/stat`` accounts for (its ``cpuN`` lines)."""
    with open(path, encoding="ascii") as f:
        return sum(1 for line in f if line.startswith("cpu") and line[3:4].isdigit()) or 1


class ThreadPolicy:
    """``threads()`` -> how many threads to use now. Fixed: always ``cap``.

    Adaptive: ``cap`` limited to the cores that other processes left idle over the last interval
    (this process's own CPU time counted as idle), rounded to the nearest core, at least 1.
    Anything unreadable (not Linux, no ``/proc``) falls back to ``cap``.
    """

    def __init__(self, cap: int, *, adaptive: bool = True, interval_s: float = 0.5,
                 read_machine: Callable[[], tuple[float, float]] = read_proc_stat,
                 read_own: Callable[[], float] = read_own_cpu,
                 clock: Callable[[], float] = time.monotonic, n_cpus: int | None = None,
                 first_window_s: float = 0.2, sleep: Callable[[float], None] = time.sleep) -> None:
        self.cap = max(1, cap)
        self.adaptive = adaptive
        self.interval_s = interval_s
        self._read_machine, self._read_own, self._clock = read_machine, read_own, clock
        self._n_cpus = n_cpus
        self.first_window_s = first_window_s
        self._sleep = sleep
        self._last: tuple[float, float, float, float] | None = None  # clock, busy, total, own
        self._current = self.cap
        #: The competitors' load (cores) seen at the last look, for benchmarks and logs.
        self.others_busy = 0.0

    def threads(self) -> int:
        if not self.adaptive:
            return self.cap
        if self._last is None and self.first_window_s > 0:
            self._look()  # a reading to measure the first window from
            self._sleep(self.first_window_s)
            return self._look(force=True)
        return self._look()

    def _look(self, force: bool = False) -> int:
        try:
            now = self._clock()
            if self._last is not None and not force and now - self._last[0] < self.interval_s:
                return self._current
            busy, total = self._read_machine()
            own = self._read_own()
            if self._n_cpus is None:
                self._n_cpus = machine_cpus()
        except (OSError, ValueError, IndexError, AttributeError):
            return self.cap
        last, self._last = self._last, (now, busy, total, own)
        if last is None or total <= last[2]:
            return self._current
        # Busy share of the machine over the interval, in cores; minus what we used ourselves.
        cores_busy = (busy - last[1]) / (total - last[2]) * self._n_cpus
        own_cores = (own - last[3]) / max(now - last[0], 1e-6)
        self.others_busy = max(0.0, cores_busy - own_cores)
        idle = self._n_cpus - self.others_busy
        self._current = max(1, min(self.cap, int(idle + 0.5)))
        return self._current
