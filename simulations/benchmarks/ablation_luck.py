"""Ablation: how much of a release's utility, and of its seed-to-seed spread, each setting
decides — same tables, same splits, same seeds, one setting changed at a time.

Each *variant* is the condenser's default configuration with a few keywords changed
(:data:`VARIANTS`); ``no_noise`` (ε = ∞, non-private) shows how much of the gap to the full
data is privacy and how much is the method. Every release is scored with every family of the
task (train on the release, test on the real 30 % hold-out; AUROC or C-index).

Writes ``OUT/ablation.csv`` (one row per dataset, variant, seed and family; a re-run skips
releases already there), ``OUT/ablation.md`` (mean ± sd (min) per family, and the mean over
families) and ``OUT/ablation.png`` (mean ± sd per variant, a panel per dataset).

Run::

    .venv/bin/python -m fedcondense.simulations.benchmarks.ablation_luck --out runs/ablation \
        [--datasets heart_disease,breast_cancer] [--variants default,init_share_0.5] \
        [--seeds 6] [--epsilon 1] [--rounds 100]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from rich.progress import Progress  # noqa: E402

from ...protocol.condensation.condenser import CondenseConfig  # noqa: E402
from ...protocol.data.atomic_file import atomic_write_text  # noqa: E402
from ...protocol.families import families_for_task  # noqa: E402
from ...server.central_run import condense  # noqa: E402
from ..evaluation.datasets import DATASETS  # noqa: E402
from ..evaluation.utility import as_table, utility  # noqa: E402
from .benchmark_releases import Split, load_split, site_table_of, synthetic_rows  # noqa: E402

#: Variant name → keywords changed from the condenser's default configuration.
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "init_share_0.1": {"init_share": 0.1},
    "init_share_0.5": {"init_share": 0.5},
    "init_share_0.7": {"init_share": 0.7},
    "init_random": {"init": "random"},
    "rows_x2.5": {"rows_factor": 2.5},
    "rounds_x3": {"rounds_factor": 3},
    "no_noise": {"epsilon": math.inf},
}
COLUMNS = ["dataset", "variant", "seed", "family", "score"]


def variant_config(name: str, rows: int, epsilon: float, rounds: int | None,
                   seed: int) -> CondenseConfig:
    """The configuration of variant ``name`` for one release."""
    changes = dict(VARIANTS[name])
    base = CondenseConfig(epsilon=epsilon, rows=rows, seed=seed)
    if rounds is not None:
        base = replace(base, rounds=rounds)
    rows_factor = float(changes.pop("rows_factor", 1.0))
    rounds_factor = int(changes.pop("rounds_factor", 1))
    return replace(base, rows=int(round(base.rows * rows_factor)),
                   rounds=base.rounds * rounds_factor, **changes)


def run_release(dataset: str, split: Split, variant: str, seed: int, epsilon: float,
                rounds: int | None) -> list[dict[str, object]]:
    """Condense one release of ``variant`` and score it with every family of the task."""
    cfg = variant_config(variant, synthetic_rows(split.schema), epsilon, rounds, seed)
    # A data-free start charges nothing for the count; the benchmark declares the training size.
    res = condense(split.train, split.schema, cfg, capacity=split.train.n_rows)
    release = as_table(site_table_of(res.synthetic.decode(), split.schema))
    test, train = as_table(split.test), as_table(split.train)
    task = "survival" if split.schema.is_survival else "classification"
    rows: list[dict[str, object]] = []
    for fam in families_for_task(task):
        scores = utility(split.schema, fam, release, test, reference_train=train)
        rows.append({"dataset": dataset, "variant": variant, "seed": seed, "family": fam,
                     "score": scores.get("auroc", scores.get("c_index", math.nan))})
    return rows


def summary_table(df: pd.DataFrame) -> list[str]:
    """Markdown: per dataset, a row per variant with mean ± sd (min) per family."""
    lines: list[str] = []
    for ds, g in df.groupby("dataset", sort=False):
        fams = list(dict.fromkeys(g.family))
        header = ["variant", "seeds", *fams, "mean over families"]
        lines += [f"### {ds}", "", "| " + " | ".join(header) + " |",
                  "|" + "|".join("---" for _ in header) + "|"]
        for var, v in g.groupby("variant", sort=False):
            cells = []
            for f in fams:
                s = v[v.family == f].score
                cells.append(f"{s.mean():.3f} ± {s.std():.3f} ({s.min():.2f})" if len(s) > 1
                             else f"{s.mean():.3f}")
            lines.append("| " + " | ".join([str(var), str(v.seed.nunique()), *cells,
                                            f"{v.score.mean():.3f}"]) + " |")
        lines.append("")
    return lines


def figure(df: pd.DataFrame, path: Path) -> Path:
    """Mean ± sd over seeds per variant and family, one panel per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(df.dataset))
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.5), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        g = df[df.dataset == ds]
        variants, fams = list(dict.fromkeys(g.variant)), list(dict.fromkeys(g.family))
        width = 0.8 / len(variants)
        for i, var in enumerate(variants):
            stats = g[g.variant == var].groupby("family", sort=False).score.agg(["mean", "std"])
            stats = stats.reindex(fams)
            ax.bar(np.arange(len(fams)) + i * width, stats["mean"], width,
                   yerr=stats["std"].fillna(0), label=var, capsize=2)
        ax.set_xticks(np.arange(len(fams)) + 0.4 - width / 2)
        ax.set_xticklabels(fams, rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0.4, 1.0)
        ax.set_title(ds)
        ax.set_ylabel("AUROC / C-index on real hold-out (mean ± sd)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--datasets", default="heart_disease,breast_cancer")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--epsilon", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=None,
                    help="rounds of the default configuration (default: the condenser's)")
    args = ap.parse_args(argv)
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for what, names, known in (("--datasets", datasets, DATASETS), ("--variants", variants, VARIANTS)):
        unknown = [n for n in names if n not in known]
        if unknown:
            print(f"error: {what}: unknown {', '.join(unknown)}; choose from "
                  f"{', '.join(known)}.", file=sys.stderr)
            return 2
    if args.seeds < 1:
        print("error: --seeds must be at least 1.", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    csv_path = args.out / "ablation.csv"
    done = pd.read_csv(csv_path) if csv_path.exists() else pd.DataFrame(columns=COLUMNS)
    have = set(zip(done.dataset, done.variant, done.seed))
    todo = [(d, v, s) for d in datasets for v in variants for s in range(args.seeds)
            if (d, v, s) not in have]
    splits: dict[str, Split] = {}
    with Progress() as bar:
        task = bar.add_task("releases", total=len(todo))
        for ds, var, seed in todo:
            if ds not in splits:
                splits[ds] = load_split(ds)
            rows = pd.DataFrame(run_release(ds, splits[ds], var, seed, args.epsilon, args.rounds),
                                columns=COLUMNS)
            rows.to_csv(csv_path, mode="a", header=not csv_path.exists(), index=False)
            bar.advance(task)
    df = pd.read_csv(csv_path)
    df = df[df.dataset.isin(datasets) & df.variant.isin(variants)]
    rounds = "condenser default rounds" if args.rounds is None else f"{args.rounds} rounds"
    md = [f"# Ablation (ε = {args.epsilon}; {rounds})",
          "", "Mean ± sd (min) over seeds of the score of each family trained on the release "
          "and tested on the real hold-out. `no_noise` is non-private (ε = ∞).", ""]
    atomic_write_text(args.out / "ablation.md", "\n".join(md + summary_table(df)))
    figure(df, args.out / "ablation.png")
    print("\n".join(summary_table(df)))
    print(f"wrote {csv_path}, {args.out / 'ablation.md'}, {args.out / 'ablation.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
