"""The chat loop in-process: questions, follow-ups, slash commands, errors, and Ctrl-C cancelling a run.

A real :class:`autotqa.Session` over the demo tables answers with the scripted engine fed by
``tests/data/chat/*.json``; input comes from a plain reader over a string, output goes to a wide
console captured as text.
"""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from autotqa.api import Session
from autotqa.chat import ChatREPL
from autotqa.ui.catalog_view import schema_view, tables_table
from autotqa.config import AgentConfig, Config
from autotqa.ui.engine import FileScriptedEngine, ReplyScript
from autotqa.ui.lineinput import PlainLineReader

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "datasets" / "demo"
REPLIES = REPO / "tests" / "data" / "chat"


@pytest.fixture()
def make_chat() -> Iterator:
    sessions: list[Session] = []

    def make(lines: str, replies: Path | dict) -> tuple[ChatREPL, io.StringIO]:
        script = ReplyScript.from_file(replies) if isinstance(replies, Path) else ReplyScript(
            {k: [r for r in v] for k, v in replies.items()}, "inline")
        # The reply scripts are Planner/Engineer/Critic loops: no candidate vote before them.
        session = Session([str(DEMO)], engine=FileScriptedEngine(script), close_engine=True,
                          config=Config(agents=AgentConfig(candidates=1)))
        sessions.append(session)
        out = io.StringIO()
        console = Console(file=out, width=120, no_color=True, highlight=False)
        repl = ChatREPL(session=session, reader=PlainLineReader(io.StringIO(lines), out), console=console,
                        tables_view=lambda: tables_table(list(session.catalog.tables.values())),
                        schema_view=lambda t: schema_view(session.catalog.schema(), t))
        return repl, out

    yield make
    for s in sessions:
        s.close()


def test_question_follow_up_sql_and_exit(make_chat) -> None:
    repl, out = make_chat("How many customers are there?\nand from Germany?\n/sql\n/exit\nnever read\n",
                          REPLIES / "demo.json")
    assert repl.run() == 0
    assert [a.values for a in repl.answers] == [[80], [33]]
    # The shared prefix was warmed (a prefill-only call) before the first question's calls.
    first = repl.session.engine.requests[0]
    assert (first.agent, first.prefill_only) == ("warmup", True)
    assert repl.answers[1].question == "and from Germany?"  # edited from the earlier query, not rewritten
    assert repl.session.history[0] == ("How many customers are there?", "There are 80 customers.",
                                       "SELECT count(*) AS n_customers FROM customers")
    text = out.getvalue()
    assert "user      question: and from Germany?" in text
    assert "critic    accept: There are 80 customers." in text
    # /sql shows the last query, and nothing after /exit was read
    tail = text.split("autotqa> /sql\n", 1)[1]
    assert tail.splitlines()[0] == "SELECT count(*) AS n_customers FROM customers WHERE country = 'Germany'"
    assert "never read" not in text


def test_end_of_input_leaves_with_zero(make_chat) -> None:
    repl, out = make_chat("", {})
    assert repl.run() == 0
    assert out.getvalue() == "autotqa> \n"


def test_slash_commands_before_any_question(make_chat) -> None:
    repl, out = make_chat("/sql\n/trace\n/metrics\n/nope\n/tables\n/schema orders\n/schema nosuch\n/q\n", {})
    assert repl.run() == 0
    lines = out.getvalue().splitlines()
    assert "no query yet: ask a question first" in lines
    assert "no trace yet: ask a question first" in lines
    assert "no metrics yet: ask a question first" in lines
    assert "unknown command /nope: type /help for the list" in lines
    tables = [ln.split()[:3] for ln in lines if ln.strip().startswith(("customers ", "orders ", "products "))]
    assert ["customers", "80", "7"] in tables and ["orders", "300", "5"] in tables
    assert any(ln.startswith("orders (300 rows") for ln in lines)
    assert any("orders.customer_id -> customers.customer_id" in ln for ln in lines)
    assert "error: no table named 'nosuch'" in lines
    assert any(ln.startswith("hint: tables: customers, order_items, orders, products") for ln in lines)


def test_help_lists_every_command(make_chat) -> None:
    repl, out = make_chat("/help\n", {})
    repl.run()
    for cmd in ("/tables", "/schema [TABLE]", "/sql", "/trace", "/metrics", "/help", "/exit"):
        assert f"  {cmd}" in out.getvalue()


