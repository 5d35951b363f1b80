"""Batched L2 logistic regression: B independent problems solved at once by Newton's method.

Matches the reference family ``logistic_regression``: standardise each training set by its own
mean and population std (std 0 → 1), then scikit-learn ``LogisticRegression(C=C)`` whose
objective is

.. math::  \\sum_i \\text{logloss}_i(w, b) + \\frac{1}{2C} \\lVert w \\rVert^2

with an unpenalised intercept. Two classes present use one coefficient vector and a sigmoid
(``predict_proba`` = ``[1 - p, p]``); three or more use the multinomial softmax with one
coefficient vector per present class. Classes absent from the (fixed) labels get probability
0, as in the reference, which maps ``classes_`` into the K columns. The multinomial intercepts
are only defined up to a common shift; the extra term ``0.5 (Σ_k b_k)²`` fixes that gauge
without changing any prediction, which keeps the Hessian invertible.

Newton steps use a batched Armijo backtracking line search: the full step is tried first, and
only in iterations where some problem's full step fails are all shorter step lengths evaluated
at once. The iteration is monotone even on linearly separable sets, where the L2 penalty keeps
the optimum finite. Everything runs in float64 on the device of the inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

_STEPS = torch.tensor([2.0 ** -k for k in range(0, 16)], dtype=torch.float64)
_ARMIJO = 1e-4
_QUADRATIC = 1e-9  # Newton decrement below which full steps are taken (quadratic region)


@dataclass
class LogisticParams:
    """Fitted parameters of a batch of B logistic regressions.

    Attributes
    ----------
    mu, sd:
        ``(B, 1, d)`` standardisation of each training set.
    coef:
        ``(B, d, J)`` coefficients in the standardised space; ``J = 1`` (binary) or the number
        of present classes (multinomial).
    intercept:
        ``(B, J)`` intercepts.
    classes:
        ``(K',)`` long tensor of the classes present in the labels (the columns of ``coef``).
    n_classes:
        Number of output columns K.
    ok:
        ``(B,)`` bool: the fit converged to finite parameters.
    n_iter:
        Newton iterations used.
    """

    mu: torch.Tensor
    sd: torch.Tensor
    coef: torch.Tensor
    intercept: torch.Tensor
    classes: torch.Tensor
    n_classes: int
    ok: torch.Tensor
    n_iter: int


def standardise(X: torch.Tensor, eps: float = 1e-12) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-set mean and population std ``(B, 1, d)`` of ``X (B, m, d)``; std ≤ eps → 1."""
    mu = X.mean(dim=1, keepdim=True)
    sd = X.std(dim=1, unbiased=False, keepdim=True)
    return mu, torch.where(sd > eps, sd, torch.ones_like(sd))


def _objective(eta: torch.Tensor, Y: torch.Tensor, W: torch.Tensor, lam: float,
               binary: bool) -> torch.Tensor:
    """Penalised objective for linear predictors ``eta (..., B, m, J)`` and weights
    ``W (..., B, q, J)`` (last row = intercepts). Returns ``(..., B)``."""
    if binary:
        loss = (torch.nn.functional.softplus(eta) - Y * eta).sum(dim=(-2, -1))
    else:
        loss = (torch.logsumexp(eta, dim=-1) - (Y * eta).sum(dim=-1)).sum(dim=-1)
    pen = 0.5 * lam * W[..., :-1, :].pow(2).sum(dim=(-2, -1))
    if not binary:
        pen = pen + 0.5 * W[..., -1, :].sum(dim=-1).pow(2)  # gauge of the intercepts
    return loss + pen


def _multinomial_direction(Xa: torch.Tensor, P: torch.Tensor, G: torch.Tensor,
                           pen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Newton direction ``-H⁻¹ g`` of the multinomial problem by the Woodbury identity.

    With ``D_k = Xᵀ diag(p_k) X + diag(pen_k)`` (block diagonal over the J classes), the rows
    ``r_i = p_i ⊗ x_i`` and the gauge row ``e`` (ones on the intercepts),
    ``H = D − Σ_i r_i r_iᵀ + e eᵀ = D + Rᵀ Σ R`` with ``Σ = diag(−1, …, −1, +1)``, so only J
    blocks ``q × q`` and one ``(m+1) × (m+1)`` system are factorised instead of ``Jq × Jq``.

    Parameters
    ----------
    Xa: ``(B, m, q)`` features with the intercept column last.
    P: ``(B, m, J)`` class probabilities.
    G: ``(B, J, q)`` gradient.
    pen: ``(J, q)`` diagonal penalty.

    Returns
    -------
    delta: ``(B, J·q)`` Newton step; info: ``(B,)`` non-zero where a factorisation failed.
    """
    B, m, q = Xa.shape
    J = P.shape[2]
    Pt = P.transpose(1, 2)  # (B, J, m)
    Xt = Xa.transpose(1, 2)[:, None]  # (B, 1, q, m)
    D = (Xt * Pt[:, :, None, :]) @ Xa[:, None] + torch.diag_embed(pen)  # (B, J, q, q)
    L, info = torch.linalg.cholesky_ex(D)
    R = Pt[:, :, :, None] * Xa[:, None]  # (B, J, m, q): row i of class block k = p_ik x_i
    e = torch.zeros(B, J, 1, q, dtype=Xa.dtype, device=Xa.device)
    e[..., -1] = 1.0
    R = torch.cat([R, e], dim=2)  # (B, J, m+1, q)
    rhs = torch.cat([R.transpose(2, 3), G[..., None]], dim=3)  # (B, J, q, m+2)
    sol = torch.cholesky_solve(rhs, L)  # D⁻¹ [Rᵀ g]
    DinvRt, Dinvg = sol[..., :-1], sol[..., -1:]
    sigma = torch.full((m + 1,), -1.0, dtype=Xa.dtype, device=Xa.device)
    sigma[-1] = 1.0
    M = torch.diag(sigma) + (R @ DinvRt).sum(dim=1)  # (B, m+1, m+1)
    u, info2 = torch.linalg.solve_ex(M, (R @ Dinvg).sum(dim=1))  # (B, m+1, 1)
    x = Dinvg - DinvRt @ u[:, None]  # H⁻¹ g, (B, J, q, 1)
    return -x.reshape(B, J * q), info.amax(dim=1) + info2


def _newton_direction(Xa: torch.Tensor, P: torch.Tensor, G: torch.Tensor, g: torch.Tensor,
                      pen: torch.Tensor, binary: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The Newton direction ``-H⁻¹ g`` (flattened) and the solver's info (0 = solved)."""
    if binary:
        H = Xa.transpose(1, 2) @ ((P * (1 - P)) * Xa) + torch.diag(pen[0])
        L, info = torch.linalg.cholesky_ex(H)  # H is positive definite
        return -torch.cholesky_solve(g.unsqueeze(-1), L).squeeze(-1), info  # (B, q)
    return _multinomial_direction(Xa, P, G.transpose(1, 2), pen)


def _armijo_step(W: torch.Tensor, D: torch.Tensor, eta: torch.Tensor, eta_d: torch.Tensor,
                 Y: torch.Tensor, lam: float, binary: bool, slope: torch.Tensor,
                 steps: torch.Tensor) -> torch.Tensor:
    """``W`` moved along ``D`` by batched Armijo backtracking: the full step first, shorter
    ones (``steps[1:]``) only for the sets that need them."""
    f0 = _objective(eta, Y, W, lam, binary)
    tiny = -slope <= _QUADRATIC * (1.0 + f0.abs())  # roundoff-level decrease: full step
    full = (_objective(eta + eta_d, Y, W + D, lam, binary) <= f0 + _ARMIJO * slope) | tiny
    if bool(full.all()):  # the usual case near the optimum: skip the step-length search
        return W + D
    shorter = steps[1:]  # the full step (steps[0] = 1) is already judged
    s = shorter.view(-1, 1, 1, 1)
    f_s = _objective(eta + s * eta_d, Y, W + s * D, lam, binary)  # (S - 1, B)
    ok = torch.cat([full[None], f_s <= f0 + _ARMIJO * shorter[:, None] * slope])
    B = W.shape[0]
    last = torch.full((B,), len(steps) - 1, dtype=torch.long, device=W.device)
    first = torch.where(ok.any(dim=0), ok.int().argmax(dim=0), last)
    return W + steps[first].view(B, 1, 1) * D


def fit(X: torch.Tensor, y: torch.Tensor, n_classes: int, C: float = 1.0, *,
        standardise_inputs: bool = True, max_iter: int = 100, tol: float = 1e-10) -> LogisticParams:
    """Fit B L2-penalised logistic regressions sharing the labels ``y``.

    Parameters
    ----------
    X:
        ``(B, m, d)`` training features (any float dtype; computed in float64 on ``X.device``).
    y:
        ``(m,)`` integer labels in ``[0, n_classes)``; at least two distinct classes.
    n_classes:
        Number of classes K of the output.
    C:
        Inverse regularisation strength, as in scikit-learn.
    standardise_inputs:
        Standardise each set by its own mean/population std first (the reference family does).
    max_iter:
        Maximum Newton iterations.
    tol:
        Convergence when the largest Newton step component is below ``tol``.

    Returns
    -------
    LogisticParams
    """
    dev = X.device
    X = X.to(torch.float64)
    B, m, d = X.shape
    finite_in = torch.isfinite(X).all(dim=2).all(dim=1)
    X = torch.where(finite_in[:, None, None], X, torch.zeros_like(X))
    if standardise_inputs:
        mu, sd = standardise(X)
    else:
        mu, sd = X.new_zeros(B, 1, d), X.new_ones(B, 1, d)
    Z = (X - mu) / sd
    y = torch.as_tensor(y, device=dev).long()
    classes = torch.unique(y)
    if classes.numel() < 2:
        raise ValueError("logistic regression needs at least two classes in the labels")
    binary = classes.numel() == 2
    J = 1 if binary else classes.numel()
    col = torch.searchsorted(classes, y)
    Y = (col[:, None] == torch.arange(classes.numel(), device=dev)[None]).to(torch.float64)
    if binary:
        Y = Y[:, 1:]
    Y = Y.expand(B, m, J)
    Xa = torch.cat([Z, Z.new_ones(B, m, 1)], dim=2)  # (B, m, q)
    q = d + 1
    lam = 1.0 / float(C)
    W = Xa.new_zeros(B, q, J)
    reg = torch.ones(q, J, dtype=torch.float64, device=dev)
    reg[-1] = 0.0
    # penalty on the weights plus a tiny ridge (the ridge only alters the step, not the optimum)
    pen = (lam * reg).T + 1e-12  # (J, q), parameter order (class, feature)
    steps = _STEPS.to(dev)
    active = torch.ones(B, dtype=torch.bool, device=dev)
    broken = ~finite_in
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        eta = Xa @ W  # (B, m, J)
        P = torch.sigmoid(eta) if binary else torch.softmax(eta, dim=-1)
        G = Xa.transpose(1, 2) @ (P - Y) + lam * reg * W  # (B, q, J)
        if not binary:
            G[:, -1, :] += W[:, -1, :].sum(dim=-1, keepdim=True)
        g = G.transpose(1, 2).reshape(B, J * q)
        delta, info = _newton_direction(Xa, P, G, g, pen, binary)
        delta = torch.where((info == 0)[:, None], delta, torch.full_like(delta, float("nan")))
        broken = broken | ~torch.isfinite(delta).all(dim=1)
        delta = torch.where(active[:, None] & ~broken[:, None], delta, torch.zeros_like(delta))
        D = delta.reshape(B, J, q).transpose(1, 2)  # (B, q, J)
        W = _armijo_step(W, D, eta, Xa @ D, Y, lam, binary, (g * delta).sum(dim=1), steps)
        active = active & ~broken & (delta.abs().amax(dim=1) > tol)
        if not bool(active.any()):
            break
    finite = torch.isfinite(W).all(dim=2).all(dim=1) & ~broken
    return LogisticParams(mu=mu, sd=sd, coef=W[:, :-1, :], intercept=W[:, -1, :], classes=classes,
                          n_classes=int(n_classes), ok=finite & ~active, n_iter=n_iter)


def predict_proba(params: LogisticParams, X_real: torch.Tensor) -> torch.Tensor:
    """Class probabilities ``(B, n, K)`` of real records ``X_real (n, d)``.

    Columns of classes absent from the training labels are 0. Sets whose fit failed
    (``~params.ok``) are returned as computed; callers substitute their fallback.
    """
    x = torch.as_tensor(X_real, device=params.coef.device).to(torch.float64)
    Z = (x[None] - params.mu) / params.sd  # (B, n, d)
    eta = Z @ params.coef + params.intercept[:, None, :]
    if params.coef.shape[2] == 1:
        p1 = torch.sigmoid(eta)
        proba = torch.cat([1.0 - p1, p1], dim=2)
    else:
        proba = torch.softmax(eta, dim=2)
    B, n, _ = proba.shape
    out = proba.new_zeros(B, n, params.n_classes)
    out[:, :, params.classes] = proba
    return out
