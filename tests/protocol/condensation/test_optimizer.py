"""Adam: known first step, convergence on a quadratic, exact checkpoint round trip."""

import numpy as np

from fedcondense.protocol.condensation.optimizer import Adam


def test_first_step_is_lr_times_sign():
    opt = Adam(lr=0.1)
    z = opt.step(np.zeros(3), np.array([2.0, -0.5, 0.0]))
    np.testing.assert_allclose(z, [-0.1, 0.1, 0.0], atol=1e-6)


def test_state_round_trip_continues_identically():
    rng = np.random.default_rng(0)
    a, z = Adam(lr=0.05), rng.normal(size=(4, 3))
    for _ in range(5):
        z = a.step(z, 2 * z)
    b = Adam.from_state(a.state_dict())
    za, zb = z.copy(), z.copy()
    for _ in range(5):
        za, zb = a.step(za, 2 * za), b.step(zb, 2 * zb)
    assert np.array_equal(za, zb)
    assert np.linalg.norm(za) < np.linalg.norm(z)
