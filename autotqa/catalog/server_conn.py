"""Database servers given as URLs: which ones, where the password comes from, how a URL is shown, and
what a failed connection means in one line.

``postgresql://user:pass@host:port/db?schema=name`` reaches PostgreSQL (psycopg 3);
``mysql://user:pass@host:port/db`` any MySQL-protocol server: MySQL, MariaDB, TiDB (PyMySQL).
A URL without a password takes ``AUTOTQA_DB_PASSWORD``, else the driver's own variable
(``PGPASSWORD`` and ``~/.pgpass`` are read by libpq itself; ``MYSQL_PWD`` here for PyMySQL).

The password never leaves this module in text: ``ServerTarget.display`` and ``repr`` mask it, and
every error message built here passes through ``scrub``.

>>> t = parse_server_url("postgresql://ann:s3cret@db.example:5433/shop?schema=sales", env={})
>>> t.dialect, t.schema, t.display
('postgresql', 'sales', 'postgresql://ann:***@db.example:5433/shop?schema=sales')
>>> "s3cret" in repr(t)
False
>>> parse_server_url("mysql://ann@h/db", env={"AUTOTQA_DB_PASSWORD": "pw"}).url.password
'pw'
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from autotqa.errors import DataLoadError, SourceUnavailableError

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.engine import URL

Dialect = Literal["postgresql", "mysql"]

#: URL scheme -> (dialect, SQLAlchemy driver). TiDB and MariaDB speak the MySQL protocol.
SCHEMES: dict[str, tuple[Dialect, str]] = {
    "postgresql": ("postgresql", "postgresql+psycopg"),
    "postgres": ("postgresql", "postgresql+psycopg"),
    "postgresql+psycopg": ("postgresql", "postgresql+psycopg"),
    "mysql": ("mysql", "mysql+pymysql"),
    "mariadb": ("mysql", "mysql+pymysql"),
    "tidb": ("mysql", "mysql+pymysql"),
    "mysql+pymysql": ("mysql", "mysql+pymysql"),
}
#: sqlglot's name for each dialect: the Engineer's DuckDB SQL is transpiled to it.
SQLGLOT_DIALECT: dict[Dialect, str] = {"postgresql": "postgres", "mysql": "mysql"}
#: Variables read for a password missing from the URL, in order (libpq reads PGPASSWORD itself).
PASSWORD_ENV: dict[Dialect, tuple[str, ...]] = {"postgresql": ("AUTOTQA_DB_PASSWORD",),
                                                "mysql": ("AUTOTQA_DB_PASSWORD", "MYSQL_PWD")}
#: Seconds to wait for a connection before saying the server cannot be reached.
CONNECT_TIMEOUT_S = 10

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def is_server_url(source: object) -> bool:
    """Whether ``source`` is a database-server URL (rather than a path or a DataFrame).

    >>> is_server_url("postgresql://u@h/db"), is_server_url("TiDB://h/db"), is_server_url("data.csv")
    (True, True, False)
    """
    if not isinstance(source, str):
        return False
    match = _SCHEME.match(source.strip())
    return bool(match) and match.group(1).lower() in SCHEMES


@dataclass(frozen=True)
class ServerTarget:
    """One database (and optionally one schema) on a server. ``url`` holds the password: never print it."""

    dialect: Dialect
    url: URL
    schema: str | None = None

    @property
    def display(self) -> str:
        """The URL as it may be shown: password masked, the user's scheme kept simple."""
        shown = self.url.set(drivername=self.dialect).render_as_string(hide_password=True)
        return shown + (f"?schema={self.schema}" if self.schema and "?" not in shown else
                        f"&schema={self.schema}" if self.schema else "")

    @property
    def place(self) -> str:
        """Where tables come from, as the schema block says it: the schema named in the URL, else the
        database (no host: the same data on another server renders to the same bytes)."""
        return self.schema or str(self.url.database)

    @property
    def sqlglot_dialect(self) -> str:
        return SQLGLOT_DIALECT[self.dialect]

    def __repr__(self) -> str:
        return f"ServerTarget({self.display!r})"

    def scrub(self, text: str) -> str:
        """``text`` with the password (should a driver ever echo it) replaced by ``***``."""
        password = self.url.password
        return text.replace(password, "***") if password else text


def _require_sqlalchemy() -> Any:
    try:
        import sqlalchemy
    except ImportError:
        raise DataLoadError("database URLs need the server-db extra",
                            hint="pip install 'autotqa[server-db]'") from None
    return sqlalchemy


