"""The one builder of the coordinator's requests, for deployed and simulated runs alike.

Every request — the DP initialisation and each round — carries what a site needs to check it
before anything is read or charged: the schema hash, the run id, the public round
parameters, each site's Poisson rate, and the run's *declared privacy plan*
(:class:`~fedcondense.protocol.privacy.site_budget.DeclaredPlan`), which a site with a ledger prices
itself. Simulations send exactly what a deployed coordinator sends, so the sites' plan
checks run in every simulation too; the only addition a simulation may make is a
``noise_seed`` (reproducible studies), which a deployed site refuses unless its own
configuration allows seeded noise.
"""

from __future__ import annotations

from typing import Any

from ..protocol.condensation.synthetic_set import free_dim
from ..protocol.data.schema import Schema
from ..protocol.privacy.site_budget import DeclaredPlan
from ..protocol.wire.messages import RoundMessage, pow2_scale
from .orchestrator import Orchestrator


def build_message(orch: Orchestrator, schema: Schema, run_id: str, clipping_range: float,
                  session: int = 1, noise_seed: int | None = None) -> RoundMessage:
    """The orchestrator's next request (initialisation or round) as a :class:`RoundMessage`.

    Parameters
    ----------
    orch : Orchestrator
        The coordinator state; its next request is built, nothing is changed.
    schema : Schema
        The consortium schema (its hash travels with the request).
    run_id : str
        The run's id (sites key their ledgers by it).
    clipping_range : float
        SecAgg+'s clipping range; the reply's fixed-point scale is chosen under it.
    session : int
        The coordinator's session of this run (1, then +1 at every resume).
    noise_seed : int, optional
        Seed for the sites' noise and sampling: *non-private*, simulations only.
    """
    config = orch.config
    n_max = max(s.capacity for s in orch.sites.values())
    q_rounds = {k: s.sample_rate for k, s in orch.sites.items()}
    if orch.needs_init():
        req = orch.init_request()
        groups = 2 if schema.is_survival else schema.n_classes
        dim, bound, arrays = groups * (1 + free_dim(schema)), n_max + 8 * req.noise_std, {}
    else:
        req = orch.round_request()
        dim = config.directions
        bound = config.clip_norm * n_max + 8 * req.noise_std
        arrays = dict(req.synthetic or {})
    plan = DeclaredPlan(config.epsilon, config.delta, config.accountant, config.rounds,
                        orch.plan.sigma, orch.plan.sigma_init, orch.mode, orch.threshold)
    hyper: dict[str, Any] = {
        "models": list(config.resolved_models(schema)), "backend": config.backend,
        "sample_rate_by_site": req.sample_rate_by_site, "round_sample_rate_by_site": q_rounds,
        "run_seed": orch.run_seed, "round_index": req.round_index,
        "clip_norm": config.clip_norm, "privacy": plan.to_hyper(), "session": session}
    if req.round_config is not None:
        rc = req.round_config
        hyper.update({"directions": rc.n_directions, "mu": rc.mu,
                      "direction_kind": rc.direction_kind})
    if noise_seed is not None:
        hyper["noise_seed"] = int(noise_seed)
    return RoundMessage(schema_hash=schema.hash(), run_id=run_id, round_index=req.round_index,
                        round_seed=orch.run_seed % 2**63, reply_dim=dim,
                        scale=pow2_scale(bound, clipping_range), noise_std=req.noise_std,
                        kind=req.kind, arrays=arrays, hyper=hyper)  # type: ignore[arg-type]
