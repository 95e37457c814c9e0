"""What a database server must never be sent, beyond what ``sql_guard`` already refuses everywhere.

``sql_guard.SQLGuard`` proves a query is one read-only SELECT over the catalog's tables (writes, DDL,
``COPY``, ``SET``, several statements, file readers and schema-qualified tables are refused there).
A server adds its own ways out: functions that read its files or sleep (``pg_read_file``,
``lo_import``, ``dblink``, ``LOAD_FILE``, ``SLEEP``, ``BENCHMARK``), ``SELECT ... INTO`` a file or a
new table, locking reads, and MySQL's ``/*! ... */`` comments, which MySQL executes. Two checks:

- ``check_text`` on the text as written and again on the text sent (comments and string literals
  left out), so nothing the parser might drop or regenerate slips through;
- ``check_tree`` on the parsed query.

Both raise ``SQLError`` (kinds ``forbidden_function`` / ``not_read_only``) with a message the model
can act on. The session itself is read-only with a statement timeout: the second wall.

>>> def refusal(sql):
...     try:
...         check_text(sql)
...     except SQLError as exc:
...         return exc.kind, exc.message
>>> refusal("SELECT pg_read_file('/etc/passwd')")
('forbidden_function', 'function pg_read_file() is not allowed on a database server: queries may only read the tables')
>>> refusal("SELECT 1 /*!50000 , sleep(10) */")[1]
'MySQL executable comments (/*! ... */) and optimizer hints (/*+ ... */) are not allowed'
>>> check_text("SELECT 'pg_sleep(1)' AS s, name FROM t")  # in a string: only text
"""

from __future__ import annotations

import re

from sqlglot import exp

from ..errors import SQLError
from .sql_policy import function_name

#: Functions no question needs that reach the server's files, network, other sessions, settings,
#: or its clock. Prefixes cover families (``pg_ls_dir``, ``lo_export``, ``dblink_exec`` ...).
SERVER_FORBIDDEN = frozenset({
    "load_file", "sleep", "benchmark", "get_lock", "release_lock", "release_all_locks", "is_free_lock",
    "is_used_lock", "master_pos_wait", "source_pos_wait", "sys_exec", "sys_eval", "set_config",
    "current_setting", "query_to_xml", "query_to_xml_and_xmlschema", "query_to_xmlschema",
    "cursor_to_xml", "table_to_xml", "table_to_xml_and_xmlschema", "schema_to_xml", "database_to_xml",
    "txid_current", "nextval", "setval", "currval", "lastval", "copy", "version",
})
SERVER_FORBIDDEN_PREFIXES = ("pg_", "lo_", "dblink")

_CALL = re.compile(r"\b([A-Za-z_][A-Za-z0-9_$]*)\s*\(")
# Only string literals are skipped, read the strict way (a backslash escapes nothing): a reading that
# ends a literal too early can only refuse more, never hide a call. Comments are not skipped: a
# forbidden name in one is refused too (the text sent is regenerated without comments anyway).
_LITERALS = re.compile(r"'(?:[^']|'')*'")
_HINT_COMMENT = re.compile(r"/\*\s*[!+]")
_INTO_FILE = re.compile(r"\binto\s+(outfile|dumpfile)\b", re.I)


def is_server_forbidden(name: str) -> bool:
    """Whether a function name is refused on servers.

    >>> is_server_forbidden("PG_SLEEP"), is_server_forbidden("lo_import"), is_server_forbidden("lower")
    (True, True, False)
    """
    low = name.lower()
    return low in SERVER_FORBIDDEN or low.startswith(SERVER_FORBIDDEN_PREFIXES)


def _refuse_function(name: str) -> SQLError:
    return SQLError(f"function {name.lower()}() is not allowed on a database server: queries may only read the tables",
                    kind="forbidden_function", hint="compute the answer from the tables' columns with ordinary functions")


def check_text(sql: str) -> None:
    """Refuse executable comments, ``INTO OUTFILE/DUMPFILE`` and forbidden calls anywhere in the text."""
    if _HINT_COMMENT.search(sql):
        raise SQLError("MySQL executable comments (/*! ... */) and optimizer hints (/*+ ... */) are not allowed",
                       kind="not_read_only",
                       hint="write plain SQL without /*! */ or optimizer-hint comments")
    bare = _LITERALS.sub(" ", sql)
    if _INTO_FILE.search(bare):
        raise SQLError("SELECT ... INTO OUTFILE/DUMPFILE is not allowed: queries are read-only", kind="not_read_only",
                       hint="return the rows; autotqa shows them")
    for match in _CALL.finditer(bare):
        if is_server_forbidden(match.group(1)):
            raise _refuse_function(match.group(1))


def check_tree(tree: exp.Expression) -> None:
    """Refuse ``SELECT ... INTO``, locking reads and forbidden functions in a parsed query."""
    for node in tree.walk():
        if isinstance(node, exp.Into):
            raise SQLError("SELECT ... INTO is not allowed: queries are read-only", kind="not_read_only",
                           hint="return the rows instead of storing them")
        if isinstance(node, exp.Lock):
            raise SQLError("locking reads (FOR UPDATE/SHARE) are not allowed", kind="not_read_only",
                           hint="drop the FOR UPDATE/FOR SHARE clause")
        if isinstance(node, exp.Func) and is_server_forbidden(function_name(node)):
            raise _refuse_function(function_name(node))
