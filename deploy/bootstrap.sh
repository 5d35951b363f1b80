#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv/ at the repo root.
# Idempotent: re-running is cheap when pyproject.toml has not changed.
# Usage: bash deploy/bootstrap.sh [--extras EXTRA]   (e.g. --extras test)
#   --extras baselines: leaves .venv as it is (creating it first if absent) and makes a SECOND
#   venv, .venv-baselines/, with smartnoise-synth (MST, AIM) and fedcondense (editable, no
#   dependencies: the MST/AIM driver needs only numpy and pandas). smartnoise-synth pins
#   opacus 0.14 and an old opendp, which clash with the main environment; `fedcondense
#   benchmark` finds .venv-baselines/bin/python by itself.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
extras="${2:-}"
[ "${1:-}" = "--extras" ] || extras=""
py=${PYTHON:-python3.11}
command -v "$py" >/dev/null 2>&1 || py=python3
export PIP_DISABLE_PIP_VERSION_CHECK=1
if [ "$extras" = "baselines" ]; then
  [ -x .venv/bin/python ] || bash "$root/deploy/bootstrap.sh"  # the main venv as usual, only when there is none
  stamp=".venv-baselines/.fedcondense-stamp"
  want="$(sha256sum pyproject.toml deploy/bootstrap.sh | sha256sum | cut -c1-16)-baselines"
  if [ -x .venv-baselines/bin/python ] && [ -f "$stamp" ] && grep -qx -- "$want" "$stamp"; then
    exit 0
  fi
  echo "[bootstrap] creating .venv-baselines with $($py --version)" >&2
  [ -x .venv-baselines/bin/python ] || "$py" -m venv .venv-baselines
  bpip() {
    .venv-baselines/bin/python -m pip install -q "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }
  }
  bpip "torch==2.13.0"  # CPU wheel first, or opacus would pull a CUDA torch
  bpip "smartnoise-synth==1.0.8" "pandas>=2.1"
  bpip --no-deps -e .
  .venv-baselines/bin/python -c "import snsynth, fedcondense.simulations.evaluation.marginal_baselines"
  echo "$want" > "$stamp"
  echo "[bootstrap] .venv-baselines ready (MST, AIM)" >&2
  exit 0
fi
stamp=".venv/.fedcondense-stamp"
want="$(sha256sum pyproject.toml deploy/bootstrap.sh | sha256sum | cut -c1-16)-${extras}"
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && grep -qx -- "$want" "$stamp"; then
  exit 0
fi
echo "[bootstrap] creating .venv with $($py --version)" >&2
[ -x .venv/bin/python ] || "$py" -m venv .venv
# torch first: the pinned version resolves to a CPU wheel; a plain requirement would pull CUDA.
pipinstall() {  # pip, minus the per-package notices about absent local mirrors
  .venv/bin/python -m pip install -q "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }
}
pipinstall "torch==2.13.0"
if [ -n "$extras" ]; then
  pipinstall -e ".[${extras}]"
else
  pipinstall -e .
fi
echo "$want" > "$stamp"
echo "[bootstrap] .venv ready" >&2
