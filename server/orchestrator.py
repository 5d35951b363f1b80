"""The coordinator's state machine, independent of the transport.

The orchestrator owns the synthetic set, the optimiser, the run seed and the per-site privacy
accounts. The transport (Flower with SecAgg+, or anything that delivers the *sum* of the
sites' vectors) asks it for the next request, delivers it to the sites, and hands back the
summed answer together with which sites were sent the request and which contributed.

It never sees an individual site's vector. Privacy is charged per site for every request the
site was sent (a dropped site is charged as if it had answered), at the site's own sampling
rate; the noise multiplier is calibrated for the largest sampling rate in the consortium, so
every site's ε is at most the target.

:meth:`Orchestrator.save` checkpoints everything after a round (synthetic set, Adam moments,
run seed — the only coordinator randomness: directions and the initial row placement derive
from it —, round reached, discarded rounds, history and per-site charges) in one atomic file;
:meth:`Orchestrator.resume` restores it for the same schema, configuration and sites, so the
resumed run continues from the last complete round and charges no completed request again.
Deliveries of the interrupted round are added with :meth:`Orchestrator.charge_orphans` from
what the sites' own ledgers report (each ledger key counted once).
"""

from __future__ import annotations

import math
import secrets
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..protocol.condensation.condenser import (
    CondenseConfig,
    PrivacyPlan,
    config_dict,
    init_noise_std,
    plan_privacy,
    public_init_rng,
)
from ..protocol.condensation.directions import make_directions
from ..protocol.condensation.federation import NoiseMode, SiteAccount, site_noise_std
from ..protocol.condensation.initialisation import (
    build_synthetic_set,
    public_count,
    statistics_from_sums,
)
from ..protocol.condensation.optimizer import Adam
from ..protocol.condensation.site_update import RoundConfig, apply_update
from ..protocol.condensation.synthetic_set import SyntheticSet, free_dim
from ..protocol.data.schema import Schema
from ..protocol.errors import FedcondenseError
from ..protocol.release.checkpoint import Checkpoint
from ..protocol.release.reports import privacy_report, site_epsilons, worst_site


@dataclass(frozen=True)
class SiteInfo:
    """Public facts about a site: its id, declared capacity and sampling rate.

    ``capacity`` is the site's *declared*, public upper bound on its records (from its own
    configuration): it scales secure aggregation and, without a DP initialisation, the
    update. The exact record count never leaves a site (no ε covers it).
    """

    site_id: str
    capacity: int
    sample_rate: float


@dataclass(frozen=True)
class Request:
    """One request to all sites: ``kind`` is "init" or "round"."""

    kind: str
    round_index: int
    synthetic: dict[str, np.ndarray] | None
    round_config: RoundConfig | None
    noise_std: float
    sample_rate_by_site: dict[str, float]


