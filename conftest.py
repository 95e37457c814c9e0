"""Root pytest configuration: what to collect when optional engines are not installed.

The default suite runs in .venv (llama.cpp extra); the vLLM group runs in .venv-vllm. Modules that
import an absent optional dependency are not collected (their doctests and tests belong to the
other group); in CI a missing llama.cpp is an error, not a skip (see tests/conftest.py).
"""

import importlib.util

collect_ignore_glob: list[str] = []
if importlib.util.find_spec("vllm") is None:
    collect_ignore_glob += ["tests/vllm/*", "autotqa/serving/engines/vllm_engine.py"]
if importlib.util.find_spec("llama_cpp") is None:
    collect_ignore_glob += ["autotqa/serving/engines/llamacpp*.py"]
