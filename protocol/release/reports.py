"""The one builder of a run's ``privacy.json`` and ``run.json``, for every command.

``condense`` (one data holder, ``central`` mode), ``simulate`` and a deployed coordinator all
describe their run through :func:`privacy_report` and :func:`run_report`, so the fields of a
release's reports cannot drift apart between them (``shared/interface.md`` lists the fields
every report must have).

Privacy figures come from what each site was *charged* (:class:`SiteAccount`: every request
it was sent, answered or not) and are computed by the accountant named in the run's
configuration. With distributed noise the report also gives each site's ε against a
malicious coordinator (only the site's own noise share counts then).

``run.json`` never holds a value computed from real rows without noise: per-round site
timings that track a private Poisson batch are dropped from private runs
(:func:`~fedcondense.protocol.privacy.privacy_claims.public_rounds`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..condensation.condenser import CondenseConfig, PrivacyPlan, config_dict
from ..condensation.federation import NoiseMode, SiteAccount
from ..data.schema import Schema
from ..privacy.accounting import Spend, epsilon_spent
from ..privacy.privacy_claims import public_rounds, public_split, release_claims
from .release import package_versions

CHARGING = "every site is charged for every request it was sent, answered or not"


def site_epsilons(accounts: Mapping[str, SiteAccount], plan: PrivacyPlan,
                  config: CondenseConfig, mode: NoiseMode, threshold: int,
                  trusted_aggregator: bool = True) -> dict[str, float | str]:
    """Each site's ε for every request it was charged (``"inf"`` in a non-private run).

    ``trusted_aggregator=False`` gives the figure against a malicious coordinator: in
    distributed mode only the site's own noise share (σ/√t) counts.
    """
    if plan.calibration is None:
        return {k: "inf" for k in accounts}
    shrink = 1.0 if trusted_aggregator or mode != "distributed" else 1.0 / math.sqrt(threshold)
    return {k: epsilon_spent(_spends(a, plan, shrink), config.delta, config.accountant)
            for k, a in accounts.items()}


def worst_site(per_site: Mapping[str, float | str]) -> str:
    """The site with the largest ε, whose figure is the run's (any site when no figure is a
    number: a non-private run)."""
    return max(per_site, key=lambda k: (v if isinstance(v := per_site[k], float) else 0.0, k))


def _spends(account: SiteAccount, plan: PrivacyPlan, shrink: float = 1.0) -> list[Spend]:
    sigma_init = plan.calibration.sigma_init if plan.calibration is not None else None
    return account.spends(plan.sigma * shrink, (sigma_init or 0.0) * shrink)


def _assumption(mode: NoiseMode, threshold: int) -> str:
    if mode == "central":
        return "none about a coordinator: the data holder runs every step on its own machine"
    if mode == "distributed":
        return (f"honest-but-curious coordinator: every secure sum holds at least {threshold} "
                f"sites' noise shares and dropouts are reported truthfully (SecAgg+ "
                f"assumption); against a malicious coordinator see "
                f"epsilon_against_malicious_coordinator")
    return ("none about the coordinator: every site adds the full noise itself (holds "
            "against a malicious coordinator)")


def privacy_report(*, schema: Schema, config: CondenseConfig, plan: PrivacyPlan,
                   mode: NoiseMode, threshold: int, accounts: Mapping[str, SiteAccount],
                   rounds_discarded: Sequence[int] = (), seeded: bool = False,
                   noise_source: str | None = None) -> dict[str, Any]:
    """``privacy.json`` of a run (central or federated).

    Parameters
    ----------
    schema, config, plan :
        The run's schema, settings and calibrated privacy plan.
    mode : {"central", "local", "distributed"}
        Who adds the noise; ``central`` is one data holder (no per-site fields).
    threshold : int
        Fewest sites a secure sum holds (distributed noise is shared among that many).
    accounts : mapping
        Site id → what it was charged.
    rounds_discarded : sequence of int
        Rounds charged but not applied (too few sites answered).
    seeded : bool
        Whether the noise came from a seed (a reproducible study: not private).
    noise_source : str, optional
        Where a private run's noise came from, when more is known than the claim's default.
    """
    cal = plan.calibration
    claims = release_claims(schema, finite_epsilon=cal is not None, seeded=seeded)
    per_site = site_epsilons(accounts, plan, config, mode, threshold)
    malicious = site_epsilons(accounts, plan, config, mode, threshold, trusted_aggregator=False)
    worst = worst_site(per_site)
    report: dict[str, Any] = {
        "private": claims["private"],
        "epsilon": per_site[worst],
        "epsilon_target": config.epsilon if cal is not None else "inf",
        "delta": config.delta,
        "adjacency": claims["adjacency"],
        "bounds": claims["bounds"],
        "noise_source": (noise_source if noise_source and claims["private"]
                         else claims["noise_source"]),
        "warnings": claims["warnings"],
        "trust_assumption": _assumption(mode, threshold),
        "accountant": "none (non-private run)" if cal is None
        else f"dp-accounting {config.accountant.upper()}",
        "noise_multiplier": plan.sigma,
        "init_noise_multiplier": plan.sigma_init,
        "epsilon_init": cal.epsilon_init if cal is not None else None,
        "sample_rate": max(a.sample_rate for a in accounts.values()),
        "rounds": config.rounds,
        "rounds_discarded": list(rounds_discarded),
        "clip_norm": config.clip_norm,
        "directions": config.directions,
        "initialisation": config.init,
        "mode": mode,
        "spends": _spends(accounts[worst], plan) if cal is not None else [],
        "charging": CHARGING,
    }
    if mode != "central":
        report.update({
            "epsilon_against_malicious_coordinator": malicious[worst],
            "sample_rate_by_site": {k: a.sample_rate for k, a in accounts.items()},
            "secure_aggregation_threshold": threshold,
            "per_site": per_site,
            "per_site_against_malicious_coordinator": malicious,
            "per_site_requests": {k: {"init": a.init_requests, "rounds": a.round_requests,
                                      "rounds_contributed": a.rounds_contributed}
                                  for k, a in accounts.items()},
        })
    return report


def run_report(*, command: str, config: CondenseConfig, schema: Schema, run_seed: int,
               private: bool, n_sites: int, secure_aggregation: bool, wall_seconds: float,
               rounds: Sequence[Mapping[str, Any]], **fields: Any) -> dict[str, Any]:
    """``run.json`` of a run: the fields every command writes, then its own ``fields``.

    ``rounds`` (one row per applied or discarded round), ``transport`` and
    ``time_split_seconds`` (when given) lose their site-side timings in a private run.
    Function evaluations count ``2 P`` fits per model family per round.
    """
    models = list(config.resolved_models(schema))
    evaluations = 2 * config.directions * len(models) * sum(
        1 for r in rounds if r.get("applied", True))
    report: dict[str, Any] = {
        "command": command,
        "config": config_dict(config),
        "run_seed": run_seed,
        "schema_hash": schema.hash(),
        "models": models,
        "n_sites": n_sites,
        "secure_aggregation": secure_aggregation,
        "wall_seconds": wall_seconds,
        "function_evaluations": evaluations,
        "function_evaluations_per_second": evaluations / max(wall_seconds, 1e-9),
        "rounds": public_rounds(rounds, private),
        "versions": package_versions(),
    }
    for key, value in fields.items():
        if key == "transport":
            value = public_rounds(value, private)
        elif key == "time_split_seconds":
            value = public_split(value, private)
        report[key] = value
    return report
