"""Benchmark: condensed set vs full real data vs random real subsets, per bundled dataset.

For each dataset: a stratified 70/30 split (seed 0); ``condense`` on the training part (central
mode, the given ε); every default family of the task is trained on the released table and
scored on the test part, next to the full training table and the mean of 20 random real
subsets of the same size. Prints a table per dataset and writes ``OUT/bench_condense.csv``.

Run::

    .venv/bin/python -m fedcondense.simulations.benchmarks.bench_condense --out runs/bench \
        [--datasets breast_cancer,gbsg2] [--epsilon 1] [--rounds 100] [--models ...]
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from rich.console import Console  # noqa: E402
from rich.table import Table as RichTable  # noqa: E402

from ...protocol.condensation.condenser import CondenseConfig  # noqa: E402
from ...protocol.data.site_table import load_site_table  # noqa: E402
from ...protocol.families import families_for_task  # noqa: E402
from ...server.central_run import condense  # noqa: E402
from ..evaluation.datasets import DATASETS, load_dataset  # noqa: E402
from ..evaluation.site_splits import train_test_split_table  # noqa: E402
from ..evaluation.utility import as_table, compare, utility  # noqa: E402

SURVIVAL_ROWS, ROWS_PER_CLASS = 40, 10


def run_dataset(name: str, args: argparse.Namespace, console: Console) -> list[dict[str, object]]:
    df, schema = load_dataset(name)
    train_df, test_df = train_test_split_table(df, schema, test_size=0.3, seed=0)
    task = "survival" if schema.is_survival else "classification"
    rows = SURVIVAL_ROWS if schema.is_survival else ROWS_PER_CLASS
    models = tuple(m for m in args.models.get(task, ()) if m) or ()
    eval_models = families_for_task(task)
    with tempfile.TemporaryDirectory() as tmp:
        tr_path, te_path = Path(tmp) / "train.csv", Path(tmp) / "test.csv"
        train_df.to_csv(tr_path, index=False)
        test_df.to_csv(te_path, index=False)
        train = load_site_table(tr_path, schema, min_rows=2)
        test = load_site_table(te_path, schema, min_rows=2)
    out: list[dict[str, object]] = []
    for seed in range(args.seeds):
        cfg = CondenseConfig(epsilon=args.epsilon, delta=args.delta, rows=rows, models=models,
                             rounds=args.rounds, directions=args.directions, init=args.init,
                             seed=seed)
        t0 = time.perf_counter()
        res = condense(train, schema, cfg)
        wall = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:  # evaluate exactly the released table
            syn_path = Path(tmp) / "synthetic.csv"
            res.synthetic.decode().to_csv(syn_path, index=False)
            synt = as_table(load_site_table(syn_path, schema, min_rows=2))
        if seed == 0:  # references (full data, random subsets) once per dataset
            rows_out = compare(schema, eval_models, synt, as_table(train), as_table(test), rows,
                               n_subsets=args.subsets, seed=seed)
        else:
            rows_out = [{"family": fam, "source": "synthetic", "metric": met, "value": val}
                        for fam in eval_models
                        for met, val in utility(schema, fam, synt, as_table(test),
                                                as_table(train)).items()]
        for r in rows_out:
            out.append({"dataset": name, "seed": seed, "epsilon": args.epsilon,
                        "condense_models": ",".join(cfg.resolved_models(schema)),
                        "seconds": round(wall, 1), **r})
        console.print(f"[dim]{name} seed {seed}: condensed in {wall:.1f} s "
                      f"({res.function_evaluations / wall:.0f} fits/s)[/dim]")
    _print(name, out, console)
    return out


def _print(name: str, rows: list[dict[str, object]], console: Console) -> None:
    import numpy as np

    n_seeds = len({r["seed"] for r in rows})
    table = RichTable(title=f"{name}: test utility (condensed = mean ± sd over {n_seeds} seeds)")
    for col in ("family", "metric", "full real", "random subset", "condensed", "cond/full",
                "beats subset"):
        table.add_column(col, justify="right" if col != "family" else "left")
    fams = list(dict.fromkeys(str(r["family"]) for r in rows))
    metrics = list(dict.fromkeys(str(r["metric"]) for r in rows))
    for fam in fams:
        for met in metrics:
            pick = lambda src: [float(r["value"]) for r in rows  # noqa: E731
                                if r["family"] == fam and r["metric"] == met
                                and str(r["source"]).startswith(src)]
            full, sub, syn = pick("full_real"), pick("random_real"), pick("synthetic")
            if not full or not syn:
                continue
            ratio = np.mean(syn) / full[0] if full[0] else float("nan")
            higher_better = met != "integrated_brier"
            beats = "" if not sub else (
                "yes" if (np.mean(syn) > sub[0]) == higher_better else "no")
            table.add_row(fam, met, f"{full[0]:.3f}", f"{sub[0]:.3f}" if sub else "",
                          f"{np.mean(syn):.3f} ± {np.std(syn):.3f}", f"{ratio:.2f}", beats)
    console.print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--epsilon", type=float, default=1.0)
    ap.add_argument("--delta", type=float, default=1e-5)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--directions", type=int, default=64)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--init", default="dp", choices=("dp", "random"))
    ap.add_argument("--subsets", type=int, default=20)
    ap.add_argument("--classification-models", default="")
    ap.add_argument("--survival-models", default="")
    args = ap.parse_args()
    args.models = {"classification": tuple(args.classification_models.split(",")),
                   "survival": tuple(args.survival_models.split(","))}
    console = Console(width=130)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "bench_condense.csv"
    fields = ["dataset", "seed", "epsilon", "condense_models", "seconds", "family", "source",
              "metric", "value", "std"]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        every: list[dict[str, object]] = []
        for name in args.datasets.split(","):
            for r in run_dataset(name.strip(), args, console):
                writer.writerow({k: r.get(k, "") for k in fields})
                fh.flush()
                every.append(r)
    _summary(every, console)
    console.print(f"wrote {path}")


def _summary(rows: list[dict[str, object]], console: Console) -> None:
    """Mean condensed/full ratio and the number of cells beating the random subset (AUROC,
    C-index)."""
    import numpy as np

    ratios, beats, cells = [], 0, 0
    keys = {(r["dataset"], r["family"]) for r in rows if r["metric"] in ("auroc", "c_index")}
    for ds, fam in sorted(keys, key=str):
        sel = [r for r in rows if r["dataset"] == ds and r["family"] == fam
               and r["metric"] in ("auroc", "c_index")]
        syn = np.mean([float(r["value"]) for r in sel if r["source"] == "synthetic"])
        full = [float(r["value"]) for r in sel if r["source"] == "full_real"]
        sub = [float(r["value"]) for r in sel if str(r["source"]).startswith("random_real")]
        if full:
            ratios.append(syn / full[0])
        if sub:
            cells += 1
            beats += int(syn > sub[0])
    if ratios:
        console.print(f"[bold]mean condensed/full = {np.mean(ratios):.3f} over {len(ratios)} "
                      f"cells; condensed beats the random real subset in {beats}/{cells}[/bold]")


if __name__ == "__main__":
    main()
