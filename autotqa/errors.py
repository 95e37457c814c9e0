"""One small error hierarchy for everything autotqa raises on purpose.

Errors of the *program* (bad configuration, unreadable data, engine down) are exceptions.
Mistakes of the *model* (bad SQL, unparsable reply) become data on the blackboard instead;
their exception types exist so executors and adapters can carry them across a boundary.

Every message should say what happened, where (file, line/column when known) and what to do.
"""

from __future__ import annotations


class AutoTQAError(Exception):
    """Base of every error autotqa raises deliberately.

    ``hint`` is an optional short suggestion that user interfaces print after the message.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


class ConfigError(AutoTQAError):
    """Invalid configuration: unknown engine, bad option value, unreadable config file."""


class DataLoadError(AutoTQAError):
    """A source could not be loaded (missing, unreadable, empty, unsupported format)."""

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path


class SourceUnavailableError(DataLoadError):
    """A database server could not be reached, refused the login, or dropped the connection.

    A program error, not a model mistake: it stops the question (and an evaluation run).
    """


class SQLError(AutoTQAError):
    """A query was rejected by the guard or failed to run.

    ``kind`` is a short machine-readable reason (``parse``, ``not_read_only``, ``forbidden_function``,
    ``unknown_table``, ``unknown_column``, ``timeout``, ``runtime`` ...).
    """

    def __init__(self, message: str, *, kind: str = "runtime", line: int | None = None,
                 col: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.kind = kind
        self.line = line
        self.col = col


class SandboxError(AutoTQAError):
    """Generated pandas code was refused, escaped its limits, or crashed its process."""

    def __init__(self, message: str, *, kind: str = "runtime", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.kind = kind


class EngineError(AutoTQAError):
    """The LLM engine failed: unreachable server, missing or corrupt model, timeout."""


class OutputParseError(EngineError):
    """A model reply could not be parsed into the requested output model, even after repair.

    Carries the raw reply so callers can record it (the DSPy ``AdapterParseError`` idea).
    """

    def __init__(self, message: str, *, raw: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.raw = raw
