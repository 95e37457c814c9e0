"""``autotqa ask`` through typer's CliRunner, with the scripted engine standing in for the model.

Covers the output contracts (``--json`` is an :class:`~autotqa.answer.Answer`, ``--trace`` writes the
blackboard), the flags that reach the configuration, and the one-line errors with their exit codes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autotqa import __version__, cli
from autotqa.answer import Answer
from autotqa.blackboard import Blackboard

REPO = Path(__file__).resolve().parent.parent
DEMO = str(REPO / "datasets" / "demo")
REPLIES = REPO / "tests" / "data" / "chat" / "demo.json"
QUESTION = "How many customers are there?"


@pytest.fixture()
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    """A runner whose environment holds only what each test sets (no user config, no stray AUTOTQA_*)."""
    import os

    for var in list(os.environ):
        if var.startswith("AUTOTQA_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "120")  # rich's width when output is not a terminal
    monkeypatch.setenv("AUTOTQA_ENGINE", "scripted")
    monkeypatch.setenv("AUTOTQA_SCRIPTED_REPLIES", str(REPLIES))
    # The reply script is a Planner/Engineer/Critic loop: no candidate vote before it.
    monkeypatch.setenv("AUTOTQA_AGENTS__CANDIDATES", "1")
    cli._register()
    return CliRunner()


def invoke(runner: CliRunner, *args: str):
    return runner.invoke(cli.app, list(args), terminal_width=120)


def test_json_is_an_answer(runner: CliRunner) -> None:
    res = invoke(runner, "ask", DEMO, QUESTION, "--json")
    assert res.exit_code == 0, res.output
    answer = Answer.model_validate_json(res.stdout)
    assert (answer.values, answer.verified, answer.sql) == (
        [80], True, "SELECT count(*) AS n_customers FROM customers")
    assert answer.result is not None and answer.result.rows == [[80]]
    assert answer.metrics["llm_calls"] == 3


def test_rich_output_shows_answer_sql_table_and_metrics(runner: CliRunner) -> None:
    res = invoke(runner, "ask", DEMO, QUESTION)
    assert res.exit_code == 0, res.output
    lines = [ln.rstrip() for ln in res.stdout.splitlines()]
    assert any("There are 80 customers." in ln for ln in lines)
    assert any("values: 80" in ln for ln in lines)
    assert "  1. s1: count the customers (tables: customers)" in lines
    assert "SELECT count(*) AS n_customers FROM customers" in lines
    assert "1 row" in lines
    assert "prompt tokens" in lines[-1] and "reused" in lines[-1] and "3 LLM calls" in lines[-1]


def test_verbose_streams_each_agent_step(runner: CliRunner) -> None:
    res = invoke(runner, "ask", DEMO, QUESTION, "-v")
    assert res.exit_code == 0, res.output
    out = res.stdout
    order = [out.index(s) for s in ("  user      question: How many customers are there?", "  planner   plan",
                                    "  engineer  s1 SQL:", "  executor  s1 ok, 1 row",
                                    "  critic    accept: There are 80 customers.", "Answer")]
    assert order == sorted(order)


def test_trace_file_holds_the_blackboard_and_the_calls(runner: CliRunner, tmp_path: Path) -> None:
    trace = tmp_path / "out" / "trace.json"
    res = invoke(runner, "ask", DEMO, QUESTION, "--json", "--trace", str(trace))
    assert res.exit_code == 0, res.output
    saved = json.loads(trace.read_text(encoding="utf-8"))
    board = Blackboard.from_trace(saved["entries"])
    assert board.sequence() == [("question", "user"), ("plan", "planner"), ("code", "engineer"),
                                ("result", "executor"), ("answer", "critic")]
    answer = json.loads(res.stdout)
    assert saved["entries"] == answer["trace"] and saved["calls"] == answer["calls"]
    assert (saved["format"], saved["question"], saved["values"]) == ("autotqa-trace", QUESTION, [80])


def test_max_rounds_flag_reaches_the_loop(runner: CliRunner, tmp_path: Path) -> None:
    # The critic always asks to replan; with one round the best supported result comes back unverified.
    replies = tmp_path / "replan.json"
    data = json.loads(REPLIES.read_text(encoding="utf-8"))
    data["by_agent"]["critic"] = ['{"verdict": "replan", "note": "try again"}'] * 3
    replies.write_text(json.dumps(data), encoding="utf-8")
    res = runner.invoke(cli.app, ["ask", DEMO, QUESTION, "--json", "--max-rounds", "1"],
                        env={"AUTOTQA_SCRIPTED_REPLIES": str(replies)})
    answer = Answer.model_validate_json(res.stdout)
    assert (answer.verified, answer.values) == (False, [80])
    assert [e["kind"] for e in answer.trace].count("plan") == 1


def _error_lines(res) -> list[str]:
    return [ln for ln in res.stderr.splitlines() if ln.strip()]


def test_missing_file_is_one_line_exit_1(runner: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    res = invoke(runner, "ask", str(missing), QUESTION)
    assert res.exit_code == 1
    assert _error_lines(res) == [f"error: {missing}: no such file",
                                 "hint: check the path (relative paths start at the current directory)"]
    assert res.stdout == ""


def test_unreadable_file_is_one_line_exit_1(runner: CliRunner, tmp_path: Path) -> None:
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    res = invoke(runner, "ask", str(broken), QUESTION)
    assert res.exit_code == 1
    lines = _error_lines(res)
    assert len(lines) == 2 and lines[0].startswith(f"error: {broken}: could not be read as parquet")
    assert "Traceback" not in res.output


def test_unknown_engine_flag_is_a_usage_error(runner: CliRunner) -> None:
    res = invoke(runner, "ask", DEMO, QUESTION, "--engine", "gpt")
    assert res.exit_code == 2
    assert _error_lines(res) == ["error: --engine: unknown engine 'gpt'", "hint: choose one of: local, openai, vllm"]


def test_unknown_engine_in_environment_is_exit_1(runner: CliRunner) -> None:
    res = runner.invoke(cli.app, ["ask", DEMO, QUESTION], env={"AUTOTQA_ENGINE": "gpt"})
    assert res.exit_code == 1
    assert _error_lines(res)[0] == "error: environment variable AUTOTQA_ENGINE: unknown engine 'gpt'"


def test_unreachable_server_is_one_line_exit_1(runner: CliRunner) -> None:
    res = runner.invoke(cli.app, ["ask", DEMO, QUESTION, "--engine", "openai", "--base-url", "http://127.0.0.1:9/v1"],
                        env={"AUTOTQA_ENGINE__REQUEST_TIMEOUT_S": "5"})
    assert res.exit_code == 1
    lines = _error_lines(res)
    assert lines[0].startswith("error: cannot reach the model server at http://127.0.0.1:9/v1")
    assert "Traceback" not in res.output


def test_missing_model_file_is_one_line_exit_1(runner: CliRunner, tmp_path: Path) -> None:
    import importlib.util

    res = invoke(runner, "ask", DEMO, QUESTION, "--engine", "local", "--model", str(tmp_path / "none.gguf"))
    assert res.exit_code == 1
    lines = _error_lines(res)
    assert len(lines) == 2 and lines[1].startswith("hint: ") and "Traceback" not in res.output
    if importlib.util.find_spec("llama_cpp") is not None:  # else: "install the extra" is the error
        assert lines[0] == f"error: model file not found: {tmp_path / 'none.gguf'}"


def test_debug_lets_the_exception_through(runner: CliRunner, tmp_path: Path) -> None:
    res = invoke(runner, "ask", str(tmp_path / "nope.csv"), QUESTION, "--debug")
    assert res.exit_code == 1
    assert type(res.exception).__name__ == "DataLoadError"


def test_usage_errors_exit_2(runner: CliRunner) -> None:
    res = invoke(runner, "ask", "only-a-question")
    assert res.exit_code == 2
    assert _error_lines(res)[0] == "error: give at least one SOURCE and then the QUESTION"
    assert invoke(runner, "ask", DEMO, QUESTION, "--max-rounds", "0").exit_code == 2


def test_version_and_help(runner: CliRunner) -> None:
    res = invoke(runner, "--version")
    assert (res.exit_code, res.stdout.strip()) == (0, f"autotqa {__version__}")
    for command, words in (("ask", ("--json", "--trace", "--engine", "--max-rounds", "--verbose", "--debug")),
                           ("chat", ("SOURCE...", "--engine", "--model", "--base-url", "--no-history"))):
        res = invoke(runner, command, "--help")
        assert res.exit_code == 0
        for word in words:
            assert word in res.stdout, (command, word)
