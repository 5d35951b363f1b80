#!/usr/bin/env bash
# Set up .venv (with test extras) and run the whole test suite.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash deploy/bootstrap.sh --extras test
export FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
export FLWR_HOME="${FLWR_HOME:-$(mktemp -d)}"
exec .venv/bin/python -m pytest -q "$@"
