"""Empirical lower bound on ε from one run with randomly included canaries.

The procedure of Steinke, Nasr & Jagielski, *Privacy Auditing with One (1) Training Run*,
NeurIPS 2023 (arXiv:2305.08846):

1. each of ``m`` canaries is included in the input independently with probability 1/2;
2. the mechanism runs once; an auditor scores every canary from what it observes;
3. it guesses the ``k+`` highest-scoring canaries as included, the ``k-`` lowest as excluded,
   and abstains on the rest (``r = k+ + k-`` guesses, of which ``v`` are correct);
4. under the null hypothesis "the mechanism is (ε, δ)-DP" the number of correct guesses is
   stochastically dominated as in the paper's main theorem for (ε, δ)-DP:

   ``P[V ≥ v] ≤ P[Binomial(r, p_ε) ≥ v] + 2mδ · max_{i=1..v} P[v-i ≤ Binomial(r, p_ε) < v] / i``

   with ``p_ε = e^ε / (1 + e^ε)`` (the accuracy of ε-DP randomised response). The right-hand
   side is the audit's p-value (:func:`p_value`; the same quantity as the paper's reference
   code in its appendix);
5. the empirical lower bound at confidence ``1 - β`` is the largest ε whose p-value is below
   ``β`` (:func:`epsilon_lower_bound`, found by bisection as in the paper): with probability at
   least ``1 - β`` over the canaries' coin flips and the mechanism's randomness, a mechanism
   that really is (ε, δ)-DP yields a bound ≤ ε. A bound above the accounted ε therefore means
   the mechanism (or its accounting) is broken, at that confidence.

The bound holds for any fixed choice of ``(k+, k-)``. :func:`audit_guesses` may try a small
grid of choices declared in advance and reports the best; it then tests each one at level
``β / len(grid)`` (Bonferroni), so the reported bound keeps its confidence.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
from scipy import stats

_EPS_CAP = 64.0  # no audit here can certify more (and exp() stays finite)


def p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """Probability bound of ``v`` or more correct out of ``r`` guesses for an (ε, δ)-DP mechanism.

    Parameters
    ----------
    m:
        Number of randomised canaries (each included with probability 1/2).
    r:
        Number of guesses (canaries not abstained on), ``r ≤ m``.
    v:
        Number of correct guesses, ``v ≤ r``.
    epsilon, delta:
        The null hypothesis: the mechanism is (ε, δ)-DP with respect to each canary.

    Returns
    -------
    The p-value in [0, 1] (Steinke, Nasr & Jagielski 2023, (ε, δ) version of the main theorem).
    """
    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= v <= r <= m, got v={v}, r={r}, m={m}")
    if epsilon < 0 or not 0 <= delta <= 1:
        raise ValueError(f"need epsilon >= 0 and delta in [0, 1], got {epsilon}, {delta}")
    p_eps = 1.0 / (1.0 + math.exp(-epsilon))
    tail = float(stats.binom.sf(v - 1, r, p_eps))  # P[Binomial(r, p_eps) >= v]
    if delta == 0 or v == 0:
        return min(1.0, tail)
    below = stats.binom.pmf(np.arange(v - 1, -1, -1), r, p_eps)  # P[B = v-i], i = 1..v
    alpha = float(np.max(np.cumsum(below) / np.arange(1, v + 1)))
    return min(1.0, tail + 2.0 * m * delta * alpha)


def epsilon_lower_bound(m: int, r: int, v: int, delta: float, confidence: float = 0.95,
                        tol: float = 1e-4) -> float:
    """Largest ε that ``v`` correct out of ``r`` guesses rejects at ``confidence`` (0 if none).

    Parameters
    ----------
    m, r, v:
        Canaries, guesses and correct guesses (see :func:`p_value`).
    delta:
        The δ the mechanism claims.
    confidence:
        ``1 - β``, e.g. 0.95.
    tol:
        Width of the final bisection bracket; the returned value is its lower end (so the
        p-value there is below ``β``: the bound errs on the safe side).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    beta = 1.0 - confidence
    if p_value(m, r, v, 0.0, delta) >= beta:
        return 0.0
    lo, hi = 0.0, 1.0
    while p_value(m, r, v, hi, delta) < beta:
        lo, hi = hi, 2.0 * hi
        if hi > _EPS_CAP:
            return lo
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if p_value(m, r, v, mid, delta) < beta:
            lo = mid
        else:
            hi = mid
    return lo


@dataclass(frozen=True)
class AuditBound:
    """The outcome of one audit: guesses made, correct ones, and the certified ε."""

    m: int
    k_plus: int
    k_minus: int
    guesses: int
    correct: int
    confidence: float
    delta: float
    epsilon_lower_bound: float
    choices_tried: int = 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def count_correct(scores: np.ndarray, included: np.ndarray, k_plus: int, k_minus: int) -> int:
    """Correct guesses when the ``k_plus`` top scores are guessed in, the ``k_minus`` lowest out.

    Ties are broken by canary index (a rule fixed before the run), never by membership.
    """
    scores = np.asarray(scores, dtype=np.float64)
    included = np.asarray(included, dtype=bool)
    m = len(scores)
    if k_plus < 0 or k_minus < 0 or k_plus + k_minus > m:
        raise ValueError(f"need k_plus, k_minus >= 0 and k_plus + k_minus <= m = {m}")
    order = np.lexsort((np.arange(m), scores))  # ascending score, then index
    guessed_out = order[:k_minus]
    guessed_in = order[m - k_plus:] if k_plus else order[:0]
    return int(included[guessed_in].sum() + (~included[guessed_out]).sum())


def default_choices(m: int) -> list[tuple[int, int]]:
    """The declared grid of ``(k+, k-)``: ``k+ = k- = m/8, m/4, 3m/8`` (guesses on a quarter,
    half and three quarters of the canaries; all ``m`` would force errors whenever the
    number included differs from ``m/2``)."""
    out: list[tuple[int, int]] = []
    for eighths in (1, 2, 3):
        k = max(1, (eighths * m) // 8)
        if (k, k) not in out and 2 * k <= m:
            out.append((k, k))
    return out


def audit_guesses(scores: np.ndarray, included: np.ndarray, delta: float,
                  confidence: float = 0.95,
                  choices: Sequence[tuple[int, int]] | None = None) -> AuditBound:
    """The best certified bound over the declared ``(k+, k-)`` choices (Bonferroni-corrected).

    Parameters
    ----------
    scores:
        ``(m,)`` the auditor's score per canary (higher = more likely included).
    included:
        ``(m,)`` the canaries' true coin flips (used only to count correct guesses).
    delta, confidence:
        As in :func:`epsilon_lower_bound`.
    choices:
        ``(k+, k-)`` pairs fixed before looking at the outcome; default
        :func:`default_choices`. Each is tested at level ``(1 - confidence) / len(choices)``.
    """
    m = len(scores)
    grid = list(choices) if choices is not None else default_choices(m)
    if not grid:
        raise ValueError("at least one (k_plus, k_minus) choice is needed")
    level = 1.0 - (1.0 - confidence) / len(grid)
    best: AuditBound | None = None
    for k_plus, k_minus in grid:
        v = count_correct(scores, included, k_plus, k_minus)
        eps = epsilon_lower_bound(m, k_plus + k_minus, v, delta, level)
        cand = AuditBound(m, k_plus, k_minus, k_plus + k_minus, v, confidence, delta, eps,
                          len(grid))
        if best is None or eps > best.epsilon_lower_bound:
            best = cand
    assert best is not None
    return best
