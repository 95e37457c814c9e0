#!/usr/bin/env bash
# Install everything and run the whole test suite: the default group (including tests on the real
# 0.5B model and a real llama.cpp HTTP server), then the vLLM group in its own venv.
# pytest's exit code 5 ("no tests ran") is a failure here.
source "$(dirname "$0")/_env.sh"
install_autotqa "local,server,dev"
install_db_servers
.venv/bin/autotqa model fetch

run_pytest() {  # $1: python, rest: pytest args
  local py=$1; shift
  set +e
  "$py" -m pytest "$@"
  local rc=$?
  set -e
  if [ "$rc" -eq 5 ]; then
    echo "error: pytest collected no tests for: $*" >&2
    return 1
  fi
  return "$rc"
}

run_pytest .venv/bin/python -m "not vllm" -p no:cacheprovider
if [ "${AUTOTQA_SKIP_VLLM:-0}" != "1" ]; then
  bash scripts/setup-vllm-venv.sh
  run_pytest .venv-vllm/bin/python -m vllm -p no:cacheprovider tests/vllm
fi
