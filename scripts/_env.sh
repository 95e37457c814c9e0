# Shared by scripts/demo.sh and scripts/test.sh: create .venv and install autotqa with its extras.
# Every install step the project needs lives here, so a fresh machine (Python >= 3.11, a C compiler)
# gets exactly what CI gets.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: autotqa needs Python >= 3.11 (found: $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11+" >&2
  exit 1
fi
# The pandas sandbox starts its child under bubblewrap with a seccomp filter (autotqa/executors/
# confine.py); without them pandas code is refused. Install them where this script can (root + apt).
if ! command -v bwrap >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap libseccomp2 >/dev/null
fi
if ! command -v bwrap >/dev/null 2>&1; then
  echo "warning: bubblewrap (bwrap) is not installed: pandas code will be refused (see README, Safety)" >&2
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/python -m pip install -q --upgrade pip setuptools wheel
# llama-cpp-python builds from source (5-10 min on 2 cores). pip keeps the built wheel in its own
# cache (~/.cache/pip/wheels), so later runs on the same machine reuse it instead of rebuilding.
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF}"
install_autotqa() {  # $1: extras, e.g. "local,dev"
  .venv/bin/python -m pip install -q -e ".[$1]"
}
# PostgreSQL and MariaDB binaries for the tests of database servers as sources: the tests start and stop
# their own servers in a temporary folder (tests/servers.py). Installed from Debian when missing and
# we are root; elsewhere those tests skip, saying what to install.
install_db_servers() {
  if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v mariadbd >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql mariadb-server >/dev/null
  fi
}