def test_metrics_and_trace_after_an_answer(make_chat) -> None:
    repl, out = make_chat("How many customers are there?\n/metrics\n/trace\n", REPLIES / "demo.json")
    repl.run()
    text = out.getvalue()
    m = repl.answers[0].metrics
    assert m["llm_calls"] == 3  # planner, engineer, critic: the User agent needed no call
    total = next(ln for ln in text.splitlines() if ln.strip().startswith("total"))
    assert total.split()[1:4] == ["3", f"{m['prompt_tokens']:,}", f"{m['reused_tokens']:,}"]
    assert f"session: 1 question, " in text
    assert "code s1" in text and "SELECT count(*) AS n_customers FROM customers" in text


def test_engine_error_is_one_line_and_the_chat_goes_on(make_chat) -> None:
    # No replies at all: the planner's request exhausts the script, an EngineError.
    repl, out = make_chat("How many customers are there?\n/sql\n", {})
    assert repl.run() == 0
    lines = out.getvalue().splitlines()
    assert "error: scripted replies in inline ran out at a request of agent 'planner'" in lines
    assert "no query yet: ask a question first" in lines


def test_ctrl_c_cancels_the_running_question_only(make_chat, tmp_path: Path) -> None:
    data = json.loads((REPLIES / "demo.json").read_text())
    slow = {"text": data["by_agent"]["planner"][0], "delay_s": 30}
    data["by_agent"]["planner"].insert(0, slow)
    path = tmp_path / "slow.json"
    path.write_text(json.dumps(data))
    repl, out = make_chat("Which customer ordered most?\nHow many customers are there?\n", path)

    def interrupt() -> None:  # Ctrl-C once the slow planner call is in flight, not before
        deadline = time.monotonic() + 60
        while "planner" not in repl.session.engine.started and time.monotonic() < deadline:
            threading.Event().wait(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    t0 = time.perf_counter()
    assert repl.run() == 0
    assert time.perf_counter() - t0 < 10  # the 30 s reply was cut short
    assert "cancelled" in out.getvalue().splitlines()
    # The cancelled run consumed only the slow reply: the next question gets the scripted ones.
    assert [a.values for a in repl.answers] == [[80]]
    assert repl.session.history == [("How many customers are there?", "There are 80 customers.",
                                     "SELECT count(*) AS n_customers FROM customers")]


def test_plain_reader_echoes_piped_lines_and_signals_end() -> None:
    out = io.StringIO()
    reader = PlainLineReader(io.StringIO("first\r\nsecond"), out)
    assert [reader.read("> "), reader.read("> ")] == ["first", "second"]
    with pytest.raises(EOFError):
        reader.read("> ")
    assert out.getvalue() == "> first\n> second\n> \n"


def test_reader_choice_follows_the_terminal(tmp_path: Path) -> None:
    from autotqa.ui.lineinput import make_reader

    assert isinstance(make_reader(tmp_path / "history", stdin=io.StringIO("")), PlainLineReader)


def test_chat_command_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from autotqa import cli

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("AUTOTQA_ENGINE", "scripted")
    monkeypatch.setenv("AUTOTQA_SCRIPTED_REPLIES", str(REPLIES / "demo.json"))
    monkeypatch.setenv("AUTOTQA_AGENTS__CANDIDATES", "1")
    cli._register()
    res = CliRunner().invoke(cli.app, ["chat", str(tmp_path / "nope.csv")])
    assert (res.exit_code, res.stderr.splitlines()[0]) == (1, f"error: {tmp_path / 'nope.csv'}: no such file")
    res = CliRunner().invoke(cli.app, ["chat", str(DEMO), "--engine", "gpt"])
    assert (res.exit_code, res.stderr.splitlines()[0]) == (2, "error: --engine: unknown engine 'gpt'")
    # Piped input: the chat reads plain lines and leaves with 0 at the end of input.
    res = CliRunner().invoke(cli.app, ["chat", str(DEMO), "--no-history"], input="/sql\n")
    assert res.exit_code == 0 and "no query yet: ask a question first" in res.stdout


def test_ctrl_c_works_even_if_sigint_came_in_ignored(make_chat, tmp_path: Path) -> None:
    """Started from a background job (SIGINT ignored), the chat still takes Ctrl-C back."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        test_ctrl_c_cancels_the_running_question_only(make_chat, tmp_path)
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # restored after the chat
    finally:
        signal.signal(signal.SIGINT, previous)
