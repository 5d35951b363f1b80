"""Glue between ``gradient_boosting``'s batched API and the numpy kernel (:mod:`.batched_boosting`).

``gradient_boosting`` with ``backend="batched"`` boosts all sets of a batch at once. The batch
keeps the reference backend's rules: a set with non-finite values (or values beyond float32)
gets the data-free class frequencies; labels with fewer than two classes make every set fall
back (scikit-learn refuses them); a set the kernel cannot reproduce exactly (tied values,
see :mod:`.batched_boosting`) is fitted by scikit-learn itself, so every prediction equals the
reference backend's.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from . import batched_boosting
from .base import (
    FitTargets,
    FittedBatch,
    class_frequencies,
    kernel_predictions,
    library_predictions,
    single_threaded,
)

_SUPPORTED = {"n_estimators", "max_depth", "learning_rate", "random_state"}


def _int(v: Any, lo: int, hi: int) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and bool(lo <= v <= hi)


def supports(params: dict[str, Any], n_rows: int | None = None) -> bool:
    """Whether the kernel reproduces ``GradientBoostingClassifier(**params)``: integer
    ``n_estimators``, depth 1–6 and seed, a positive finite learning rate, no other
    parameter, and at most 128 rows (anything else runs the reference backend)."""
    rate = params.get("learning_rate")
    return (set(params) <= _SUPPORTED and _int(params.get("n_estimators"), 1, 10_000)
            and _int(params.get("max_depth"), 1, 6) and _int(params.get("random_state"), 0,
                                                             2**32 - 1)
            and isinstance(rate, (int, float)) and not isinstance(rate, bool)
            and 0.0 < float(rate) < np.inf and (n_rows is None or 2 <= n_rows <= 128))


def initial_raw(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """The prior's raw prediction, as scikit-learn computes it (``DummyClassifier``'s class
    frequencies clipped to ``[eps, 1 - eps]``; logit, or the symmetric multinomial logit)."""
    from scipy.special import logit
    from scipy.stats import gmean

    eps = np.finfo(np.float64).eps
    prior = np.clip(np.bincount(labels, minlength=n_classes) / len(labels), eps, 1 - eps)
    if n_classes == 2:
        return np.array([logit(prior[1])])
    return np.log(prior[None] / gmean(prior[None], axis=1)[:, None])[0]


def fit(X: np.ndarray, targets: FitTargets, params: dict[str, Any]) -> FittedBatch:
    """One boosted ensemble per set of ``X (B, m, d)``."""
    assert targets.labels is not None
    labels = np.asarray(targets.labels, dtype=np.int64)
    k = int(targets.n_classes)
    X = np.asarray(X, dtype=np.float64)
    with np.errstate(over="ignore"):
        ok = (np.isfinite(X) & np.isfinite(X.astype(np.float32))).reshape(len(X), -1).all(1)
    present = np.unique(labels)
    if len(present) < 2:
        ok[:] = False
    models: list[Any] = [None] * len(X)
    fallback: list[np.ndarray | None] = [None if good else class_frequencies(labels, k)
                                         for good in ok]
    where = np.flatnonzero(ok)
    batch, exact = None, {}
    if len(where):
        codes = np.searchsorted(present, labels)  # classes present, as scikit-learn encodes
        batch = batched_boosting.fit(
            X[where], codes, len(present), initial_raw(codes, len(present)),
            params["n_estimators"], float(params["learning_rate"]), params["max_depth"],
            params["random_state"])
        for j, b in enumerate(where):
            models[b] = j
            if batch.needs_reference[j]:
                exact[j] = _sklearn_boosting(X[b], labels, params)
    return FittedBatch(models, fallback, {"n_classes": k, "boosted": batch, "exact": exact,
                                          "classes": present})


def _sklearn_boosting(x: np.ndarray, labels: np.ndarray, params: dict[str, Any]) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier

    with single_threaded(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GradientBoostingClassifier(**params).fit(x, labels)


def _probabilities(raw: np.ndarray) -> np.ndarray:
    """Class probabilities of raw predictions ``(B, n, K')`` (expit, or scikit-learn's own
    softmax on C-contiguous rows, so that numpy's exp takes the same loop as there)."""
    from scipy.special import expit
    from sklearn.utils.extmath import softmax

    if raw.shape[2] == 1:
        p1 = expit(raw[:, :, 0])
        return np.stack([1.0 - p1, p1], axis=2)
    B, n, K = raw.shape
    return softmax(np.array(raw, dtype=np.float64, order="C").reshape(B * n, K)).reshape(B, n, K)


def predict(fitted: FittedBatch, X_real: np.ndarray) -> np.ndarray:
    """``(B, n, K)`` probabilities of a batch from :func:`fit`."""
    k = int(fitted.extra["n_classes"])
    X_real = np.asarray(X_real, dtype=np.float64)
    batch = fitted.extra["boosted"]
    proba = None
    if batch is not None:
        proba = np.zeros((batch.feature.shape[0], len(X_real), k))
        proba[:, :, fitted.extra["classes"]] = _probabilities(
            batched_boosting.predict_raw(batch, X_real))
        library_predictions(proba, fitted.extra["exact"], X_real)
    return kernel_predictions(fitted, proba, len(X_real), k)
