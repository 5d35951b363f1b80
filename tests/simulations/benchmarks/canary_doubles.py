"""Deliberately broken sites for the canary-audit tests (test doubles, never shipped).

* :class:`NoiseOffSite` — runs the real site computation but adds no noise, while the
  coordinator's plan and the accountant still claim the calibrated σ (a "forgot the noise" bug);
* :class:`CoordinatorSeededSite` — draws its noise from a generator seeded by a value the
  coordinator knows (what a site honouring ``hyper["noise_seed"]`` did); with
  :class:`NoiseSubtractingCoordinator` as the audit's reply filter the coordinator regenerates
  that noise and removes it from every reply.
"""

from __future__ import annotations

import numpy as np

from fedcondense.simulations.benchmarks.canary_audit import HonestSite


class NoiseOffSite(HonestSite):
    """The real answers with the noise switched off (accounting unchanged)."""

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng)
        self.noise_source = "none (test double: noise switched off)"

    def init(self, table, schema, noise_std):
        return super().init(table, schema, 0.0)

    def round(self, table, synthetic, families, config, sample_rate, noise_std, cache):
        return super().round(table, synthetic, families, config, sample_rate, 0.0, cache)


def known_noise(seed: int, round_index: int, size: int, std: float) -> np.ndarray:
    """The noise a coordinator-seeded site adds in a round (anyone with the seed can redo it)."""
    return np.random.default_rng([seed, round_index]).normal(0.0, std, size=size)


class CoordinatorSeededSite(HonestSite):
    """Samples privately but takes its noise from a generator keyed by the coordinator's seed."""

    def __init__(self, rng: np.random.Generator, seed: int) -> None:
        super().__init__(rng)
        self.seed = seed
        self.noise_source = "numpy, seeded by a value the coordinator knows (test double)"

    def init(self, table, schema, noise_std):
        clean = super().init(table, schema, 0.0)
        return clean + known_noise(self.seed, 0, clean.size, noise_std)

    def round(self, table, synthetic, families, config, sample_rate, noise_std, cache):
        clean = super().round(table, synthetic, families, config, sample_rate, 0.0, cache)
        return clean + known_noise(self.seed, config.round_index, clean.size, noise_std)


class NoiseSubtractingCoordinator:
    """Reply filter: the coordinator removes the noise it can regenerate from its seed."""

    def __init__(self, seed: int, noise_std: float) -> None:
        self.seed = seed
        self.noise_std = noise_std

    def __call__(self, kind: str, round_index: int, reply: np.ndarray) -> np.ndarray:
        if kind != "round":
            return reply
        return reply - known_noise(self.seed, round_index, reply.size, self.noise_std)


def noise_off(rng: np.random.Generator) -> NoiseOffSite:
    """Factory for ``python -m fedcondense.simulations.benchmarks.canary_audit
    --mechanism FILE:noise_off``."""
    return NoiseOffSite(rng)
