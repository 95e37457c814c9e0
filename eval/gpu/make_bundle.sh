#!/usr/bin/env bash
# Build the two carry folders that put vLLM on the lent GPU machine (see eval/results/bench_vllm_gpu.md).
#
# That machine has PyTorch 2.11.0+cu130 but no vLLM, cannot reach any package index, and each device
# call carries at most 64 MiB. vLLM 0.26.0 is the last release pinned to torch 2.11.0, so it runs on
# that image's torch; its 304 MB wheel is cut down to what a dense Qwen2 model needs on a Hopper GPU
# (Python files, the _C kernels, FlashAttention 3), xz-compressed, and split over two calls:
#   .xfer1: _C kernels + vLLM's Python files + model directories (config.json + tokenizer)  ~63 MB
#   .xfer2: the missing dependency wheels (deps-vllm-0.26.0-cp312.txt) + FlashAttention 3   ~57 MB
# The model directories hold no weights: the benchmark runs them with load_format=dummy.
#
# Usage (repo root, needs network to PyPI and the packaged model in the user cache for the tokenizer):
#   bash eval/gpu/make_bundle.sh        (PY312=/path/to/python3.12 if python3.12 is not on PATH; ~3 min)
# then on the device: run `bash eval/gpu/unpack.sh` carrying .xfer1, and at once (the machine stays
# warm only ~30 s) `bash eval/gpu/run.sh` carrying .xfer2. Add /.xfer1/ and /.xfer2/ to .git/info/exclude.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="${WORK:-${TMPDIR:-/tmp}/autotqa-vllm-gpu}"
PY312="${PY312:-python3.12}"
mkdir -p "$WORK/whl" "$WORK/deps" "$REPO/.xfer1" "$REPO/.xfer2"
cd "$WORK"
"$PY312" -m pip download -q --no-deps --only-binary=:all: -d whl vllm==0.26.0
"$PY312" -m pip download -q --no-deps --only-binary=:all: -d deps -r "$REPO/eval/gpu/deps-vllm-0.26.0-cp312.txt"
WHEEL=$(ls whl/vllm-0.26.0-*.whl)
rm -rf v26 && mkdir v26
# Python files, the core kernels, FlashAttention 3 and vLLM's vendored pynvml etc.; not the MoE, MLA,
# FA2, DeepGEMM or Rust-frontend binaries (a dense model on Hopper never loads them).
unzip -q "$WHEEL" -d v26 -x 'vllm/third_party/deep_gemm/*' 'vllm/third_party/fmha_sm100/*' \
    'vllm/_moe_C*' 'vllm/_flashmla*' 'vllm/_qutlass_C*' 'vllm/vllm-rs' 'vllm/vllm_flash_attn/_vllm_fa2_C*'
xz -T0 -9 -c v26/vllm/_C_stable_libtorch.abi3.so > "$REPO/.xfer1/C.so.xz"
xz -T0 -3 -c v26/vllm/vllm_flash_attn/_vllm_fa3_C.abi3.so > "$REPO/.xfer2/fa3.so.xz"
tar -cJf "$REPO/.xfer1/vllm-py.tar.xz" -C v26 --exclude='*.so' --exclude='__pycache__' vllm vllm-0.26.0.dist-info
"$REPO/.venv-vllm/bin/python" "$REPO/eval/gpu/make_model_dirs.py" "$WORK/models"
tar -cJf "$REPO/.xfer1/models.tar.xz" -C "$WORK" models
rm -rf "$REPO/.xfer2/deps" && cp -r deps "$REPO/.xfer2/deps"
du -sh "$REPO/.xfer1" "$REPO/.xfer2"
