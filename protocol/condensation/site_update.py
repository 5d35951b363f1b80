"""One round of zero-order condensation: public fits, private per-record differences.

A round has two halves:

1. :func:`fit_round` — *public*. From the round seed every party regenerates the same P
   directions ``U_p`` and fits each model family on the 2P perturbed sets ``S ± μ·U_p``.
   It never touches real data, so in a one-machine simulation the fits are shared across
   sites, and every deployed site computes them identically.
2. :func:`site_update` — *private*. On a Poisson sample of its records (rate q) a site computes
   each record's P-vector of loss differences ``L_i(S + μU_p) − L_i(S − μU_p)``. In a
   portfolio of F families each family's vector is clipped to ``C / F`` before they are
   summed, so the record's vector has L2 norm at most C and no family can crowd out the
   others (a decision tree's jumps of up to ``−log(floor)`` would otherwise fill the whole
   clipping budget and erase a logistic regression's smaller, smoother differences). The
   site sums over the sample and adds Gaussian noise of the requested std per coordinate.

The server turns the (securely summed) vectors into a gradient with
:func:`apply_update`: ``Δ̄ = sum / B`` with the public expected batch size ``B = Σ q_k n_k``,
``g = Σ_p (Δ̄_p / 2μ) U_p / P``, one Adam step, projection into the public box.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..families.base import FittedBatch, ModelFamily
from ..privacy.dp_mechanism import add_gaussian_noise, clip_rows, poisson_sample
from .directions import (
    DirectionKind,
    gradient_from_differences,
    make_directions,
)
from .losses import classification_losses, survival_losses
from .optimizer import Adam
from .synthetic_set import SyntheticSet


class Records(Protocol):
    """Real records in the encoded space (a :class:`~fedcondense.protocol.data.site_table.SiteTable`)."""

    X: np.ndarray
    y: np.ndarray | None
    time: np.ndarray | None
    event: np.ndarray | None


@dataclass(frozen=True)
class RoundConfig:
    """Public parameters of one round (identical at every party)."""

    run_seed: int
    round_index: int
    n_directions: int
    mu: float
    clip_norm: float
    direction_kind: DirectionKind = "gaussian"
    loss_floor: float = 1e-4


@dataclass
class RoundFits:
    """The public half of a round: directions and fitted families on ``S ± μU``."""

    config: RoundConfig
    directions: np.ndarray  # (P, m, D)
    fitted: dict[str, FittedBatch]
    families: dict[str, ModelFamily]
    synthetic: SyntheticSet
    fit_seconds: float = 0.0
    fit_cpu_seconds: float = 0.0  # CPU time of the fitting thread (the fits are public)


@dataclass
class SiteUpdate:
    """A site's contribution: the noised sum (the only thing that leaves the site)."""

    vector: np.ndarray  # (P,)
    timings: dict[str, float] = field(default_factory=dict)


def fit_round(
    synthetic: SyntheticSet, families: dict[str, ModelFamily], config: RoundConfig
) -> RoundFits:
    """Regenerate the round's directions and fit every family on the 2P perturbed sets."""
    t0, c0 = time.perf_counter(), time.thread_time()
    p = config.n_directions
    u = make_directions(
        config.run_seed, config.round_index, p, synthetic.Z.shape, config.direction_kind
    )
    batch = np.concatenate([synthetic.Z[None] + config.mu * u, synthetic.Z[None] - config.mu * u])
    x, times = synthetic.split(batch)
    targets = synthetic.targets()
    fitted = {name: fam.fit_batch(x, targets, times) for name, fam in families.items()}
    return RoundFits(config, u, fitted, families, synthetic, time.perf_counter() - t0,
                     time.thread_time() - c0)


def per_record_losses(
    family: ModelFamily, fitted: FittedBatch, synthetic: SyntheticSet, records: Records,
    idx: np.ndarray, floor: float,
) -> np.ndarray:
    """``(B, len(idx))`` per-record losses of the selected records under each fitted set."""
    preds = family.predict_batch(fitted, records.X[idx])
    if synthetic.schema.is_survival:
        assert records.time is not None and records.event is not None
        horizons = synthetic.targets().horizons
        return survival_losses(preds, records.time[idx], records.event[idx], horizons, floor)
    assert records.y is not None
    return classification_losses(preds, records.y[idx], floor)


def per_record_differences(fits: RoundFits, records: Records, idx: np.ndarray) -> np.ndarray:
    """``(len(idx), P)``: each selected record's loss differences, each family's share
    clipped to ``C / F`` and summed over the F families (L2 norm at most C)."""
    p = fits.config.n_directions
    total = np.zeros((len(idx), p))
    if len(idx) == 0:  # an empty Poisson sample: the site contributes noise only
        return total
    share = fits.config.clip_norm / len(fits.families)
    for name, fam in fits.families.items():
        losses = per_record_losses(
            fam, fits.fitted[name], fits.synthetic, records, idx, fits.config.loss_floor
        )
        total += clip_rows((losses[:p] - losses[p:]).T, share)
    return total


def site_update(
    records: Records,
    fits: RoundFits,
    sample_rate: float,
    noise_std: float,
    rng: np.random.Generator,
) -> SiteUpdate:
    """Poisson-sample, clip per record, sum, add ``N(0, noise_std²)`` per coordinate."""
    t0 = time.perf_counter()
    idx = poisson_sample(len(records.X), sample_rate, rng)
    diffs = per_record_differences(fits, records, idx)
    t1 = time.perf_counter()
    clipped = clip_rows(diffs, fits.config.clip_norm) if len(idx) else diffs
    vector = add_gaussian_noise(clipped.sum(axis=0), noise_std, rng)
    t2 = time.perf_counter()
    return SiteUpdate(vector=vector, timings={"predict": t1 - t0, "privacy": t2 - t1})


def apply_update(
    synthetic: SyntheticSet,
    optimizer: Adam,
    summed: np.ndarray,
    directions: np.ndarray,
    mu: float,
    expected_batch: float,
) -> np.ndarray:
    """Server step: gradient from the noised sum, Adam, projection. Returns the gradient."""
    if expected_batch <= 0:
        raise ValueError("expected batch size must be positive")
    grad = gradient_from_differences(np.asarray(summed) / expected_batch, directions, mu)
    synthetic.Z = synthetic.project(optimizer.step(synthetic.Z, grad))
    return grad