class Orchestrator:
    """Coordinator logic for one federated condensation run."""

    def __init__(self, schema: Schema, config: CondenseConfig, sites: list[SiteInfo],
                 mode: NoiseMode = "distributed", threshold: int | None = None, *,
                 noise_seeded: bool | None = None) -> None:
        if not sites:
            raise FedcondenseError("a federation needs at least one site.")
        self.schema = schema
        self.config = config
        self.sites = {s.site_id: s for s in sites}
        self.mode = mode
        self.threshold = len(sites) if threshold is None else int(threshold)
        if not 1 <= self.threshold <= len(sites):
            raise FedcondenseError(
                f"secure-aggregation threshold {self.threshold} must be between 1 and the number "
                f"of sites ({len(sites)})."
            )
        config.validate(min(s.capacity for s in sites))
        self.q_max = max(s.sample_rate for s in sites)
        self.plan: PrivacyPlan = plan_privacy(config, sample_rate=self.q_max)
        self.run_seed = config.seed if config.seed is not None else secrets.randbits(63)
        self.accounts = {s.site_id: SiteAccount(s.site_id, s.sample_rate) for s in sites}
        self.public_count: float | None = None  # noisy total record count (DP init)
        self.synthetic: SyntheticSet | None = None
        self.optimizer = Adam(lr=config.lr)
        self.rounds_done = 0
        self.rounds_discarded: list[int] = []
        self.history: list[dict[str, Any]] = []
        self.resumed_from: int | None = None
        self.checkpoint_extra: dict[str, Any] = {}
        # A seed in the configuration seeds the sites' noise in condense and simulate; a
        # deployed coordinator's seed only fixes the public run seed (sites use their own
        # randomness), so it passes noise_seeded=False.
        self.noise_seeded = config.seed is not None if noise_seeded is None else noise_seeded
        if config.init != "dp":
            self._build(None)

    # ------------------------------------------------------------------ requests
    def needs_init(self) -> bool:
        return self.synthetic is None

    def init_request(self) -> Request:
        total = init_noise_std(self.plan, self.schema)
        return Request("init", 0, None, None, site_noise_std(total, self.mode, self.threshold),
                       {k: 1.0 for k in self.sites})

    def round_request(self) -> Request:
        assert self.synthetic is not None, "initialise first"
        t = self.rounds_done + 1
        rc = RoundConfig(self.run_seed, t, self.config.directions, self.config.mu,
                         self.config.clip_norm, self.config.direction_kind)
        total = self.plan.sigma * self.config.clip_norm
        return Request("round", t, self.synthetic.to_arrays(), rc,
                       site_noise_std(total, self.mode, self.threshold),
                       {k: s.sample_rate for k, s in self.sites.items()})

    # ------------------------------------------------------------------ answers
    def _charge(self, kind: str, sent: list[str]) -> None:
        for site in sent:
            acc = self.accounts[site]
            if kind == "init":
                acc.init_requests += 1
            else:
                acc.round_requests += 1

    def _enough(self, contributed: list[str]) -> bool:
        return self.mode != "distributed" or len(contributed) >= self.threshold

    def _build(self, sums: np.ndarray | None, noise_std: float = 0.0) -> None:
        stats = None if sums is None else statistics_from_sums(sums, noise_std)
        if stats is not None:  # post-processing of the DP initialisation: no extra ε
            self.public_count = public_count(stats)
        self.synthetic = build_synthetic_set(self.schema, self.config.rows,
                                             public_init_rng(self.run_seed), stats,
                                             self.config.init_spread)

    def apply_init(self, summed: np.ndarray, sent: list[str], contributed: list[str]) -> bool:
        """Build the initial set from the summed noisy group sums (if enough sites answered)."""
        self._charge("init", sent)
        if not self._enough(contributed):
            return False
        groups = 2 if self.schema.is_survival else self.schema.n_classes
        per_site = site_noise_std(init_noise_std(self.plan, self.schema), self.mode, self.threshold)
        self._build(np.asarray(summed, dtype=np.float64).reshape(groups, 1 + free_dim(self.schema)),
                    per_site * math.sqrt(len(contributed)))
        return True

    def apply_round(self, summed: np.ndarray, sent: list[str], contributed: list[str],
                    info: dict[str, Any] | None = None) -> bool:
        """One optimiser step from the summed P-vector; a short round is charged but skipped."""
        assert self.synthetic is not None
        t = self.rounds_done + 1
        self._charge("round", sent)
        self.rounds_done = t
        row: dict[str, Any] = {"round": t, "sent": list(sent), "contributed": list(contributed),
                               **(info or {})}
        if not self._enough(contributed) or not contributed:
            self.rounds_discarded.append(t)
            row["applied"] = False
            self.history.append(row)
            return False
        for site in contributed:
            self.accounts[site].rounds_contributed += 1
        batch = self.expected_batch(contributed)
        u = make_directions(self.run_seed, t, self.config.directions, self.synthetic.Z.shape,
                            self.config.direction_kind)  # type: ignore[arg-type]
        grad = apply_update(self.synthetic, self.optimizer, summed, u, self.config.mu, batch)
        row.update({"applied": True, "grad_norm": float(np.linalg.norm(grad))})
        self.history.append(row)
        return True

    def expected_batch(self, contributed: list[str]) -> float:
        """Public estimate of the records behind a sum of ``contributed`` sites' answers.

        From the DP initialisation's noisy total count (post-processing) spread over the
        sites in proportion to their declared capacities, else from the capacities alone.
        """
        cap = {s: float(self.sites[s].capacity) for s in self.sites}
        expected = sum(cap[s] * self.sites[s].sample_rate for s in contributed)
        if self.public_count is not None:
            expected *= self.public_count / sum(cap.values())
        return max(expected, 1e-12)

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> None:
        """Checkpoint the coordinator atomically (set, optimiser, round, per-site charges).

        ``extra`` is stored alongside (JSON), e.g. the deployment's run id.
        """
        assert self.synthetic is not None
        meta = {"mode": self.mode, "threshold": self.threshold,
                "rounds_discarded": self.rounds_discarded,
                "public_count": self.public_count,
                "accounts": {k: asdict(a) for k, a in self.accounts.items()},
                "sites": {k: asdict(s) for k, s in self.sites.items()},
                "history": _jsonable(self.history),
                "config": config_dict(self.config), "extra": extra or {}}
        Checkpoint(self.synthetic, self.optimizer, self.rounds_done, self.run_seed, None,
                   meta).save(path)

    @classmethod
    def resume(cls, path: str | Path, schema: Schema, config: CondenseConfig,
               sites: list[SiteInfo] | None = None, mode: NoiseMode = "distributed",
               threshold: int | None = None, *,
               noise_seeded: bool | None = None) -> "Orchestrator":
        """Restore a checkpoint written by :meth:`save` for the same run.

        ``sites`` defaults to the checkpoint's own (a deployed coordinator resumes with the
        sites of the run even if some are offline now).

        Raises
        ------
        FedcondenseError
            If the checkpoint was made for another schema, configuration, noise mode,
            threshold or set of sites (one line naming what differs).
        """
        ck = Checkpoint.load(path, schema)
        meta = ck.meta
        if sites is None:
            sites = [SiteInfo(**v) for v in meta.get("sites", {}).values()]
        want = {"config": config_dict(config), "mode": mode,
                "sites": {s.site_id: asdict(s) for s in sites}}
        for key, value in want.items():
            if meta.get(key) != _jsonable(value):
                raise FedcondenseError(
                    f"{path}: the checkpoint's {key} differs from this run's "
                    f"({meta.get(key)!r} vs {_jsonable(value)!r}); resume with the same "
                    f"settings and sites, or start a new run in a new folder.")
        orch = cls(schema, replace(config, seed=ck.run_seed), sites, mode=mode,
                   noise_seeded=config.seed is not None if noise_seeded is None else noise_seeded,
                   threshold=threshold)
        if orch.threshold != meta.get("threshold"):
            raise FedcondenseError(f"{path}: checkpoint threshold {meta.get('threshold')} "
                                   f"differs from {orch.threshold}.")
        orch.config = config
        orch.run_seed = ck.run_seed
        orch.synthetic = ck.synthetic
        orch.optimizer = ck.optimizer
        orch.rounds_done = ck.round_index
        orch.rounds_discarded = [int(t) for t in meta["rounds_discarded"]]
        orch.public_count = meta.get("public_count")
        orch.history = list(meta.get("history", []))
        orch.accounts = {k: SiteAccount(**a) for k, a in meta["accounts"].items()}
        orch.resumed_from = ck.round_index
        orch.checkpoint_extra = dict(meta.get("extra", {}))
        return orch

    def charge_orphans(self, site: str, kind: str, count: int) -> None:
        """Charge ``count`` deliveries of an interrupted request (reported by the site's
        ledger, not in the checkpoint) to ``site``."""
        if count <= 0:
            return
        acc = self.accounts[site]
        if kind == "init":
            acc.init_requests += count
        else:
            acc.round_requests += count

    def finished(self) -> bool:
        return self.rounds_done >= self.config.rounds

    # ------------------------------------------------------------------ reports
    def per_site_epsilon(self, trusted_aggregator: bool = True) -> dict[str, float | str]:
        """Each site's ε for every request it was sent (see
        :func:`~fedcondense.protocol.release.reports.site_epsilons`)."""
        return site_epsilons(self.accounts, self.plan, self.config, self.mode, self.threshold,
                             trusted_aggregator)

    def epsilon_spent(self) -> float | str:
        """The largest per-site ε so far (``privacy.json``'s ``epsilon``, without the rest of
        the report: the progress line asks every round)."""
        per_site = self.per_site_epsilon()
        return per_site[worst_site(per_site)]

    def privacy_report(self, noise_source: str | None = None) -> dict[str, Any]:
        """``privacy.json`` of this run (:func:`~fedcondense.protocol.release.reports.privacy_report`)."""
        return privacy_report(schema=self.schema, config=self.config, plan=self.plan,
                              mode=self.mode, threshold=self.threshold, accounts=self.accounts,
                              rounds_discarded=self.rounds_discarded, seeded=self.noise_seeded,
                              noise_source=noise_source)


def _jsonable(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples → lists, numpy scalars → Python)."""
    import json

    return json.loads(json.dumps(value, default=lambda o: o.item() if hasattr(o, "item")
                                 else str(o)))
