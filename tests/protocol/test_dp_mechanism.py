"""Clipping bound, Poisson sampling and the noise distribution."""

import numpy as np
import pytest

from fedcondense.protocol.dp_mechanism import clip_rows, gaussian_noise, noise_generator, poisson_sample


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
    assert ld == "os-csprng" and "reproducible" in la
    assert not np.array_equal(d.normal(size=5), e.normal(size=5))
