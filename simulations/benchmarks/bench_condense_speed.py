"""Benchmark: ``condense`` on a 5,000-row table, two families, 100 rounds, 64 directions.

Prints wall time, function evaluations (perturbed-set fits) per second, the time split and
whether the run met the 5-minute target. Uses the first 5,000 rows of a bundled table:
by default ``support2_mortality`` with the default classification portfolio
(logistic_regression + decision_tree); ``--dataset flchain --models
cox_ph,random_survival_forest`` gives the survival pair (the 100-tree random survival forest
is fitted 128 times per round by scikit-survival and dominates: see the closing notes).

Run::

    .venv/bin/python -m fedcondense.simulations.benchmarks.bench_condense_speed [--dataset support2_mortality]
        [--models logistic_regression,decision_tree] [--rounds 100] [--directions 64] [--backend auto]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from ...protocol.condensation.condenser import CondenseConfig  # noqa: E402
from ...protocol.data.site_table import load_site_table  # noqa: E402
from ...server.central_run import condense  # noqa: E402
from ..evaluation.datasets import load_dataset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="support2_mortality")
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--models", default="logistic_regression,decision_tree")
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--directions", type=int, default=64)
    ap.add_argument("--backend", default="auto")
    args = ap.parse_args()
    df, schema = load_dataset(args.dataset)
    df = df.iloc[: args.rows]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "site.csv"
        df.to_csv(path, index=False)
        table = load_site_table(path, schema)
    cfg = CondenseConfig(epsilon=1.0, rows=40 if schema.is_survival else 10,
                         models=tuple(args.models.split(",")), rounds=args.rounds,
                         directions=args.directions, backend=args.backend, seed=0)
    t0 = time.perf_counter()
    res = condense(table, schema, cfg)
    wall = time.perf_counter() - t0
    print(f"dataset={args.dataset} rows={table.n_rows} models={args.models} backend={args.backend} "
          f"rounds={args.rounds} P={args.directions}")
    print(f"wall {wall:.1f} s | {res.function_evaluations} fits | "
          f"{res.function_evaluations / wall:.0f} function evaluations/s")
    print("split (s): " + ", ".join(f"{k} {v:.1f}" for k, v in res.timings.items()))
    verdict = "meets" if wall <= 300 * args.rounds / 100 else "MISSES"
    print(f"target (100 rounds within 300 s on 2 cores, pro rata): {verdict}")


if __name__ == "__main__":
    main()
