"""Results people keep, end to end: ``ask --save/--plot/--trace``, ``trace show``, chat ``/save`` and
``/plot``, through the commands a user types (the scripted engine stands in for the model)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from autotqa import cli
from autotqa.answer import Answer
from autotqa.api import Session
from autotqa.chat import ChatREPL
from autotqa.config import AgentConfig, Config
from autotqa.ui.engine import FileScriptedEngine, ReplyScript, ScriptedReply
from autotqa.ui.lineinput import PlainLineReader

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "datasets" / "demo"
QUESTION = "How many customers are there per country?"
SQL = "SELECT country, count(*) AS customers FROM customers GROUP BY country ORDER BY country"
REPLIES = {"by_agent": {
    "planner": ['{"steps": [{"goal": "count customers per country", "tables": ["customers"]}]}'],
    "engineer": [f"```sql\n{SQL}\n```"],
    "critic": ['{"verdict": "accept", "note": "Customers per country."}'],
}}
# The truth, computed without autotqa.
EXPECTED = pd.read_csv(DEMO / "customers.csv").groupby("country").size()


@pytest.fixture()
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    import os

    for var in list(os.environ):
        if var.startswith("AUTOTQA_"):
            monkeypatch.delenv(var)
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(REPLIES), encoding="utf-8")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("COLUMNS", "150")
    monkeypatch.setenv("AUTOTQA_ENGINE", "scripted")
    monkeypatch.setenv("AUTOTQA_SCRIPTED_REPLIES", str(replies))
    monkeypatch.setenv("AUTOTQA_AGENTS__CANDIDATES", "1")  # the replies are one Planner/Engineer/Critic loop
    cli._register()
    return CliRunner()


def invoke(runner: CliRunner, *args: str):
    return runner.invoke(cli.app, list(args), terminal_width=150)


def test_ask_saves_every_row_and_plots_them(runner: CliRunner, tmp_path: Path) -> None:
    out, chart = tmp_path / "by_country.csv", tmp_path / "by_country.svg"
    res = invoke(runner, "ask", str(DEMO), QUESTION, "--save", str(out), "--plot", str(chart), "--max-rows", "2")
    assert res.exit_code == 0, res.output
    saved = pd.read_csv(out)
    assert saved["country"].tolist() == EXPECTED.index.tolist()
    assert saved["customers"].tolist() == EXPECTED.tolist()
    assert len(saved) > 2  # every row, not the two shown
    assert f"saved {len(EXPECTED)} rows to {out}" in res.stdout
    svg = chart.read_text(encoding="utf-8")
    for country in EXPECTED.index:
        assert f">{country}<" in svg
    assert f">{QUESTION}<" in svg and f"chart saved to {chart}" in res.stdout


def test_json_output_stays_clean_with_save(runner: CliRunner, tmp_path: Path) -> None:
    res = invoke(runner, "ask", str(DEMO), QUESTION, "--json", "--save", str(tmp_path / "r.parquet"))
    assert res.exit_code == 0, res.output
    assert Answer.model_validate_json(res.stdout).to_pandas()["customers"].tolist() == EXPECTED.tolist()
    assert "saved" in res.stderr and pd.read_parquet(tmp_path / "r.parquet").shape == (len(EXPECTED), 2)


def test_bad_file_types_are_usage_errors_before_any_work(runner: CliRunner, tmp_path: Path) -> None:
    res = invoke(runner, "ask", str(DEMO), QUESTION, "--save", str(tmp_path / "r.txt"))
    assert res.exit_code == 2
    assert res.stderr.splitlines() == [f"error: cannot save as '.txt': {tmp_path / 'r.txt'}",
                                       "hint: name the file with one of: .csv, .parquet, .json, .xlsx"]
    res = invoke(runner, "ask", str(DEMO), QUESTION, "--plot", str(tmp_path / "c.jpg"))
    assert (res.exit_code, res.stderr.splitlines()[0]) == (2, f"error: cannot draw a chart as '.jpg': "
                                                               f"{tmp_path / 'c.jpg'}")
    res = invoke(runner, "ask", str(DEMO), QUESTION, "--trace-prompts")
    assert (res.exit_code, res.stderr.splitlines()[0]) == (2, "error: --trace-prompts needs --trace FILE")


def test_trace_show_reads_the_run_back(runner: CliRunner, tmp_path: Path) -> None:
    trace = tmp_path / "run.json"
    res = invoke(runner, "ask", str(DEMO), QUESTION, "--json", "--trace", str(trace), "--trace-prompts")
    assert res.exit_code == 0, res.output
    answer = Answer.model_validate_json(res.stdout)
    assert [c.agent for c in answer.calls] == ["planner", "engineer", "critic"]
    shown = invoke(runner, "trace", "show", str(trace), "--prompts")
    assert shown.exit_code == 0, shown.output
    text = shown.stdout
    order = [text.index(s) for s in (f"  user      question: {QUESTION}", "  planner   plan", "  engineer  s1 SQL:",
                                     SQL, "  executor  s1 ok", "  critic    accept: The answer is Austria",
                                     "Answer", "LLM calls", "[system]", "[reply]")]
    assert order == sorted(order)
    rows = [ln.split() for ln in text.splitlines() if ln.split()[:2] in (["1", "planner"], ["2", "engineer"],
                                                                        ["3", "critic"])]
    assert len(rows) == 3
    for row, call in zip(rows, answer.calls):  # prompt / cached / generated tokens as recorded
        assert row[-4:-1] == [f"{call.prompt_tokens:,}", f"{call.cached_tokens:,}", f"{call.completion_tokens:,}"]
    assert "Table customers (80 rows in file order, rowid 0..79)" in text  # the schema, as the prompt carried it


def test_trace_without_prompts_says_how_to_get_them(runner: CliRunner, tmp_path: Path) -> None:
    trace = tmp_path / "run.json"
    assert invoke(runner, "ask", str(DEMO), QUESTION, "--trace", str(trace)).exit_code == 0
    data = json.loads(trace.read_text(encoding="utf-8"))
    assert all(c["prompt"] is None for c in data["calls"]) and data["calls"][0]["started_at"] > 1.6e9
    shown = invoke(runner, "trace", "show", str(trace), "--prompts")
    assert "this trace has no prompts: record them with" in shown.stdout and "[system]" not in shown.stdout


def test_trace_show_reads_bare_entry_lists_and_refuses_other_files(runner: CliRunner, tmp_path: Path) -> None:
    trace = tmp_path / "run.json"
    assert invoke(runner, "ask", str(DEMO), QUESTION, "--trace", str(trace)).exit_code == 0
    entries = tmp_path / "entries.json"
    entries.write_text(json.dumps(json.loads(trace.read_text())["entries"]), encoding="utf-8")
    shown = invoke(runner, "trace", "show", str(entries))
    assert shown.exit_code == 0 and "critic    accept: The answer is Austria" in shown.stdout
    other = tmp_path / "other.json"
    other.write_text('{"agent": "baseline"}', encoding="utf-8")
    res = invoke(runner, "trace", "show", str(other))
    assert res.exit_code == 1 and res.stderr.splitlines()[0].startswith(f"error: {other}: not an autotqa trace")
    res = invoke(runner, "trace", "show", str(tmp_path / "none.json"))
    assert (res.exit_code, res.stderr.splitlines()[0]) == (1, f"error: {tmp_path / 'none.json'}: no such file")


@pytest.fixture()
def chat() -> Iterator:
    made: list[Session] = []

    def make(lines: str) -> tuple[ChatREPL, io.StringIO]:
        script = ReplyScript({k: [ScriptedReply(r) for r in v] for k, v in REPLIES["by_agent"].items()}, "inline")
        session = Session([str(DEMO)], engine=FileScriptedEngine(script), close_engine=True,
                          config=Config(agents=AgentConfig(candidates=1)))
        made.append(session)
        out = io.StringIO()
        console = Console(file=out, width=100, no_color=True, highlight=False)
        return ChatREPL(session=session, reader=PlainLineReader(io.StringIO(lines), out), console=console,
                        tables_view=lambda: "", schema_view=lambda t: ""), out

    yield make
    for s in made:
        s.close()


def test_chat_save_and_plot(chat, tmp_path: Path) -> None:
    out_file, chart = tmp_path / "c.json", tmp_path / "c.png"
    repl, out = chat(f"/save {out_file}\n/plot\n{QUESTION}\n/save\n/save {out_file}\n/plot\n/plot {chart}\n")
    assert repl.run() == 0
    text = out.getvalue()
    assert "nothing to save yet: ask a question first" in text and "nothing to plot yet" in text
    assert "usage: /save FILE (.csv, .parquet, .json, .xlsx)" in text
    assert f"saved {len(EXPECTED)} rows to {out_file}" in text
    assert {r["country"]: r["customers"] for r in json.loads(out_file.read_text())} == EXPECTED.to_dict()
    bars = {ln.split()[0]: ln.count("█") for ln in text.splitlines()
            if ln.split()[:1] and ln.split()[0] in EXPECTED.index}
    top = EXPECTED.idxmax()
    assert set(bars) == set(EXPECTED.index) and max(bars, key=bars.get) == top
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"chart saved to {chart}" in text
