"""Site-side privacy budget: what answering one request costs, decided by the site alone.

A site daemon never trusts the coordinator's accounting. For every request it

1. reads the *declared plan* the request carries (``hyper["privacy"]``: target ε, δ,
   accountant, rounds, noise multipliers σ and σ_init, noise mode and secure-aggregation
   threshold) and re-composes it with the accountant at the site's **own** sampling rate:
   a plan whose composition exceeds its declared ε, or whose δ is not below 1/n for the
   site's n records, is refused (:func:`verify_plan`);
2. refuses a request noised less than the plan says — the noise std it is told to add, per
   unit of the clip norm (or the initialisation's sensitivity), and in distributed mode times
   √t for the declared threshold t — and charges the noise multiplier its *own* policy
   (:mod:`fedcondense.protocol.privacy.site_policy`) credits: by default only the noise it adds
   itself (a malicious coordinator can isolate its vector), with ``trust-aggregator`` the
   honest-but-curious σ·√t for thresholds at least its ``min-contributors``
   (:func:`request_spend`); a request that names a noise seed is refused (seeded noise is
   not private, and a ledger never records a non-private spend);
3. checks its persistent :class:`~fedcondense.protocol.privacy.ledger.PrivacyLedger` with that one
   spend *before touching data* and records it atomically under the request key
   ``run/kind/round/attempt`` (:func:`authorise`); a key already charged is refused, never
   charged twice. Every refusal is kept in the ledger and raised as :class:`BudgetRefusal`,
   whose one-line message names the site and its budget. A request from an earlier
   coordinator session of the run (``hyper["session"]`` below the session the site last
   said hello to, :meth:`~fedcondense.protocol.privacy.ledger.PrivacyLedger.open_session`) is stale
   and refused, so a resumed coordinator's reconciliation stays exact.

Flower-free; the ClientApp adapter is :mod:`fedcondense.client.budget_gate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

from ..condensation.initialisation import sensitivity
from ..errors import PrivacyError
from ..wire.messages import RoundMessage
from .accounting import AccountantName, Spend, epsilon_spent, validate_privacy
from .ledger import PrivacyLedger, ledger_lock
from .site_policy import PolicyRefusal, SitePolicy, charged_sigma

BUDGET_MARK = "privacy budget:"
"""Every refusal message starts with this; the coordinator stops the run when it sees it."""
_REL_TOL = 1e-6


class BudgetRefusal(PrivacyError):
    """The site refuses a request for privacy reasons (nothing was computed or spent)."""


@dataclass(frozen=True)
class DeclaredPlan:
    """The whole run's privacy plan as the coordinator declares it in every request."""

    epsilon: float
    delta: float
    accountant: AccountantName
    rounds: int
    sigma: float
    sigma_init: float
    mode: str
    threshold: int

    def to_hyper(self) -> dict[str, Any]:
        """JSON-ready form for ``RoundMessage.hyper["privacy"]`` (a non-private run's
        ε = inf travels as the string ``"inf"``, which :meth:`from_hyper` reads back and every
        site with a ledger refuses)."""
        return {"epsilon": self.epsilon if math.isfinite(self.epsilon) else "inf",
                "delta": self.delta, "accountant": self.accountant,
                "rounds": self.rounds, "sigma": self.sigma, "sigma_init": self.sigma_init,
                "mode": self.mode, "threshold": self.threshold}

    @classmethod
    def from_hyper(cls, hyper: Mapping[str, Any], site: str) -> "DeclaredPlan":
        """Parse ``hyper["privacy"]``; a request without a valid plan is refused."""
        raw = hyper.get("privacy")
        try:
            assert isinstance(raw, Mapping)
            plan = cls(float(raw["epsilon"]), float(raw["delta"]), str(raw["accountant"]),  # type: ignore[arg-type]
                       int(raw["rounds"]), float(raw["sigma"]), float(raw["sigma_init"]),
                       str(raw["mode"]), int(raw["threshold"]))
        except (AssertionError, KeyError, TypeError, ValueError):
            raise BudgetRefusal(f"{BUDGET_MARK} site {site} refuses a request without a valid "
                                f"declared privacy plan (hyper['privacy']).") from None
        if plan.accountant not in ("rdp", "pld") or plan.mode not in ("local", "distributed") \
                or plan.rounds < 1 or plan.threshold < 1 or not plan.sigma > 0 \
                or plan.sigma_init < 0 or not all(map(math.isfinite, (plan.sigma, plan.sigma_init))):
            raise BudgetRefusal(f"{BUDGET_MARK} site {site} refuses the declared plan {raw}: it "
                                f"is not a private plan this site can account for.")
        return plan


def request_key(message: RoundMessage) -> str:
    """Ledger key of one delivery: ``run/kind/round/attempt``."""
    return f"{message.run_id}/{message.kind}/{message.round_index}/{message.attempt}"


@lru_cache(maxsize=64)
def _plan_epsilon(plan: DeclaredPlan, q: float) -> float:
    spends: list[Spend] = [{"type": "sampled_gaussian", "q": q, "sigma": plan.sigma,
                            "count": plan.rounds}]
    if plan.sigma_init > 0:
        spends.append({"type": "gaussian", "sigma": plan.sigma_init, "count": 1})
    return epsilon_spent(spends, plan.delta, plan.accountant)


