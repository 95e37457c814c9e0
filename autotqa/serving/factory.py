"""Build the configured :class:`Engine` from an :class:`EngineConfig`.

Each engine module is imported only when its kind is chosen, so a user without the optional
extras (``local``: llama-cpp-python; vLLM in its own environment) can still use the others.

``kind``:

- ``local``: the embedded llama.cpp engine (``engines/llamacpp.py``), the CPU default;
- ``openai``: any OpenAI-compatible server at ``base_url`` (flavor probed from ``/v1/models``);
- ``vllm``: with ``base_url``, a ``vllm serve`` deployment over HTTP (priority and json_schema sent
  the vLLM way); without it, vLLM in-process (``engines/vllm_engine.py``: ``VLLMEngine.from_config``);
- ``scripted``: the test double (``replies=`` / ``fn=`` passed as options).

>>> from autotqa.config import EngineConfig
>>> build_engine(EngineConfig(kind="scripted"), replies=["ok"]).name
'scripted'
"""

from __future__ import annotations

import importlib
from typing import Any

from ..config import EngineConfig
from ..errors import ConfigError, EngineError
from .engine import Engine
from .options import ServingOptions


def _import(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module, __package__)
    except ImportError as exc:
        raise EngineError(f"the engine module {module.lstrip('.')} cannot be loaded: {exc}",
                          hint=f"install the extra: pip install 'autotqa[{extra}]'") from exc


def engine_options(cfg: EngineConfig, serving: ServingOptions) -> dict[str, Any]:
    """Constructor options that carry ``serving.kv_reuse`` to an engine that holds KV state itself
    (llama.cpp, in-process vLLM, the scripted double); a remote server's cache is not ours to turn off.

    >>> engine_options(EngineConfig(kind="openai"), ServingOptions(kv_reuse=False))
    {}
    """
    in_process = cfg.kind in ("local", "scripted") or (cfg.kind == "vllm" and not cfg.base_url)
    return {"session_cache": serving.kv_reuse} if in_process else {}


def build_engine(cfg: EngineConfig, **options: Any) -> Engine:
    """One engine for ``cfg.kind``; ``options`` go to the engine's constructor (e.g. ``session_cache``)."""
    if cfg.kind == "local":
        return _import(".engines.llamacpp", "local").LlamaCppEngine.from_config(cfg, **options)
    if cfg.kind == "openai" or (cfg.kind == "vllm" and cfg.base_url):
        from .engines.openai_http import OpenAIEngine

        if cfg.kind == "vllm":
            options.setdefault("server_flavor", "vllm")
        return OpenAIEngine.from_config(cfg, **options)
    if cfg.kind == "vllm":
        module = _import(".engines.vllm_engine", "vllm")
        cls = getattr(module, "VLLMEngine", None)
        if cls is None:
            raise EngineError("engines/vllm_engine.py defines no VLLMEngine")
        return cls.from_config(cfg, **options)
    if cfg.kind == "scripted":
        from .engines.scripted import ScriptedEngine

        return ScriptedEngine(options.pop("replies", None), **options)
    raise ConfigError(f"unknown engine kind {cfg.kind!r}", hint="use one of local, openai, vllm, scripted")
