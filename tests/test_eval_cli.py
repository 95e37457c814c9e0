"""``autotqa eval`` on the command line: usage errors, report-only, and a full scripted baseline run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autotqa.cli import _register, app
from autotqa.evaluation.results import ResultRecord, ResultStore, read_records, results_path

_register()


def invoke(args: list[str], env: dict[str, str] | None = None):  # noqa: ANN201
    return CliRunner().invoke(app, args, env={"AUTOTQA_CONFIG": "", **(env or {})})


def test_usage_errors(tmp_path: Path) -> None:
    r = invoke(["eval", "--dataset", "spider", "--data", str(tmp_path)])
    assert r.exit_code == 2 and "error: --out is required" in r.output
    r = invoke(["eval", "--dataset", "nope", "--data", str(tmp_path), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "error: --dataset must be spider or wtq" in r.output
    r = invoke(["eval", "--dataset", "wtq", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                "--strategy", "magic"])
    assert r.exit_code == 2 and "unknown strategy 'magic'" in r.output
    r = invoke(["eval", "frobnicate", str(tmp_path)])
    assert r.exit_code == 2 and "unknown eval action 'frobnicate'" in r.output
    # A bad engine flag is a usage error here too (exit 2), as in `autotqa ask`.
    data = tmp_path / "wtq"
    (data / "tables").mkdir(parents=True)
    r = invoke(["eval", "--dataset", "wtq", "--data", str(data), "--out", str(tmp_path / "o2"), "--engine", "gpt"])
    assert r.exit_code == 2 and "error: --engine: unknown engine 'gpt'" in r.output, r.output


def test_report_subcommand_rerenders_from_results(tmp_path: Path) -> None:
    store = ResultStore(results_path(tmp_path, "baseline"))
    store.append(ResultRecord(id="nt-1", strategy="baseline", dataset="wtq", question="?", correct=True,
                              latency_s=2.0, categories={"answer_type": "string"}))
    store.append(ResultRecord(id="nt-2", strategy="baseline", dataset="wtq", question="?", correct=False,
                              latency_s=4.0, categories={"answer_type": "number"}))
    r = invoke(["eval", "report", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "| baseline | 2 | 1 | 50.0% | 0 | 3.00 | 0 | 0 | 0.0% |" in r.output
    assert "| answer_type | number | 1, 0.0% |" in r.output
    assert (tmp_path / "report.md").is_file() and (tmp_path / "report.png").is_file()
    r2 = invoke(["eval", "--report-only", "--out", str(tmp_path)])
    assert r2.exit_code == 0 and r2.output == r.output


def test_scripted_baseline_run_resumes(tmp_path: Path, spider_dir: Path) -> None:
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(["```sql\nSELECT 1\n```"] * 3), encoding="utf-8")
    env = {"AUTOTQA_SCRIPTED_REPLIES": str(replies)}
    out = tmp_path / "run"
    args = ["eval", "--dataset", "spider", "--data", str(spider_dir), "--limit", "3", "--sample-seed", "4",
            "--strategy", "baseline", "--engine", "scripted", "--out", str(out)]
    r = invoke(args, env)
    assert r.exit_code == 0, r.output
    recs = read_records(out / "results-baseline.jsonl")
    assert len(recs) == 3 and all(rec.prediction["sql"] == "SELECT 1" for rec in recs)
    assert "| baseline | 3 |" in (out / "report.md").read_text()
    # Same command again: nothing left to do, so no reply is consumed (the script is now empty).
    replies.write_text("[]", encoding="utf-8")
    r = invoke(args, env)
    assert r.exit_code == 0, r.output
    assert len((out / "results-baseline.jsonl").read_text().splitlines()) == 3


def test_without_matplotlib_a_finished_run_keeps_its_report(tmp_path: Path, spider_dir: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The report step comes after every question: a missing plotting library must not lose the run."""
    import sys

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(["```sql\nSELECT 1\n```"] * 2), encoding="utf-8")
    out = tmp_path / "run"
    r = invoke(["eval", "--dataset", "spider", "--data", str(spider_dir), "--limit", "2", "--strategy", "baseline",
                "--engine", "scripted", "--out", str(out)], {"AUTOTQA_SCRIPTED_REPLIES": str(replies)})
    assert r.exit_code == 0, r.output
    report = (out / "report.md").read_text()
    assert "| baseline | 2 |" in report and "![" not in report and not (out / "report.png").exists()
    hint = "hint: the report has no plot: pip install 'autotqa[eval]' (matplotlib) to draw it"
    assert r.stderr.splitlines()[-1] == hint and "Traceback" not in r.output
    r = invoke(["eval", "report", str(out)])
    assert (r.exit_code, r.stderr.splitlines()[-1]) == (0, hint)


