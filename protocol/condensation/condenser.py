"""A condensation run's settings, privacy plan, initialisation maths and result.

Every run — central ``condense``, ``simulate`` and a deployed consortium — is configured by
one :class:`CondenseConfig`, calibrated by :func:`plan_privacy` and reported through
:class:`CondenseResult`; the round loop itself is the coordinator's
(:func:`fedcondense.server.round_driver.drive`; central runs:
:func:`fedcondense.server.central_run.condense`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..data.encoding import Encoder
from ..data.schema import Schema
from ..errors import FedcondenseError
from ..families import create_family, families_for_task
from ..families.base import ModelFamily
from ..privacy.accounting import (
    AccountantName,
    Calibration,
    Spend,
    calibrate,
    validate_privacy,
    validate_sample_rate,
)
from .directions import DirectionKind
from .initialisation import (
    build_synthetic_set,
    noisy_group_sums,
    public_count,
    sensitivity,
    statistics_from_sums,
)
from .site_update import (
    Records,
)
from .synthetic_set import SyntheticSet, free_dim


@dataclass(frozen=True)
class CondenseConfig:
    """Every knob of a condensation run (explicit keywords, sensible defaults)."""

    epsilon: float = 1.0
    delta: float = 1e-5
    rows: int = 10
    models: tuple[str, ...] = ()
    rounds: int = 100
    directions: int = 64
    sample_rate: float = 0.25
    mu: float = 0.1
    lr: float = 0.05
    clip_norm: float = 1.0
    init: str = "dp"
    init_share: float = 0.3
    init_spread: float = 0.3
    accountant: AccountantName = "rdp"
    direction_kind: DirectionKind = "gaussian"
    backend: str = "auto"
    seed: int | None = None

    @property
    def private(self) -> bool:
        return not math.isinf(self.epsilon)

    def resolved_models(self, schema: Schema) -> tuple[str, ...]:
        task = "survival" if schema.is_survival else "classification"
        available = families_for_task(task)
        if not self.models:
            return tuple(DEFAULT_MODELS[task])
        for m in self.models:
            if m not in available:
                raise FedcondenseError(
                    f"--models: '{m}' is not a {task} model family; choose from "
                    f"{', '.join(available)}."
                )
        return self.models

    def validate(self, n_records: int | None = None) -> None:
        validate_privacy(self.epsilon, self.delta, n_records)
        validate_sample_rate(self.sample_rate)
        checks = [
            (self.rounds >= 1, "--rounds must be at least 1."),
            (self.directions >= 1, "--directions must be at least 1."),
            (self.rows >= 2, "--rows/--rows-per-class must be at least 2."),
            (self.mu > 0 and math.isfinite(self.mu), "--mu must be a positive number."),
            (self.lr > 0 and math.isfinite(self.lr), "--lr must be a positive number."),
            (self.clip_norm > 0 and math.isfinite(self.clip_norm), "--clip-norm must be > 0."),
            (self.init in ("dp", "random"), "--init must be 'dp' or 'random'."),
        ]
        for ok, msg in checks:
            if not ok:
                raise FedcondenseError(msg)


DEFAULT_MODELS = {
    "classification": ("logistic_regression", "decision_tree"),
    "survival": ("cox_ph",),
}


@dataclass
class PrivacyPlan:
    """Calibrated noise and the spends a run will charge."""

    calibration: Calibration | None
    spends: list[Spend]
    epsilon: float
    delta: float

    @property
    def sigma(self) -> float:
        return 0.0 if self.calibration is None else self.calibration.sigma

    @property
    def sigma_init(self) -> float:
        if self.calibration is None or self.calibration.sigma_init is None:
            return 0.0
        return self.calibration.sigma_init


def plan_privacy(config: CondenseConfig, sample_rate: float | None = None) -> PrivacyPlan:
    """Calibrate σ (and σ_init) for ``config``; for ε = ∞ no noise and no spends."""
    q = config.sample_rate if sample_rate is None else sample_rate
    if not config.private:
        return PrivacyPlan(None, [], math.inf, config.delta)
    share = config.init_share if config.init == "dp" else 0.0
    cal = calibrate(config.epsilon, config.delta, q, config.rounds, share, 1, config.accountant)
    return PrivacyPlan(cal, cal.spends(q, config.rounds, 1 if share else 0),
                       cal.epsilon_total, config.delta)


def make_families(config: CondenseConfig, schema: Schema) -> dict[str, ModelFamily]:
    return {m: create_family(m, backend=config.backend) for m in config.resolved_models(schema)}


def free_coordinates(records: Records, schema: Schema) -> np.ndarray:
    """Real records in the synthetic set's free coordinates (features [+ encoded log-time])."""
    if not schema.is_survival:
        return records.X
    assert records.time is not None
    u = Encoder(schema).encode_time(records.time)
    return np.concatenate([records.X, u[:, None]], axis=1)


