"""Benchmark: federation vs each site alone vs central on pooled data, at equal ε.

For each dataset: 70/30 split (seed 0); the training part is split over ``--sites`` sites with
``--partition`` (default ``dirichlet:0.5``). Three ways to condense, same ε, δ, rounds, P:

* **federated** — all sites through Flower (SecAgg+, distributed noise);
* **site k alone** — central condensation on site k's table only;
* **central pooled** — central condensation on the pooled training table (the upper bound
  a consortium could reach by pooling, which it cannot do).

Every default family of the task is trained on each release and scored on the test part.
Also prints the federated run's per-round wall time split into site compute and
Flower/SecAgg+ overhead. Writes ``OUT/bench_federation.csv``.

Run::

    .venv/bin/python -m fedcondense.simulations.benchmarks.bench_federation --out runs/fed \
        [--datasets breast_cancer,gbsg2] [--sites 5] [--rounds 100] [--engine ray]
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table as RichTable  # noqa: E402

from ...protocol.condensation.condenser import CondenseConfig  # noqa: E402
from ...protocol.data.site_table import load_site_table  # noqa: E402
from ...protocol.families import families_for_task  # noqa: E402
from ...server.central_run import condense  # noqa: E402
from ..evaluation.datasets import export_dataset  # noqa: E402
from ..evaluation.site_splits import split_sites, train_test_split_table  # noqa: E402
from ..evaluation.utility import as_table, utility  # noqa: E402
from ..runtime.federated_condense import run_federated  # noqa: E402


def _scores(schema, release: pd.DataFrame, work: Path, train, test) -> dict[str, float]:
    path = work / "release.csv"
    release.to_csv(path, index=False)
    syn = as_table(load_site_table(path, schema, min_rows=2))
    task = "survival" if schema.is_survival else "classification"
    metric = "c_index" if schema.is_survival else "auroc"
    return {f: utility(schema, f, syn, as_table(test), as_table(train))[metric]
            for f in families_for_task(task)}


def run_dataset(name: str, args: argparse.Namespace, console: Console) -> list[dict[str, object]]:
    work = args.out / name
    export_dataset(name, work)
    from ...protocol.data.schema import Schema

    schema_path = work / f"{name}.schema.json"
    schema = Schema.load(schema_path)
    df = pd.read_csv(work / f"{name}.csv")
    train_df, test_df = train_test_split_table(df, schema, test_size=0.3, seed=0)
    train_df.to_csv(work / "train.csv", index=False)
    test_df.to_csv(work / "test.csv", index=False)
    train, test = load_site_table(work / "train.csv", schema), load_site_table(work / "test.csv", schema)
    parts = split_sites(train_df, schema, args.sites, partition=args.partition, seed=0)
    files = []
    for i, part in enumerate(parts):
        files.append(work / f"site-{i + 1}.csv")
        part.to_csv(files[-1], index=False)
    cfg = CondenseConfig(epsilon=args.epsilon, rows=40 if schema.is_survival else 10,
                         rounds=args.rounds, directions=args.directions, seed=0)
    rows: list[dict[str, object]] = []
    fed = run_federated(files, schema_path, cfg, mode="distributed", secure=True,
                        backend=args.engine)
    for fam, v in _scores(schema, fed.orchestrator.synthetic.decode(), work, train, test).items():  # type: ignore[union-attr]
        rows.append({"dataset": name, "source": "federated", "family": fam, "value": v})
    transport = fed.report.rounds
    compute = [max([c for c in r["site_compute_s"].values() if c == c] or [0.0]) for r in transport]
    overhead = [r["overhead_s"] for r in transport]
    console.print(f"[dim]{name}: federated {fed.wall_seconds:.1f} s; per round median "
                  f"site compute {np.median(compute):.3f} s, Flower/SecAgg+ overhead "
                  f"{np.median(overhead):.3f} s (handshake {fed.report.handshake_s:.1f} s)[/dim]")
    for i, f in enumerate(files):
        alone = condense(load_site_table(f, schema, min_rows=2), schema, cfg)
        for fam, v in _scores(schema, alone.synthetic.decode(), work, train, test).items():
            rows.append({"dataset": name, "source": f"site-{i + 1} alone", "family": fam, "value": v})
    pooled = condense(train, schema, cfg)
    for fam, v in _scores(schema, pooled.synthetic.decode(), work, train, test).items():
        rows.append({"dataset": name, "source": "central pooled", "family": fam, "value": v})
    _print(name, rows, len(files), console)
    return rows


def _print(name: str, rows: list[dict[str, object]], n_sites: int, console: Console) -> None:
    fams = list(dict.fromkeys(str(r["family"]) for r in rows))
    val = {(str(r["source"]), str(r["family"])): float(r["value"]) for r in rows}  # type: ignore[arg-type]
    table = RichTable(title=f"{name}: federated vs single sites vs pooled (test utility)")
    for col in ("family", "federated", "best single site", "central pooled", "fed/pooled"):
        table.add_column(col, justify="left" if col == "family" else "right")
    for fam in fams:
        best = max(val[(f"site-{i + 1} alone", fam)] for i in range(n_sites))
        fed, pooled = val[("federated", fam)], val[("central pooled", fam)]
        table.add_row(fam, f"{fed:.3f}", f"{best:.3f}", f"{pooled:.3f}", f"{fed / pooled:.3f}")
    console.print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--datasets", default="breast_cancer,gbsg2")
    ap.add_argument("--sites", type=int, default=5)
    ap.add_argument("--partition", default="dirichlet:0.5")
    ap.add_argument("--epsilon", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--directions", type=int, default=64)
    ap.add_argument("--engine", default="ray", choices=("ray", "local"))
    args = ap.parse_args()
    console = Console()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "bench_federation.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["dataset", "source", "family", "value"])
        writer.writeheader()
        for name in args.datasets.split(","):
            for r in run_dataset(name.strip(), args, console):
                writer.writerow(r)
                fh.flush()
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
