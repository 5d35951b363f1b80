"""Glue between the tree families' batched API and the numpy CART kernel (:mod:`.batched_tree`).

``decision_tree`` with ``backend="batched"`` grows all sets of a batch at once (sets of at most
64 rows with the row-mask kernel :mod:`.batched_tree_bits`, larger ones with
:mod:`.batched_tree`; both grow the same trees). The batch
keeps the reference backend's rules: a set with non-finite values gets the data-free class
frequencies; a set the kernel cannot reproduce exactly (a feature constant within a node it
splits, see :mod:`.batched_tree`) is fitted by scikit-learn itself, so every prediction
equals the reference backend's.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from . import batched_tree, batched_tree_bits
from .base import (
    FitTargets,
    FittedBatch,
    class_frequencies,
    kernel_predictions,
    library_predictions,
)


def supports(params: dict[str, Any], n_rows: int | None = None) -> bool:
    """Whether the kernel reproduces ``DecisionTreeClassifier(**params)`` (integer depth
    and seed; anything else runs the reference backend)."""
    depth, seed = params.get("max_depth"), params.get("random_state")
    return (isinstance(depth, int) and not isinstance(depth, bool) and 1 <= depth <= 12
            and isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0)


def fit(X: np.ndarray, targets: FitTargets, params: dict[str, Any]) -> FittedBatch:
    """One depth-limited Gini tree per set of ``X (B, m, d)``."""
    assert targets.labels is not None
    labels = np.asarray(targets.labels, dtype=np.int64)
    k = int(targets.n_classes)
    X = np.asarray(X, dtype=np.float64)
    ok = np.isfinite(X).reshape(X.shape[0], -1).all(axis=1)
    models: list[Any] = [None] * X.shape[0]
    fallback: list[np.ndarray | None] = [None if good else class_frequencies(labels, k)
                                         for good in ok]
    where = np.flatnonzero(ok)
    trees = None
    exact: dict[int, Any] = {}
    if len(where):
        kernel = batched_tree_bits if X.shape[1] <= batched_tree_bits.MAX_ROWS else batched_tree
        trees = kernel.fit(X[where], labels, k, params["max_depth"], params["random_state"])
        for j, b in enumerate(where):
            models[b] = j
            if trees.needs_reference[j]:
                exact[j] = _sklearn_tree(X[b], labels, params)
    return FittedBatch(models, fallback, {"n_classes": k, "batched": trees, "exact": exact})


def _sklearn_tree(x: np.ndarray, labels: np.ndarray, params: dict[str, Any]) -> Any:
    from sklearn.tree import DecisionTreeClassifier

    from .base import single_threaded

    with single_threaded(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DecisionTreeClassifier(**params).fit(x, labels)


def predict(fitted: FittedBatch, X_real: np.ndarray) -> np.ndarray:
    """``(B, n, K)`` probabilities of a batch from :func:`fit`."""
    X_real = np.asarray(X_real, dtype=np.float64)
    trees = fitted.extra["batched"]
    proba = None
    if trees is not None:
        proba = batched_tree.predict_proba(trees, X_real)
        library_predictions(proba, fitted.extra["exact"], X_real)
    return kernel_predictions(fitted, proba, len(X_real), int(fitted.extra["n_classes"]))
