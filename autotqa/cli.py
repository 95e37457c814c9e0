"""The ``autotqa`` command line. Commands live in ``autotqa/commands/`` and register on ``app``.

Exit codes: 0 answered / ok, 1 error, 2 usage error. Errors are one line on stderr with a hint;
a traceback only with ``--debug``.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from . import __version__
from .errors import AutoTQAError

app = typer.Typer(
    name="autotqa",
    help="Ask questions about tables (CSV, Parquet, Excel, JSON, SQLite, DuckDB).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: flags read as flags and options as `--opt VALUE`; the rich panels print
    # a type label (`<bool>`, `<str>`) beside every option instead. Sub-command groups set it too.
    rich_markup_mode=None,
)

F = TypeVar("F", bound=Callable[..., Any])


def examples(*lines: str) -> str:
    """A command's help epilog: example command lines, kept as written (click rewraps paragraphs
    unless they start with ``\\b``)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def fail(message: str, hint: str | None = None, code: int = 1) -> typer.Exit:
    """Print one clear error line (and a hint) on stderr; return the Exit to raise."""
    line = f"error: {message}"
    if hint:
        line += f"\nhint: {hint}"
    print(line, file=sys.stderr)
    return typer.Exit(code)


def handle_errors(fn: F) -> F:
    """Turn AutoTQAError (and a few OS errors) into one stderr line and exit code 1.

    A command that takes a ``debug`` parameter re-raises instead when it is set.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AutoTQAError as exc:
            if kwargs.get("debug"):
                raise
            raise fail(exc.message, exc.hint) from None
        except KeyboardInterrupt:
            raise fail("interrupted", code=130) from None

    return wrapper  # type: ignore[return-value]


def config_from_flags(flags: dict[str, Any]) -> Any:
    """The settings with these command-line flags on top (``None`` = not given).

    A bad flag value is a usage error (exit 2); a bad environment variable or config file stays a
    ConfigError (exit 1) that names where the value came from.
    """
    from .settings import FlagError, load_config

    try:
        return load_config(flags)
    except FlagError as exc:
        raise fail(exc.message, exc.hint, code=2) from None


def _version(value: bool) -> None:
    if value:
        print(f"autotqa {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Ask questions about tables."""


_COMMAND_MODULES = ("data", "ask", "chat", "trace", "config", "bench", "evaluate", "model")


def _register() -> None:
    """Import every command module; each adds its commands to ``app`` (they import ``app`` from here)."""
    for name in _COMMAND_MODULES:
        importlib.import_module(f"autotqa.commands.{name}")


def main() -> None:
    _register()
    app()
