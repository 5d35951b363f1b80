"""The sampled Gaussian mechanism applied at a site: Poisson sampling, clipping, noise.

* :func:`poisson_sample` keeps each record independently with probability ``q`` (the
  accountant's amplification-by-sampling assumes exactly this);
* :func:`clip_rows` scales each record's P-vector to L2 norm at most ``C`` — with per-record
  losses that depend only on the record and the public synthetic set, a record then changes
  the site's sum by at most ``C`` (add/remove adjacency);
* :func:`gaussian_noise` draws ``N(0, std²)`` per coordinate from the site's private
  generator.

:func:`noise_generator` returns that generator: seeded from the operating system's CSPRNG
(:mod:`secrets`) in production, or from an explicit seed for reproducible (research) runs —
the run's report says which.
"""

from __future__ import annotations

import secrets

import numpy as np

_NOISE_DOMAIN = 0x5EC7


def noise_generator(seed: int | None, party: int = 0) -> tuple[np.random.Generator, str]:
    """Private generator for sampling and noise, and a label of how it was seeded.

    Parameters
    ----------
    seed:
        ``None`` for a cryptographically seeded generator (production); an integer for a
        reproducible run (never use for a real release).
    party:
        Distinguishes parties (sites) sharing one run seed in a simulation.
    """
    if seed is None:
        entropy = secrets.randbits(256)
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy))), "os-csprng"
    ss = np.random.SeedSequence([int(seed), _NOISE_DOMAIN, int(party)])
    return np.random.Generator(np.random.PCG64(ss)), "seeded (reproducible, not for release)"


def poisson_sample(n: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Indices of a Poisson sample: each of ``n`` records kept with probability ``rate``."""
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"sample rate must be in (0, 1], got {rate}")
    if rate == 1.0:
        return np.arange(n)
    return np.flatnonzero(rng.random(n) < rate)


def clip_rows(v: np.ndarray, clip_norm: float) -> np.ndarray:
    """Scale every row of ``v`` (n, P) to L2 norm at most ``clip_norm``."""
    if clip_norm <= 0:
        raise ValueError("clip norm must be positive")
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    scale = np.minimum(1.0, clip_norm / np.maximum(norms, 1e-300))
    return v * scale


def gaussian_noise(size: int, std: float, rng: np.random.Generator) -> np.ndarray:
    """``N(0, std²)`` per coordinate (zeros when ``std`` is 0, i.e. a non-private run)."""
    if std < 0:
        raise ValueError("noise std must be non-negative")
    if std == 0:
        return np.zeros(size)
    return rng.normal(0.0, std, size=size)
