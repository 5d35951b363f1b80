"""Clipping bound, Poisson sampling and the noise distribution (seeded and production)."""

import pickle

import numpy as np
import pytest

from fedcondense.protocol.privacy.dp_mechanism import (
    OPENDP_SOURCE,
    SecureGenerator,
    add_gaussian_noise,
    clip_rows,
    gaussian_noise,
    noise_generator,
    opendp_available,
    poisson_sample,
    restorable_state,
    urandom_uniform,
)


def _within_tff_tolerance(x, std):
    """TFF's check of a noisy sum's sample std: relative error below 4/sqrt(2N-2)."""
    n = x.size
    return abs(x.std(ddof=1) / std - 1) < 4 / np.sqrt(2 * n - 2) \
        and abs(x.mean()) < 4 * std / np.sqrt(n)


def test_clipping_bounds_every_row_and_keeps_small_rows():
    rng = np.random.default_rng(0)
    v = rng.normal(scale=5.0, size=(200, 16))
    v[:10] *= 1e-3
    c = clip_rows(v, 1.5)
    assert np.all(np.linalg.norm(c, axis=1) <= 1.5 + 1e-12)
    np.testing.assert_allclose(c[:10], v[:10])
    # direction is preserved
    cos = np.sum(c * v, axis=1) / np.linalg.norm(c, axis=1) / np.linalg.norm(v, axis=1)
    np.testing.assert_allclose(cos, 1.0)


def test_one_record_changes_a_clipped_sum_by_at_most_C():
    rng = np.random.default_rng(1)
    v = rng.normal(scale=10.0, size=(50, 8))
    s_with = clip_rows(v, 1.0).sum(0)
    s_without = clip_rows(v[1:], 1.0).sum(0)
    assert np.linalg.norm(s_with - s_without) <= 1.0 + 1e-12


def test_noise_standard_deviation_statistically():
    rng, _ = noise_generator(seed=3)
    n, std = 20000, 2.5
    x = gaussian_noise(n, std, rng)
    # TFF-style tolerance for a sample std: 4/sqrt(2N-2) relative
    assert abs(x.std(ddof=1) / std - 1) < 4 / np.sqrt(2 * n - 2)
    assert abs(x.mean()) < 4 * std / np.sqrt(n)


def test_poisson_sampling_rate():
    rng, _ = noise_generator(seed=4)
    n, q = 100000, 0.3
    k = len(poisson_sample(n, q, rng))
    assert abs(k - q * n) < 4 * np.sqrt(n * q * (1 - q))
    assert len(poisson_sample(10, 1.0, rng)) == 10
    with pytest.raises(ValueError):
        poisson_sample(10, 0.0, rng)


def test_seeded_generators_reproduce_and_csprng_ones_differ():
    a, la = noise_generator(7, party=1)
    b, _ = noise_generator(7, party=1)
    c, _ = noise_generator(7, party=2)
    assert np.array_equal(a.normal(size=5), b.normal(size=5))
    assert not np.array_equal(noise_generator(7, 1)[0].normal(size=5), c.normal(size=5))
    d, ld = noise_generator(None)
    e, _ = noise_generator(None)
    assert ld.startswith("os-csprng") and "reproducible" in la
    assert isinstance(d, SecureGenerator) and restorable_state(d) is None
    assert restorable_state(a) == a.bit_generator.state
    assert not np.array_equal(d.normal(size=5), e.normal(size=5))
    assert not np.array_equal(d.normal(size=5), d.normal(size=5))
    assert not np.array_equal(d.random(5), e.random(5))
    f = pickle.loads(pickle.dumps(d))  # a copy is a fresh secure generator, not a clone
    assert isinstance(f, SecureGenerator) and not np.array_equal(f.random(5), d.random(5))


@pytest.mark.skipif(not opendp_available(), reason="opendp not installed (pip install opendp)")
@pytest.mark.parametrize("std", [0.7, 3.53])
def test_production_noise_is_opendps_with_the_requested_std(std):
    rng, label = noise_generator(None)
    assert label == OPENDP_SOURCE and rng.uses_opendp
    x = gaussian_noise(4000, std, rng)
    assert _within_tff_tolerance(x, std)
    values = np.linspace(-5, 5, 4000)
    noised = add_gaussian_noise(values, std, rng)
    assert _within_tff_tolerance(noised - values, std)
    grid = add_gaussian_noise(np.zeros((40, 50)), std, rng)  # shapes are kept
    assert grid.shape == (40, 50) and _within_tff_tolerance(grid.ravel(), std)


def test_production_zero_std_gives_zeros_and_the_values():
    rng, _ = noise_generator(None)
    assert np.array_equal(gaussian_noise(7, 0.0, rng), np.zeros(7))
    v = np.arange(6.0).reshape(2, 3)
    assert np.array_equal(add_gaussian_noise(v, 0.0, rng), v)
    assert np.array_equal(rng.normal(1.5, 0.0, size=3), np.full(3, 1.5))
    with pytest.raises(ValueError):
        gaussian_noise(3, -1.0, rng)


def test_production_poisson_sampling_uses_csprng_uniforms():
    u = urandom_uniform(200000)
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 4 * np.sqrt(1 / 12 / u.size)
    rng, _ = noise_generator(None)
    n, q = 100000, 0.3
    k = len(poisson_sample(n, q, rng))
    assert abs(k - q * n) < 4 * np.sqrt(n * q * (1 - q))
    assert not np.array_equal(poisson_sample(1000, 0.5, rng), poisson_sample(1000, 0.5, rng))


def test_seeded_add_noise_draws_what_gaussian_noise_draws():
    a, _ = noise_generator(5, party=2)
    b, _ = noise_generator(5, party=2)
    v = np.arange(8.0)
    assert np.array_equal(add_gaussian_noise(v, 1.3, a), v + gaussian_noise(8, 1.3, b))


def test_without_opendp_production_noise_is_still_csprng_seeded_and_labelled():
    from fedcondense.protocol.privacy.dp_mechanism import FALLBACK_SOURCE

    rng = SecureGenerator()
    rng.uses_opendp = False  # what a venv without the opendp package gets
    assert rng.source == FALLBACK_SOURCE and "install opendp" in rng.source
    assert _within_tff_tolerance(add_gaussian_noise(np.zeros(4000), 2.0, rng), 2.0)
    assert _within_tff_tolerance(rng.standard_normal(4000), 1.0)
