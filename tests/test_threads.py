"""The thread policy on scripted CPU accounting: exact thread counts for an idle machine, a
competitor, our own load, the look-again interval, and a machine without /proc."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from autotqa.config import EngineConfig
from autotqa.serving.engines.threads import ThreadPolicy, machine_cpus, read_proc_stat


def scripted(cap: int, n_cpus: int, looks: list[tuple[float, float, float, float]],
             **kw: object) -> tuple[ThreadPolicy, Callable[[], int]]:
    """A policy whose looks are (clock s, machine busy jiffies, machine total jiffies, own CPU s)."""
    it: Iterator[tuple[float, float, float, float]] = iter(looks)
    state: dict[str, tuple[float, float, float, float]] = {}

    def clock() -> float:
        state["look"] = next(it)
        return state["look"][0]

    kw.setdefault("first_window_s", 0)
    policy = ThreadPolicy(cap, read_machine=lambda: state["look"][1:3], read_own=lambda: state["look"][3],
                          clock=clock, n_cpus=n_cpus, **kw)  # type: ignore[arg-type]
    return policy, policy.threads


def test_idle_machine_gets_the_cap_and_a_competitor_takes_its_core() -> None:
    # 2 CPUs, 100 jiffies a CPU-second. Second 1: idle. Second 2: one core busy with another process.
    _, threads = scripted(2, 2, [(0, 0, 0, 0.0), (1, 5, 200, 0.0), (2, 105, 400, 0.0)])
    assert [threads(), threads(), threads()] == [2, 2, 1]


def test_our_own_spinning_threads_are_not_a_competitor() -> None:
    # The machine was fully busy, all of it us (2 CPU-seconds in 1 s): still 2 threads. Then a
    # competitor took one core while we used the other: 1 thread.
    policy, threads = scripted(2, 2, [(0, 0, 0, 0.0), (1, 200, 200, 2.0), (2, 400, 400, 3.0)])
    assert [threads(), threads()] == [2, 2] and policy.others_busy == 0.0
    assert threads() == 1 and policy.others_busy == 1.0


def test_cap_bounds_idle_cores_and_at_least_one_thread() -> None:
    # 8 CPUs idle but n_threads=4; then everything busy with others: never below 1.
    _, threads = scripted(4, 8, [(0, 0, 0, 0.0), (1, 0, 800, 0.0), (2, 800, 1600, 0.0)])
    assert [threads(), threads(), threads()] == [4, 4, 1]


def test_looks_again_only_after_the_interval() -> None:
    reads = []
    looks = iter([(0, 0), (105, 200)])

    def machine() -> tuple[float, float]:
        reads.append(1)
        return next(looks)

    times = iter([0.0, 0.2, 0.6, 0.7])
    policy = ThreadPolicy(2, read_machine=machine, read_own=lambda: 0.0, clock=lambda: next(times), n_cpus=2,
                          first_window_s=0)
    # 0.2 s after the first look: the last answer, /proc not read; at 0.6 s a new figure.
    assert [policy.threads(), policy.threads(), policy.threads(), policy.threads()] == [2, 2, 1, 1]
    assert len(reads) == 2


def test_first_look_measures_a_short_window_before_answering() -> None:
    # Without it the first request (the schema warm-up, the longest prefill) would get the cap
    # on a machine whose other core is already busy.
    slept: list[float] = []
    policy, threads = scripted(2, 2, [(0, 0, 0, 0.0), (0.2, 20, 40, 0.0), (0.3, 30, 60, 0.0)],
                               first_window_s=0.2, sleep=slept.append)
    assert (threads(), slept) == (1, [0.2])
    assert threads() == 1  # within the interval: no new look


def test_fixed_policy_and_unreadable_proc_use_the_cap(tmp_path: Path) -> None:
    assert ThreadPolicy(3, adaptive=False, read_machine=lambda: (0, 0)).threads() == 3

    def missing() -> tuple[float, float]:
        return read_proc_stat(str(tmp_path / "no-stat"))

    assert ThreadPolicy(3, read_machine=missing, n_cpus=2).threads() == 3


def test_proc_stat_parsing(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 5 50 800 20 3 2 10 0 0\ncpu0 50 2 25 400 10 1 1 5 0 0\n"
                    "cpu1 50 3 25 400 10 2 1 5 0 0\nintr 12345\n")
    # busy = user+nice+system+irq+softirq+steal = 170; idle = idle+iowait = 820
    assert read_proc_stat(str(stat)) == (170.0, 990.0)
    assert machine_cpus(str(stat)) == 2


def test_config_default_is_adaptive_on_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.platform", "linux")
    assert EngineConfig().thread_policy == "adaptive"
    monkeypatch.setattr("sys.platform", "darwin")
    assert EngineConfig().thread_policy == "fixed"
    with pytest.raises(ValueError, match="thread_policy"):
        EngineConfig(thread_policy="turbo")  # type: ignore[arg-type]
