"""The interactive chat: a read-ask-render loop over one open :class:`~autotqa.api.Session`.

Kept apart from the typer command (``autotqa/commands/chat.py``) so it can be driven in tests with
any line reader and console. The sources are loaded once, when the session opens; the session
warms the shared prompt prefix (header + schema) while the person types the first question.
Follow-ups ("and for 2023?") go through the same session, which hands the conversation so far to
the User agent.

Ctrl-C while a question runs cancels that question and returns to the prompt (the session stays
usable); Ctrl-C at the prompt clears the line; Ctrl-D or ``/exit`` leaves with exit code 0.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from .answer import Answer
from .errors import AutoTQAError
from .ui.lineinput import LineReader
from .ui.live import ProgressView
from .ui.render import (
    DEFAULT_MAX_ROWS,
    code_view,
    metrics_table,
    render_answer,
    trace_table,
)

PROMPT = "autotqa> "


class ChatSession(Protocol):
    """What the chat needs of a session (``autotqa.Session`` satisfies it).

    ``events`` holds callables that receive every event of a run; ``ask`` blocks until the answer.
    """

    events: list[Callable[[Any], None]]

    def ask(self, question: str) -> Answer: ...


@contextlib.contextmanager
def ctrl_c_interrupts() -> Iterator[None]:
    """Make Ctrl-C raise KeyboardInterrupt for the duration, even if SIGINT came in ignored.

    A process started in the background of a non-interactive shell, or under some launchers,
    inherits SIGINT as ignored, and Python then never raises KeyboardInterrupt: Ctrl-C would not
    cancel a question. The chat is interactive, so it takes the signal back while it runs.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def ask_cancellable(session: Any, question: str) -> Answer:
    """``session.ask(question)``; a Ctrl-C also stops the run behind it.

    ``autotqa.Session.ask`` cancels its own run on KeyboardInterrupt (the run lives on the
    session's loop thread, so stopping only the wait would leave it using the engine). Other
    session objects may offer ``cancel()``, which is called on Ctrl-C.
    """
    try:
        return session.ask(question)
    except KeyboardInterrupt:
        cancel = getattr(session, "cancel", None)
        if callable(cancel):
            cancel()
        raise


@dataclass(frozen=True)
class SlashCommand:
    name: str
    usage: str
    help: str
    run: Callable[[ChatREPL, str], bool]  # returns False to leave the chat


def _cmd_help(repl: ChatREPL, _arg: str) -> bool:
    repl.console.print("Ask a question about the tables in plain language, or:", highlight=False)
    for cmd in COMMANDS.values():
        repl.console.print(Text.assemble(("  " + cmd.usage.ljust(16), "bold"), cmd.help), highlight=False)
    repl.console.print("Ctrl-C cancels a running question; Ctrl-D leaves.", style="dim", highlight=False)
    return True


def _cmd_exit(_repl: ChatREPL, _arg: str) -> bool:
    return False


def _cmd_tables(repl: ChatREPL, _arg: str) -> bool:
    repl.console.print(repl.tables_view())
    return True


def _cmd_schema(repl: ChatREPL, arg: str) -> bool:
    repl.console.print(repl.schema_view(arg.strip() or None))
    return True


def _cmd_sql(repl: ChatREPL, _arg: str) -> bool:
    last = repl.last
    if last is None or not last.sql:
        repl.console.print("no query yet: ask a question first", style="dim")
    else:
        repl.console.print(code_view(last.sql, last.language))
    return True


def _cmd_trace(repl: ChatREPL, _arg: str) -> bool:
    if repl.last is None:
        repl.console.print("no trace yet: ask a question first", style="dim")
    else:
        repl.console.print(trace_table(repl.last.trace, width=repl.console.width))
    return True


def _cmd_metrics(repl: ChatREPL, _arg: str) -> bool:
    if repl.last is None:
        repl.console.print("no metrics yet: ask a question first", style="dim")
        return True
    repl.console.print(metrics_table(repl.last.metrics))
    total_s = sum(a.elapsed_s for a in repl.answers)
    prompt = sum(int(a.metrics.get("prompt_tokens") or 0) for a in repl.answers)
    reused = sum(int(a.metrics.get("reused_tokens") or 0) for a in repl.answers)
    share = f", {reused / prompt:.0%} reused" if prompt else ""
    n = len(repl.answers)
    repl.console.print(f"session: {n} question{'s' * (n != 1)}, {total_s:.2f} s, "
                       f"{prompt:,} prompt tokens{share}", style="dim", highlight=False)
    return True


def _last_or_say(repl: ChatREPL, what: str) -> Answer | None:
    if repl.last is None:
        repl.console.print(f"nothing to {what} yet: ask a question first", style="dim")
    return repl.last


