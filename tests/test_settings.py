"""Configuration precedence (flags > env > TOML > defaults) and errors that name their source."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from autotqa.config import Config
from autotqa.errors import ConfigError, EngineError
from autotqa.serving.types import GenerationRequest, PromptSegments
from autotqa.settings import FlagError, config_path, load_config
from autotqa.ui.engine import FileScriptedEngine, ReplyScript, engine_from_config


@pytest.fixture()
def toml_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text('[engine]\nkind = "openai"\nmodel = "from-file"\nn_ctx = 2048\n'
                    "[agents]\nmax_rounds = 4\n", encoding="utf-8")
    return path


def test_defaults_without_any_layer() -> None:
    assert load_config(env={}, path=None) == Config()


def test_file_overrides_defaults(toml_file: Path) -> None:
    cfg = load_config(env={}, path=toml_file)
    assert (cfg.engine.kind, cfg.engine.model, cfg.engine.n_ctx, cfg.agents.max_rounds) == (
        "openai", "from-file", 2048, 4)
    assert cfg.executor == Config().executor


def test_env_overrides_file_and_flags_override_env(toml_file: Path) -> None:
    env = {"AUTOTQA_MODEL": "from-env", "AUTOTQA_MAX_ROUNDS": "6", "AUTOTQA_ENGINE__N_CTX": "1024"}
    cfg = load_config(env=env, path=toml_file)
    assert (cfg.engine.model, cfg.agents.max_rounds, cfg.engine.n_ctx) == ("from-env", 6, 1024)
    cfg = load_config({"engine.model": "from-flag", "agents.max_rounds": None}, env=env, path=toml_file)
    assert (cfg.engine.model, cfg.agents.max_rounds) == ("from-flag", 6)  # None: flag not given
    assert cfg.engine.kind == "openai"  # still from the file


def test_config_file_found_through_autotqa_config(toml_file: Path) -> None:
    env = {"AUTOTQA_CONFIG": str(toml_file)}
    assert config_path(env) == toml_file
    assert load_config(env=env).engine.model == "from-file"


def test_default_config_dir_is_optional(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert config_path({}) == tmp_path / "cfg" / "autotqa" / "config.toml"
    assert load_config(env={}) == Config()
    (tmp_path / "cfg" / "autotqa").mkdir(parents=True)
    (tmp_path / "cfg" / "autotqa" / "config.toml").write_text("[executor]\nrow_cap = 7\n")
    assert load_config(env={}).executor.row_cap == 7


def test_named_config_file_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"nope\.toml does not exist \(named by AUTOTQA_CONFIG\)"):
        load_config(env={"AUTOTQA_CONFIG": str(missing)})


def test_bad_file_value_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[agents]\nmax_rounds = \"many\"\n")
    with pytest.raises(ConfigError) as err:
        load_config(env={}, path=path)
    assert err.value.message.startswith(f"{path} (agents.max_rounds): 'many' is not valid for agents.max_rounds")
    assert not isinstance(err.value, FlagError)


def test_unknown_key_and_broken_toml(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[engine]\nmodle = 'x'\n")
    with pytest.raises(ConfigError, match=r"unknown setting engine\.modle") as err:
        load_config(env={}, path=path)
    assert "model" in (err.value.hint or "")
    path.write_text("[engine\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(env={}, path=path)


def test_bad_env_values_name_the_variable() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(env={"AUTOTQA_ENGINE": "gpt"}, path=None)
    assert err.value.message == "environment variable AUTOTQA_ENGINE: unknown engine 'gpt'"
    assert err.value.hint == "choose one of: local, openai, vllm"
    with pytest.raises(ConfigError, match="environment variable AUTOTQA_ENGINE__N_CTX: 'big'"):
        load_config(env={"AUTOTQA_ENGINE__N_CTX": "big"}, path=None)
    with pytest.raises(ConfigError, match=r"AUTOTQA_AGENTS__ROUNDS: unknown setting agents\.rounds"):
        load_config(env={"AUTOTQA_AGENTS__ROUNDS": "2"}, path=None)


def test_unrelated_and_empty_env_vars_are_ignored() -> None:
    env = {"AUTOTQA_SHARED_DATASETS": "/x", "AUTOTQA_SCRIPTED_REPLIES": "r.json", "AUTOTQA_MODEL": ""}
    assert load_config(env=env, path=None) == Config()


def test_bad_flag_is_a_usage_error_and_secrets_are_masked() -> None:
    with pytest.raises(FlagError) as err:
        load_config({"engine.kind": "gpt"}, env={}, path=None)
    assert err.value.message == "--engine: unknown engine 'gpt'"
    with pytest.raises(FlagError, match="--max-rounds: 'x'"):
        load_config({"agents.max_rounds": "x"}, env={}, path=None)
    with pytest.raises(ConfigError) as err:
        load_config(env={"AUTOTQA_ENGINE__N_CTX": "1", "AUTOTQA_API_KEY": "sk-1"}, path=None,
                    flags={"engine.api_key": ["not", "a", "string"]})
    assert "sk-1" not in str(err.value) and "***" in err.value.message


def _request(agent: str) -> GenerationRequest:
    return GenerationRequest(agent=agent, segments=PromptSegments(header="h"))


def test_scripted_engine_replies_by_agent_with_fallback(tmp_path: Path) -> None:
    path = tmp_path / "replies.json"
    path.write_text(json.dumps({"by_agent": {"Planner": ["p1"], "*": ["any1", {"text": "any2", "delay_s": 0.01}]}}))
    engine = engine_from_config(load_config(env={"AUTOTQA_ENGINE": "scripted"}, path=None).engine,
                                env={"AUTOTQA_SCRIPTED_REPLIES": str(path)})
    assert isinstance(engine, FileScriptedEngine)

    async def run() -> list[str]:
        return [(await engine.generate(_request(a))).text for a in ("critic", "planner", "planner")]

    assert asyncio.run(run()) == ["any1", "p1", "any2"]
    with pytest.raises(EngineError, match="ran out at a request of agent 'critic'"):
        asyncio.run(engine.generate(_request("critic")))


def test_scripted_delay_is_cancellable(tmp_path: Path) -> None:
    engine = FileScriptedEngine(ReplyScript({"*": []}, "x"))
    engine.script = ReplyScript.from_file(_write(tmp_path, [{"text": "slow", "delay_s": 30}]))

    async def run() -> None:
        await asyncio.wait_for(engine.generate(_request("engineer")), timeout=0.05)

    with pytest.raises(TimeoutError):
        asyncio.run(run())


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    return path


def test_scripted_engine_file_errors(tmp_path: Path) -> None:
    cfg = load_config(env={"AUTOTQA_ENGINE": "scripted"}, path=None).engine
    with pytest.raises(ConfigError, match="needs AUTOTQA_SCRIPTED_REPLIES"):
        engine_from_config(cfg, env={})
    with pytest.raises(ConfigError, match="does not exist"):
        engine_from_config(cfg, env={"AUTOTQA_SCRIPTED_REPLIES": str(tmp_path / "none.json")})
    with pytest.raises(ConfigError, match=r"r\.json\[1\]: a reply must be a string"):
        ReplyScript.from_file(_write(tmp_path, ["ok", 3]))
    with pytest.raises(ConfigError, match="expected a list of replies"):
        ReplyScript.from_file(_write(tmp_path, {"replies": []}))
