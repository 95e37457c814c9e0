"""How the pandas child is started: confined by the operating system, or not at all.

Python cannot sandbox Python (model-written code reached the real builtins, ``ctypes`` and a shell
through attribute chains of allowed modules), so the boundary is the kernel's. On Linux the child
runs under bubblewrap (``bwrap``) in new user, PID, network, IPC, UTS and mount namespaces:

- the file system is an empty read-only root with read-only binds of only the interpreter's prefix
  and site-packages, the system library folders, ``ld.so.cache`` and zoneinfo; no /tmp, no home, no
  /work, no /etc beyond that; a fresh /proc of its own PID namespace and a minimal read-only /dev;
- the network namespace has only ``lo``: nothing outside the sandbox can be reached;
- the environment is cleared (no ``AUTOTQA_*``, no API keys); the uid inside is ``nobody``;
- every process in the PID namespace dies with the child, and the child dies with its parent
  (``--die-with-parent``: the kernel's parent-death signal, which follows the *thread* that started
  the process; so every child is started from one long-lived thread of the launcher's, and a kill
  reaches the sandbox's init too, see :meth:`Launcher.kill`);
- a seccomp filter (built here with libseccomp through ``pyseccomp``) that the child applies to all
  its threads after start-up, just before the code runs: no execve, fork or non-thread clone, no
  sockets but AF_UNIX, no raising or setting of resource limits, no ptrace, mount, namespaces,
  bpf, io_uring or keyrings.

Where that is not possible (not Linux, no bwrap, no user namespaces, no libseccomp) the launcher is
*unavailable* and says why; the pandas executor then refuses to run unless the configuration says
``executor.pandas_unconfined_ok = true``.

"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import os
import signal
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path

#: Where the child script is mounted inside the sandbox.
SANDBOX_SCRIPT = "/sandbox/child.py"
#: Only what pandas/numpy need; nothing of the parent's environment (API keys) reaches the child.
CHILD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
             "NUMEXPR_MAX_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C.UTF-8",
             "PATH": "/nonexistent"}
#: System folders the interpreter and the extension modules load shared libraries from.
_LIB_DIRS = ("/lib", "/lib64", "/lib32", "/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/local/lib")
#: Single read-only files and folders that are harmless and needed (dynamic loader cache, time zones).
_EXTRA_RO = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/usr/share/zoneinfo",
             "/etc/localtime")
#: Prefixes too broad to bind whole (they hold shells, /etc, homes): bind their Python parts only.
_BROAD = {"/", "/usr", "/usr/local", "/opt", "/home", "/root"}
_CLONE_THREAD = 0x00010000
_AF_UNIX = 1


class Launcher:
    """Builds the command line that starts the sandbox child, confined when possible.

    ``unavailable`` is None when the confinement works here, else one line saying why (checked once,
    on first use, by running the interpreter inside it). ``unconfined_ok`` allows running without it.
    """

    def __init__(self, python: str = sys.executable, *, unconfined_ok: bool = False) -> None:
        self.python = python
        self.unconfined_ok = unconfined_ok
        self._lock = threading.Lock()
        self._checked = False
        self._unavailable: str | None = None
        self._bwrap = ""
        self._bpf = b""
        self._seccomp_nr = 0
        self._spawn_lock = threading.Lock()
        self._spawner: concurrent.futures.ThreadPoolExecutor | None = None
        self._closed = False

    @property
    def unavailable(self) -> str | None:
        with self._lock:
            if not self._checked:
                self._unavailable = self._probe()
                self._checked = True
            return self._unavailable

    @property
    def confined(self) -> bool:
        return self.unavailable is None

    def refusal(self) -> str | None:
        """Why the child may not start at all (no confinement and no opt-in), or None."""
        why = self.unavailable
        if why is None or self.unconfined_ok:
            return None
        return (f"pandas execution is off on this machine: {why}; write SQL instead (or set "
                "executor.pandas_unconfined_ok = true to run pandas code without OS confinement)")

    def argv(self, script: Path, *, seccomp_fd: int | None = None) -> list[str]:
        """The command that runs ``script`` (confined when possible)."""
        if not self.confined:
            return [self.python, "-I", str(script)]
        return self._confined_argv(script, seccomp_fd)

    def _confined_argv(self, script: Path, seccomp_fd: int | None) -> list[str]:
        tail = [self.python, "-I", SANDBOX_SCRIPT]
        if seccomp_fd is not None:
            tail += ["--seccomp", f"{seccomp_fd}:{self._seccomp_nr}"]
        return [*_bwrap_args(self._bwrap, self.python, script), "--", *tail]

    def popen(self, script: Path, *, pass_fds: tuple[int, ...] = (), **kwargs: object) -> subprocess.Popen:
        """Start ``script``; ``pass_fds`` stay open in the child at the same numbers.

        The start happens on the launcher's own thread, which lives until :meth:`close`: bubblewrap
        kills itself when the thread that started it ends, and a spare started from a short-lived
        thread (the pandas prestart) died a moment after it was made. OSError once closed."""
        confined = self.confined  # probed here, not on the spawn thread under its lock
        with self._spawn_lock:
            if self._closed:
                raise OSError("the sandbox launcher is closed")
            if self._spawner is None:
                self._spawner = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="autotqa-sandbox-spawn")
            spawner = self._spawner
        return spawner.submit(self._popen, script, confined, pass_fds, kwargs).result()

    def _popen(self, script: Path, confined: bool, pass_fds: tuple[int, ...],
               kwargs: dict[str, object]) -> subprocess.Popen:
        if confined:
            read_end, write_end = os.pipe()  # the seccomp program, read once by the child at start
            os.write(write_end, self._bpf)  # a few hundred bytes: well within the pipe's buffer
            os.close(write_end)
            try:
                return subprocess.Popen(self.argv(script, seccomp_fd=read_end), env=CHILD_ENV, cwd="/",
                                        start_new_session=True, pass_fds=(*pass_fds, read_end), **kwargs)
            finally:
                os.close(read_end)
        return subprocess.Popen(self.argv(script), env=CHILD_ENV, cwd="/", start_new_session=True,
                                pass_fds=pass_fds, **kwargs)

    def kill(self, proc: subprocess.Popen) -> None:
        """SIGKILL a process started by :meth:`popen` and every process below it.

        bwrap's sandbox init runs in a session of its own (a process-group kill misses it) and dies
        with bwrap only once it has set its own parent-death signal: a child killed early in its
        start-up left that init and the Python below it running. Each process below is signalled
        through a pidfd taken while it is still the child of the process above it, so a recycled
        process id is never hit."""
        below = _pidfds_below(proc.pid)
        try:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            for fd in below:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
        finally:
            for fd in below:
                os.close(fd)

    def close(self) -> None:
        """End the launcher's thread (children still running then get bubblewrap's SIGKILL)."""
        with self._spawn_lock:
            self._closed = True
            spawner, self._spawner = self._spawner, None
        if spawner is not None:
            spawner.shutdown(wait=True)

    def exit_signal(self, returncode: int) -> int | None:
        """The signal that ended the child, from the status of the process started by ``popen``."""
        if returncode < 0:  # the launcher itself (or an unconfined child) was signalled
            return -returncode
        if self.confined and returncode > 128:  # bwrap exits 128 + N when its child dies of signal N
            return returncode - 128
        return None

    def _probe(self) -> str | None:
        if not sys.platform.startswith("linux"):
            return f"OS confinement needs Linux namespaces (this is {sys.platform})"
        self._bwrap = shutil.which("bwrap") or ""
        if not self._bwrap:
            return "bubblewrap (bwrap) is not installed"
        try:
            self._bpf, self._seccomp_nr = seccomp_program()
        except (ImportError, RuntimeError, OSError) as exc:
            return f"seccomp is unavailable ({exc}); install libseccomp2 and pyseccomp"
        with tempfile.NamedTemporaryFile("w", suffix=".py") as script:
            script.write("import sys\n")
            script.flush()
            try:
                done = subprocess.run(self._confined_argv(Path(script.name), None), env=CHILD_ENV,
                                      capture_output=True, timeout=30, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return f"bubblewrap did not run: {exc}"
        if done.returncode != 0:
            lines = done.stderr.decode(errors="replace").strip().splitlines()
            return f"bubblewrap failed here: {lines[-1] if lines else f'status {done.returncode}'}"
        return None


def _pidfds_below(pid: int) -> list[int]:
    """pidfds of every process below ``pid``, each checked to be the child of its
    parent after the pidfd was opened. Empty where /proc lacks child lists or pidfds are missing."""
    fds: list[int] = []
    parents = [pid]
    while parents:
        parent = parents.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{parent}/task/{tid}/children", encoding="ascii") as fh:
                    children = [int(c) for c in fh.read().split()]
            except OSError:
                continue
            for child in children:
                try:
                    fd = os.pidfd_open(child)
                except (OSError, AttributeError):
                    continue
                if _parent_of(child) == parent:
                    fds.append(fd)
                    parents.append(child)
                else:
                    os.close(fd)
    return fds


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _bwrap_args(bwrap: str, python: str, script: Path) -> list[str]:
    args = [bwrap, "--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-net",
            "--unshare-uts", "--unshare-cgroup-try", "--uid", "65534", "--gid", "65534",
            "--hostname", "sandbox", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--clearenv"]
    for key, value in CHILD_ENV.items():
        args += ["--setenv", key, value]
    for folder in _LIB_DIRS:
        if os.path.islink(folder):  # merged /usr: /lib -> usr/lib
            args += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            args += ["--ro-bind", folder, folder]
    for path in (*_python_roots(python), *_EXTRA_RO):
        args += ["--ro-bind-try", path, path]
    args += ["--ro-bind", str(script), SANDBOX_SCRIPT, "--proc", "/proc", "--dev", "/dev",
             "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/"]
    return args


def _python_roots(python: str) -> list[str]:
    """What the interpreter needs: its prefixes (venv and base), or, for a system interpreter whose
    prefix is /usr, its library folders (inside the library binds already) and the executable."""
    paths = sysconfig.get_paths()
    roots = {path for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)
             for path in (prefix, os.path.realpath(prefix)) if path not in _BROAD}
    wanted = [paths["stdlib"], paths["platstdlib"], paths["purelib"], paths["platlib"],
              os.path.realpath(python)]
    covered = (*roots, *_LIB_DIRS)
    roots.update(p for p in wanted if not any(p == r or p.startswith(r + os.sep) for r in covered))
    return sorted(roots)


def seccomp_program() -> tuple[bytes, int]:
    """The BPF program the child loads before user code runs (see the module docstring), and the
    number of the ``seccomp`` system call here (the child needs it to filter all its threads)."""
    import pyseccomp as sc  # raises RuntimeError when libseccomp is missing

    deny = sc.ERRNO(errno.EPERM)
    program = sc.SyscallFilter(sc.ALLOW)
    for name in ("execve", "execveat", "fork", "vfork", "ptrace", "process_vm_readv",
                 "process_vm_writev", "unshare", "setns", "mount", "umount2", "pivot_root", "chroot",
                 "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
                 "io_uring_register", "keyctl", "add_key", "request_key", "setrlimit", "kexec_load",
                 "init_module", "finit_module", "delete_module", "mknod", "mknodat",
                 "open_by_handle_at", "name_to_handle_at", "fanotify_init", "setsid", "setpgid"):
        program.add_rule(deny, name)
    # A clone without CLONE_THREAD starts a process; threads (Arrow's pools) stay allowed.
    program.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, _CLONE_THREAD, 0))
    # clone3 passes its flags in memory a filter cannot read: ENOSYS makes glibc fall back to clone.
    program.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    program.add_rule(sc.ERRNO(errno.EAFNOSUPPORT), "socket", sc.Arg(0, sc.NE, _AF_UNIX))
    program.add_rule(deny, "prlimit64", sc.Arg(2, sc.NE, 0))  # reading limits stays allowed
    read_end, write_end = os.pipe()
    try:
        with os.fdopen(write_end, "wb", closefd=True) as sink:
            program.export_bpf(sink)
        return _read_all(read_end), sc.resolve_syscall(sc.system_arch(), "seccomp")
    finally:
        os.close(read_end)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)
