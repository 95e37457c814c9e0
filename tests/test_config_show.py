"""``autotqa config show``: each setting's effective value and the layer it came from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autotqa import cli
from autotqa.config import Config


@pytest.fixture()
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    import os

    for var in list(os.environ):
        if var.startswith("AUTOTQA_"):
            monkeypatch.delenv(var)
    toml = tmp_path / "config.toml"
    toml.write_text('[engine]\nmodel = "from-file"\nn_ctx = 2048\n[executor]\nrow_cap = 50\n', encoding="utf-8")
    monkeypatch.setenv("AUTOTQA_CONFIG", str(toml))
    monkeypatch.setenv("AUTOTQA_ENGINE__N_CTX", "4096")
    monkeypatch.setenv("AUTOTQA_API_KEY", "sk-secret")
    cli._register()
    return CliRunner()


def test_each_setting_says_where_it_came_from(runner: CliRunner, tmp_path: Path) -> None:
    res = runner.invoke(cli.app, ["config", "show", "--json", "--engine", "openai"])
    assert res.exit_code == 0, res.output
    shown = json.loads(res.stdout)
    toml = tmp_path / "config.toml"
    assert shown["engine.kind"] == {"value": "openai", "source": "--engine"}
    assert shown["engine.n_ctx"] == {"value": 4096, "source": "environment variable AUTOTQA_ENGINE__N_CTX"}
    assert shown["engine.model"] == {"value": "from-file", "source": f"{toml} (engine.model)"}
    assert shown["executor.row_cap"] == {"value": 50, "source": f"{toml} (executor.row_cap)"}
    assert shown["agents.max_rounds"] == {"value": Config().agents.max_rounds, "source": "default"}
    assert shown["engine.api_key"] == {"value": "***", "source": "environment variable AUTOTQA_API_KEY"}
    assert "sk-secret" not in res.output
    assert set(shown) == {f"{s}.{f}" for s, m in Config.model_fields.items() for f in m.annotation.model_fields}


def test_table_view_and_errors(runner: CliRunner) -> None:
    res = runner.invoke(cli.app, ["config", "show"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    line = next(ln for ln in res.stdout.splitlines() if ln.split()[:1] == ["engine.n_ctx"])
    assert line.split()[1:] == ["4096", "environment", "variable", "AUTOTQA_ENGINE__N_CTX"]
    res = runner.invoke(cli.app, ["config", "show", "--engine", "gpt"])
    assert res.exit_code == 2 and res.stderr.splitlines()[0] == "error: --engine: unknown engine 'gpt'"
    res = runner.invoke(cli.app, ["config", "show"], env={"AUTOTQA_ENGINE__N_CTX": "big"})
    assert res.exit_code == 1 and "environment variable AUTOTQA_ENGINE__N_CTX: 'big'" in res.stderr
