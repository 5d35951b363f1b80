"""Benchmark: ``condense`` on a 5,000-row table, two families, 100 rounds, 64 directions.

Prints wall time, function evaluations (perturbed-set fits) per second and the time split.
Uses the first 5,000 rows of a bundled table (default flchain: survival, cox_ph +
random_survival_forest; or breast_cancer-style classification tables with
``--dataset`` and ``--models``).

Run::

    .venv/bin/python -m fedcondense.simulations.bench_condense_speed [--dataset flchain]
        [--models cox_ph,random_survival_forest] [--rounds 100] [--directions 64] [--backend auto]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from fedcondense.protocol.condenser import CondenseConfig, condense  # noqa: E402
from fedcondense.protocol.site_table import load_site_table  # noqa: E402
from fedcondense.simulations.datasets import load_dataset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="flchain")
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--models", default="cox_ph,random_survival_forest")
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


if __name__ == "__main__":
    main()
