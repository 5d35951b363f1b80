"""The sampled Gaussian mechanism applied at a site: Poisson sampling, clipping, noise.

* :func:`poisson_sample` keeps each record independently with probability ``q`` (the
  accountant's amplification-by-sampling assumes exactly this);
* :func:`clip_rows` scales each record's P-vector to L2 norm at most ``C`` — with per-record
  losses that depend only on the record and the public synthetic set, a record then changes
  the site's sum by at most ``C`` (add/remove adjacency);
* :func:`add_gaussian_noise` / :func:`gaussian_noise` add or draw ``N(0, std²)`` per
  coordinate from the site's private generator.

:func:`noise_generator` returns that generator and a label of where its randomness comes from:

* **production** (``seed=None``): a :class:`SecureGenerator`. Its uniforms (Poisson
  sampling) are read from the operating system's CSPRNG (``os.urandom``, 53 bits each); its
  Gaussians come from OpenDP's vetted sampler (``make_gaussian`` on float vectors under the
  L2 distance): an exact discrete Gaussian on the grid ``2^k·ℤ`` with the finest ``k``, drawn
  from system entropy, the input rounded to that grid and each result rounded to the nearest
  float — OpenDP's answer to floating-point attacks on naive samplers (Mironov 2012). Without
  the ``opendp`` package (a declared dependency) the Gaussians fall back to numpy's sampler on
  a PCG64 seeded from :mod:`secrets`, and the label says so.
* **seeded** (an integer): numpy PCG64 for reproducible research runs. Anyone who knows the
  seed can regenerate the noise: such runs are not private and are labelled that way.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
from functools import lru_cache
from typing import Any, Callable

import numpy as np

_NOISE_DOMAIN = 0x5EC7
SEEDED_SOURCE = "seeded (reproducible, not for release)"
OPENDP_SOURCE = "os-csprng (Poisson sampling from os.urandom, Gaussian noise from OpenDP)"
FALLBACK_SOURCE = ("os-csprng (Poisson sampling from os.urandom; numpy Gaussian noise seeded "
                   "from secrets: install opendp for the vetted sampler)")


def opendp_available() -> bool:
    """Whether OpenDP's sampler is installed (production Gaussians use it when it is)."""
    return importlib.util.find_spec("opendp") is not None


def urandom_uniform(size: int) -> np.ndarray:
    """``size`` uniforms in ``[0, 1)`` on the grid ``2^-53`` from ``os.urandom`` (a CSPRNG)."""
    raw = np.frombuffer(os.urandom(8 * int(size)), dtype=np.uint64)
    return (raw >> np.uint64(11)).astype(np.float64) * 2.0**-53


@lru_cache(maxsize=64)
def _opendp_gaussian(std: float) -> Callable[[list[float]], Any]:
    """OpenDP's Gaussian measurement on float vectors (L2 distance) with this std."""
    from opendp.domains import atom_domain, vector_domain
    from opendp.measurements import make_gaussian
    from opendp.metrics import l2_distance
    from opendp.mod import enable_features

    enable_features("contrib")
    return make_gaussian(vector_domain(atom_domain(T=float, nan=False)),
                         l2_distance(T=float), scale=float(std))


def opendp_add_gaussian(values: np.ndarray, std: float) -> np.ndarray:
    """``values`` plus ``N(0, std²)`` per coordinate, sampled and added by OpenDP."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values.copy()
    noised = _opendp_gaussian(float(std))(values.ravel().tolist())
    return np.asarray(noised, dtype=np.float64).reshape(values.shape)


class SecureGenerator(np.random.Generator):
    """Production randomness: CSPRNG uniforms and OpenDP Gaussians behind numpy's interface.

    :meth:`random`, :meth:`normal` and :meth:`standard_normal` (all the private randomness
    fedcondense draws) never use the underlying PCG64, which is seeded from :mod:`secrets`
    only so that any other method still works. It has no state worth saving: a checkpoint
    stores nothing (:func:`restorable_state`) and unpickling gives a fresh generator.
    """

    def __init__(self) -> None:
        super().__init__(np.random.PCG64(np.random.SeedSequence(secrets.randbits(256))))
        self.uses_opendp = opendp_available()

    @property
    def source(self) -> str:
        """Label for the run's report."""
        return OPENDP_SOURCE if self.uses_opendp else FALLBACK_SOURCE

    def random(self, size: Any = None, dtype: Any = np.float64, out: Any = None) -> Any:
        if out is not None or np.dtype(dtype) != np.float64:
            raise TypeError("SecureGenerator.random draws float64 only, without out=")
        shape = () if size is None else size
        u = urandom_uniform(int(np.prod(shape))).reshape(shape)
        return float(u) if size is None else u

    def normal(self, loc: Any = 0.0, scale: Any = 1.0, size: Any = None) -> Any:
        if not (np.ndim(loc) == 0 and np.ndim(scale) == 0):
            raise TypeError("SecureGenerator.normal takes scalar loc and scale")
        if scale < 0:
            raise ValueError("scale < 0")
        shape = () if size is None else size
        base = np.full(shape, float(loc))
        if scale == 0:
            out = base
        elif self.uses_opendp:
            out = opendp_add_gaussian(base, float(scale))
        else:
            out = super().normal(loc, scale, size=shape)
        return float(out) if size is None else out

    def standard_normal(self, size: Any = None, dtype: Any = np.float64, out: Any = None) -> Any:
        if out is not None or np.dtype(dtype) != np.float64:
            raise TypeError("SecureGenerator.standard_normal draws float64 only, without out=")
        return self.normal(0.0, 1.0, size)

    def __reduce__(self) -> Any:  # a fresh CSPRNG generator, never a copy of any state
        return (SecureGenerator, ())


def noise_generator(seed: int | None, party: int = 0) -> tuple[np.random.Generator, str]:
    """Private generator for sampling and noise, and a label of where its randomness comes from.

    Parameters
    ----------
    seed:
        ``None`` for production (:class:`SecureGenerator`: CSPRNG uniforms, OpenDP
        Gaussians); an integer for a reproducible run (not private: never for a release).
    party:
        Distinguishes parties (sites) sharing one run seed in a simulation.
    """
    if seed is None:
        rng = SecureGenerator()
        return rng, rng.source
    ss = np.random.SeedSequence([int(seed), _NOISE_DOMAIN, int(party)])
    return np.random.Generator(np.random.PCG64(ss)), SEEDED_SOURCE


def restorable_state(rng: np.random.Generator) -> dict[str, Any] | None:
    """State to checkpoint so that a resumed seeded run draws the same noise; ``None`` for a
    production generator (its noise must never be regenerable from a file)."""
    return None if isinstance(rng, SecureGenerator) else dict(rng.bit_generator.state)


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


def add_gaussian_noise(values: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """``values`` plus ``N(0, std²)`` per coordinate.

    With a production :class:`SecureGenerator` (and OpenDP installed) the values themselves
    go through OpenDP's mechanism, which rounds them to its grid before adding the noise and
    rounds the result to a float, instead of a float sum of a separately drawn noise vector.
    A seeded generator draws exactly what :func:`gaussian_noise` draws.
    """
    values = np.asarray(values, dtype=np.float64)
    if std < 0:
        raise ValueError("noise std must be non-negative")
    if std == 0:
        return values.copy()
    if isinstance(rng, SecureGenerator) and rng.uses_opendp:
        return opendp_add_gaussian(values, std)
    return values + rng.normal(0.0, std, size=values.shape)