def test_report_published_elsewhere_keeps_its_plot_beside_it(tmp_path: Path) -> None:
    ResultStore(results_path(tmp_path / "run", "agents")).append(
        ResultRecord(id="q", strategy="agents", dataset="wtq", question="?", correct=True))
    target = tmp_path / "pub" / "eval_wtq.md"
    r = invoke(["eval", "report", str(tmp_path / "run"), "--to", str(target)])
    assert r.exit_code == 0, r.output
    assert "![accuracy and median latency per strategy](eval_wtq.png)" in target.read_text()
    assert (tmp_path / "pub" / "eval_wtq.png").is_file() and not (tmp_path / "run" / "report.md").exists()


def test_sigterm_stops_cleanly_and_writes_the_report(tmp_path: Path, spider_dir: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(["```sql\nSELECT 1\n```", {"text": "```sql\nSELECT 2\n```", "delay_s": 60},
                                   "```sql\nSELECT 3\n```"]), encoding="utf-8")
    out = tmp_path / "run"
    cmd = [sys.executable, "-c", "from autotqa.cli import main; main()", "eval", "--dataset", "spider",
           "--data", str(spider_dir), "--limit", "3", "--strategy", "baseline", "--engine", "scripted",
           "--out", str(out)]
    env = {**os.environ, "AUTOTQA_SCRIPTED_REPLIES": str(replies), "AUTOTQA_CONFIG": ""}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        results = out / "results-baseline.jsonl"
        while not (results.is_file() and results.read_text().count("\n") >= 1):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=120)  # generous: report writing imports matplotlib, slow on a busy CI box
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 130
    assert len(read_records(results)) == 1
    assert "| baseline | 1 |" in (out / "report.md").read_text()


def test_a_run_gets_a_fresh_prefix_cache_unless_one_is_configured(tmp_path: Path, spider_dir: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Persisted schema KV from earlier runs would make a database's first question look warm: a
    run uses its own cache folder, gone afterwards; a configured folder is used as set."""
    import autotqa.ui.engine as ui_engine

    seen: list[str | None] = []
    real = ui_engine.engine_from_config

    def spy(cfg, **kw):  # noqa: ANN001, ANN202
        seen.append(cfg.prefix_cache_dir)
        assert cfg.prefix_cache_dir is None or Path(cfg.prefix_cache_dir).is_dir()
        return real(cfg, **kw)

    monkeypatch.setattr(ui_engine, "engine_from_config", spy)
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(["```sql\nSELECT 1\n```"]), encoding="utf-8")
    env = {"AUTOTQA_SCRIPTED_REPLIES": str(replies)}
    args = ["eval", "--dataset", "spider", "--data", str(spider_dir), "--limit", "1", "--strategy", "baseline",
            "--engine", "scripted"]
    assert invoke(args + ["--out", str(tmp_path / "a")], env).exit_code == 0
    assert seen[0] and "autotqa-eval-kv-" in seen[0] and not Path(seen[0]).exists()
    mine = tmp_path / "kv"
    mine.mkdir()
    replies.write_text(json.dumps(["```sql\nSELECT 1\n```"]), encoding="utf-8")
    r = invoke(args + ["--out", str(tmp_path / "b")], {**env, "AUTOTQA_ENGINE__PREFIX_CACHE_DIR": str(mine)})
    assert r.exit_code == 0, r.output
    assert seen[1] == str(mine) and mine.is_dir()
