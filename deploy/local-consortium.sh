#!/usr/bin/env bash
# One federated fedcondense run on loopback with real processes: consortium PKI, a TLS
# SuperLink with SuperNode authentication, N site daemons (`fedcondense site start`), a job
# submitted with `flwr run deploy/app`. Shows that an unregistered node key is refused.
# Usage: bash deploy/local-consortium.sh --out DIR [--sites N] [--rounds T] [--epsilon E] ...
# Writes DIR/synthetic.csv, DIR/privacy.json (per_site), DIR/run.json and DIR/logs/.
# Everything it starts is stopped when it ends, also on failure or Ctrl-C.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ -x .venv/bin/python ] || bash deploy/bootstrap.sh
export FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
# The driver stops what it started on any exit; the trap covers signals to this script.
.venv/bin/python -m fedcondense.deploy.consortium "$@" &
driver=$!
trap 'kill -TERM "$driver" 2>/dev/null; wait "$driver" 2>/dev/null' INT TERM HUP
wait "$driver"
