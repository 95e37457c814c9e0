"""The child process of the pandas sandbox. Run as a script, started by :mod:`.confine` (inside
bubblewrap, where the only files it sees are the interpreter's); it imports nothing from autotqa.

Protocol (frames are an 8-byte big-endian length and JSON): the child imports pandas/pyarrow, reads
a frame ``{tables: [{name, nbytes}], reply_fd}`` and the tables as Arrow IPC streams from stdin, and
writes ``R`` on the reply fd (a pipe of its own, not stdout): a pre-started spare is now warm. Then
it reads a frame ``{code, row_cap, cpu_s, memory_mb, max_bytes, token}``, sets its OS limits, loads
the seccomp program the launcher passed (``--seccomp FD:NR``), runs the (statically checked) code,
and writes ONE frame on the reply fd: ``{token, ok, columns, rows, n_rows, error_type, error}``.
What the code prints, or writes to fds 1 and 2, is never read as the reply.

The in-process layers (restricted builtins, RLIMIT_FSIZE=0, RLIMIT_AS, RLIMIT_CPU, an audit hook)
are filters that give clear errors; the boundary is the OS confinement around this process.
"""

from __future__ import annotations

import ast
import builtins
import io
import json
import math
import os
import resource
import sys
import sysconfig
import traceback

import numpy as np
import pandas as pd
import pyarrow as pa

ALLOWED_IMPORTS = frozenset({"pandas", "numpy", "math", "datetime", "re", "statistics",
                             "numpy.linalg", "numpy.random"})
REMOVED_BUILTINS = ("open", "exec", "eval", "compile", "globals", "locals", "vars", "getattr",
                    "setattr", "delattr", "input", "breakpoint", "help", "exit", "quit", "memoryview")
BLOCKED_EVENT_PREFIXES = (
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill",
    "os.killpg", "subprocess.", "socket.", "ctypes.", "os.remove", "os.unlink", "os.rename",
    "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.link", "os.symlink", "os.truncate",
    "os.putenv", "os.unsetenv", "os.chdir", "os.listdir", "os.scandir", "shutil.", "os.startfile",
    "urllib.", "http.", "ftplib.", "smtplib.", "webbrowser.", "pty.", "mmap.", "resource.setrlimit",
    "sys.addaudithook", "sys.setprofile", "sys.settrace", "os.fwalk", "os.walk",
    "glob.glob", "sqlite3.", "winreg.",
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _read_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, paths["stdlib"], paths["platstdlib"],
             paths["purelib"], paths["platlib"], "/usr/share/zoneinfo"}
    return tuple(os.path.realpath(r) + os.sep for r in roots if r)


def _audit_hook(read_roots: tuple[str, ...]):  # noqa: ANN202
    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            if isinstance(path, int):
                return
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS)
            if writing:
                raise PermissionError(f"writing files is not allowed in the sandbox: {path}")
            real = os.path.realpath(os.fsdecode(path)) if isinstance(path, str | bytes) else ""
            if not real.startswith(read_roots):
                raise PermissionError(f"reading files is not allowed in the sandbox: {path}")
        elif event.startswith(BLOCKED_EVENT_PREFIXES):
            raise PermissionError(f"{event} is not allowed in the sandbox")
    return hook


