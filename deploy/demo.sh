#!/usr/bin/env bash
# Set up .venv and run the main job: a federated, DP condensation of a bundled real dataset
# (Wisconsin breast cancer) across 3 simulated hospitals with Flower + SecAgg+, then compare
# models trained on the 20-row release with models trained on the real data. Results: runs/demo/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash deploy/bootstrap.sh
export FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
out=${1:-runs/demo}
fc=.venv/bin/fedcondense
$fc datasets export breast_cancer --out "$out/data" --test-size 0.3 --seed 0 >/dev/null
$fc simulate "$out/data/breast_cancer.train.csv" --schema "$out/data/breast_cancer.schema.json" \
    --sites 3 --partition iid --out "$out" --epsilon 1 --delta 1e-5 --rows-per-class 10 \
    --rounds 60 --noise distributed
$fc evaluate --synthetic "$out/synthetic.csv" --train "$out/data/breast_cancer.train.csv" \
    --test "$out/data/breast_cancer.test.csv" --schema "$out/data/breast_cancer.schema.json" \
    --out "$out/evaluation"
echo "results: $out/synthetic.csv $out/privacy.json $out/run.json $out/evaluation/evaluation.csv"
