#!/usr/bin/env bash
# Set up .venv and run the main job on a bundled real dataset; results land in runs/demo/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash deploy/bootstrap.sh
export FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
out=${1:-runs/demo}
fc=.venv/bin/fedcondense
$fc datasets export breast_cancer --out "$out/data"
$fc condense "$out/data/breast_cancer.csv" --schema "$out/data/breast_cancer.schema.json" \
    --out "$out" --epsilon 1 --delta 1e-5 --rows-per-class 10 --rounds 60 --seed 0
echo "results: $out/synthetic.csv $out/privacy.json $out/run.json"
