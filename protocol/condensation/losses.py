"""Per-record losses: each depends only on one real record and the synthetic set.

Differential privacy of the zero-order update rests on this locality: the update sums one
clipped vector per real record, and a record's vector is a function of that record and the
(public) synthetic set alone. Rank-based metrics (AUROC, C-index) and the Cox partial
likelihood couple records — changing one record changes everybody's term — so they are
*not* used as training signals.

Classification
    The log-loss of the model fitted on the synthetic set, ``−log max(p̂(y_i | x_i), floor)``.
    The probability floor bounds the loss by ``−log(floor)``.

Survival
    The binomial log-likelihood of the predicted survival probability at the schema's public
    horizons ``h_1 < … < h_H`` (an IPCW-free Brier-type proper score): for each horizon,

    * the record is known alive at ``h`` (``T_i > h``): ``−log Ŝ(h | x_i)``;
    * the record had its event by ``h`` (``T_i ≤ h``, ``E_i = 1``): ``−log(1 − Ŝ(h | x_i))``;
    * the record was censored before ``h``: the horizon is skipped (status unknown).

    The loss is the mean over the horizons that count, with probabilities kept inside
    ``[floor, 1 − floor]``; a record censored before the first horizon has loss 0. This is a
    per-record scoring rule (it never looks at other records' times), proper for the
    survival probability at each horizon among records whose status there is known.
"""

from __future__ import annotations

import numpy as np

DEFAULT_FLOOR = 1e-4


def classification_losses(probs: np.ndarray, y: np.ndarray, floor: float = DEFAULT_FLOOR) -> np.ndarray:
    """Log-loss per record.

    Parameters
    ----------
    probs:
        ``(B, n, K)`` predicted class probabilities.
    y:
        ``(n,)`` true class indices.

    Returns
    -------
    ``(B, n)`` losses in ``[0, −log floor]``.
    """
    y = np.asarray(y, dtype=np.int64)
    p_true = np.take_along_axis(probs, y[None, :, None], axis=2)[..., 0]
    return -np.log(np.clip(p_true, floor, 1.0))


def survival_status(time: np.ndarray, event: np.ndarray, horizons: tuple[float, ...]) -> np.ndarray:
    """``(n, H)`` status: +1 alive at h, 0 event by h, NaN censored before h (unknown)."""
    t = np.asarray(time, dtype=np.float64)[:, None]
    e = np.asarray(event, dtype=np.float64)[:, None]
    h = np.asarray(horizons, dtype=np.float64)[None, :]
    status = np.where(t > h, 1.0, np.where(e > 0, 0.0, np.nan))
    return status


def survival_losses(
    surv: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    horizons: tuple[float, ...],
    floor: float = DEFAULT_FLOOR,
) -> np.ndarray:
    """Mean binomial log-loss of the predicted survival over the horizons that count.

    Parameters
    ----------
    surv:
        ``(B, n, H)`` predicted survival probabilities at ``horizons``.
    time, event:
        ``(n,)`` observed times and event indicators of the real records.

    Returns
    -------
    ``(B, n)`` losses in ``[0, −log floor]``.
    """
    status = survival_status(time, event, horizons)  # (n, H)
    known = ~np.isnan(status)
    s = np.clip(surv, floor, 1.0 - floor)
    alive = np.nan_to_num(status, nan=0.0)
    ll = np.where(known[None], -(alive[None] * np.log(s) + (1.0 - alive[None]) * np.log1p(-s)), 0.0)
    counts = known.sum(axis=1)  # (n,)
    return ll.sum(axis=2) / np.maximum(counts, 1)[None, :]


def max_loss(floor: float = DEFAULT_FLOOR) -> float:
    """Upper bound of every per-record loss."""
    return float(-np.log(floor))
