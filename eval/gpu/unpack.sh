#!/usr/bin/env bash
# Device call A (carry .xfer1): vLLM 0.26.0's kernels and Python files into /root/site, models into /root/models.
set -euo pipefail
S=/root/site
mkdir -p $S/vllm
xz -T0 -dc .xfer1/C.so.xz > $S/vllm/_C_stable_libtorch.abi3.so
tar -xJf .xfer1/vllm-py.tar.xz -C $S
tar -xJf .xfer1/models.tar.xz -C /root
echo "unpacked vLLM into $S and models into /root/models"
