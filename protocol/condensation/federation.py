"""The federated protocol's maths, free of Flower: what a site answers, how noise is shared.

A federated run has one *initialisation* request (only with ``init="dp"``) and T *round*
requests. For each, every site returns one vector; the server only ever sees their sum
(secure aggregation), which equals what the central engine would compute on the pooled
table, plus noise:

* ``init`` — the site's noisy group sums ``[count, Σ free coordinates]`` per group, flattened
  (:func:`fedcondense.protocol.condensation.condenser.init_group_sums`);
* ``round`` — the site's clipped, noised sum of per-record loss-difference P-vectors
  (:func:`fedcondense.protocol.condensation.site_update.site_update`).

Noise modes (:func:`site_noise_std`):

* ``local`` — every site adds the full noise std ``s``: each site's release is private on its
  own, even if aggregation is not trusted;
* ``distributed`` — every site adds ``s / √t`` where ``t`` is the secure-aggregation threshold
  (minimum number of surviving sites), so any sum of at least ``t`` contributions carries
  variance ≥ ``s²``. A round with fewer than ``t`` contributions is discarded.

Accounting is per site, at the site's own sampling rate, and conservative: a site is charged
for every request it was *sent*, whether or not its answer reached the sum.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..data.schema import Schema
from ..families.base import ModelFamily
from ..privacy.accounting import Spend
from .condenser import init_group_sums
from .site_update import Records, RoundConfig, RoundFits, fit_round, site_update
from .synthetic_set import SyntheticSet

NoiseMode = Literal["central", "local", "distributed"]


def site_noise_std(total_std: float, mode: NoiseMode, threshold: int) -> float:
    """Noise std one site adds so that the secure sum carries at least ``total_std``."""
    if mode in ("central", "local"):
        return total_std
    if mode == "distributed":
        if threshold < 1:
            raise ValueError("the secure-aggregation threshold must be at least 1")
        return total_std / math.sqrt(threshold)
    raise ValueError(f"unknown noise mode {mode!r}; use 'local' or 'distributed'")


@dataclass
class FitCache:
    """Round fits keyed by (run seed, round): in a one-machine simulation every site reuses
    the same public fits instead of repeating them (they never depend on private data)."""

    fits: dict[tuple[int, int], tuple[np.ndarray, RoundFits]] = field(default_factory=dict)
    misses: int = 0  # rounds fitted (not served from the cache)

    def get(self, synthetic: SyntheticSet, families: dict[str, ModelFamily],
            config: RoundConfig) -> RoundFits:
        key = (config.run_seed, config.round_index)
        hit = self.fits.get(key)
        if hit is not None and np.array_equal(hit[0], synthetic.Z):
            return hit[1]
        fits = fit_round(synthetic, families, config)
        self.misses += 1
        self.fits = {key: (synthetic.Z.copy(), fits)}  # keep only the current round
        return fits


def answer_init(records: Records, schema: Schema, noise_std: float,
                rng: np.random.Generator) -> np.ndarray:
    """A site's initialisation answer: flattened noisy group sums."""
    return init_group_sums(records, schema, noise_std, rng).ravel()


def answer_round(records: Records, synthetic: SyntheticSet, families: dict[str, ModelFamily],
                 config: RoundConfig, sample_rate: float, noise_std: float,
                 rng: np.random.Generator, cache: FitCache | None = None
                 ) -> tuple[np.ndarray, dict[str, float]]:
    """A site's round answer (the P-vector) and its timings (``fit`` is the time this call
    spent fitting: ~0 when ``cache`` already held the round's fits; ``fit_cpu`` its CPU time,
    0 then). Timings stay at the site."""
    t0 = time.perf_counter()
    misses = cache.misses if cache is not None else 0
    if cache is not None:
        fits = cache.get(synthetic, families, config)
    else:
        fits = fit_round(synthetic, families, config)
    fit_s = time.perf_counter() - t0
    fitted = cache is None or cache.misses > misses
    upd = site_update(records, fits, sample_rate, noise_std, rng)
    return upd.vector, {"fit": fit_s, "fit_cpu": fits.fit_cpu_seconds if fitted else 0.0,
                        **upd.timings}


@dataclass
class SiteAccount:
    """What one site has been charged in this run (sent requests, conservatively)."""

    site: str
    sample_rate: float
    init_requests: int = 0
    round_requests: int = 0
    rounds_contributed: int = 0

    def spends(self, sigma: float, sigma_init: float | None) -> list[Spend]:
        out: list[Spend] = []
        if self.init_requests and sigma_init:
            out.append({"type": "gaussian", "sigma": sigma_init, "count": self.init_requests})
        if self.round_requests:
            out.append({"type": "sampled_gaussian", "q": self.sample_rate, "sigma": sigma,
                        "count": self.round_requests})
        return out
