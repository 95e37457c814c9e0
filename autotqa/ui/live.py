"""Live display of a run's events (``autotqa chat`` and ``autotqa ask -v``).

Why lines and not a full-screen live view: questions on a CPU take tens of seconds, and a person
wants the record of what each agent did to stay in the scrollback (and a scripted transcript to
read the same). A spinner names the agent currently working; each finished piece of work (plan,
code, result, verdict) becomes one line. ``verbose`` adds the full code with highlighting, result
previews and agent timings.

The view is a plain callable ``view(event)`` so it plugs into any events hook; events may arrive
from another thread (a background event loop), which rich's console handles with its own lock.

>>> from rich.console import Console
>>> from autotqa.agents.events import PlanMade, VerdictGiven
>>> console = Console(width=80, no_color=True)
>>> view = ProgressView(console, spinner=False)
>>> with console.capture() as cap:
...     view(PlanMade(round=1, steps=["s1: count orders"]))
...     view(VerdictGiven(round=1, step="s1", verdict="accept", note="one number"))
>>> print(cap.get().rstrip())
  planner   plan: s1: count orders
  critic    accept: one number
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType, TracebackType
from typing import Any

from rich.console import Console
from rich.padding import Padding
from rich.status import Status
from rich.text import Text

from .render import code_view

_WORKING: Mapping[str, str] = MappingProxyType({
    "user": "reading the question",
    "planner": "planning",
    "engineer": "writing code",
    "executor": "running code",
    "critic": "checking the result",
})


def _one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


class ProgressView:
    """Turns events into progress lines (and a spinner) on ``console``.

    Use as a context manager around a question so the spinner stops even when the question is
    interrupted (Ctrl-C) or fails.
    """

    def __init__(self, console: Console, *, verbose: bool = False, spinner: bool | None = None) -> None:
        self.console = console
        self.verbose = verbose
        self._spinner_on = console.is_terminal if spinner is None else spinner
        self._status: Status | None = None

    def __enter__(self) -> ProgressView:
        if self._spinner_on:
            self._status = self.console.status("thinking…", spinner="dots")
            self._status.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def line(self, agent: str, text: str | Text, style: str = "") -> None:
        """One progress line under the agent's name (``trace show`` prints its entries this way too)."""
        line = Text(f"  {agent:<9} ", style="cyan")
        line.append(text if isinstance(text, Text) else Text(text, style=style))
        self.console.print(line, highlight=False, overflow="ellipsis", no_wrap=not self.verbose)

    def __call__(self, event: Any) -> None:
        kind = getattr(event, "kind", None)
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(event)

    # -- one method per event kind --------------------------------------------------------------

    def _on_agent_started(self, event: Any) -> None:
        if self._status is not None:
            doing = _WORKING.get(event.agent, "working")
            step = f" {event.step}" if event.step else ""
            self._status.update(f"{event.agent}{step}: {doing}… (round {event.round})")

    def _on_agent_finished(self, event: Any) -> None:
        if self.verbose:
            step = f" {event.step}" if event.step else ""
            self.line(event.agent, f"done{step} in {event.elapsed_s:.2f} s", style="dim")

    def _on_question(self, event: Any) -> None:
        mark = "" if event.answerable else " (cannot be answered from these tables)"
        self.line("user", f"question: {event.question}{mark}")

    def _on_plan(self, event: Any) -> None:
        width = max(20, self.console.width - 20)
        if self.verbose or len(event.steps) > 1:
            self.line("planner", f"plan ({len(event.steps)} step{'s' * (len(event.steps) != 1)}):")
            for step in event.steps:
                self.console.print(Text(f"            {_one_line(step, width)}"), highlight=False)
        else:
            self.line("planner", "plan: " + _one_line(" ".join(event.steps), width))

    def _on_code(self, event: Any) -> None:
        label = "pandas" if event.language == "pandas" else "SQL"
        if self.verbose:
            self.line("engineer", f"{event.step} {label}:")
            self.console.print(Padding(code_view(event.code, event.language), (0, 0, 0, 12)))
        else:
            width = max(20, self.console.width - 24)
            self.line("engineer", f"{event.step} {label}: {_one_line(event.code, width)}")

    def _on_result(self, event: Any) -> None:
        if event.ok:
            rows = f"{event.n_rows} row" + ("" if event.n_rows == 1 else "s")
            self.line("executor", f"{event.step} ok, {rows}")
            if self.verbose and event.preview:
                self.console.print(Padding(Text(event.preview, style="dim"), (0, 0, 0, 12)), highlight=False)
        else:
            message = event.error or event.preview
            self.line("executor", f"{event.step} failed: {_one_line(message, 200)}", style="red")

    def _on_mistake(self, event: Any) -> None:
        # "system" entries are the loop's own notes (budget spent), not a model's bad reply.
        prefix = "" if event.agent == "system" else "unusable reply: "
        self.line(event.agent, f"{prefix}{_one_line(event.message, 200)}", style="yellow")

    def _on_verdict(self, event: Any) -> None:
        note = f": {event.note}" if event.note else ""
        style = "green" if event.verdict == "accept" else "yellow"
        self.line("critic", f"{event.verdict}{note}", style=style)
