"""Batched penalised Cox PH (Efron ties, Breslow baseline): B problems solved at once.

Matches the reference family ``cox_ph``: standardise each training set by its own mean and
population std, drop columns constant in the set (raw population std ≤ 1e-9), then lifelines
``CoxPHFitter(penalizer=p)`` (``l1_ratio=0``) and ``predict_survival_function``. The lifelines
conventions reproduced here (lifelines 0.30, ``coxph_fitter.py``):

* lifelines normalises the covariates again internally, by their mean and *sample* std
  (``ddof=1``, pandas), and penalises in that normalised space;
* the maximised objective is the Efron partial log-likelihood *summed* over rows minus
  ``m · p · ½‖β_norm‖²`` (the penalty is multiplied by the number of rows m, equivalently the
  mean log-likelihood is penalised by ``p · ½‖β_norm‖²``);
* the baseline cumulative hazard is Breslow's, ``H₀(u) = Σ_{t_i ≤ u} e_i / Σ_{t_j ≥ t_i} φ_j``
  with ``φ_j = exp((x_j − x̄)·β)`` (centred covariates), tabulated at the unique training times
  (censored ones included) and *linearly interpolated* at the horizons with ``np.interp``
  semantics: constant ``H₀(t_min)`` before the first time (not 0) and ``H₀(t_max)`` after the
  last;
* ``S(h | x) = exp(−H₀(h) · exp((x − x̄)·β))``.

Ties use Efron's approximation in a dense m×m formulation: the at-risk matrix
``1[t_j ≥ t_i]`` minus the Efron share ``(l_i / d_i)·1[t_j = t_i]·e_j`` for the l-th of the
``d_i`` events tied at ``t_i``. No sorting is needed, so the per-set event times (B, m) with a
shared event vector (m,) are handled by broadcasting. Columns constant within a set get a zero
coefficient, which is exactly the reference's dropping them. Newton's method uses a batched
Armijo line search; float64 on the device of the inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .batched_logistic import standardise

_STEPS = torch.tensor([2.0 ** -k for k in range(0, 16)], dtype=torch.float64)
_ARMIJO = 1e-4
_QUADRATIC = 1e-9  # Newton decrement below which full steps are taken (quadratic region)


@dataclass
class CoxParams:
    """Fitted parameters of a batch of B Cox models.

    Attributes
    ----------
    mu, sd:
        ``(B, 1, d)`` standardisation of each training set (reference standardiser).
    keep:
        ``(B, 1, d)`` float mask of the columns not constant in the set.
    center:
        ``(B, 1, d)`` training mean of the standardised covariates (lifelines' centring).
    beta:
        ``(B, d)`` coefficients on the standardised covariates (lifelines ``params_``).
    times:
        ``(B, m)`` sorted training times; ``cumhaz (B, m)`` the Breslow cumulative baseline
        hazard at them (equal values on tied times).
    ok:
        ``(B,)`` bool: finite, converged fit with at least one kept column.
    n_iter:
        Newton iterations used.
    """

    mu: torch.Tensor
    sd: torch.Tensor
    keep: torch.Tensor
    center: torch.Tensor
    beta: torch.Tensor
    times: torch.Tensor
    cumhaz: torch.Tensor
    ok: torch.Tensor
    n_iter: int


def _efron_weights(time: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
    """``(B, m, m)`` matrix ``A`` with ``denom_i = Σ_j A_ij φ_j`` the Efron denominator of
    event row i (rows of censored i are the plain risk set; they are masked later)."""
    m = time.shape[1]
    at_risk = (time[:, None, :] >= time[:, :, None]).to(torch.float64)  # [b, i, j] = t_j >= t_i
    tied = (time[:, None, :] == time[:, :, None]).to(torch.float64)
    tied_events = tied * event[None, None, :]
    lower = torch.tril(torch.ones(m, m, dtype=torch.float64, device=time.device), diagonal=-1)
    n_tied = tied_events.sum(dim=2)  # d_i
    rank = (tied_events * lower).sum(dim=2)  # l_i: order among the tied events
    share = rank / n_tied.clamp(min=1.0)
    return at_risk - share[:, :, None] * tied_events


def _loglik(eta: torch.Tensor, A: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
    """Efron partial log-likelihood ``(..., B)`` of linear predictors ``eta (..., B, m)``."""
    c = eta.amax(dim=-1, keepdim=True)
    phi = torch.exp(eta - c)
    if eta.dim() == 2:
        denom = (A @ phi.unsqueeze(-1)).squeeze(-1)
    else:  # (S, B, m): one bmm with the candidates as columns
        denom = (A @ phi.permute(1, 2, 0)).permute(2, 0, 1)
    return (event * (eta - c - torch.log(denom))).sum(dim=-1)


def _armijo_length(beta: torch.Tensor, delta: torch.Tensor, eta: torch.Tensor,
                   Xn: torch.Tensor, A: torch.Tensor, event: torch.Tensor, lam: float,
                   g: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """Per set, the first of ``steps`` that passes Armijo's test on the penalised
    log-likelihood (the last one if none does), ``(B,)``."""
    f0 = _loglik(eta, A, event) - 0.5 * lam * beta.pow(2).sum(dim=1)
    slope = (g * delta).sum(dim=1)
    eta_d = (Xn @ delta.unsqueeze(-1)).squeeze(-1)
    s = steps.view(-1, 1, 1)
    b_s = beta + s * delta
    f_s = _loglik(eta + s * eta_d, A, event) - 0.5 * lam * b_s.pow(2).sum(dim=2)  # (S, B)
    good = f_s >= f0 + _ARMIJO * steps[:, None] * slope
    good[0] |= slope <= _QUADRATIC * (1.0 + f0.abs())  # roundoff-level decrease: full step
    last = torch.full((beta.shape[0],), len(steps) - 1, dtype=torch.long, device=beta.device)
    return steps[torch.where(good.any(dim=0), good.int().argmax(dim=0), last)]


def _breslow(Xn: torch.Tensor, beta: torch.Tensor, time: torch.Tensor,
             event: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Breslow baseline cumulative hazard at the sorted training times ``(B, m)`` each,
    with the centred (unshifted) linear predictor."""
    phi = torch.exp((Xn @ beta.unsqueeze(-1)).squeeze(-1))
    at_risk = (time[:, None, :] >= time[:, :, None]).to(torch.float64)
    risk = (at_risk * phi[:, None, :]).sum(dim=2)  # Σ_{t_j ≥ t_i} φ_j
    jump = event[None, :] / risk  # (B, m), per event row
    times, _ = torch.sort(time, dim=1)
    up_to = (time[:, None, :] <= times[:, :, None]).to(torch.float64)  # [b, k, i] = t_i <= t_(k)
    return times, (up_to @ jump.unsqueeze(-1)).squeeze(-1)


def fit(X: torch.Tensor, time: torch.Tensor, event: torch.Tensor, penalizer: float = 0.1, *,
        max_iter: int = 100, tol: float = 1e-10, const_eps: float = 1e-9) -> CoxParams:
    """Fit B penalised Cox models sharing the event indicators.

    Parameters
    ----------
    X:
        ``(B, m, d)`` training covariates (computed in float64 on ``X.device``).
    time:
        ``(B, m)`` positive finite times of each set.
    event:
        ``(m,)`` event indicators in {0, 1}, shared by the sets; at least one event.
    penalizer:
        lifelines ``penalizer`` (L2 only).
    max_iter, tol:
        Newton iterations cap; convergence when the largest step component is below ``tol``.
    const_eps:
        Columns whose raw population std is at most this are dropped (zero coefficient).

    Returns
    -------
    CoxParams
    """
    dev = X.device
    X = X.to(torch.float64)
    B, m, d = X.shape
    time = torch.as_tensor(time, device=dev).to(torch.float64).reshape(B, m)
    event = torch.as_tensor(event, device=dev).to(torch.float64).reshape(m)
    finite_in = torch.isfinite(X).all(dim=2).all(dim=1) & torch.isfinite(time).all(dim=1)
    X = torch.where(finite_in[:, None, None], X, torch.zeros_like(X))
    time = torch.where(finite_in[:, None], time, torch.ones_like(time))
    mu, sd = standardise(X)
    keep = (X.std(dim=1, unbiased=False, keepdim=True) > const_eps).to(torch.float64)
    Z = (X - mu) / sd * keep
    center = Z.mean(dim=1, keepdim=True)
    nsd = Z.std(dim=1, unbiased=True, keepdim=True)
    nsd = torch.where((keep > 0) & (nsd > 0), nsd, torch.ones_like(nsd))
    Xn = (Z - center) / nsd * keep  # lifelines' internal normalised covariates
    A = _efron_weights(time, event)
    lam = float(penalizer) * m
    eye = torch.eye(d, dtype=torch.float64, device=dev)
    steps = _STEPS.to(dev)
    beta = Xn.new_zeros(B, d)
    active = torch.ones(B, dtype=torch.bool, device=dev)
    broken = ~finite_in
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        eta = (Xn @ beta.unsqueeze(-1)).squeeze(-1)  # (B, m)
        phi = torch.exp(eta - eta.amax(dim=1, keepdim=True))
        Aphi = A * phi[:, None, :]  # (B, i, j)
        denom = Aphi.sum(dim=2)  # (B, m)
        numer = Aphi @ Xn  # (B, m, d)
        ratio = numer / denom[..., None]
        g = (event[None, :, None] * (Xn - ratio)).sum(dim=1) - lam * beta
        cw = ((event[None, :] / denom)[:, :, None] * A).sum(dim=1) * phi  # (B, m): φ_j c_j
        info = Xn.transpose(1, 2) @ (cw[..., None] * Xn)
        info = info - (ratio * event[None, :, None]).transpose(1, 2) @ ratio
        H = info + lam * eye  # minus the Hessian of the penalised objective
        delta = torch.linalg.solve_ex(H, g.unsqueeze(-1))[0].squeeze(-1)
        broken = broken | ~torch.isfinite(delta).all(dim=1)
        delta = torch.where(active[:, None] & ~broken[:, None], delta, torch.zeros_like(delta))
        beta = beta + _armijo_length(beta, delta, eta, Xn, A, event, lam, g, steps)[:, None] * delta
        active = active & ~broken & (delta.abs().amax(dim=1) > tol)
        if not bool(active.any()):
            break
    times, cumhaz = _breslow(Xn, beta, time, event)
    coef = beta / nsd.squeeze(1) * keep.squeeze(1)
    ok = torch.isfinite(coef).all(dim=1) & torch.isfinite(cumhaz).all(dim=1) & ~active
    ok = ok & ~broken & (keep.sum(dim=(1, 2)) > 0) & (event.sum() > 0)
    return CoxParams(mu=mu, sd=sd, keep=keep, center=center, beta=coef, times=times,
                     cumhaz=cumhaz, ok=ok, n_iter=n_iter)


def interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Batched ``np.interp``: ``x (B, H)`` on the sorted knots ``xp, fp (B, m)``; ties in
    ``xp`` must carry equal ``fp``. Constant extrapolation at both ends."""
    m = xp.shape[1]
    idx = torch.searchsorted(xp.contiguous(), x.contiguous(), right=True)
    lo = (idx - 1).clamp(0, m - 1)
    hi = idx.clamp(0, m - 1)
    x0, x1 = xp.gather(1, lo), xp.gather(1, hi)
    f0, f1 = fp.gather(1, lo), fp.gather(1, hi)
    gap = x1 - x0
    w = torch.where(gap > 0, (x - x0) / torch.where(gap > 0, gap, torch.ones_like(gap)),
                    torch.zeros_like(gap))
    return f0 + w.clamp(0.0, 1.0) * (f1 - f0)


def predict_survival(params: CoxParams, X_real: torch.Tensor,
                     horizons: torch.Tensor) -> torch.Tensor:
    """Survival probabilities ``(B, n, H)`` of real records ``X_real (n, d)`` at ``horizons``.

    Sets whose fit failed (``~params.ok``) are returned as computed; callers substitute their
    fallback.
    """
    dev = params.beta.device
    x = torch.as_tensor(X_real, device=dev).to(torch.float64)
    h = torch.as_tensor(horizons, device=dev).to(torch.float64).reshape(1, -1)
    B = params.beta.shape[0]
    Z = (x[None] - params.mu) / params.sd * params.keep - params.center  # (B, n, d)
    lp = (Z @ params.beta.unsqueeze(-1))  # (B, n, 1)
    H0 = interp(h.expand(B, -1), params.times, params.cumhaz)  # (B, H)
    return torch.exp(-H0[:, None, :] * torch.exp(lp))
