"""Utility of a table for clinical models: train on it, test on real held-out records.

* classification: AUROC (binary: probability of the second class; multi-class: one-vs-rest
  macro average);
* survival: Harrell's C-index of the risk ``1 − mean_h Ŝ(h | x)`` and the integrated Brier
  score over the schema's horizons (scikit-survival, IPCW with the training censoring).

:func:`utility` fits a family on one encoded table and scores it on another;
:func:`compare` produces the train-on-synthetic / train-on-real (and random real subset)
rows that ``fedcondense evaluate`` and the benchmarks print.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score

from ...protocol.data.schema import Schema
from ...protocol.families import create_family
from ...protocol.families.base import FitTargets


@dataclass(frozen=True)
class Table:
    """An encoded table: features plus targets (``y`` or ``time``/``event``)."""

    X: np.ndarray
    y: np.ndarray | None = None
    time: np.ndarray | None = None
    event: np.ndarray | None = None

    def subset(self, idx: np.ndarray) -> "Table":
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return Table(self.X[idx], pick(self.y), pick(self.time), pick(self.event))


def as_table(obj: object) -> Table:
    return Table(obj.X, getattr(obj, "y", None), getattr(obj, "time", None),  # type: ignore[attr-defined]
                 getattr(obj, "event", None))


def metric_names(schema: Schema) -> tuple[str, ...]:
    return ("c_index", "integrated_brier") if schema.is_survival else ("auroc",)


def _targets(schema: Schema, train: Table) -> FitTargets:
    if schema.is_survival:
        return FitTargets(event=train.event, horizons=schema.task.horizons)  # type: ignore[union-attr]
    return FitTargets(labels=train.y, n_classes=schema.n_classes)


def _survival_scores(schema: Schema, train: Table, test: Table, surv: np.ndarray) -> dict[str, float]:
    from sksurv.metrics import concordance_index_censored, integrated_brier_score
    from sksurv.util import Surv

    risk = 1.0 - surv.mean(axis=1)
    ev = test.event.astype(bool)  # type: ignore[union-attr]
    cidx = concordance_index_censored(ev, test.time, risk)[0]
    horizons = np.asarray(schema.task.horizons, dtype=float)  # type: ignore[union-attr]
    ok = (horizons > test.time.min()) & (horizons < test.time.max())  # type: ignore[union-attr]
    ok &= horizons < train.time.max()  # type: ignore[union-attr]
    ibs = float("nan")
    if ok.sum() >= 2:
        y_train = Surv.from_arrays(train.event.astype(bool), train.time)  # type: ignore[union-attr]
        # The censoring Kaplan-Meier of ``train`` is evaluated at every test time, and it is
        # undefined after the last training time. Capping later test times there changes no
        # term of the score: every horizon kept lies below it, so such a record is still
        # "alive at every horizon", whose weight 1/G(horizon) does not depend on its time.
        t_test = np.minimum(test.time, train.time.max())  # type: ignore[union-attr, type-var]
        y_test = Surv.from_arrays(ev, t_test)
        ibs = float(integrated_brier_score(y_train, y_test, surv[:, ok], horizons[ok]))
    return {"c_index": float(cidx), "integrated_brier": ibs}


def utility(schema: Schema, family: str, train: Table, test: Table,
            reference_train: Table | None = None) -> dict[str, float]:
    """Fit ``family`` on ``train`` and score on ``test``.

    ``reference_train`` (the real training table) supplies the censoring distribution for
    the survival IPCW weights when ``train`` is synthetic.
    """
    fam = create_family(family, backend="reference")
    time = None if train.time is None else train.time[None]
    fitted = fam.fit_batch(train.X[None], _targets(schema, train), time)
    pred = fam.predict_batch(fitted, test.X)[0]
    if schema.is_survival:
        return _survival_scores(schema, reference_train or train, test, pred)
    if schema.n_classes == 2:
        return {"auroc": float(roc_auc_score(test.y, pred[:, 1]))}
    p = pred / np.clip(pred.sum(axis=1, keepdims=True), 1e-12, None)
    return {"auroc": float(roc_auc_score(test.y, p, multi_class="ovr", average="macro",
                                         labels=list(range(schema.n_classes))))}


def random_subset(schema: Schema, train: Table, rows: int, rng: np.random.Generator) -> Table:
    """A random real subset of the synthetic set's size: ``rows`` per class (classification,
    balanced where the class has enough rows) or ``rows`` in total (survival)."""
    if schema.is_survival:
        idx = rng.choice(len(train.X), size=min(rows, len(train.X)), replace=False)
        return train.subset(idx)
    parts = []
    for c in range(schema.n_classes):
        members = np.flatnonzero(train.y == c)
        parts.append(rng.choice(members, size=min(rows, len(members)), replace=False))
    return train.subset(np.concatenate(parts))


def compare(schema: Schema, families: list[str], synthetic: Table, train: Table, test: Table,
            rows: int, n_subsets: int = 20, seed: int = 0) -> list[dict[str, object]]:
    """Rows of (family, source, metric, value) for synthetic, full real and random subsets."""
    out: list[dict[str, object]] = []
    rng = np.random.default_rng(seed)
    for fam in families:
        sources = {"synthetic": utility(schema, fam, synthetic, test, train),
                   "full_real": utility(schema, fam, train, test, train)}
        subs = [utility(schema, fam, random_subset(schema, train, rows, rng), test, train)
                for _ in range(n_subsets)]
        for source, scores in sources.items():
            for metric, value in scores.items():
                out.append({"family": fam, "source": source, "metric": metric, "value": value})
        if subs:
            for metric in subs[0]:
                vals = np.array([s[metric] for s in subs], dtype=float)
                out.append({"family": fam, "source": f"random_real_{n_subsets}x_mean",
                            "metric": metric, "value": float(np.nanmean(vals)),
                            "std": float(np.nanstd(vals))})
    return out
