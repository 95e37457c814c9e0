"""The pandas sandbox's processes end when their run, their executor or autotqa ends — none is left
behind (orphaned bwrap processes survived a killed test run and needed SIGKILL by hand)."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest

from autotqa.config import ExecutorConfig
from autotqa.executors import confine
from autotqa.executors.pandas_exec import CHILD_SCRIPT, PandasExecutor

PEOPLE = pa.table({"name": ["Ann", "Bob"], "age": [30, 40]})
LOOP = "while True:\n    pass"

needs_bwrap = pytest.mark.skipif(confine.Launcher().unavailable is not None,
                                 reason="OS confinement (bubblewrap + seccomp) unavailable here")


def _tree(pid: int) -> list[tuple[int, str]]:
    """``pid`` and every process below it, each with its start time (a recycled id is another one)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            out.append((p, Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[19]))
            for task in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split()]
        except OSError:
            continue
    return out


def _alive(procs: list[tuple[int, str]], wait_s: float = 5.0) -> list[int]:
    """The processes of ``procs`` still running (zombies count as gone) after up to ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        left = []
        for pid, started in procs:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[19] == started and fields[0] != "Z":
                left.append(pid)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def _ready_spare(ex: PandasExecutor) -> list[tuple[int, str]]:
    deadline = time.monotonic() + 60
    while ex._spare is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ex._spare is not None and ex._spare.wait_ready(60)
    procs = _tree(ex._spare.proc.pid)
    assert len(procs) == 3  # bwrap, the sandbox's init (bwrap), the Python that runs the code
    return procs


@needs_bwrap
def test_a_child_outlives_the_thread_that_started_it() -> None:
    # bwrap's --die-with-parent follows the *thread* that started it: a spare started by the
    # short-lived prestart thread was killed a moment after that thread ended.
    launcher = confine.Launcher()
    started: list[subprocess.Popen] = []

    def start_then_linger() -> None:
        started.append(launcher.popen(CHILD_SCRIPT, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        time.sleep(0.5)  # bwrap has set its parent-death signal by now

    thread = threading.Thread(target=start_then_linger)
    thread.start()
    thread.join()
    proc = started[0]
    time.sleep(0.2)
    try:
        assert proc.poll() is None
    finally:
        launcher.close()  # its thread ends: the child goes with it
    assert proc.wait(5) == -signal.SIGKILL
    with pytest.raises(OSError, match="the sandbox launcher is closed"):
        launcher.popen(CHILD_SCRIPT)


@needs_bwrap
def test_timeout_leaves_no_process() -> None:
    with PandasExecutor({"people": PEOPLE}, ExecutorConfig(pandas_timeout_s=2)) as ex:
        procs = _ready_spare(ex)
        r = ex.run(LOOP)
        assert (r.ok, r.error_type) == (False, "timeout")
        assert _alive(procs) == []


@needs_bwrap
def test_close_stops_a_running_child_at_once() -> None:
    ex = PandasExecutor({"people": PEOPLE}, ExecutorConfig(pandas_timeout_s=60, pandas_cpu_s=60))
    procs = _ready_spare(ex)
    results = []
    runner = threading.Thread(target=lambda: results.append(ex.run(LOOP)))
    runner.start()
    deadline = time.monotonic() + 10
    while not ex._running and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # the loop is running
    began = time.monotonic()
    ex.close()
    runner.join(10)
    assert not runner.is_alive() and time.monotonic() - began < 10
    assert (results[0].ok, results[0].error_type) == (False, "killed")
    assert _alive(procs) == []


@needs_bwrap
def test_killed_parent_leaves_no_sandbox_process(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, time\n"
        "import pyarrow as pa\n"
        "from autotqa.config import ExecutorConfig\n"
        "from autotqa.executors.pandas_exec import PandasExecutor\n"
        "ex = PandasExecutor({'t': pa.table({'a': [1]})}, ExecutorConfig(pandas_timeout_s=120, pandas_cpu_s=120))\n"
        "while ex._spare is None: time.sleep(0.05)\n"
        "assert ex._spare.wait_ready(60)\n"
        "print(ex._spare.proc.pid, flush=True)\n"
        f"ex.run({LOOP!r})\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        line = parent.stdout.readline()
        procs = _tree(int(line))
        assert len(procs) == 3
        time.sleep(0.5)  # the loop is running
    finally:
        parent.kill()
        parent.wait()
    assert _alive(procs) == []


def test_kill_takes_the_whole_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Unconfined (no parent-death signal at all): only the launcher's kill can reach a grandchild.
    sleep = shutil.which("sleep")
    assert sleep is not None
    fake = tmp_path / "forking-python"
    fake.write_text(f"#!/bin/sh\n{sleep} 60 &\nexec {sleep} 61\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(confine.Launcher, "_probe", lambda self: "switched off for this test")
    launcher = confine.Launcher(str(fake), unconfined_ok=True)
    proc = launcher.popen(CHILD_SCRIPT)
    try:
        deadline = time.monotonic() + 10
        while len(procs := _tree(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(procs) == 2
        launcher.kill(proc)
        assert proc.wait(5) == -signal.SIGKILL
        assert _alive(procs) == []
    finally:
        launcher.close()