def _guarded_import(name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002, ANN001, ANN202
    if level or name not in ALLOWED_IMPORTS:
        raise ImportError(f'import of "{name}" is not allowed in the sandbox')
    return builtins.__import__(name, globals, locals, fromlist, level)


def _safe_builtins() -> dict:
    safe = dict(vars(builtins))
    for name in REMOVED_BUILTINS:
        safe.pop(name, None)
    safe["__import__"] = _guarded_import
    return safe


def _cell(value: object) -> object:
    """A JSON-safe cell; the parent re-normalises with to_jsonable."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, np.generic):
        return _cell(value.item())
    if value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | pd.Timedelta) or hasattr(value, "isoformat"):
        return value.isoformat() if hasattr(value, "isoformat") else str(value)
    if isinstance(value, list | tuple | np.ndarray):
        return [_cell(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _cell(v) for k, v in value.items()}
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _frame(value: object) -> pd.DataFrame:
    """Shape any result as a DataFrame whose index, when meaningful, is kept as columns."""
    if isinstance(value, pd.Series):
        name = value.name if value.name is not None else "value"
        value = value.to_frame(name=name)
    elif isinstance(value, pd.Index):
        value = value.to_frame(index=False)
    elif isinstance(value, np.ndarray):
        value = pd.DataFrame(value.reshape(len(value), -1) if value.ndim else [[value.item()]])
    elif isinstance(value, dict):
        value = pd.DataFrame({"key": list(value), "value": list(value.values())})
    elif isinstance(value, list | tuple | set):
        value = pd.DataFrame({"result": list(value)})
    elif not isinstance(value, pd.DataFrame):
        return pd.DataFrame({"result": [value]})
    index = value.index
    # Keep an index that carries information (groupby keys, a set_index column); drop a plain
    # positional one, such as what filtering leaves behind.
    if isinstance(index, pd.MultiIndex) or index.name is not None or not pd.api.types.is_integer_dtype(index):
        return value.reset_index()
    return value.reset_index(drop=True)


def _answer(value: object, row_cap: int) -> dict:
    frame = _frame(value)
    columns = [" / ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in frame.columns]
    rows = [[_cell(v) for v in row] for row in frame.head(row_cap).itertuples(index=False, name=None)]
    return {"ok": True, "columns": columns, "rows": rows, "n_rows": len(frame)}


def _error(exc: BaseException, code: str) -> dict:
    line = next((f.lineno for f in reversed(traceback.extract_tb(exc.__traceback__))
                 if f.filename == "<table code>"), None)
    where = f" (line {line})" if line else ""
    if isinstance(exc, MemoryError):
        return {"ok": False, "error_type": "memory", "error": f"out of memory{where}: the memory limit was hit"}
    if isinstance(exc, PermissionError | ImportError):
        return {"ok": False, "error_type": "forbidden", "error": f"{exc}{where}"}
    return {"ok": False, "error_type": "runtime", "error": f"{type(exc).__name__}: {exc}{where}"}


def _limit(memory_mb: int, cpu_s: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    spent = math.ceil(usage.ru_utime + usage.ru_stime)  # the imports and table loading so far
    resource.setrlimit(resource.RLIMIT_CPU, (spent + cpu_s, spent + cpu_s + 1))
    with open("/proc/self/statm") as fh:  # address space already mapped by pandas/numpy/arrow
        mapped = int(fh.read().split()[0]) * resource.getpagesize()
    budget = mapped + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (budget, budget))


def _run(code: str, tables: dict[str, pd.DataFrame], row_cap: int) -> dict:
    namespace: dict = {"__builtins__": _safe_builtins(), "__name__": "__sandbox__",
                       "pd": pd, "np": np, "tables": tables}
    namespace.update({n: df for n, df in tables.items() if n.isidentifier() and n not in namespace})
    tree = ast.parse(code)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    body = compile(tree, "<table code>", "exec")
    tail = compile(ast.Expression(last.value), "<table code>", "eval") if last else None
    printed = io.StringIO()
    sys.stdout = printed
    sys.addaudithook(_audit_hook(_read_roots()))
    try:
        exec(body, namespace)  # noqa: S102 - the code passed the parent's static check
        value = eval(tail, namespace) if tail else namespace.get("result")  # noqa: S307
        if value is None and printed.getvalue():  # e.g. code ending in print(...)
            value = pd.DataFrame({"output": printed.getvalue().splitlines()})
        elif value is None and "result" not in namespace and not tail:
            return {"ok": False, "error_type": "no_result",
                    "error": "no result: end with an expression or assign to `result`"}
        return _answer(value, row_cap)
    except BaseException as exc:  # noqa: BLE001 - every failure of model code is reported as data
        return _error(exc, code)
    finally:
        sys.stdout = sys.__stdout__


def _warm_up() -> None:
    """Trigger pandas' lazy imports now, while the spare waits, not when the code runs."""
    frame = pd.DataFrame({"k": ["a", "b", "a"], "v": [1.0, 2.0, 3.0], "d": pd.to_datetime(["2020-01-01"] * 3)})
    frame.groupby("k")["v"].agg(["sum", "mean"]).reset_index().merge(frame, on="k").sort_values("v")
    frame.pivot_table(index="k", values="v", aggfunc="sum")
    frame["d"].dt.year.value_counts()
    frame.query("v > 1")
    pa.Table.from_pandas(frame).to_pandas()


def _read_frame(stdin: io.BufferedReader) -> dict:
    size = int.from_bytes(stdin.read(8), "big")
    return json.loads(stdin.read(size))


def _encode(result: dict, max_bytes: int) -> str:
    """The reply's JSON, or a "too_large" error when its rows exceed ``max_bytes`` (counted row by
    row, so a huge result is measured without building one huge string)."""
    if not result.get("ok"):
        return json.dumps(result)
    total, kept = len(json.dumps(result["columns"])), []
    for row in result["rows"]:
        text = json.dumps(row, allow_nan=False)
        total += len(text) + 1
        if total <= max_bytes:
            kept.append(text)
    if total > max_bytes:
        return json.dumps({"ok": False, "error_type": "too_large",
                           "error": f"result too large: {total} bytes > {max_bytes} bytes cap; "
                                    "aggregate or select fewer columns/rows"})
    return (f'{{"ok": true, "columns": {json.dumps(result["columns"])}, "n_rows": {result["n_rows"]}, '
            f'"rows": [{",".join(kept)}]}}')


def _seccomp(spec: str) -> None:
    """Load the launcher's seccomp program (``FD:SYSCALL_NR``) into every thread of this process."""
    import ctypes

    fd, number = (int(part) for part in spec.split(":"))
    with os.fdopen(fd, "rb") as source:
        program = source.read()

    class _Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buffer = ctypes.create_string_buffer(program, len(program))
    prog = _Prog(len(program) // 8, ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_no_new_privs, set_mode_filter, flag_tsync = 38, 1, 1
    if libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0) != 0 or libc.syscall(
            number, set_mode_filter, flag_tsync, ctypes.byref(prog)) != 0:
        raise OSError(ctypes.get_errno(), "loading the seccomp filter failed")


def main() -> None:
    seccomp = sys.argv[sys.argv.index("--seccomp") + 1] if "--seccomp" in sys.argv else None
    _warm_up()
    stdin = sys.stdin.buffer
    header = _read_frame(stdin)
    tables = {}
    for entry in header["tables"]:
        with pa.ipc.open_stream(pa.py_buffer(stdin.read(entry["nbytes"]))) as reader:
            tables[entry["name"]] = reader.read_all().to_pandas()
    reply = os.fdopen(header["reply_fd"], "w")
    reply.write("R")  # ready (pandas imported, tables loaded): the wall clock starts
    reply.flush()
    job = _read_frame(stdin)
    _limit(job["memory_mb"], job["cpu_s"])
    if seccomp:
        _seccomp(seccomp)  # after the limits are set: setrlimit is among what it forbids
    result = _run(job["code"], tables, job["row_cap"])
    try:
        text = _encode(result, job["max_bytes"])
    except (TypeError, ValueError) as exc:
        text = json.dumps({"ok": False, "error_type": "runtime", "error": f"unserialisable result: {exc}"})
    data = f'{{"token": {json.dumps(job["token"])}, "reply": {text}}}'.encode()
    reply.flush()
    os.write(reply.fileno(), len(data).to_bytes(8, "big"))
    view = memoryview(data)
    while view:
        view = view[os.write(reply.fileno(), view):]
    os._exit(0)  # skip interpreter teardown (~0.1 s with pandas loaded): the parent waits for exit


if __name__ == "__main__":
    main()
