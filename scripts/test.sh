#!/usr/bin/env bash
# Run the test suite in a fresh virtual environment (.venv by default).
# The Slurm tests need the local one-node cluster of scripts/slurm-local.sh,
# which needs root and apt; without them those tests are skipped with a reason.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
venv=${HPSEARCH_VENV:-.venv}
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
"$venv/bin/python" -m pip install -q -e '.[test]'
if [ "${HPSEARCH_SKIP_SLURM:-0}" != 1 ]; then
  bash scripts/slurm-local.sh start || echo "scripts/test.sh: local Slurm not started; Slurm tests will be skipped" >&2
fi
# The tests run in parallel worker processes (pytest-xdist; the rules for tests are in tests/conftest.py):
# most of them wait on runs, schedulers and services, so 4 workers overlap the waits on 2 cores.
# HPSEARCH_TEST_WORKERS=0 (or -n 0 among the arguments) runs them all in one process.
exec "$venv/bin/python" -m pytest -n "${HPSEARCH_TEST_WORKERS:-4}" --dist loadgroup "$@"
