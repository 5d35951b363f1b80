"""Score one release: utility for every evaluation family and the privacy audit, as CSV rows.

Utility is train-on-release / test-on-real (AUROC; C-index and integrated Brier score for
survival). The audit uses the training records as members and the test records as
non-members: a loss-threshold membership-inference attack per evaluation family, a
distance-to-closest-record attack, and exact / near copies of real training rows; utility by
subgroup (the schema's subgroup columns) for the first evaluation family.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from ..evaluation.audit import (
    AttackResult,
    copy_counts,
    dcr_attack,
    loss_threshold_attack,
    subgroup_utility,
)
from ..evaluation.utility import as_table, metric_names, utility
from .benchmark_grid import Job
from .benchmark_releases import Split, site_table_of

AUDIT_BOOTSTRAP = 100


def _nan_attack(name: str) -> AttackResult:
    return AttackResult(name, math.nan, math.nan, math.nan)


def score_release(job: Job, release: pd.DataFrame, split: Split, eval_families: list[str],
                  seconds: float) -> list[dict[str, object]]:
    """One row per evaluation family for ``job``'s decoded ``release``."""
    schema = split.schema
    rel = site_table_of(release, schema)
    rel_t, train_t, test_t = as_table(rel), as_table(split.train), as_table(split.test)
    dcr = dcr_attack(train_t, test_t, rel_t)
    copies = copy_counts(split.train.frame.astype(str), rel.frame.astype(str), split.train.X, rel.X)
    primary = metric_names(schema)[0]
    base = {"dataset": job.dataset, "task": "survival" if schema.is_survival else "classification",
            "method": job.method, "trained_with": job.trained_with, "epsilon": job.epsilon,
            "seed": job.seed, "metric": primary, "dcr_auc": dcr.auc, "dcr_ci_low": dcr.ci_low,
            "dcr_ci_high": dcr.ci_high, "exact_copies": copies["exact_copies"],
            "near_copies": copies["near_copies"], "release_rows": rel.n_rows}
    rows = []
    for fam in eval_families:
        t0, status = time.perf_counter(), "ok"
        try:
            scores = utility(schema, fam, rel_t, test_t, train_t)
        except Exception as exc:  # a family that cannot fit this release (e.g. degenerate)
            scores, status = {}, f"utility failed: {type(exc).__name__}"
        try:
            mia = loss_threshold_attack(schema, fam, train_t, test_t, rel_t,
                                        n_boot=AUDIT_BOOTSTRAP)
        except Exception as exc:
            mia = _nan_attack(fam)
            status = status if status != "ok" else f"audit failed: {type(exc).__name__}"
        rows.append({**base, "eval_family": fam, "score": scores.get(primary, math.nan),
                     "integrated_brier": scores.get("integrated_brier", ""),
                     "mia_auc": mia.auc, "mia_ci_low": mia.ci_low, "mia_ci_high": mia.ci_high,
                     "seconds": round(seconds + time.perf_counter() - t0, 2), "status": status})
    return rows


def score_subgroups(job: Job, release: pd.DataFrame, split: Split,
                    family: str) -> list[dict[str, object]]:
    """Utility of the release and of the full real table within each subgroup level of the
    schema's subgroup columns, for one evaluation family (empty when the schema marks none)."""
    if not split.schema.subgroups:
        return []
    rel = as_table(site_table_of(release, split.schema))
    rows = subgroup_utility(split.schema, family, rel, as_table(split.train),
                            as_table(split.test), split.test.frame)
    primary = metric_names(split.schema)[0]
    return [{"dataset": job.dataset, "method": job.method, "trained_with": job.trained_with,
             "epsilon": job.epsilon, "seed": job.seed, **r} for r in rows if r["metric"] == primary]


def summary_line(rows: list[dict[str, object]]) -> str:
    """Short text for the progress bar: mean score and DCR AUC of the job just finished."""
    vals = [float(r["score"]) for r in rows if not _isnan(r["score"])]  # type: ignore[arg-type]
    score = f"{np.mean(vals):.3f}" if vals else "n/a"
    return f"{rows[0]['metric']} {score}, DCR AUC {float(rows[0]['dcr_auc']):.2f}" if rows else ""  # type: ignore[arg-type]


def _isnan(v: object) -> bool:
    return isinstance(v, float) and math.isnan(v)