def parse_server_url(source: str, env: Mapping[str, str] | None = None) -> ServerTarget:
    """Parse a server URL; a missing password is taken from ``env`` (default: the environment)."""
    sa = _require_sqlalchemy()
    env = os.environ if env is None else env
    scheme = (_SCHEME.match(source.strip()) or [None, ""])[1].lower()
    if scheme not in SCHEMES:
        raise DataLoadError(f"not a database URL (scheme {scheme or 'missing'!r})",
                            hint="use postgresql://user@host:port/db or mysql://user@host:port/db")
    dialect, driver = SCHEMES[scheme]
    try:
        url = sa.engine.make_url(source.strip())
    except Exception:  # noqa: BLE001 - SQLAlchemy raises several types; the text may hold a password
        raise DataLoadError(f"cannot read the {dialect} URL",
                            hint=f"write it as {scheme}://user:password@host:port/database") from None
    if not url.database:
        raise DataLoadError(f"the URL {url.render_as_string(hide_password=True)} names no database",
                            hint=f"add it after the host: {scheme}://user@host:port/DATABASE")
    query = dict(url.query)
    schema = query.pop("schema", None)
    if isinstance(schema, tuple):
        schema = schema[-1]
    url = url.set(drivername=driver, query=query)
    if url.password is None:
        for name in PASSWORD_ENV[dialect]:
            if env.get(name):
                url = url.set(password=env[name])
                break
    return ServerTarget(dialect, url, schema or None)


def create_server_engine(target: ServerTarget) -> sa.Engine:
    """A SQLAlchemy engine whose every session is read-only and that gives up connecting after
    ``CONNECT_TIMEOUT_S``. Defence in depth: the guard refuses writes before they are sent, the
    session refuses them again, and the README recommends a read-only role as the third wall.
    """
    sa = _require_sqlalchemy()
    if target.dialect == "postgresql":
        connect_args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "autotqa",
                                        "options": "-c default_transaction_read_only=on"}
    else:
        connect_args = {"connect_timeout": CONNECT_TIMEOUT_S,
                        "init_command": "SET SESSION TRANSACTION READ ONLY"}
    # A small pool: one query at a time per session; pre-ping notices a server restarted between
    # questions instead of failing the next one.
    return sa.create_engine(target.url, connect_args=connect_args, pool_size=2, max_overflow=2,
                            pool_pre_ping=True)


def connection_error(target: ServerTarget, exc: BaseException) -> SourceUnavailableError:
    """One line (and a hint) for a failure to reach, log in to, or stay connected to the server."""
    orig = getattr(exc, "orig", None) or exc
    text = target.scrub(str(orig))
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(orig).__name__)
    low = text.lower()
    where = f"{target.url.host or 'localhost'}:{target.url.port or ('5432' if target.dialect == 'postgresql' else '3306')}"
    user = target.url.username or "(default user)"
    if re.search(r"access denied for user .* to database", low):  # MySQL does not say whether it exists
        return SourceUnavailableError(f"no database {target.url.database!r} that {user} may use on the {target.dialect} "
                                      f"server at {where}",
                                      hint="check the database name at the end of the URL, and the user's grants")
    if "password authentication failed" in low or "access denied" in low or "no password supplied" in low:
        return SourceUnavailableError(f"the {target.dialect} server at {where} refused the login of {user}",
                                      hint="check the user and password (in the URL, or AUTOTQA_DB_PASSWORD / "
                                           "PGPASSWORD / MYSQL_PWD)")
    if re.search(r"database .* does not exist|unknown database", low):
        return SourceUnavailableError(f"no database {target.url.database!r} on the {target.dialect} server at {where}",
                                      hint="check the database name at the end of the URL")
    if "schema" in low and "does not exist" in low:
        return SourceUnavailableError(first, hint="check ?schema= in the URL")
    if any(s in low for s in ("connection refused", "can't connect", "could not connect", "timeout expired",
                              "could not translate host", "name or service not known", "timed out",
                              "no route to host")):
        return SourceUnavailableError(f"cannot reach the {target.dialect} server at {where}",
                                      hint="is it running, and are host and port right?")
    if any(s in low for s in ("server closed the connection", "lost connection", "gone away",
                              "terminating connection", "connection already closed", "broken pipe",
                              "consuming input failed", "connection reset")):
        return SourceUnavailableError(f"the connection to the {target.dialect} server at {where} was lost: {first}",
                                      hint="the server stopped or dropped the connection; try again when it is back")
    return SourceUnavailableError(f"{target.dialect} server at {where}: {first}",
                                  hint=f"check the server and the URL {target.display}")
