"""The static check on model-written pandas code, run in the parent before any process starts.

It is the first of three layers (the child's restricted builtins and audit hook, then OS limits, are
the others). It allows imports only from an allow-list, and refuses names and attributes that lead
out of the data: builtins that reach the interpreter (``eval``, ``getattr``, ``open`` ...), any
attribute starting with ``_`` (``().__class__.__mro__`` and private internals), and the pandas/numpy
functions that read or write files (``pd.read_csv``, ``df.to_csv``, ``np.load`` ...).

>>> check_code("import pandas as pd\\nresult = people.groupby('city').size()")
>>> check_code("import os")
Traceback (most recent call last):
...
autotqa.errors.SandboxError: line 1: import of "os" is not allowed (allowed: datetime, math, numpy, pandas, re, statistics)
"""

from __future__ import annotations

import ast

from ..errors import SandboxError

ALLOWED_MODULES = frozenset({"pandas", "numpy", "math", "datetime", "re", "statistics"})
#: Submodules that are pure computation.
ALLOWED_SUBMODULES = frozenset({"numpy.linalg", "numpy.random"})

FORBIDDEN_NAMES = frozenset({
    "exec", "eval", "compile", "open", "__import__", "globals", "locals", "vars", "getattr",
    "setattr", "delattr", "input", "breakpoint", "help", "exit", "quit", "memoryview", "dir",
    "super",
})

#: Attributes that read/write files, reach internals, or evaluate strings as code.
FORBIDDEN_ATTRIBUTES = frozenset({
    "io", "core", "compat", "util", "testing", "plotting", "api", "lib", "ctypeslib", "f2py",
    "distutils", "os", "sys", "load", "save", "savez", "savez_compressed", "savetxt", "loadtxt",
    "genfromtxt", "fromfile", "tofile", "fromregex", "memmap", "DataSource", "ExcelWriter",
    "ExcelFile", "HDFStore", "eval", "plot", "hist", "boxplot", "dump", "dumps", "tobytes",
    "f_globals", "f_locals", "f_back", "f_builtins", "f_code", "gi_frame", "gi_code", "cr_frame",
    "ag_frame", "tb_frame", "tb_next", "co_code", "mro",
})

#: ``to_*`` methods that only convert in memory; every other ``to_*`` (to_csv, to_pickle ...) writes.
ALLOWED_TO_METHODS = frozenset({
    "to_dict", "to_list", "to_numpy", "to_frame", "to_datetime", "to_timedelta", "to_numeric",
    "to_period", "to_timestamp", "to_records", "to_string", "to_series", "to_flat_index",
    "to_pydatetime", "to_pytimedelta", "to_julian_date", "to_tuples", "to_offset", "to_markdown",
})

#: pandas/numpy functions and methods that read or write files, by name.
IO_FUNCTIONS = frozenset({
    "to_csv", "to_excel", "to_json", "to_parquet", "to_pickle", "to_hdf", "to_sql", "to_feather",
    "to_stata", "to_orc", "to_html", "to_latex", "to_xml", "to_clipboard", "to_gbq", "to_xarray",
    "read_csv", "read_table", "read_fwf", "read_excel", "read_json", "read_parquet", "read_pickle",
    "read_hdf", "read_sql", "read_sql_query", "read_sql_table", "read_feather", "read_stata",
    "read_sas", "read_spss", "read_orc", "read_html", "read_xml", "read_clipboard", "read_gbq",
    "load", "save", "savez", "savez_compressed", "savetxt", "loadtxt", "genfromtxt", "fromfile",
    "tofile", "fromregex", "memmap", "dump", "dumps",
})

#: Methods whose string argument pandas evaluates as an expression: only literal strings, checked.
_EXPRESSION_METHODS = frozenset({"query"})


def forbidden_attribute(name: str) -> str | None:
    """Why attribute ``name`` is refused, or None when it is allowed.

    >>> forbidden_attribute("to_csv")
    'writes files'
    >>> forbidden_attribute("to_dict") is None
    True
    """
    if name.startswith("_"):
        return "private and dunder attributes lead out of the data"
    if name.startswith("read_") or name in {"load", "loadtxt", "fromfile", "genfromtxt", "fromregex"}:
        return "reads files"
    if name.startswith("to_") and name not in ALLOWED_TO_METHODS or name in {
            "save", "savez", "savez_compressed", "savetxt", "tofile", "dump", "dumps"}:
        return "writes files"
    if name in FORBIDDEN_ATTRIBUTES:
        return "is outside the allowed pandas/numpy surface"
    return None


def _refuse(kind: str, node: ast.AST, message: str, hint: str | None = None) -> SandboxError:
    return SandboxError(f"line {getattr(node, 'lineno', '?')}: {message}", kind=kind, hint=hint)


class _Checker(ast.NodeVisitor):
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._check_module(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level or not node.module:
            raise _refuse("forbidden_import", node, "relative imports are not allowed")
        self._check_module(node, node.module)
        for alias in node.names:
            if alias.name == "*":
                raise _refuse("forbidden_import", node, f'"from {node.module} import *" is not allowed')
            why = forbidden_attribute(alias.name)
            if why or alias.name in FORBIDDEN_NAMES:
                raise _refuse("forbidden_attribute", node,
                              f'"{alias.name}" from {node.module} is not allowed: {why or "unsafe"}')

    @staticmethod
    def _check_module(node: ast.AST, name: str) -> None:
        if name in ALLOWED_MODULES or name in ALLOWED_SUBMODULES:
            return
        allowed = ", ".join(sorted(ALLOWED_MODULES))
        raise _refuse("forbidden_import", node, f'import of "{name}" is not allowed (allowed: {allowed})')

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in FORBIDDEN_NAMES or node.id.startswith("__"):
            raise _refuse("forbidden_name", node, f'"{node.id}" is not allowed in table code',
                          hint="use pandas/numpy operations on the tables")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        why = forbidden_attribute(node.attr)
        if why:
            hint = "the tables are already loaded as DataFrames; return results, don't write them"
            if node.attr not in IO_FUNCTIONS and not node.attr.startswith("_"):
                hint = f"for a column of that name write df[{node.attr!r}]"
            raise _refuse("forbidden_attribute", node, f'".{node.attr}" is not allowed: {why}', hint=hint)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in _EXPRESSION_METHODS:
            expr = node.args[0] if node.args else None
            if not (isinstance(expr, ast.Constant) and isinstance(expr.value, str)):
                raise _refuse("forbidden_expression", node,
                              f".{func.attr}() takes a literal string here",
                              hint="write the condition as a plain string, or use boolean indexing")
            if "__" in expr.value:
                raise _refuse("forbidden_expression", node, f".{func.attr}() expression may not use '__'")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        # pandas resolves method names given as strings (df.agg("to_pickle", ...)): refuse those,
        # but only real I/O names and dunders: "to_station" or "_id" may well be column names.
        value = node.value
        if isinstance(value, str) and (value in IO_FUNCTIONS or (value.startswith("__") and value.endswith("__"))):
            raise _refuse("forbidden_attribute", node,
                          f'"{value}" is not allowed: {forbidden_attribute(value) or "unsafe"}')


def check_code(code: str) -> None:
    """Raise SandboxError (kinds ``syntax``, ``forbidden_import``, ``forbidden_name``,
    ``forbidden_attribute``, ``forbidden_expression``) unless ``code`` passes the static check."""
    try:
        tree = ast.parse(code, mode="exec")
    except SyntaxError as exc:
        raise SandboxError(f"line {exc.lineno}: syntax error: {exc.msg}", kind="syntax") from None
    _Checker().visit(tree)
