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

import json
import contextlib
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..config import ExecutorConfig
from ..errors import SandboxError
from .base import ExecutionResult, to_jsonable
from .pandas_guard import check_code

if TYPE_CHECKING:
    from ..catalog import Catalog

TablesProvider = Callable[[], Mapping[str, Any]] | Mapping[str, Any]

CHILD_SCRIPT = Path(__file__).with_name("_sandbox_child.py")
#: How long a child may take to import pandas and say it is ready (not part of the code's time limit).
STARTUP_GRACE_S = 30.0
#: Only what pandas/numpy need; nothing of the parent's environment (API keys) reaches the child.
_CHILD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "NUMEXPR_MAX_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C.UTF-8"}
_SIGNALS = {signal.SIGXCPU: ("cpu_time", "CPU time limit exceeded"),
            signal.SIGSEGV: ("crashed", "the process crashed (segmentation fault)"),
            signal.SIGABRT: ("crashed", "the process aborted"),
            signal.SIGBUS: ("crashed", "the process crashed (bus error)"),
            signal.SIGKILL: ("killed", "the process was killed (probably out of memory)")}


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


class _Child:
    """One started sandbox process, fed its tables by a background thread while it starts."""

    def __init__(self, python: str, tables: bytes) -> None:
        self.proc = subprocess.Popen(
            [python, "-I", str(CHILD_SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=_CHILD_ENV, cwd="/", start_new_session=True, close_fds=True)
        self.ready = False
        # A thread: the pipe holds 64 KiB, and the child reads only once pandas is imported.
        self._feeder = threading.Thread(target=self._feed, args=(tables,), daemon=True,
                                        name="autotqa-sandbox-feeder")
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
            readable, _, _ = select.select([self.proc.stdout], [], [], timeout)
            self.ready = bool(readable) and self.proc.stdout.read(1) == b"R"
        return self.ready

    def send(self, job: bytes, timeout: float) -> tuple[bytes, bytes]:
        """Send the job, wait for the reply; raises subprocess.TimeoutExpired past ``timeout``."""
        self._feeder.join()
        try:
            self.proc.stdin.write(job)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # it died before reading its job: its exit status says why
        return self.proc.communicate(timeout=timeout)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        self.proc.communicate()
        self._feeder.join()


class PandasExecutor:
    """Runs pandas code against the tables in a sandboxed child process.

    ``tables_provider`` maps table names to Arrow tables (or DataFrames), or is a callable returning
    that mapping; it is called once and the encoded tables are reused (the catalog is frozen). With
    ``prestart`` a spare child is started at once and after every call: it imports pandas and decodes
    the tables while the caller does other work (an LLM turn), so a call costs only the code's run. Code sees ``tables`` (a dict of DataFrames), each table as a variable by its name, ``pd``
    and ``np``; its last expression, or else a variable ``result``, is the result.
    """

    language = "pandas"

    def __init__(self, tables_provider: TablesProvider, config: ExecutorConfig | None = None, *,
                 prestart: bool = True, python: str = sys.executable) -> None:
        self.config = config or ExecutorConfig()
        self._provider = tables_provider
        self._payload: bytes | None = None
        self._lock = threading.Lock()
        self._prestart = prestart
        self._python = python
        self._spare: _Child | None = None
        self._closed = False
        if prestart:
            # In the background: exporting the tables to Arrow must not delay opening a session.
            threading.Thread(target=self._restock, daemon=True, name="autotqa-sandbox-prestart").start()

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
        """Stop the spare child, if any; no new spare is started afterwards."""
        lock = getattr(self, "_lock", None)  # (getattr: __init__ may have failed)
        if lock is None:
            return
        with lock:
            self._closed = True
            spare, self._spare = self._spare, None
        if spare is not None:
            spare.kill()

    def check(self, code: str) -> None:
        """Raise SandboxError when ``code`` fails the static check."""
        check_code(code)

    def run(self, code: str) -> ExecutionResult:
        start = time.perf_counter()
        try:
            check_code(code)
        except SandboxError as exc:
            return ExecutionResult.failure("pandas", code, exc.kind, str(exc), time.perf_counter() - start)
        result = self._run_in_child(code)
        result.elapsed_s = time.perf_counter() - start
        result.code = code
        return result

    def _tables(self) -> bytes:
        """The tables frame and Arrow IPC streams, encoded once (the catalog is frozen)."""
        with self._lock:
            return self._encode_tables()

    def _encode_tables(self) -> bytes:
        if self._payload is None:
            provided = self._provider() if callable(self._provider) else self._provider
            entries, blobs = [], []
            for name, table in provided.items():
                blob = _ipc(table)
                entries.append({"name": name, "nbytes": len(blob)})
                blobs.append(blob)
            self._payload = _frame({"tables": entries}) + b"".join(blobs)
        return self._payload

    def _take_child(self) -> _Child:
        with self._lock:  # parallel plan steps may run code at once: each gets its own child
            child, self._spare = self._spare, None
        if child is None or not child.alive():
            child = _Child(self._python, self._tables())
        return child

    def _restock(self) -> None:
        if not self._prestart or self._closed:
            return
        fresh: _Child | None = _Child(self._python, self._tables())
        with self._lock:
            if not self._closed:
                fresh, self._spare = self._spare, fresh
        if fresh is not None:  # another call restocked first, or the executor was closed meanwhile
            fresh.kill()

    def _run_in_child(self, code: str) -> ExecutionResult:
        cfg = self.config
        job = _frame({"code": code, "row_cap": cfg.row_cap, "cpu_s": cfg.pandas_cpu_s,
                      "memory_mb": cfg.pandas_memory_mb})
        child = self._take_child()
        try:
            if not child.wait_ready(STARTUP_GRACE_S):
                child.kill()
                return self._decode(code, child.proc.returncode, b"", b"", started=False)
            out, err = child.send(job, timeout=cfg.pandas_timeout_s)
        except subprocess.TimeoutExpired:
            child.kill()
            return ExecutionResult.failure("pandas", code, "timeout",
                                           f"stopped after {cfg.pandas_timeout_s:g} s (wall-clock limit)")
        finally:
            self._restock()
        return self._decode(code, child.proc.returncode, out, err)

    def _decode(self, code: str, returncode: int, out: bytes, err: bytes, *,
                started: bool = True) -> ExecutionResult:
        if not started and returncode == 0:
            return ExecutionResult.failure("pandas", code, "crashed", "the sandbox did not start in time")
        if returncode != 0 or not out:
            kind, message = "crashed", f"the process exited with status {returncode}"
            if returncode < 0:
                kind, message = _SIGNALS.get(-returncode, ("crashed", f"killed by signal {-returncode}"))
            tail = err.decode(errors="replace").strip().splitlines()[-1:] if err else []
            return ExecutionResult.failure("pandas", code, kind, message + (f": {tail[0]}" if tail else ""))
        try:
            data = json.loads(out)
            if not data.get("ok"):
                return ExecutionResult.failure("pandas", code, str(data["error_type"]), str(data["error"]))
            rows = [[to_jsonable(v) for v in row] for row in data["rows"][: self.config.row_cap]]
            n_rows = int(data["n_rows"])
            return ExecutionResult(ok=True, language="pandas", columns=[str(c) for c in data["columns"]],
                                   rows=rows, n_rows=n_rows, truncated=n_rows > len(rows))
        except (ValueError, KeyError, TypeError) as exc:
            return ExecutionResult.failure("pandas", code, "crashed", f"unreadable reply from the sandbox: {exc}")
