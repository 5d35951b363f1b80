"""Binary batched logistic regression in numpy: the torch solver's CPU twin without torch.

Same problem, same algorithm as :mod:`.batched_logistic` for two classes present (standardise
each set by its own mean and population std, std ≤ 1e-12 → 1; L2 penalty ``1/(2C)·‖w‖²``
with a free intercept; Newton steps on a Cholesky factor with a 1e-12 ridge; batched Armijo
backtracking trying the full step first; stop when every step is below ``tol``). It exists so
that a CPU run of the default portfolio on a binary task does not import torch (~2 s of every
``condense`` start-up). Three or more classes, and CUDA, use the torch solver.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_STEPS = np.array([2.0 ** -k for k in range(0, 16)])
_ARMIJO = 1e-4
_QUADRATIC = 1e-9


@dataclass
class BinaryLogisticParams:
    """``mu, sd (B, 1, d)``, ``coef (B, d)``, ``intercept (B,)``, the two present
    ``classes``, output width ``n_classes`` and ``ok (B,)`` (converged, finite)."""

    mu: np.ndarray
    sd: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    classes: np.ndarray
    n_classes: int
    ok: np.ndarray


def _sigmoid(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def _objective(eta: np.ndarray, y: np.ndarray, w: np.ndarray, lam: float) -> np.ndarray:
    """``Σ_i softplus(η_i) - y_i η_i + λ/2 ‖w‖²`` for ``eta (..., B, m)``, ``w (..., B, q)``."""
    loss = (np.logaddexp(0.0, eta) - y * eta).sum(axis=-1)
    return loss + 0.5 * lam * (w[..., :-1] ** 2).sum(axis=-1)


def fit(X: np.ndarray, y: np.ndarray, n_classes: int, C: float = 1.0, max_iter: int = 100,
        tol: float = 1e-10) -> BinaryLogisticParams:
    """Fit B binary logistic regressions ``X (B, m, d)`` sharing labels ``y (m,)`` (exactly
    two distinct classes)."""
    X = np.asarray(X, dtype=np.float64)
    B, m, d = X.shape
    finite = np.isfinite(X).reshape(B, -1).all(axis=1)
    X = np.where(finite[:, None, None], X, 0.0)
    mu = X.mean(axis=1, keepdims=True)
    sd = X.std(axis=1, keepdims=True)
    sd = np.where(sd > 1e-12, sd, 1.0)
    y = np.asarray(y, dtype=np.int64)
    classes = np.unique(y)
    if classes.size != 2:
        raise ValueError("the numpy solver fits exactly two classes")
    target = (y == classes[1]).astype(np.float64)  # (m,)
    Xa = np.concatenate([(X - mu) / sd, np.ones((B, m, 1))], axis=2)  # (B, m, q)
    q = d + 1
    lam = 1.0 / float(C)
    reg = np.ones(q)
    reg[-1] = 0.0
    ridge = np.diag(lam * reg + 1e-12)
    Xt = np.ascontiguousarray(Xa.transpose(0, 2, 1))  # (B, q, m)
    W = np.zeros((B, q))
    active = np.ones(B, dtype=bool)
    broken = ~finite
    for _ in range(max_iter):
        eta = (Xa @ W[:, :, None])[:, :, 0]
        P = _sigmoid(eta)
        g = (Xt @ (P - target)[:, :, None])[:, :, 0] + lam * reg * W
        H = (Xt * (P * (1.0 - P))[:, None, :]) @ Xa + ridge
        try:
            delta = -np.linalg.solve(H, g[..., None])[..., 0]
        except np.linalg.LinAlgError:  # a singular system: solve set by set
            delta = np.full_like(g, np.nan)
            for b in range(B):
                try:
                    delta[b] = -np.linalg.solve(H[b], g[b])
                except np.linalg.LinAlgError:
                    pass
        broken |= ~np.isfinite(delta).all(axis=1)
        delta = np.where((active & ~broken)[:, None], delta, 0.0)
        f0 = _objective(eta, target, W, lam)
        slope = (g * delta).sum(axis=1)
        eta_d = (Xa @ delta[:, :, None])[:, :, 0]
        tiny = -slope <= _QUADRATIC * (1.0 + np.abs(f0))
        full = (_objective(eta + eta_d, target, W + delta, lam) <= f0 + _ARMIJO * slope) | tiny
        if full.all():
            W = W + delta
        else:
            s = _STEPS[1:, None, None]
            f_s = _objective(eta + s * eta_d, target, W + s * delta, lam)  # (S - 1, B)
            ok = np.concatenate([full[None], f_s <= f0 + _ARMIJO * _STEPS[1:, None] * slope])
            first = np.where(ok.any(axis=0), ok.argmax(axis=0), len(_STEPS) - 1)
            W = W + _STEPS[first][:, None] * delta
        active &= ~broken & (np.abs(delta).max(axis=1) > tol)
        if not active.any():
            break
    good = np.isfinite(W).all(axis=1) & ~broken & ~active
    return BinaryLogisticParams(mu, sd, W[:, :-1], W[:, -1], classes, int(n_classes), good)


def predict_proba(params: BinaryLogisticParams, X_real: np.ndarray) -> np.ndarray:
    """``(B, n, K)`` probabilities of real records ``X_real (n, d)`` (absent classes: 0)."""
    Z = (np.asarray(X_real, dtype=np.float64)[None] - params.mu) / params.sd
    p1 = _sigmoid(np.einsum("bnd,bd->bn", Z, params.coef) + params.intercept[:, None])
    out = np.zeros((*p1.shape, params.n_classes))
    out[:, :, params.classes[0]] = 1.0 - p1
    out[:, :, params.classes[1]] = p1
    return out
