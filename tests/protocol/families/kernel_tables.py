"""A real table for the kernels' conformance tests: perturbed copies of 20 breast-cancer rows."""

from __future__ import annotations

import numpy as np

from fedcondense.protocol.families.base import FitTargets


def breast_cancer_sets(n_sets: int, scale: float, paired: bool = False
                       ) -> tuple[np.ndarray, FitTargets, np.ndarray]:
    """``(sets (n_sets, 20, 30), targets, real records (569, 30))``, all standardised.

    Ten rows per class, perturbed by ``scale`` times Gaussian noise — independently, or as
    ± copies of ``n_sets / 2`` directions (``paired``, as a condensation round fits them).
    """
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    rng = np.random.default_rng(1)
    X, y = data.data, data.target
    rows = np.concatenate([rng.choice(np.flatnonzero(y == c), 10, replace=False) for c in (0, 1)])
    base = (X[rows] - X.mean(0)) / X.std(0)
    if paired:
        u = rng.normal(size=(n_sets // 2, *base.shape))
        sets = np.concatenate([base + scale * u, base - scale * u])
    else:
        sets = base[None] + scale * rng.normal(size=(n_sets, *base.shape))
    return sets, FitTargets(labels=y[rows], n_classes=2), (X - X.mean(0)) / X.std(0)
