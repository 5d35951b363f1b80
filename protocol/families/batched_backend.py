"""Glue between the families' numpy API and the torch batched solvers.

The families ``logistic_regression``, ``knn`` and ``cox_ph`` dispatch here when built with
``backend="batched"``: inputs arrive as float64 numpy arrays and are converted once; the
fitted parameters of the whole batch live in ``FittedBatch.extra["batched"]`` and
``models[b]`` is ``b`` (or ``None`` with a data-free ``fallback[b]``, exactly as the reference
backend does for sets it cannot fit: fewer than two classes, no events, non-finite inputs,
all columns constant, a failed solve).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from . import batched_cox, batched_knn, batched_logistic
from .base import (
    FitTargets,
    FittedBatch,
    class_frequencies,
    kaplan_meier_at,
)


def _tensor(a: np.ndarray, device: str | torch.device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64), device=torch.device(device))


def _batch(ok: np.ndarray, fallback_row: Any, params: Any, extra: dict[str, Any]) -> FittedBatch:
    models: list[Any] = [b if good else None for b, good in enumerate(ok)]
    fallback: list[np.ndarray | None] = [
        None if good else (fallback_row(b) if callable(fallback_row) else fallback_row)
        for b, good in enumerate(ok)
    ]
    return FittedBatch(models, fallback, {**extra, "batched": params})


def _apply_fallback(fitted: FittedBatch, out: np.ndarray) -> np.ndarray:
    for b, model in enumerate(fitted.models):
        if model is None:
            out[b] = fitted.fallback[b]
    return out


# ---------------------------------------------------------------------- classification
def fit_logistic(X: np.ndarray, targets: FitTargets, C: float, max_iter: int = 100,
                 device: str | torch.device = "cpu") -> FittedBatch:
    """Batched ``logistic_regression`` fit (see :mod:`.batched_logistic`)."""
    assert targets.labels is not None
    labels = np.asarray(targets.labels, dtype=np.int64)
    k = int(targets.n_classes)
    extra = {"n_classes": k}
    freq = class_frequencies(labels, k)
    if np.unique(labels).size < 2:  # scikit-learn refuses a single class
        return _batch(np.zeros(X.shape[0], bool), freq, None, extra)
    params = batched_logistic.fit(_tensor(X, device), torch.as_tensor(labels, device=device), k,
                                  C, max_iter=max_iter)
    return _batch(params.ok.cpu().numpy(), freq, params, extra)


def predict_logistic(fitted: FittedBatch, X_real: np.ndarray) -> np.ndarray:
    """``(B, n, K)`` probabilities of a batch from :func:`fit_logistic`."""
    params = fitted.extra["batched"]
    if params is None:
        out = np.zeros((fitted.size, len(X_real), int(fitted.extra["n_classes"])))
    else:
        probs = batched_logistic.predict_proba(params, _tensor(X_real, params.coef.device))
        out = probs.cpu().numpy()
    return _apply_fallback(fitted, out)


def fit_knn(X: np.ndarray, targets: FitTargets, n_neighbors: int,
            device: str | torch.device = "cpu") -> FittedBatch:
    """Batched ``knn`` fit (see :mod:`.batched_knn`)."""
    assert targets.labels is not None
    labels = np.asarray(targets.labels, dtype=np.int64)
    k = int(targets.n_classes)
    ok = np.isfinite(X).reshape(X.shape[0], -1).all(axis=1)
    Xc = np.where(ok[:, None, None], X, 0.0)
    params = batched_knn.fit(_tensor(Xc, device), torch.as_tensor(labels, device=device), k,
                             n_neighbors)
    return _batch(ok, class_frequencies(labels, k), params, {"n_classes": k})


def predict_knn(fitted: FittedBatch, X_real: np.ndarray) -> np.ndarray:
    """``(B, n, K)`` probabilities of a batch from :func:`fit_knn`."""
    params = fitted.extra["batched"]
    out = batched_knn.predict_proba(params, _tensor(X_real, params.Z.device)).cpu().numpy()
    return _apply_fallback(fitted, out)


# ---------------------------------------------------------------------- survival
def fit_cox(X: np.ndarray, targets: FitTargets, time: np.ndarray, penalizer: float,
            max_iter: int = 100, device: str | torch.device = "cpu") -> FittedBatch:
    """Batched ``cox_ph`` fit (see :mod:`.batched_cox`); Kaplan–Meier fallbacks."""
    assert targets.event is not None
    event = np.asarray(targets.event, dtype=np.int64)
    time = np.asarray(time, dtype=np.float64)
    horizons = np.asarray(targets.horizons, dtype=float)
    extra = {"horizons": horizons}

    def km(b: int) -> np.ndarray:
        return kaplan_meier_at(time[b], event, targets.horizons)

    if event.sum() == 0:
        return _batch(np.zeros(X.shape[0], bool), km, None, extra)
    params = batched_cox.fit(_tensor(X, device), _tensor(time, device),
                             _tensor(event, device), penalizer, max_iter=max_iter)
    return _batch(params.ok.cpu().numpy(), km, params, extra)


def predict_cox(fitted: FittedBatch, X_real: np.ndarray) -> np.ndarray:
    """``(B, n, H)`` survival probabilities of a batch from :func:`fit_cox`."""
    params = fitted.extra["batched"]
    horizons = fitted.extra["horizons"]
    if params is None:
        out = np.zeros((fitted.size, len(X_real), len(horizons)))
    else:
        dev = params.beta.device
        surv = batched_cox.predict_survival(params, _tensor(X_real, dev), _tensor(horizons, dev))
        out = surv.cpu().numpy()
    out = _apply_fallback(fitted, out)
    return np.clip(np.nan_to_num(out, nan=0.5), 0.0, 1.0)
