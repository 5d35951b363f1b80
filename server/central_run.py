"""Central condensation: one data holder condenses its own table on the coordinator's loop.

``condense`` is the federation with one site and no transport. The same
:class:`~fedcondense.server.orchestrator.Orchestrator` builds the requests, the same
:func:`~fedcondense.server.round_driver.drive` loop delivers them, applies each answer,
checkpoints and resumes; the site is :class:`CentralSite`, which answers every request with
the functions a federated site uses (:func:`~fedcondense.protocol.condensation.federation.answer_init`,
:func:`~fedcondense.protocol.condensation.federation.answer_round`) on the whole table. With
``epsilon=inf`` and ``sample_rate=1`` a federated run over any split of a table therefore gives
the release :func:`condense` gives on the pooled table with the same seed (up to
secure-aggregation quantisation).

Privacy flow (``central`` mode): validate (ε, δ, q) → calibrate σ (and σ_init for the DP
initialisation) with the accountant (the caller charges its ledger *before* touching data) →
DP initialisation → T rounds of the sampled Gaussian mechanism → release. The update is
normalised by ``sample_rate × count`` where the count is public: the DP initialisation's noisy
record count (post-processing), else the declared ``capacity``; only a non-private (ε = inf or
seeded) run falls back to the exact count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from ..protocol.condensation.condenser import CondenseConfig, CondenseResult, make_families
from ..protocol.condensation.federation import answer_init, answer_round
from ..protocol.condensation.site_update import Records, RoundConfig
from ..protocol.condensation.synthetic_set import SyntheticSet
from ..protocol.data.schema import Schema
from ..protocol.errors import FedcondenseError
from ..protocol.families.base import ModelFamily
from ..protocol.privacy.dp_mechanism import noise_generator, restorable_state
from ..protocol.release.checkpoint import restore_generator
from ..protocol.wire.messages import RoundMessage
from .orchestrator import Orchestrator, SiteInfo
from .round_driver import RoundLoop, drive

SITE = "central"
"""The one site of a central run (its id in checkpoints and the round history)."""


@dataclass
class CentralSite:
    """The data holder as a :class:`~fedcondense.server.round_driver.Delivery`: it answers
    each request on its own table, in process, and its answer is the sum."""

    records: Records
    schema: Schema
    families: dict[str, ModelFamily]
    rng: np.random.Generator
    clipping_range: float = 1.0
    timings: dict[str, float] = field(default_factory=dict)
    """The last round's ``fit``, ``fit_cpu``, ``predict`` and ``privacy`` seconds."""

    def online(self) -> set[int]:
        return {0}

    def deliver(self, base: RoundMessage, targets: dict[int, str],
                attempt_base: int) -> tuple[np.ndarray | None, dict[str, Any]]:
        t0 = time.perf_counter()
        h = base.hyper
        if base.kind == "init":
            vector = answer_init(self.records, self.schema, base.noise_std, self.rng)
            self.timings = {}
        else:
            synthetic = SyntheticSet.from_arrays(self.schema, dict(base.arrays))
            rc = RoundConfig(int(h["run_seed"]), int(h["round_index"]), int(h["directions"]),
                             float(h["mu"]), float(h["clip_norm"]), str(h["direction_kind"]))
            q = float(h["sample_rate_by_site"][SITE])
            vector, self.timings = answer_round(self.records, synthetic, self.families, rc, q,
                                                base.noise_std, self.rng)
        wall = time.perf_counter() - t0
        return vector, {
            "round": base.round_index, "kind": base.kind, "secure": False, "sent": [SITE],
            "charges": {SITE: 1}, "contributed": [SITE], "dropped": [], "errors": {},
            "overflow": [], "attempts": [], "site_compute_s": {SITE: wall},
            "wall_s": wall, "overhead_s": 0.0}


def condense(
    records: Records,
    schema: Schema,
    config: CondenseConfig,
    progress: Callable[[int, dict[str, float]], None] | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    capacity: int | None = None,
) -> CondenseResult:
    """Run central condensation on ``records`` (already validated against ``schema``).

    With ``checkpoint`` the full state (the coordinator's and, for a seeded run, the noise
    generator's) is written atomically after every round; with ``resume`` a run continues
    from that file (same result as an uninterrupted run).

    Raises
    ------
    FedcondenseError
        Invalid settings, a private ``init="random"`` run without ``capacity``, or a
        checkpoint made for another schema or configuration.
    """
    n = len(records.X)
    config.validate(n)
    families = make_families(config, schema)
    site = SiteInfo(SITE, _capacity(config, capacity, n), config.sample_rate)
    if resume and checkpoint is not None:
        orch = Orchestrator.resume(checkpoint, schema, config, [site], mode="central")
        state = orch.checkpoint_extra.get("rng_state")
        rng = restore_generator(state) if state else noise_generator(None)[0]
        source = str(orch.checkpoint_extra.get("noise_source", "os-csprng"))
    else:
        orch = Orchestrator(schema, config, [site], mode="central")
        rng, source = noise_generator(config.seed)
    holder = CentralSite(records, schema, families, rng)
    loop = RoundLoop(holder, orch, schema, f"condense-{orch.run_seed:016x}", {0: SITE}, 1)
    result = CondenseResult(orch.synthetic, orch.plan, orch.run_seed,  # type: ignore[arg-type]
                            source)
    totals = {"fit": 0.0, "predict": 0.0, "privacy": 0.0, "update": 0.0, "checkpoint": 0.0}

    def after_round(request: RoundMessage, info: dict[str, Any], n_targets: int,
                    seconds: dict[str, float]) -> None:
        c0 = time.perf_counter()
        if checkpoint is not None:
            orch.save(checkpoint, {"noise_source": source, "rng_state": restorable_state(rng)})
        totals["checkpoint"] += time.perf_counter() - c0
        if request.kind == "init":
            return
        fit = holder.timings
        totals["fit"] += fit["fit"]
        totals["predict"] += fit["predict"]
        totals["privacy"] += fit["privacy"]
        totals["update"] += seconds["apply"]
        result.function_evaluations += 2 * config.directions * len(families)
        row = {"round": request.round_index, "seconds": time.perf_counter() - seconds["started"],
               "grad_norm": float(orch.history[-1]["grad_norm"]), "fit_s": fit["fit"],
               "fit_cpu_s": fit["fit_cpu"], "predict_s": fit["predict"],
               "privacy_s": fit["privacy"]}
        result.history.append(row)
        if progress is not None:
            progress(request.round_index, row)

    def stop(message: str) -> NoReturn:  # one local site never refuses or times out
        raise FedcondenseError(message)

    drive(loop, after_round, stop)
    assert orch.synthetic is not None
    result.synthetic = orch.synthetic
    result.public_count = (orch.public_count if orch.public_count is not None
                           else float(site.capacity))
    result.timings = totals
    result.privacy = orch.privacy_report(noise_source=source)
    return result


def _capacity(config: CondenseConfig, capacity: int | None, n: int) -> int:
    """The site's public count without a DP initialisation: the declared capacity (a
    non-private run may fall back to the exact count)."""
    if capacity is not None:
        if capacity < 1:
            raise FedcondenseError(f"--capacity {capacity}: declare a positive number of records.")
        return int(capacity)
    if config.init != "dp" and config.private and config.seed is None:
        raise FedcondenseError("--init random in a private run needs --capacity N: a public "
                               "upper bound on the records (the exact count is not private).")
    return n