def record_groups(records: Records, schema: Schema) -> tuple[np.ndarray, int]:
    if schema.is_survival:
        assert records.event is not None
        return np.asarray(records.event, dtype=np.int64), 2
    assert records.y is not None
    return np.asarray(records.y, dtype=np.int64), schema.n_classes


@dataclass
class CondenseResult:
    """Everything a run produced (the synthetic set is the release)."""

    synthetic: SyntheticSet
    plan: PrivacyPlan
    run_seed: int
    noise_source: str
    history: list[dict[str, float]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    function_evaluations: int = 0

    public_count: float | None = None  # the record count the update is normalised by
    privacy: dict[str, Any] = field(default_factory=dict)  # privacy.json (reports.privacy_report)



def public_init_rng(run_seed: int) -> np.random.Generator:
    """Public generator that places the initial rows around the (noisy) group means."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([run_seed, 0x1417])))


def init_group_sums(records: Records, schema: Schema, noise_std: float,
                    rng: np.random.Generator) -> np.ndarray:
    """A data holder's noisy ``[count, sum of free coordinates]`` per group, ``(G, 1 + D)``."""
    free = free_coordinates(records, schema)
    groups, n_groups = record_groups(records, schema)
    return noisy_group_sums(free, groups, n_groups, noise_std, rng)


def init_noise_std(plan: PrivacyPlan, schema: Schema) -> float:
    """Total noise std per coordinate of the initialisation sums (σ_init · Δ)."""
    if plan.calibration is None:
        return 0.0
    return plan.sigma_init * sensitivity(free_dim(schema))


def initial_synthetic_set(records: Records, schema: Schema, config: CondenseConfig,
                          plan: PrivacyPlan, run_seed: int, rng: np.random.Generator) -> SyntheticSet:
    """DP (noisy group means, σ_init) or data-free initial set; row placement is public."""
    return initial_state(records, schema, config, plan, run_seed, rng)[0]


def initial_state(records: Records, schema: Schema, config: CondenseConfig,
                  plan: PrivacyPlan, run_seed: int,
                  rng: np.random.Generator) -> tuple[SyntheticSet, float | None]:
    """The initial set and the DP initialisation's noisy total record count (``None``
    without a DP initialisation): the count is post-processing, public at no extra ε."""
    stats = None
    if config.init == "dp":
        noise_std = init_noise_std(plan, schema)
        sums = init_group_sums(records, schema, noise_std, rng)
        stats = statistics_from_sums(sums, noise_std)
    count = None if stats is None else public_count(stats)
    return build_synthetic_set(schema, config.rows, public_init_rng(run_seed), stats,
                               config.init_spread), count


def config_dict(config: CondenseConfig) -> dict[str, Any]:
    out = asdict(config)
    out["epsilon"] = "inf" if not config.private else config.epsilon
    out["models"] = list(config.models)
    return out
