"""The pandas executor: model-written pandas code runs in a separate, limited process.

The parent checks the code statically (:mod:`.pandas_guard`), sends it with the tables (Arrow IPC) to
a child (:mod:`._sandbox_child`) that runs under CPU-time, address-space and file-size limits with an
audit hook, and kills it when the wall-clock limit passes. Whatever the child does (escape attempt,
segfault, memory blow-up, endless loop) comes back as an ExecutionResult with ``ok=False``.

Starting Python, importing pandas and decoding the tables costs a second or more, so the executor
keeps one spare child started in advance (``prestart``): the next call finds all that done.

>>> import pyarrow as pa
>>> with PandasExecutor({"t": pa.table({"a": [1, 2, 3]})}) as ex:
...     ex.run("t['a'].sum() * 2").rows
[[12]]
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..config import ExecutorConfig
from ..errors import SandboxError
from .base import ExecutionResult, to_jsonable
from .confine import Launcher
from .pandas_guard import check_code

if TYPE_CHECKING:
    from ..catalog import Catalog

TablesProvider = Callable[[], Mapping[str, Any]] | Mapping[str, Any]

CHILD_SCRIPT = Path(__file__).with_name("_sandbox_child.py")
#: How long a child may take to import pandas and say it is ready (not part of the code's time limit).
STARTUP_GRACE_S = 30.0
#: What is kept of the code's own stdout/stderr (the rest is read and dropped).
OUTPUT_CAP = 16 * 1024
#: Room in a reply beyond its rows' bytes (the frame, columns, an error message).
REPLY_SLACK = 64 * 1024
_SIGNALS = {signal.SIGXCPU: ("cpu_time", "CPU time limit exceeded"),
            signal.SIGSEGV: ("crashed", "the process crashed (segmentation fault)"),
            signal.SIGABRT: ("crashed", "the process aborted"),
            signal.SIGBUS: ("crashed", "the process crashed (bus error)"),
            signal.SIGKILL: ("killed", "the process was killed (out of memory, or from outside)")}


def _ipc(table: Any) -> bytes:
    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _frame(obj: dict[str, Any]) -> bytes:
    data = json.dumps(obj).encode()
    return len(data).to_bytes(8, "big") + data


@dataclass
class _Outcome:
    """What the parent saw of one run: the reply frame, capped output, exit status, seconds run."""

    reply: bytes = b""
    too_large: bool = False
    stdout: bytes = b""
    stderr: bytes = b""
    returncode: int | None = None
    wall_s: float = 0.0
    timed_out: bool = False


class _Child:
    """One started sandbox process, fed its tables by a background thread while it starts.

    Its reply comes on a pipe of its own (``reply``), never on stdout: what the code prints cannot
    pose as the result, and stdout/stderr are read only up to OUTPUT_CAP.
    """

    def __init__(self, launcher: Launcher, entries: list[dict[str, Any]], blobs: bytes) -> None:
        self._launcher = launcher
        self.reply, reply_w = os.pipe()
        try:
            self.proc = launcher.popen(CHILD_SCRIPT, pass_fds=(reply_w,), stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except BaseException:
            os.close(self.reply)
            raise
        finally:
            os.close(reply_w)
        self.ready = False
        # A thread: the pipe holds 64 KiB, and the child reads only once pandas is imported.
        header = _frame({"tables": entries, "reply_fd": reply_w})
        self._feeder = threading.Thread(target=self._feed, args=(header + blobs,),
                                        daemon=True, name="autotqa-sandbox-feeder")
        self._feeder.start()

    def _feed(self, data: bytes) -> None:
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass  # the child died or was killed; run() reports it

    def wait_ready(self, timeout: float) -> bool:
        """Wait for the ready byte (pandas imported, tables loaded); False if it died or took too long."""
        if not self.ready:
            readable, _, _ = select.select([self.reply], [], [], timeout)
            self.ready = bool(readable) and os.read(self.reply, 1) == b"R"
        return self.ready

    def send(self, job: bytes, timeout: float, reply_cap: int) -> _Outcome:
        """Send the job and collect the reply, output and exit status, within ``timeout``."""
        self._feeder.join()
        try:
            self.proc.stdin.write(job)
            self.proc.stdin.close()
        except (BrokenPipeError, ValueError, OSError):
            pass  # it died before reading its job: its exit status says why
        started = time.monotonic()
        seen = self._collect(started + timeout, reply_cap)
        seen.wall_s = time.monotonic() - started
        return seen

    def _collect(self, deadline: float, reply_cap: int) -> _Outcome:
        seen = _Outcome()
        out, err = self.proc.stdout.fileno(), self.proc.stderr.fileno()
        caps = {self.reply: reply_cap, out: OUTPUT_CAP, err: OUTPUT_CAP}
        data: dict[int, bytearray] = {fd: bytearray() for fd in caps}
        open_fds = set(caps)
        while open_fds and not seen.too_large:
            left = deadline - time.monotonic()
            if left <= 0:
                seen.timed_out = True
                break
            readable, _, _ = select.select(list(open_fds), [], [], min(left, 0.5))
            for fd in readable:
                chunk = os.read(fd, 65536)
                if not chunk:
                    open_fds.discard(fd)
                elif len(data[fd]) <= caps[fd]:
                    data[fd] += chunk
                    seen.too_large = fd == self.reply and len(data[fd]) > caps[fd]
            if self.reply not in open_fds and self._reap(block=False):
                break  # it exited and said its last: a process left holding stdout is no reason to wait
        seen.reply, seen.stdout, seen.stderr = bytes(data[self.reply]), bytes(data[out]), bytes(data[err])
        self.kill()  # a no-op for a child that exited; closes the pipes
        seen.returncode = self.proc.returncode
        return seen

    def _reap(self, *, block: bool) -> bool:
        if block:
            self.proc.wait()
        return self.proc.poll() is not None

    def alive(self) -> bool:
        return not self._reap(block=False)

    def stop(self) -> None:
        """SIGKILL the process tree from another thread; the pipes stay to the thread reading them."""
        if self.proc.returncode is None:
            self._launcher.kill(self.proc)

    def kill(self) -> None:
        """Stop the process (if it still runs), reap it and close every pipe to it; idempotent."""
        self.stop()
        self._reap(block=True)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.close()
        if self.reply >= 0:
            os.close(self.reply)
            self.reply = -1
        self._feeder.join()


class PandasExecutor:
    """Runs pandas code against the tables in a sandboxed child process.

    ``tables_provider`` maps table names to Arrow tables (or DataFrames), or is a callable returning
    that mapping; it is called once and the encoded tables are reused (the catalog is frozen). With
    ``prestart`` a spare child is started at once and after every call: it imports pandas and decodes
    the tables while the caller does other work (an LLM turn), so a call costs only the code's run.
    Code sees ``tables`` (a dict of DataFrames), each table as a variable by its name, ``pd`` and
    ``np``; its last expression, or else a variable ``result``, is the result. The child starts
    through :class:`.confine.Launcher`; where OS confinement is unavailable every run fails with
    error type ``unavailable`` unless ``config.pandas_unconfined_ok``.
    """

    language = "pandas"

    def __init__(self, tables_provider: TablesProvider, config: ExecutorConfig | None = None, *,
                 prestart: bool = True, python: str = sys.executable) -> None:
        self.config = config or ExecutorConfig()
        self._provider = tables_provider
        self._payload: tuple[list[dict[str, Any]], bytes] | None = None
        self._lock = threading.Lock()
        self._prestart = prestart
        self._launcher = Launcher(python, unconfined_ok=self.config.pandas_unconfined_ok)
        self._spare: _Child | None = None
        self._running: set[_Child] = set()  # killed by close(): a cancelled session waits for no run
        self._closed = False
        self._prestarter: threading.Thread | None = None
        if prestart:
            # In the background: exporting the tables to Arrow must not delay opening a session.
            self._prestarter = threading.Thread(target=self._restock, daemon=True,
                                                name="autotqa-sandbox-prestart")
            self._prestarter.start()

    @classmethod
    def from_catalog(cls, catalog: Catalog, config: ExecutorConfig | None = None,
                     **kwargs: Any) -> PandasExecutor:
        return cls(lambda: {name: catalog.arrow(name) for name in catalog.tables}, config, **kwargs)

    def __enter__(self) -> PandasExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter exit, modules may already be gone
            self.close()

    def close(self) -> None:
        """Stop the spare child and any child still running code; start no other.

        Waits for the prestart thread: it may be reading the tables from the provider (the
        catalog), and the caller closes the catalog next."""
        lock = getattr(self, "_lock", None)  # (getattr: __init__ may have failed)
        if lock is None:
            return
        with lock:
            self._closed = True
        prestarter = self._prestarter
        if prestarter is not None and prestarter is not threading.current_thread():
            prestarter.join()
        with lock:
            spare, self._spare = self._spare, None
            running = list(self._running)
        for child in running:
            child.stop()  # its run() sees the end, reaps it and closes the pipes it reads
        if spare is not None:
            spare.kill()
        self._launcher.close()

    def check(self, code: str) -> None:
        """Raise SandboxError when ``code`` fails the static check."""
        check_code(code)

    def run(self, code: str) -> ExecutionResult:
        start = time.perf_counter()
        try:
            check_code(code)
        except SandboxError as exc:
            return ExecutionResult.failure("pandas", code, exc.kind, str(exc), time.perf_counter() - start)
        refusal = self._launcher.refusal()
        if refusal:
            return ExecutionResult.failure("pandas", code, "unavailable", refusal, time.perf_counter() - start)
        result = self._run_in_child(code)
        result.elapsed_s = time.perf_counter() - start
        result.code = code
        return result

    @property
    def confined(self) -> bool:
        """Whether the child runs inside the OS confinement (see :mod:`.confine`)."""
        return self._launcher.confined

    def _tables(self) -> tuple[list[dict[str, Any]], bytes]:
        """The tables' index and Arrow IPC streams, encoded once (the catalog is frozen)."""
        with self._lock:
            if self._payload is None:
                provided = self._provider() if callable(self._provider) else self._provider
                entries, blobs = [], []
                for name, table in provided.items():
                    blob = _ipc(table)
                    entries.append({"name": name, "nbytes": len(blob)})
                    blobs.append(blob)
                self._payload = entries, b"".join(blobs)
            return self._payload

    def _take_child(self) -> _Child:
        with self._lock:  # parallel plan steps may run code at once: each gets its own child
            child, self._spare = self._spare, None
        if child is None or not child.alive():
            if child is not None:
                child.kill()
            child = _Child(self._launcher, *self._tables())
        return child

    def _restock(self) -> None:
        if not self._prestart or self._closed or self._launcher.refusal():
            return
        tables = self._tables()
        if self._closed:  # closed while the tables were read: no child to start and kill
            return
        fresh: _Child | None = _Child(self._launcher, *tables)
        with self._lock:
            if not self._closed:
                fresh, self._spare = self._spare, fresh
        if fresh is not None:  # another call restocked first, or the executor was closed meanwhile
            fresh.kill()

    def _run_in_child(self, code: str) -> ExecutionResult:
        cfg = self.config
        token = secrets.token_hex(16)
        job = _frame({"code": code, "row_cap": cfg.row_cap, "cpu_s": cfg.pandas_cpu_s,
                      "memory_mb": cfg.pandas_memory_mb, "max_bytes": cfg.result_max_bytes,
                      "token": token})
        try:
            child = self._take_child()
        except OSError as exc:  # closed meanwhile (the launcher refuses), or no process could start
            return ExecutionResult.failure("pandas", code, "unavailable", f"the sandbox did not start: {exc}")
        with self._lock:
            self._running.add(child)
        try:
            if not child.wait_ready(STARTUP_GRACE_S):
                child.kill()
                return self._failure(code, _Outcome(returncode=child.proc.returncode), started=False)
            seen = child.send(job, cfg.pandas_timeout_s, cfg.result_max_bytes + REPLY_SLACK)
        finally:
            with self._lock:
                self._running.discard(child)
            self._restock()
        if seen.timed_out:
            return ExecutionResult.failure("pandas", code, "timeout",
                                           f"stopped after {cfg.pandas_timeout_s:g} s (wall-clock limit)")
        if seen.too_large:
            return ExecutionResult.failure(
                "pandas", code, "too_large", f"result too large: more than {cfg.result_max_bytes} bytes "
                "came back; aggregate or select fewer columns/rows")
        return self._decode(code, seen, token)

    def _failure(self, code: str, seen: _Outcome, *, started: bool = True) -> ExecutionResult:
        """A run that ended without a valid reply, classified by how the process ended."""
        if not started and seen.returncode == 0:
            return ExecutionResult.failure("pandas", code, "crashed", "the sandbox did not start in time")
        sig = self._launcher.exit_signal(seen.returncode or 0)
        kind, message = "crashed", f"the process exited with status {seen.returncode}"
        if seen.returncode == 0:
            kind, message = "crashed", "the process exited without a reply"
        if sig is not None:
            kind, message = _SIGNALS.get(sig, ("crashed", f"killed by signal {sig}"))
            if sig == signal.SIGKILL and seen.wall_s >= self.config.pandas_cpu_s:
                # Not our kill (that is a timeout) and long enough to have used the CPU budget: the
                # hard CPU limit, one second past the soft one whose SIGXCPU the code ignored. (The
                # memory limit shows as a MemoryError. bwrap hides the child's CPU time from wait4.)
                kind, message = "cpu_time", "CPU time limit exceeded (killed at the hard limit)"
        tail = seen.stderr.decode(errors="replace").strip().splitlines()[-1:]
        return ExecutionResult.failure("pandas", code, kind, message + (f": {tail[0][:300]}" if tail else ""))

    def _decode(self, code: str, seen: _Outcome, token: str) -> ExecutionResult:
        if seen.returncode != 0 or len(seen.reply) < 8:
            return self._failure(code, seen)
        size = int.from_bytes(seen.reply[:8], "big")
        try:
            if size != len(seen.reply) - 8:
                raise ValueError(f"{len(seen.reply) - 8} bytes for a frame of {size}")
            frame = json.loads(seen.reply[8:])
            if not isinstance(frame, dict) or frame.get("token") != token:
                raise ValueError("it does not carry this run's token")
            data = frame["reply"]
            if not data.get("ok"):
                return ExecutionResult.failure("pandas", code, str(data["error_type"]), str(data["error"]))
            rows = [[to_jsonable(v) for v in row] for row in data["rows"][: self.config.row_cap]]
            n_rows = int(data["n_rows"])
            return ExecutionResult(ok=True, language="pandas", columns=[str(c) for c in data["columns"]],
                                   rows=rows, n_rows=n_rows, truncated=n_rows > len(rows))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return ExecutionResult.failure("pandas", code, "crashed", f"unreadable reply from the sandbox: {exc}")
