"""Serving benchmark logic on the scripted engine: exact schedules, JSON shape, fewer computed tokens."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autotqa.serving.bench import ModeSpec, run_benchmark
from autotqa.serving.engines.scripted import ScriptedEngine
from autotqa.serving.workload import build_sessions, estimate_tokens, roles_for, segments_for


def make_db(path: Path, tables: int, columns: int) -> None:
    conn = sqlite3.connect(path)
    for t in range(tables):
        cols = ", ".join(f"attribute_number_{c} TEXT" for c in range(columns))
        conn.execute(f"CREATE TABLE table_{t} (id INTEGER PRIMARY KEY, {cols})")
        for r in range(4):
            conn.execute(f"INSERT INTO table_{t} VALUES ({r}, {', '.join(repr(f'v{r}_{c}') for c in range(columns))})")
    conn.commit()
    conn.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    (tmp_path / "databases").mkdir()
    make_db(tmp_path / "databases" / "alpha.sqlite", 2, 20)  # ~1.1k estimated tokens
    make_db(tmp_path / "databases" / "beta.sqlite", 3, 20)  # ~1.6k
    make_db(tmp_path / "databases" / "tiny.sqlite", 1, 2)  # too small: skipped
    return tmp_path


def scripted(_: ModeSpec) -> ScriptedEngine:
    return ScriptedEngine(fn=lambda r: f"reply of {r.agent}")


def test_workload_shape(data_dir: Path) -> None:
    specs = build_sessions(data_dir, 2)
    assert [s.session_id for s in specs] == ["s1-alpha", "s2-beta"]
    assert all(1000 <= estimate_tokens(s.schema_text) <= 2000 for s in specs)
    assert roles_for(6) == ["user", "planner", "engineer", "engineer", "engineer", "critic"]
    stable = segments_for("stable", "critic", specs[0], "T")
    naive = segments_for("naive", "critic", specs[0], "T")
    assert stable.tail.startswith("Role: critic") and naive.header.startswith("Role: critic")
    assert 200 <= len(specs[0].result_text(0)) <= 260
    with pytest.raises(FileNotFoundError, match="found 2 of 3"):
        build_sessions(data_dir, 3)


def test_benchmark_schedules_and_figures(data_dir: Path) -> None:
    specs = build_sessions(data_dir, 2)
    out = asyncio.run(run_benchmark(scripted, specs, calls=3))
    naive, aware = out["naive"], out["app_aware"]
    assert naive["dispatch_order"] == ["s1:user-1", "s2:user-1", "s1:planner-2", "s2:planner-2",
                                       "s1:critic-3", "s2:critic-3"]
    assert aware["dispatch_order"] == ["s1:warmup", "s1:user-1", "s1:planner-2", "s1:critic-3",
                                       "s2:warmup", "s2:user-1", "s2:planner-2", "s2:critic-3"]
    for mode in (naive, aware):
        assert mode["llm_calls"] == 6
        assert {"wall_s", "median_latency_s", "p95_latency_s", "session_median_s", "prompt_tokens",
                "computed_tokens", "reuse_ratio", "warmup_tokens"} <= set(mode)
    # Same prompts in both layouts (whitespace tokens), far fewer computed app-aware.
    assert naive["prompt_tokens"] == aware["prompt_tokens"]
    assert aware["computed_tokens"] * 3 < naive["computed_tokens"]
    assert naive["warmup_tokens"] == 0 and aware["warmup_tokens"] > 0
    assert aware["reuse_ratio"] > 0.8 > 0.5 > naive["reuse_ratio"]
    assert set(out) >= {"speedup_median", "speedup_session_median", "workload", "note"}
    assert out["workload"]["databases"] == ["alpha", "beta"]


def test_cli_prints_json_last(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import autotqa.serving.factory as factory
    from autotqa.cli import _register, app

    built: list[bool] = []

    def fake_build(cfg: object, **options: bool) -> ScriptedEngine:
        built.append(options["session_cache"])
        return scripted(None)  # type: ignore[arg-type]

    monkeypatch.setattr(factory, "build_engine", fake_build)
    _register()
    out_file = data_dir / "res.json"
    res = CliRunner().invoke(app, ["bench", "serving", "--sessions", "2", "--calls", "2", "--data",
                                   str(data_dir), "--out", str(out_file)])
    assert res.exit_code == 0, res.output
    last = json.loads(res.stdout.strip().splitlines()[-1])
    assert last["naive"]["llm_calls"] == 4 and last["app_aware"]["llm_calls"] == 4
    assert json.loads(out_file.read_text()) == last
    assert built == [False, True]  # naive without the session KV cache, app-aware with it


def test_combine_per_mode_runs(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import autotqa.serving.factory as factory
    from autotqa.cli import _register, app

    monkeypatch.setattr(factory, "build_engine", lambda cfg, **o: scripted(None))  # type: ignore[arg-type]
    _register()
    runner = CliRunner()
    files = []
    for mode in ("naive", "app_aware"):
        f = data_dir / f"{mode}.json"
        res = runner.invoke(app, ["bench", "serving", "--sessions", "2", "--calls", "2", "--mode", mode,
                                  "--data", str(data_dir), "--out", str(f)])
        assert res.exit_code == 0, res.output
        assert "speedup_median" not in json.loads(f.read_text())
        files.append(str(f))
    res = runner.invoke(app, ["bench", "combine", *files])
    assert res.exit_code == 0, res.output
    both = json.loads(res.stdout.strip().splitlines()[-1])
    assert "speedup_median" in both  # None here: scripted calls take ~0 s
    assert both["computed_tokens_ratio"] == round(
        both["naive"]["computed_tokens"] / both["app_aware"]["computed_tokens"], 2) > 2
    bad = data_dir / "other.json"
    bad.write_text(json.dumps({"workload": {"sessions": 9}, "naive": {}}))
    res = runner.invoke(app, ["bench", "combine", files[0], str(bad)])
    assert res.exit_code == 1 and "different workloads" in res.stderr


def test_bad_options_are_usage_errors(data_dir: Path) -> None:
    """Exit 2 with one error line, as documented for every command (0 ok, 1 error, 2 usage)."""
    from autotqa.cli import _register, app

    _register()
    runner = CliRunner()
    res = runner.invoke(app, ["bench", "serving", "--engine", "gpt", "--data", str(data_dir)])
    assert res.exit_code == 2 and "error: unknown engine 'gpt'" in res.output, res.output
    res = runner.invoke(app, ["bench", "serving", "--mode", "fastest", "--data", str(data_dir)])
    assert res.exit_code == 2 and "error: unknown mode 'fastest'" in res.output, res.output
