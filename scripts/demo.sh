#!/usr/bin/env bash
# Install everything (autotqa, llama.cpp, the offline Qwen2.5-Coder-0.5B model) and answer a demo
# question with the embedded model, printing the answer, the SQL and the time taken.
source "$(dirname "$0")/_env.sh"
install_autotqa "local"
.venv/bin/autotqa model fetch
QUESTION=${1:-"How many orders were placed by customers from Germany?"}
echo "\$ autotqa ask datasets/demo \"$QUESTION\""
exec .venv/bin/autotqa ask datasets/demo "$QUESTION"
