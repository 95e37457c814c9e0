"""Reading the chat's input lines: prompt_toolkit in a terminal, plain lines when scripted.

Both readers share one contract so the REPL never cares which it has: ``read(prompt)`` returns a
line, raises ``EOFError`` at end of input (Ctrl-D) and ``KeyboardInterrupt`` when the person
presses Ctrl-C at the prompt.

Why two: line editing and history need a terminal; when stdin is a pipe or a file (``autotqa chat
data.csv < questions.txt``) prompt_toolkit would refuse or print control codes, so lines are read
plainly and the prompt is only echoed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Protocol, TextIO


class LineReader(Protocol):
    def read(self, prompt: str) -> str:
        """One line without its newline; ``EOFError`` at end of input."""
        ...


class PlainLineReader:
    """Reads ``stream`` line by line; prints the prompt to ``out`` so a transcript stays readable."""

    def __init__(self, stream: TextIO | None = None, out: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdin
        self._out = out if out is not None else sys.stdout

    def read(self, prompt: str) -> str:
        self._out.write(prompt)
        self._out.flush()
        line = self._stream.readline()
        if not line:
            self._out.write("\n")
            raise EOFError
        line = line.rstrip("\n").rstrip("\r")
        if not self._stream.isatty():
            self._out.write(line + "\n")  # echo, so scripted transcripts show the question
        return line


class PromptToolkitReader:
    """Line editing (arrows, Emacs keys), persistent history and history search (Ctrl-R)."""

    def __init__(self, history_file: Path | None) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory, InMemoryHistory

        history = FileHistory(str(history_file)) if history_file is not None else InMemoryHistory()
        self._session: PromptSession[str] = PromptSession(history=history)

    def read(self, prompt: str) -> str:
        return self._session.prompt(prompt)


def make_reader(history_file: Path | None, stdin: TextIO | None = None) -> LineReader:
    """prompt_toolkit when both stdin and stdout are terminals, the plain reader otherwise."""
    stdin = stdin if stdin is not None else sys.stdin
    if stdin.isatty() and sys.stdout.isatty():
        return PromptToolkitReader(history_file)
    return PlainLineReader(stdin)
