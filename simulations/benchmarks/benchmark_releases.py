"""Produce the table a benchmark job scores: full data, a random real subset, a condensed set
or a DP synthetic-data baseline, all as a decoded table in the schema's columns.

The condensed set comes from :func:`fedcondense.server.central_run.condense` with the engine's
defaults except ε, δ, rounds, the condensing families and the seed, so improvements to the
defaults flow into the benchmark. Baselines release as many rows as the real training table
(generators sample for free); condensed sets and random subsets have the condensed size
(10 rows per class, 40 rows for survival — the CLI defaults).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ...protocol.condensation.condenser import CondenseConfig
from ...protocol.condensation.synthetic_set import DEFAULT_ROWS_PER_CLASS, DEFAULT_SURVIVAL_ROWS
from ...protocol.data.schema import Schema
from ...protocol.data.site_table import SiteTable, load_site_table
from ...server.central_run import condense
from ..evaluation.datasets import load_dataset
from ..evaluation.site_splits import train_test_split_table
from .benchmark_grid import PORTFOLIO, Job


@dataclass(frozen=True)
class Split:
    """A dataset's real training (members) and test (non-members) tables."""

    schema: Schema
    train: SiteTable
    test: SiteTable


def site_table_of(frame: pd.DataFrame, schema: Schema) -> SiteTable:
    """Validate and encode a table exactly as a released CSV would be read back."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "table.csv"
        frame.to_csv(path, index=False)
        return load_site_table(path, schema, min_rows=2, allow_single_class=True)


def load_split(dataset: str, seed: int = 0) -> Split:
    """The stratified 70/30 split of a bundled dataset (the same for every job)."""
    df, schema = load_dataset(dataset)
    train_df, test_df = train_test_split_table(df, schema, test_size=0.3, seed=seed)
    return Split(schema, site_table_of(train_df, schema), site_table_of(test_df, schema))


def synthetic_rows(schema: Schema) -> int:
    """Rows per class (classification) or rows in total (survival) of a condensed set."""
    return DEFAULT_SURVIVAL_ROWS if schema.is_survival else DEFAULT_ROWS_PER_CLASS


def random_real_subset(split: Split, seed: int) -> pd.DataFrame:
    """Real training rows, as many as a condensed set (per class where there are classes)."""
    rng = np.random.default_rng([seed, 0x5B5])
    frame, schema, k = split.train.frame, split.schema, synthetic_rows(split.schema)
    if schema.is_survival:
        idx = rng.choice(len(frame), size=min(k, len(frame)), replace=False)
    else:
        idx = np.concatenate([rng.choice(np.flatnonzero(split.train.y == c),
                                         size=min(k, int((split.train.y == c).sum())),
                                         replace=False)
                              for c in range(schema.n_classes)])
    return decoded_frame(frame.iloc[np.sort(idx)], schema)


def decoded_frame(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """A site table's typed frame with class indices turned back into class labels."""
    out = frame[schema.all_columns].copy()
    if not schema.is_survival:
        target = schema.task_columns[0]
        out[target] = [schema.task.classes[int(i)] for i in out[target]]  # type: ignore[union-attr]
    return out.reset_index(drop=True)


def condensed(split: Split, trained_with: str, epsilon: float, delta: float, rounds: int | None,
              seed: int) -> pd.DataFrame:
    """The condensed release for one condensing family (or the default portfolio)."""
    models = () if trained_with == PORTFOLIO else (trained_with,)
    kwargs = {} if rounds is None else {"rounds": rounds}
    cfg = CondenseConfig(epsilon=epsilon, delta=delta, rows=synthetic_rows(split.schema),
                         models=models, seed=seed, **kwargs)  # type: ignore[arg-type]
    return condense(split.train, split.schema, cfg).synthetic.decode()


def make_release(job: Job, split: Split, delta: float, rounds: int | None,
                 baselines_python: str | None = None) -> pd.DataFrame:
    """The decoded release of ``job``."""
    from ..evaluation import baselines

    eps = math.inf if job.epsilon in ("", "inf") else float(job.epsilon)
    if job.method == "full_real":
        return decoded_frame(split.train.frame, split.schema)
    if job.method == "random_subset":
        return random_real_subset(split, job.seed)
    if job.method == "condensed":
        return condensed(split, job.trained_with, eps, delta, rounds, job.seed)
    rng = np.random.default_rng([job.seed, 0xB45E])
    n = split.train.n_rows
    if job.method == "dp_gaussian":
        return baselines.dp_gaussian(split.train, split.schema, n, eps, delta, rng)
    return baselines.marginal_baseline(job.method, decoded_frame(split.train.frame, split.schema),
                                       split.schema, n, eps, delta, job.seed,
                                       python=baselines_python)
