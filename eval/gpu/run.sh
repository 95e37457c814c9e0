#!/usr/bin/env bash
# Device call B (carry .xfer2), right after unpack.sh on the same warm machine: the missing wheels and
# FlashAttention 3, then eval/bench_vllm_gpu.py on both model shapes. Results land in $OUT.
set -u
export PYTHONUNBUFFERED=1
S=/root/site
[ -f $S/vllm/_C_stable_libtorch.abi3.so ] || { echo "COLD: unpack.sh did not run on this machine"; exit 3; }
t0=$SECONDS
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $S .xfer2/deps/*.whl 2>&1 | grep -v WARNING | tail -3
xz -T0 -dc .xfer2/fa3.so.xz > $S/vllm/vllm_flash_attn/_vllm_fa3_C.abi3.so
# FlashInfer is not carried: vLLM's sampler would import it for top-k/top-p.
export VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONPATH=$S:$PWD HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1
python3 -c "import vllm, vllm.platforms.cuda, vllm.model_executor.models.qwen2; print('vllm', vllm.__version__)" 2>&1 | tail -8
COMMON="--load-format dummy --sessions 32 --calls 6 --max-tokens 40 --max-num-seqs 64 --enforce-eager"
for m in ${MODELS:-0.5b 7b}; do
  echo "=== bench $m at $((SECONDS - t0)) s"
  timeout ${T:-210} python3 eval/bench_vllm_gpu.py --model /root/models/qwen2.5-coder-$m-instruct-arch $COMMON \
     --out $OUT/bench_$m.json --md $OUT/bench_$m.md > $OUT/log_$m.txt 2>&1
  echo "rc=$?"; grep -E "Error|error:|^\s+(naive|app_aware):|engine up" $OUT/log_$m.txt | tail -12
done
echo "done in $((SECONDS - t0)) s"
