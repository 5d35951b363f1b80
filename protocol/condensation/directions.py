"""Public random directions regenerated from a round seed.

Server and sites must produce bit-identical directions from ``(run_seed, round)`` alone, so
they come from numpy's ``PCG64`` bit generator keyed by a :class:`numpy.random.SeedSequence`
of ``(run_seed, round, DOMAIN)``; numpy guarantees this stream across platforms.

Directions have shape ``(P, m, D)`` (P directions over the m×D free coordinates of the synthetic
set); coordinates that are not optimised (labels, event indicators) are simply not part of the
free block. ``gaussian`` draws N(0, 1) entries; ``rademacher`` draws ±1.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

DirectionKind = Literal["gaussian", "rademacher"]
_DOMAIN = 0xD1EC  # separates direction streams from every other use of the run seed


def direction_rng(run_seed: int, round_index: int) -> np.random.Generator:
    """The public generator of one round's directions."""
    if run_seed < 0 or round_index < 0:
        raise ValueError("run_seed and round_index must be non-negative integers")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([run_seed, round_index, _DOMAIN])))


def make_directions(
    run_seed: int,
    round_index: int,
    n_directions: int,
    shape: tuple[int, ...],
    kind: DirectionKind = "gaussian",
) -> np.ndarray:
    """Return ``(n_directions, *shape)`` float64 directions for one round."""
    if n_directions < 1:
        raise ValueError("n_directions must be at least 1")
    rng = direction_rng(run_seed, round_index)
    full = (n_directions, *shape)
    if kind == "gaussian":
        return rng.standard_normal(full)
    if kind == "rademacher":
        return rng.integers(0, 2, size=full).astype(np.float64) * 2.0 - 1.0
    raise ValueError(f"unknown direction kind {kind!r}; use 'gaussian' or 'rademacher'")


def gradient_from_differences(
    differences: np.ndarray, directions: np.ndarray, mu: float
) -> np.ndarray:
    """Zero-order gradient estimate ``g = Σ_p (Δ_p / 2μ) · U_p / P``.

    Parameters
    ----------
    differences:
        ``(P,)`` averaged loss differences ``L(S + μU_p) − L(S − μU_p)``.
    directions:
        ``(P, *shape)`` the round's directions.
    mu:
        Smoothing radius.
    """
    p = directions.shape[0]
    if differences.shape != (p,):
        raise ValueError(f"differences must have shape ({p},), got {differences.shape}")
    return np.tensordot(differences / (2.0 * mu), directions, axes=1) / p