def _cmd_save(repl: ChatREPL, arg: str) -> bool:
    from .ui.export import SAVE_FORMATS, save_result

    if not arg.strip():
        repl.console.print(f"usage: /save FILE ({', '.join(SAVE_FORMATS)})", style="yellow", highlight=False,
                           markup=False)
    elif (last := _last_or_say(repl, "save")) is not None:
        repl.console.print(save_result(last, Path(arg.strip()).expanduser()).message(), highlight=False,
                           markup=False)
    return True


def _cmd_plot(repl: ChatREPL, arg: str) -> bool:
    from .ui.plot import save_plot, terminal_chart

    last = _last_or_say(repl, "plot")
    if last is not None and arg.strip():
        repl.console.print(f"chart saved to {save_plot(last, Path(arg.strip()).expanduser())}", highlight=False,
                           markup=False)
    elif last is not None:  # no file: bars drawn with characters, which every terminal shows
        repl.console.print(terminal_chart(last, width=repl.console.width))
    return True


COMMANDS: Mapping[str, SlashCommand] = MappingProxyType({c.name: c for c in (
    SlashCommand("/tables", "/tables", "list the tables with their row and column counts", _cmd_tables),
    SlashCommand("/schema", "/schema [TABLE]", "the schema the agents see (one table, or all)", _cmd_schema),
    SlashCommand("/sql", "/sql", "the last answer's query", _cmd_sql),
    SlashCommand("/trace", "/trace", "the last answer's blackboard, entry by entry", _cmd_trace),
    SlashCommand("/metrics", "/metrics", "tokens, reuse and time of the last answer (and the session)",
                 _cmd_metrics),
    SlashCommand("/save", "/save FILE", "write the last result's rows (.csv, .parquet, .json, .xlsx)", _cmd_save),
    SlashCommand("/plot", "/plot [FILE]", "chart the last result here, or into FILE (.png, .svg)", _cmd_plot),
    SlashCommand("/help", "/help", "this list", _cmd_help),
    SlashCommand("/exit", "/exit", "leave (Ctrl-D too)", _cmd_exit),
)})
_ALIASES: Mapping[str, str] = MappingProxyType({"/quit": "/exit", "/q": "/exit", "/?": "/help"})


@dataclass
class ChatREPL:
    """One chat: the session, where lines come from, where output goes, and what was answered.

    ``tables_view`` and ``schema_view`` render the catalog for ``/tables`` and ``/schema``; the
    command wires them to the session's catalog (kept as callables so the REPL does not depend on
    the catalog's types). ``debug`` re-raises errors instead of printing one line.
    """

    session: ChatSession
    reader: LineReader
    console: Console
    tables_view: Callable[[], Any]
    schema_view: Callable[[str | None], Any]
    max_rows: int = DEFAULT_MAX_ROWS
    verbose: bool = False
    debug: bool = False
    answers: list[Answer] = field(default_factory=list)

    @property
    def last(self) -> Answer | None:
        return self.answers[-1] if self.answers else None

    def run(self) -> int:
        """Loop until ``/exit`` or end of input; the exit code (always 0: errors are per question)."""
        with ctrl_c_interrupts():
            return self._loop()

    def _loop(self) -> int:
        while True:
            try:
                line = self.reader.read(PROMPT).strip()
            except KeyboardInterrupt:  # Ctrl-C at the prompt: drop the line, stay
                continue
            except EOFError:
                return 0
            if not line:
                continue
            if line.startswith("/"):
                if not self.command(line):
                    return 0
                continue
            self.ask(line)

    def command(self, line: str) -> bool:
        """Run one slash command; False means leave."""
        name, _, arg = line.partition(" ")
        name = _ALIASES.get(name.lower(), name.lower())
        cmd = COMMANDS.get(name)
        if cmd is None:
            self.console.print(f"unknown command {escape(name)}: type /help for the list", style="yellow",
                               highlight=False)
            return True
        try:
            return cmd.run(self, arg)
        except AutoTQAError as exc:
            self._error(exc)
            return True

    def ask(self, question: str) -> Answer | None:
        """Answer one question with live progress; Ctrl-C cancels it and the chat goes on."""
        view = ProgressView(self.console, verbose=self.verbose)
        self.session.events.append(view)
        try:
            with view:
                answer = ask_cancellable(self.session, question)
        except KeyboardInterrupt:
            self.console.print("cancelled", style="yellow")
            return None
        except AutoTQAError as exc:
            self._error(exc)
            return None
        finally:
            self.session.events.remove(view)
        self.answers.append(answer)
        self.console.print(render_answer(answer, max_rows=self.max_rows, show_plan=False))
        return answer

    def _error(self, exc: AutoTQAError) -> None:
        if self.debug:
            raise exc
        self.console.print(Text(f"error: {exc.message}", style="red"), highlight=False)
        if exc.hint:
            self.console.print(Text(f"hint: {exc.hint}", style="dim"), highlight=False)
