"""Real PostgreSQL and MariaDB servers for the tests, started in a temporary folder on a free local port.

Each server runs from its own Debian binaries (``initdb``/``pg_ctl``, ``mariadb-install-db``/
``mariadbd``) as an unprivileged user when the tests run as root (CI), and is stopped by the fixture
that started it. Both get an admin with a password (for loading data) and a ``reader`` login that
the tests give autotqa, with SELECT rights only: the read-only role the README recommends.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ADMIN_PASSWORD = "admin-pw-7f3a"
READER_PASSWORD = "reader-S3cret-91xq"  # distinctive: tests grep every output for it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_user(user: str | None) -> list[str]:
    """A command prefix that runs as ``user`` when we are root (PostgreSQL refuses to run as root)."""
    return ["runuser", "-u", user, "--"] if user else []


def _service_user(name: str) -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(name)
    except KeyError:
        return "nobody"
    return name


def _give(path: Path, user: str | None) -> None:
    if user:
        info = pwd.getpwnam(user)
        for p in [path, *path.rglob("*")]:
            os.chown(p, info.pw_uid, info.pw_gid)
        # The temporary folder's parents must let the service user through.
        for parent in path.parents:
            if parent == Path("/"):
                break
            mode = parent.stat().st_mode
            if not mode & 0o001:
                os.chmod(parent, mode | 0o001)


def _wait_port(port: int, proc: subprocess.Popen[bytes] | None, log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.2)
    raise RuntimeError(f"server on port {port} did not start:\n{log.read_text(errors='replace')[-2000:]}")


def postgres_bin() -> Path | None:
    """The folder of PostgreSQL's server binaries (Debian keeps them out of PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def mariadb_bin() -> tuple[str, str] | None:
    sbin = Path("/usr/sbin/mariadbd")  # Debian keeps it out of a non-root PATH
    server = shutil.which("mariadbd") or shutil.which("mysqld") or (str(sbin) if sbin.exists() else None)
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    return (server, install) if server and install else None


@dataclass
class Server:
    """A running server: ``url(user, password, db)`` builds a connection URL to it."""

    scheme: str
    port: int
    root: Path
    stop_cmd: list[str] | None = None
    proc: subprocess.Popen[bytes] | None = None
    start_cmd: list[str] | None = None

    def url(self, user: str, password: str | None, db: str) -> str:
        auth = f"{user}:{password}" if password else user
        return f"{self.scheme}://{auth}@127.0.0.1:{self.port}/{db}"

    def start_again(self) -> None:
        """Start a stopped PostgreSQL server again on the same port and data."""
        assert self.start_cmd is not None
        subprocess.run(self.start_cmd, check=True, capture_output=True, timeout=90)
        _wait_port(self.port, None, self.root / "pg.log")

    def stop(self) -> None:
        if self.stop_cmd:
            subprocess.run(self.stop_cmd, capture_output=True, timeout=60, check=False)
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_postgres(root: Path) -> Server:
    bindir = postgres_bin()
    assert bindir is not None
    user = _service_user("postgres")
    data, sock, log = root / "data", root / "sock", root / "pg.log"
    sock.mkdir(parents=True)
    pwfile = root / "pw"
    pwfile.write_text(ADMIN_PASSWORD + "\n")
    _give(root, user)
    subprocess.run([*_as_user(user), str(bindir / "initdb"), "-D", str(data), "-U", "admin", "--pwfile", str(pwfile),
                    "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"],
                   check=True, capture_output=True, timeout=120)
    port = free_port()
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40 -c autovacuum=off"
    start = [*_as_user(user), str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(log), "-w", "-t", "60",
             "start"]
    subprocess.run(start, check=True, capture_output=True, timeout=90)
    server = Server("postgresql", port, root, start_cmd=start,
                    stop_cmd=[*_as_user(user), str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
    _wait_port(port, None, log)
    return server


def start_mariadb(root: Path) -> Server:
    found = mariadb_bin()
    assert found is not None
    server_bin, install_bin = found
    user = _service_user("mysql")
    data, log = root / "data", root / "mariadb.log"
    root.mkdir(parents=True, exist_ok=True)
    _give(root, user)
    user_args = [f"--user={user}"] if user else []
    subprocess.run([install_bin, "--no-defaults", f"--datadir={data}", *user_args, "--skip-test-db",
                    "--auth-root-authentication-method=normal"], check=True, capture_output=True, timeout=180)
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen([server_bin, "--no-defaults", f"--datadir={data}", f"--port={port}",
                                 f"--socket={root / 'mysql.sock'}", "--bind-address=127.0.0.1", *user_args,
                                 f"--pid-file={root / 'mariadb.pid'}", "--skip-log-bin", "--innodb-buffer-pool-size=32M",
                                 "--skip-name-resolve"], stdout=out, stderr=subprocess.STDOUT)
    server = Server("mysql", port, root, proc=proc)
    try:
        _wait_port(port, proc, log)
    except BaseException:
        server.stop()
        raise
    return server
