"""Privacy accounting with Google's ``dp-accounting`` library (RDP or PLD), never by hand.

Every access to private records is one of two mechanisms, recorded as a plain-dict *spend*
so that it can be persisted in a ledger and re-composed later:

* ``{"type": "gaussian", "sigma": σ, "count": k}`` — the DP initialisation: k releases of a
  Gaussian mechanism on the full table with noise multiplier σ (no sampling);
* ``{"type": "sampled_gaussian", "q": q, "sigma": σ, "count": T}`` — T rounds of the Poisson
  sampled Gaussian mechanism (sampling rate q, noise multiplier σ = noise std / clip norm).

:func:`epsilon_spent` composes any list of spends with the chosen accountant;
:func:`calibrate` finds the noise multipliers that spend a target (ε, δ): a documented share of
ε for the initialisation and the rest for the rounds.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Literal, Required, TypedDict

from ..errors import PrivacyError
from .accountant_library import (
    dp_event,
    pld_accountant_class,
    privacy_accountant,
    rdp_privacy_accountant,
)
from .rdp_estimate import estimate_sigma

AccountantName = Literal["rdp", "pld"]
SpendType = Literal["gaussian", "sampled_gaussian"]


class Spend(TypedDict, total=False):
    """One privacy event, as dp-accounting composes it and as ledgers and ``privacy.json``
    persist it: ``gaussian`` (noise multiplier σ, ``count`` releases) or ``sampled_gaussian``
    (Poisson rate ``q`` as well)."""

    type: Required[SpendType]
    sigma: Required[float]
    count: Required[int]
    q: float
# dp-accounting logs one absl warning per RDP order it excludes (harmless, very noisy).
logging.getLogger("absl").setLevel(logging.ERROR)
_MAX_SIGMA = 1e4


def _event(spend: Spend) -> dp_event.DpEvent:
    kind = spend["type"]
    count = int(spend.get("count", 1))
    if kind == "gaussian":
        inner: dp_event.DpEvent = dp_event.GaussianDpEvent(float(spend["sigma"]))
    elif kind == "sampled_gaussian":
        inner = dp_event.PoissonSampledDpEvent(
            float(spend["q"]), dp_event.GaussianDpEvent(float(spend["sigma"]))
        )
    else:
        raise ValueError(f"unknown spend type {kind!r}")
    return inner if count == 1 else dp_event.SelfComposedDpEvent(inner, count)


def _accountant(name: AccountantName) -> privacy_accountant.PrivacyAccountant:
    if name == "rdp":
        return rdp_privacy_accountant.RdpAccountant()
    if name == "pld":
        return pld_accountant_class()(value_discretization_interval=1e-3)
    raise ValueError(f"unknown accountant {name!r}; use 'rdp' or 'pld'")


def epsilon_spent(spends: list[Spend], delta: float, accountant: AccountantName = "rdp") -> float:
    """ε at ``delta`` of the composition of ``spends`` (0 for an empty list).

    Composition is commutative and equal mechanisms add up their counts, so the spends are
    reduced to a canonical multiset first and the result is memoised on it: a ledger, a
    coordinator's per-site report or a progress line asking again for the same composition
    (one RDP composition costs ~0.1-1 s of CPU) gets the identical number at once.
    """
    merged: dict[tuple[SpendType, float | None, float], int] = {}
    for s in spends:
        count = int(s.get("count", 1))
        if count <= 0:
            continue
        kind = s["type"]
        if kind not in ("gaussian", "sampled_gaussian"):  # read back from JSON: check
            raise ValueError(f"unknown spend type {kind!r}")
        key = (kind, float(s["q"]) if kind == "sampled_gaussian" else None,
               float(s["sigma"]))
        merged[key] = merged.get(key, 0) + count
    if not merged:
        return 0.0
    canonical = tuple(sorted(merged.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0.0,
                                                               kv[0][2], kv[1])))
    return _epsilon_of(canonical, float(delta), accountant)


@lru_cache(maxsize=4096)
def _epsilon_of(canonical: tuple[tuple[tuple[SpendType, float | None, float], int], ...],
                delta: float, accountant: AccountantName) -> float:
    events = []
    for (kind, q, sigma), count in canonical:
        spend: Spend = {"type": kind, "sigma": sigma, "count": count}
        if q is not None:
            spend["q"] = q
        events.append(_event(spend))
    acc = _accountant(accountant)
    acc.compose(dp_event.ComposedDpEvent(events))
    return float(acc.get_epsilon(delta))


def validate_privacy(epsilon: float, delta: float, n_records: int | None = None) -> None:
    """Refuse parameters that would break or void the guarantee (never adjust them)."""
    if epsilon is None or isinstance(epsilon, bool) or math.isnan(epsilon):
        raise PrivacyError("--epsilon must be a number > 0 (or 'inf' for a non-private run).")
    if epsilon <= 0:
        raise PrivacyError(f"--epsilon {epsilon} is not allowed: ε must be > 0.")
    if math.isinf(epsilon):
        return
    if math.isnan(delta) or not 0 < delta < 1:
        raise PrivacyError(f"--delta {delta} is not allowed: δ must be in (0, 1), e.g. 1e-5.")
    if n_records is not None and delta >= 1.0 / n_records:
        raise PrivacyError(
            f"--delta {delta:g} is too large for {n_records} records: δ must be below "
            f"1/n = {1.0 / n_records:.3g}; choose e.g. --delta {_suggest_delta(n_records):g}."
        )


def validate_sample_rate(q: float) -> None:
    if math.isnan(q) or not 0.0 < q <= 1.0:
        raise PrivacyError(f"--sample-rate {q} is not allowed: it must be in (0, 1].")


def _suggest_delta(n: int) -> float:
    return 10.0 ** math.floor(math.log10(1.0 / (10 * n)))


@dataclass(frozen=True)
class Calibration:
    """Noise multipliers that spend exactly (at most) the target budget."""

    sigma: float
    sigma_init: float | None
    epsilon_init: float
    epsilon_total: float

    def spends(self, q: float, rounds: int, init_releases: int) -> list[Spend]:
        out: list[Spend] = []
        if self.sigma_init is not None and init_releases > 0:
            out.append({"type": "gaussian", "sigma": self.sigma_init, "count": init_releases})
        out.append({"type": "sampled_gaussian", "q": q, "sigma": self.sigma, "count": rounds})
        return out


def solve_sigma(eps_of_sigma: Any, target: float, estimate: float | None = None) -> float:
    """Smallest σ (to 0.1 %) with eps_of_sigma(σ) ≤ target; eps decreases in σ.

    The answer is defined by a geometric bisection (doubling from σ = 1, then halving the
    ratio until hi/lo ≤ 1.001). ``estimate``, an approximation of the root, only saves
    evaluations: the bisection is replayed with "σ < estimate" in place of each evaluation,
    and the replay's answer is returned when two real evaluations — at the largest point it
    judged above the target and the smallest it judged below — confirm every decision (eps
    is monotone); otherwise the bisection runs on real evaluations. Either way the result is
    the one the plain bisection gives.
    """
    if estimate is not None and math.isfinite(estimate) and estimate > 0:
        judged_above: list[float] = []
        judged_below: list[float] = []

        def guess(s: float) -> bool:
            (judged_above if s < estimate else judged_below).append(s)
            return s < estimate

        try:
            replayed = _bisect(guess, target)
        except PrivacyError:
            replayed = None
        if replayed is not None and (
            (not judged_above or eps_of_sigma(max(judged_above)) > target)
            and (not judged_below or eps_of_sigma(min(judged_below)) <= target)
        ):
            return replayed
    return _bisect(lambda s: eps_of_sigma(s) > target, target)


def _bisect(above: Callable[[float], bool], target: float) -> float:
    """The geometric bisection of :func:`solve_sigma`; ``above(σ)`` means eps(σ) > target."""
    lo, hi = 1e-2, 1.0
    while above(hi):
        lo, hi = hi, hi * 2.0
        if hi > _MAX_SIGMA:
            raise PrivacyError(
                f"ε = {target:g} cannot be reached with these settings (noise would exceed "
                f"{_MAX_SIGMA:g}× the clip norm); raise --epsilon or lower --rounds/--sample-rate."
            )
    if not above(lo):
        return lo
    while hi / lo > 1.001:
        mid = math.sqrt(lo * hi)
        if above(mid):
            lo = mid
        else:
            hi = mid
    return hi


def calibrate(
    epsilon: float,
    delta: float,
    q: float,
    rounds: int,
    init_share: float = 0.0,
    init_releases: int = 1,
    accountant: AccountantName = "rdp",
) -> Calibration:
    """Noise multipliers for ``rounds`` sampled-Gaussian rounds plus an optional initialisation.

    The initialisation alone is calibrated to spend ``init_share · ε``; the rounds' σ is then
    the smallest one for which the *composition* of both stays within (ε, δ). Results are
    cached per argument tuple; with the RDP accountant the rounds' bisection is guided by
    :func:`~fedcondense.protocol.privacy.rdp_estimate.estimate_sigma` (same answer, few full
    evaluations).
    """
    validate_privacy(epsilon, delta)
    validate_sample_rate(q)
    if rounds < 1:
        raise PrivacyError("--rounds must be at least 1.")
    if not 0.0 <= init_share < 1.0:
        raise PrivacyError("the initialisation share of ε must be in [0, 1).")
    return _calibrate(float(epsilon), float(delta), float(q), int(rounds), float(init_share),
                      int(init_releases), accountant)


@functools.lru_cache(maxsize=256)
def _calibrate(epsilon: float, delta: float, q: float, rounds: int, init_share: float,
               init_releases: int, accountant: AccountantName) -> Calibration:
    sigma_init = None
    init_spend: list[Spend] = []
    if init_share > 0:
        sigma_init = solve_sigma(
            lambda s: epsilon_spent([{"type": "gaussian", "sigma": s, "count": init_releases}],
                                    delta, accountant),
            init_share * epsilon,
        )
        init_spend = [{"type": "gaussian", "sigma": sigma_init, "count": init_releases}]

    def spends(s: float) -> list[Spend]:
        return init_spend + [{"type": "sampled_gaussian", "q": q, "sigma": s, "count": rounds}]

    evaluated: dict[float, float] = {}

    def total(s: float) -> float:
        if s not in evaluated:
            evaluated[s] = epsilon_spent(spends(s), delta, accountant)
        return evaluated[s]

    estimate = None
    if accountant == "rdp":
        estimate = estimate_sigma(lambda s: dp_event.ComposedDpEvent([_event(x) for x in spends(s)]),
                                  delta, epsilon)
    sigma = solve_sigma(total, epsilon, estimate)
    return Calibration(
        sigma=sigma,
        sigma_init=sigma_init,
        epsilon_init=epsilon_spent(init_spend, delta, accountant),
        epsilon_total=total(sigma),
    )
