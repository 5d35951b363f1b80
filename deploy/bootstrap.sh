#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv/ at the repo root.
# Idempotent: re-running is cheap when pyproject.toml has not changed.
# Usage: bash deploy/bootstrap.sh [--extras EXTRA]   (e.g. --extras test)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
extras="${2:-}"
[ "${1:-}" = "--extras" ] || extras=""
py=${PYTHON:-python3.11}
command -v "$py" >/dev/null 2>&1 || py=python3
stamp=".venv/.fedcondense-stamp"
want="$(sha256sum pyproject.toml deploy/bootstrap.sh | sha256sum | cut -c1-16)-${extras}"
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && grep -qx -- "$want" "$stamp"; then
  exit 0
fi
echo "[bootstrap] creating .venv with $($py --version)" >&2
[ -x .venv/bin/python ] || "$py" -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1
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
