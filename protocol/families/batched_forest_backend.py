"""Glue between ``random_forest``'s batched API and the numpy forest kernel (:mod:`.batched_forest`).

``random_forest`` with ``backend="batched"`` grows every set's forest at once. The batch keeps
the reference backend's rules: a set with non-finite values (or values beyond float32's
range, which scikit-learn rejects) gets the data-free class frequencies; every other set's
probabilities equal scikit-learn's ``RandomForestClassifier(n_jobs=1, **params).predict_proba``
(the kernel reproduces its seeds, bootstrap samples, feature draws, splits and leaf values).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import batched_forest
from .base import FitTargets, FittedBatch, class_frequencies, kernel_predictions


def _int(value: Any, low: int) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) \
        and int(value) >= low


def supports(params: dict[str, Any], n_rows: int | None = None) -> bool:
    """Whether the kernel reproduces ``RandomForestClassifier(**params)``: integer
    ``n_estimators`` ≥ 1 and ``random_state`` ≥ 0, ``max_depth`` None or an integer ≥ 1, and
    no other parameter (anything else runs the reference backend)."""
    depth = params.get("max_depth")
    return (set(params) <= {"n_estimators", "random_state", "max_depth"}
            and _int(params.get("n_estimators"), 1) and _int(params.get("random_state"), 0)
            and (depth is None or _int(depth, 1)))


def fit(X: np.ndarray, targets: FitTargets, params: dict[str, Any]) -> FittedBatch:
    """One forest per set of ``X (B, m, d)``."""
    assert targets.labels is not None
    labels = np.asarray(targets.labels, dtype=np.int64)
    k = int(targets.n_classes)
    X = np.asarray(X, dtype=np.float64)
    with np.errstate(over="ignore"):  # scikit-learn rejects values beyond float32's range too
        X32 = np.asarray(X, dtype=np.float32)
    ok = np.asarray(np.isfinite(X32).reshape(X.shape[0], -1).all(axis=1))
    models: list[Any] = [None] * X.shape[0]
    fallback: list[np.ndarray | None] = [None if good else class_frequencies(labels, k)
                                         for good in ok]
    where = np.flatnonzero(ok)
    forests = None
    if len(where):
        depth = params["max_depth"]
        forests = batched_forest.fit(X[where], labels, k, int(params["n_estimators"]),
                                     int(params["random_state"]),
                                     None if depth is None else int(depth))
        for j, b in enumerate(where):
            models[b] = j
    return FittedBatch(models, fallback, {"n_classes": k, "forest": forests})


def predict(fitted: FittedBatch, X_real: np.ndarray) -> np.ndarray:
    """``(B, n, K)`` probabilities of a batch from :func:`fit`."""
    X_real = np.asarray(X_real, dtype=np.float64)
    forests = fitted.extra["forest"]
    proba = None if forests is None else batched_forest.predict_proba(forests, X_real)
    return kernel_predictions(fitted, proba, len(X_real), int(fitted.extra["n_classes"]))
