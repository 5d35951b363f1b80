"""Directions from seeds and the zero-order gradient estimator."""

import numpy as np

from fedcondense.protocol.condensation.directions import gradient_from_differences, make_directions


def test_directions_are_reproducible_and_round_specific():
    a = make_directions(11, 3, 8, (5, 4))
    b = make_directions(11, 3, 8, (5, 4))
    c = make_directions(11, 4, 8, (5, 4))
    assert a.shape == (8, 5, 4)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    r = make_directions(1, 1, 4, (3,), kind="rademacher")
    assert set(np.unique(r)) <= {-1.0, 1.0}


def test_zero_order_estimate_of_a_quadratic_is_unbiased():
    # f(z) = 0.5 ||A z||^2 has gradient A^T A z; central differences are exact for quadratics
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    z = rng.normal(size=6)
    f = lambda x: 0.5 * np.sum((a @ x) ** 2)  # noqa: E731
    true = a.T @ a @ z
    mu, p = 0.01, 20000
    u = make_directions(5, 1, p, (6,))
    diffs = np.array([f(z + mu * up) - f(z - mu * up) for up in u])
    g = gradient_from_differences(diffs, u, mu)
    assert np.linalg.norm(g - true) / np.linalg.norm(true) < 0.1
