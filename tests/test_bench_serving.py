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


# -- the agents workload: the ablation rows on the real orchestrator, scripted model replies ------

REPLIES = {"planner": '{"steps": [{"goal": "count", "tables": ["sales"]}]}',
           "engineer": "```sql\nSELECT count(*) AS n FROM sales\n```",
           "critic": '{"verdict": "accept", "note": "There are 3 sales."}'}


@pytest.fixture
def shop(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "sales.csv").write_text("id,region,amount\n1,north,10\n2,south,20\n3,north,5\n")
    questions = tmp_path / "questions.json"
    questions.write_text(json.dumps([{"question": "How many sales are there?"},
                                     {"question": "What is the total amount of sales?"},
                                     {"question": "How many sales are in the north region?"}]))
    return folder, questions


def scripted_for(options: object) -> ScriptedEngine:
    from autotqa.config import EngineConfig
    from autotqa.serving.factory import build_engine, engine_options

    cfg = EngineConfig(kind="scripted")
    return build_engine(cfg, fn=lambda r: REPLIES[r.agent], **engine_options(cfg, options))  # type: ignore[arg-type, return-value]


def test_agents_ablation_applies_each_switch(shop: tuple[Path, Path]) -> None:
    from autotqa.config import Config
    from autotqa.evaluation.serving_ablation import ROWS, folder_sessions, run_ablation, table
    from autotqa.serving.options import ServingOptions

    config = Config()
    config.agents.candidates, config.agents.escalate = 1, "loop"  # planner -> engineer -> critic
    sessions, catalogs = folder_sessions(shop[0], shop[1], 2, 2, config)
    assert [s.questions for s in sessions] == [
        ("How many sales are there?", "What is the total amount of sales?"),
        ("How many sales are in the north region?", "How many sales are there?")]
    try:  # a long anticipation hold: a slow SQL run on a loaded machine cannot reorder the calls
        out = asyncio.run(run_ablation(scripted_for, sessions, config, anticipate_s=10.0))
    finally:
        for c in catalogs:
            c.close()
    rows = out["rows"]
    assert tuple(rows) == ROWS and rows["priority"]["options"] == ServingOptions().as_dict()
    for row in rows.values():  # the same work in every row: 2 questions x 3 calls, all answered
        assert row["calls_per_session"] == {"s1-shop": 6, "s2-shop": 6} and row["answered"] == 4
        assert row["distinct_tokens"] > 0
    fifo = ["s1:planner", "s2:planner", "s1:engineer", "s2:engineer", "s1:critic", "s2:critic"] * 2
    together = ["s1:planner", "s1:engineer", "s1:critic"] * 2 + ["s2:planner", "s2:engineer", "s2:critic"] * 2
    assert rows["naive"]["order"] == rows["layout"]["order"] == rows["kv_reuse"]["order"] == fifo
    assert rows["locality"]["order"] == together
    # At open only: the questions find the prefix still held by the engine (issue 13 item 5).
    warm = ["s1:warmup", "s1:planner", "s1:engineer", "s1:critic", "s1:planner", "s1:engineer", "s1:critic"]
    assert rows["warm_up"]["order"] == warm + [w.replace("s1", "s2") for w in warm]
    # No reuse at all without the engine's KV reuse; the same prompts computed in full.
    assert rows["naive"]["reused_tokens"] == rows["layout"]["reused_tokens"] == 0
    assert rows["naive"]["computed_tokens"] == rows["naive"]["prompt_tokens"]
    assert rows["naive"]["warmup_tokens"] == rows["locality"]["warmup_tokens"] == 0
    # Role text first: the row's prompts share less (more distinct tokens) than the stable layout's.
    assert rows["naive"]["distinct_tokens"] > rows["layout"]["distinct_tokens"]
    assert rows["kv_reuse"]["computed_tokens"] < 0.6 * rows["layout"]["computed_tokens"]
    assert rows["warm_up"]["warmup_tokens"] > 0
    assert rows["warm_up"]["computed_tokens"] < rows["locality"]["computed_tokens"]
    top = rows["priority"]
    assert top["computed_vs_distinct"] == round(top["computed_tokens"] / top["distinct_tokens"], 3)
    assert top["with_warmup_vs_distinct"] == round(
        (top["computed_tokens"] + top["warmup_tokens"]) / top["distinct_tokens"], 3)
    assert set(out["speedups"]) == set(ROWS) and out["speedups"]["naive"]["session_median"] == 1.0
    assert table(out).count("\n") == len(ROWS) + 1


def test_cli_agents_workload(shop: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import autotqa.serving.factory as factory
    from autotqa.cli import _register, app

    built: list[bool] = []

    def fake_build(cfg: object, **options: bool) -> ScriptedEngine:
        built.append(options["session_cache"])
        return ScriptedEngine(fn=lambda r: REPLIES[r.agent])

    monkeypatch.setattr(factory, "build_engine", fake_build)
    _register()
    out_file = shop[0].parent / "ablation.json"
    res = CliRunner().invoke(app, [
        "bench", "serving", "--workload", "agents", "--sessions", "2", "--questions", "1", "--mode", "naive",
        "--mode", "priority", "--data", str(shop[0]), "--question-file", str(shop[1]), "--out", str(out_file)])
    assert res.exit_code == 0, res.output
    last = json.loads(res.stdout.strip().splitlines()[-1])
    assert list(last["rows"]) == ["naive", "priority"] and json.loads(out_file.read_text()) == last
    assert built == [False, True]  # the naive row's engine keeps no KV state
    # 4 candidates agree at once: one fork of 4 calls per question, in both rows
    assert [r["llm_calls"] for r in last["rows"].values()] == [8, 8]
    assert "| naive |" in res.stderr
    res = CliRunner().invoke(app, ["bench", "serving", "--workload", "agents", "--mode", "app_aware",
                                   "--data", str(shop[0]), "--question-file", str(shop[1])])
    assert res.exit_code == 2 and "error: unknown row 'app_aware'" in res.output, res.output