def verify_plan(plan: DeclaredPlan, q: float, n_records: int, site: str) -> float:
    """Refuse a plan that breaks its own (ε, δ) at this site; return its ε here."""
    try:
        validate_privacy(plan.epsilon, plan.delta)
    except PrivacyError as exc:
        raise BudgetRefusal(f"{BUDGET_MARK} site {site} refuses the declared plan: "
                            f"{exc}") from None
    if plan.delta * n_records >= 1.0:  # the refusal must not quote n: it leaves the site
        raise BudgetRefusal(f"{BUDGET_MARK} site {site} refuses the declared plan: δ="
                            f"{plan.delta:g} is not below 1/n for this site's records; "
                            f"choose a smaller δ.")
    if math.isinf(plan.epsilon):
        raise BudgetRefusal(f"{BUDGET_MARK} site {site} refuses a non-private (ε=inf) run.")
    eps = _plan_epsilon(plan, float(q))
    if eps > plan.epsilon * (1 + 1e-3):
        raise BudgetRefusal(
            f"{BUDGET_MARK} site {site} refuses: the declared plan (σ={plan.sigma:.4g}, "
            f"{plan.rounds} rounds, q={q:g}) spends ε={eps:.4g} at this site, more than the "
            f"declared ε={plan.epsilon:g}.")
    return eps


def _sensitivity(message: RoundMessage, free_dim: int) -> float:
    if message.kind == "init":
        return sensitivity(free_dim)
    clip = float(message.hyper.get("clip_norm", float("nan")))
    if not (clip > 0 and math.isfinite(clip)):
        raise BudgetRefusal(f"{BUDGET_MARK} request {request_key(message)} has no valid "
                            f"clip_norm; refused.")
    return clip


def effective_sigma(message: RoundMessage, plan: DeclaredPlan, free_dim: int) -> float:
    """Noise multiplier the *plan* credits this request with (σ·√t in distributed mode)."""
    total_std = message.noise_std * (math.sqrt(plan.threshold) if plan.mode == "distributed"
                                      else 1.0)
    return total_std / _sensitivity(message, free_dim)


def request_spend(message: RoundMessage, plan: DeclaredPlan, q: float, free_dim: int,
                  site: str, policy: SitePolicy | None = None) -> Spend:
    """The one spend answering ``message`` costs the site, under its own trust ``policy``.

    A request noised below the declared plan is refused; the spend is charged at the noise
    multiplier the site's policy credits (:func:`~fedcondense.protocol.privacy.site_policy.charged_sigma`).
    """
    policy = policy or SitePolicy()
    sigma = effective_sigma(message, plan, free_dim)
    declared = plan.sigma_init if message.kind == "init" else plan.sigma
    if not declared > 0 or sigma < declared * (1 - _REL_TOL):
        raise BudgetRefusal(
            f"{BUDGET_MARK} site {site} refuses {request_key(message)}: its noise gives "
            f"σ={sigma:.4g} but the declared plan needs σ≥{declared:.4g}.")
    try:
        charged = charged_sigma(message.noise_std, _sensitivity(message, free_dim), plan.mode,
                                plan.threshold, policy, site)
    except PolicyRefusal as exc:
        raise BudgetRefusal(f"{BUDGET_MARK} {exc}") from None
    if message.kind == "init":
        return {"type": "gaussian", "sigma": charged, "count": 1}
    if not 0 < q <= 1:
        raise BudgetRefusal(f"{BUDGET_MARK} site {site} refuses sample rate {q!r}.")
    return {"type": "sampled_gaussian", "q": float(q), "sigma": charged, "count": 1}


def authorise(ledger: PrivacyLedger, message: RoundMessage, *, q: float, n_records: int,
              free_dim: int, policy: SitePolicy | None = None) -> Spend:
    """Check everything and charge ``message`` to ``ledger`` (atomically, under a lock).

    Returns
    -------
    Spend
        What was recorded.

    Raises
    ------
    BudgetRefusal
        Naming the site and its budget; the refusal is recorded in the ledger.
    """
    site = ledger.site
    key = request_key(message)
    with ledger_lock(ledger.path):
        book = PrivacyLedger.open(ledger.path)  # re-read: another process may have written
        try:
            if "noise_seed" in message.hyper:
                raise BudgetRefusal(f"{BUDGET_MARK} site {site} refuses {key}: it names a "
                                    f"noise seed; seeded noise is not private and a ledger "
                                    f"records only private spends.")
            plan = DeclaredPlan.from_hyper(message.hyper, site)
            verify_plan(plan, q, n_records, site)
            spend = request_spend(message, plan, q, free_dim, site, policy)
            session, current = message.hyper.get("session"), book.current_session(message.run_id)
            if current is not None and (not isinstance(session, int) or session < current):
                raise BudgetRefusal(f"{BUDGET_MARK} site {site} refuses {key}: it comes from "
                                    f"coordinator session {session!r}, but session {current} "
                                    f"of this run has started; stale request, not charged.")
            if book.has_key(key):
                raise BudgetRefusal(f"{BUDGET_MARK} site {site} already answered {key}; a "
                                    f"repeated request is refused, not charged twice.")
            try:
                book.check([spend])
            except PrivacyError:
                raise BudgetRefusal(
                    f"{BUDGET_MARK} site {site} refuses {key}: answering would spend "
                    f"ε={book.spent([spend]):.4g} of its budget ε={book.epsilon_budget:g} "
                    f"(δ={book.delta_budget:g}); already spent ε={book.spent():.4g}.") from None
        except BudgetRefusal as exc:
            book.refuse(key, str(exc))
            raise
        book.record(message.run_id, f"{message.kind} {message.round_index} attempt "
                    f"{message.attempt}", [spend], key=key)
    return spend
