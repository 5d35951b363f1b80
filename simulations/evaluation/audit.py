"""Empirical privacy audit of a release, for data-governance boards.

Differential privacy is the guarantee; these checks are the evidence a board can read:

* **distance to closest record (DCR) attack** — members (training records) vs non-members
  (held-out records) scored by their distance to the nearest synthetic row; an attack AUC
  near 0.5 means the release is not closer to its training records than to fresh ones;
* **loss-threshold membership inference** — a model of each family is trained on the release
  and records are scored by their loss (members should not have lower loss);
* **copies** — exact copies of real training rows among the released rows (must be 0) and
  near copies (encoded distance below ``near_tol``);
* **subgroup utility** — the release's utility within each level of the schema's subgroup
  columns, since DP often hurts small groups most.

AUCs come with a 95 % bootstrap confidence interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from ...protocol.condensation.losses import classification_losses, survival_losses
from ...protocol.data.schema import Schema
from ...protocol.families import create_family
from ...protocol.families.base import FitTargets
from .utility import Table, utility


@dataclass(frozen=True)
class AttackResult:
    """An attack's AUC with a bootstrap 95 % interval (0.5 = no better than chance)."""

    name: str
    auc: float
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict[str, float | str]:
        return {"attack": self.name, "auc": self.auc, "ci_low": self.ci_low, "ci_high": self.ci_high}


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC AUC by the Mann–Whitney rank sum (ties count one half), fast enough to bootstrap."""
    from scipy.stats import rankdata

    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    ranks = rankdata(s)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def attack_auc(name: str, member_scores: np.ndarray, nonmember_scores: np.ndarray,
               n_boot: int = 200, seed: int = 0) -> AttackResult:
    """AUC of "higher score ⇒ member", with a percentile bootstrap interval (members and
    non-members resampled separately)."""
    y = np.r_[np.ones(len(member_scores)), np.zeros(len(nonmember_scores))]
    s = np.r_[member_scores, nonmember_scores]
    auc = float(roc_auc_score(y, s))
    rng = np.random.default_rng(seed)
    mi, ni = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    boots = [_auc(y[idx], s[idx]) for idx in
             (np.r_[rng.choice(mi, len(mi)), rng.choice(ni, len(ni))] for _ in range(n_boot))]
    lo, hi = np.percentile(boots, [2.5, 97.5]) if boots else (np.nan, np.nan)
    return AttackResult(name, auc, float(lo), float(hi))


def closest_distances(records: np.ndarray, synthetic: np.ndarray) -> np.ndarray:
    """Euclidean distance from each record to its nearest synthetic row (encoded space)."""
    d2 = ((records[:, None, :] - synthetic[None, :, :]) ** 2).sum(axis=2)
    return np.sqrt(d2.min(axis=1))


def dcr_attack(members: Table, nonmembers: Table, synthetic: Table,
               n_boot: int = 200) -> AttackResult:
    """Members closer to the release than non-members? (score = −distance)."""
    return attack_auc("distance_to_closest_record",
                      -closest_distances(members.X, synthetic.X),
                      -closest_distances(nonmembers.X, synthetic.X), n_boot=n_boot)


def _record_losses(schema: Schema, family: str, train: Table, records: Table) -> np.ndarray:
    fam = create_family(family, backend="reference")
    if schema.is_survival:
        targets = FitTargets(event=train.event, horizons=schema.task.horizons)  # type: ignore[union-attr]
        fitted = fam.fit_batch(train.X[None], targets, train.time[None])  # type: ignore[index]
        pred = fam.predict_batch(fitted, records.X)
        return survival_losses(pred, records.time, records.event, schema.task.horizons)[0]  # type: ignore[union-attr,arg-type]
    fitted = fam.fit_batch(train.X[None], FitTargets(labels=train.y, n_classes=schema.n_classes))
    return classification_losses(fam.predict_batch(fitted, records.X), records.y)[0]  # type: ignore[arg-type]


def loss_threshold_attack(schema: Schema, family: str, members: Table, nonmembers: Table,
                          synthetic: Table, n_boot: int = 200) -> AttackResult:
    """Members have lower loss under a model trained on the release? (score = −loss)."""
    return attack_auc(f"loss_threshold[{family}]",
                      -_record_losses(schema, family, synthetic, members),
                      -_record_losses(schema, family, synthetic, nonmembers), n_boot=n_boot)


def copy_counts(real: pd.DataFrame, released: pd.DataFrame, real_enc: np.ndarray,
                released_enc: np.ndarray, near_tol: float = 1e-3) -> dict[str, int | float]:
    """Exact copies (same values in every released column) and near copies (encoded)."""
    cols = list(released.columns)
    key = lambda df: df[cols].astype(str).agg("|".join, axis=1)  # noqa: E731
    exact = int(key(released).isin(set(key(real))).sum())
    dists = closest_distances(released_enc, real_enc)
    scale = np.sqrt(released_enc.shape[1])
    return {"exact_copies": exact, "near_copies": int((dists < near_tol * scale).sum()),
            "near_tolerance": near_tol * scale, "min_distance_to_real": float(dists.min())}


AGE_BANDS = 4


def subgroup_levels(schema: Schema, column: str, frame: pd.DataFrame) -> pd.Series:
    """Subgroup label of each row: the value of a categorical/binary column, or for a numeric
    column its band among ``AGE_BANDS`` equal-width bands of the public range (e.g. age)."""
    col = schema.column(column)
    if col.kind != "numeric":
        return frame[column].astype(str)
    edges = np.linspace(float(col.min), float(col.max), AGE_BANDS + 1)  # type: ignore[arg-type]
    fmt = (lambda v: f"{v:.0f}") if col.integer else (lambda v: f"{v:g}")  # noqa: E731
    names = [f"{fmt(edges[i])}–{fmt(edges[i + 1])}" for i in range(AGE_BANDS)]
    band = np.clip(np.searchsorted(edges, frame[column].to_numpy(dtype=float), side="right") - 1,
                   0, AGE_BANDS - 1)
    return pd.Series(np.asarray(names, dtype=object)[band], index=frame.index)


def subgroup_utility(schema: Schema, family: str, synthetic: Table, train: Table, test: Table,
                     test_frame: pd.DataFrame, min_rows: int = 10) -> list[dict[str, object]]:
    """Utility of the release vs the full training table within each subgroup level.

    Levels with fewer than ``min_rows`` test rows, one class only, or (survival) fewer than two
    events are skipped: a metric on them would be noise.
    """
    out: list[dict[str, object]] = []
    for col in schema.subgroups:
        levels = subgroup_levels(schema, col, test_frame.reset_index(drop=True))
        for level, idx in levels.groupby(levels).indices.items():
            sub = test.subset(np.asarray(idx))
            if len(idx) < min_rows or (not schema.is_survival and len(np.unique(sub.y)) < 2):
                continue
            if schema.is_survival and sub.event.sum() < 2:  # type: ignore[union-attr]
                continue
            for source, tab in (("synthetic", synthetic), ("full_real", train)):
                for metric, value in utility(schema, family, tab, sub, train).items():
                    out.append({"subgroup": col, "level": str(level), "n_test": len(idx),
                                "family": family, "source": source, "metric": metric,
                                "value": value})
    return out
