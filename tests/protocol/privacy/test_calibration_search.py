"""Calibration speed-up: same σ as the plain bisection, whatever the guide says.

``GRID`` holds (ε, δ, q, T, init share) and the σ, σ_init and ε spent that the calibration
gave before the guided search existed: computed with ``calibrate`` of commit d6a0107
(protocol/privacy/accounting.py, plain bisection on the full RDP accountant, no estimate, no cache).
"""

import math

import pytest

from fedcondense.protocol.errors import PrivacyError
from fedcondense.protocol.privacy.accounting import calibrate, epsilon_spent, solve_sigma
from fedcondense.protocol.privacy.rdp_estimate import estimate_sigma

GRID = [
    (0.5, 1e-05, 0.25, 100, 0.3, 20.332322652280638, 24.65867606011637, 0.4996761178352741),
    (1.0, 1e-05, 0.25, 100, 0.3, 10.870774403767127, 12.304326190653258, 0.9999659708315873),
    (1.0, 1e-05, 0.25, 10, 0.3, 3.8590405072020415, 12.304326190653258, 0.9996380900566185),
    (4.0, 1e-06, 0.25, 100, 0.3, 3.5676174793414877, 3.8252310062582073, 3.9974269837658305),
    (1.0, 1e-05, 0.05, 300, 0.0, 3.6804516339503057, None, 0.9997004959212721),
    (0.3, 1e-06, 0.05, 1000, 0.3, 23.390512423346138, 45.65482117323515, 0.29995554126680846),
    (2.0, 1e-05, 0.5, 30, 0.0, 6.08589207563526, None, 1.9993779327160275),
    (8.0, 1e-05, 1.0, 10, 0.3, 2.1531447519620466, 1.8241033854070532, 7.996640554793752),
    (1.0, 1e-05, 1.0, 100, 0.0, 40.47241934915783, None, 0.9994955660306111),
    (0.1, 1e-05, 0.01, 100, 0.3, 3.8252310062582073, 108.8068066379855, 0.09994971954155163),
    (3.0, 1e-07, 0.1, 200, 0.1, 2.7753240845970586, 16.02167551827373, 2.99877796656302),
    (1.0, 1e-05, 0.2, 40, 0.0, 5.406032977403711, None, 0.9993261093042378),
]


@pytest.mark.parametrize("eps,delta,q,rounds,share,sigma,sigma_init,spent", GRID)
def test_calibration_equals_the_plain_bisection(eps, delta, q, rounds, share, sigma,
                                                sigma_init, spent):
    cal = calibrate(eps, delta, q, rounds, share, 1)
    assert cal.sigma == pytest.approx(sigma, abs=1e-6)
    if sigma_init is None:
        assert cal.sigma_init is None
    else:
        assert cal.sigma_init == pytest.approx(sigma_init, abs=1e-6)
    assert cal.epsilon_total == pytest.approx(spent, abs=1e-9)


def test_calibration_is_cached_and_cache_is_keyed_by_every_argument():
    a = calibrate(1.0, 1e-5, 0.25, 100, 0.3, 1)
    assert calibrate(1.0, 1e-5, 0.25, 100, 0.3, 1) is a
    assert calibrate(1.0, 1e-5, 0.25, 100, 0.3, 2).sigma_init != a.sigma_init
    assert calibrate(1.0, 1e-5, 0.25, 100, 0.3, 1, "pld").sigma != a.sigma


def _rounds_eps(sigma: float) -> float:
    return epsilon_spent([{"type": "sampled_gaussian", "q": 0.25, "sigma": sigma, "count": 100}],
                         1e-5)


@pytest.mark.parametrize("estimate", [None, 1e-3, 0.5, 4.0, 7.3, 1e3, math.nan])
def test_a_wrong_or_missing_estimate_never_changes_the_answer(estimate):
    # steep toy curve: cheap, monotone, root at σ = 7.31...
    def toy(s: float) -> float:
        return 40.0 / s**2

    assert solve_sigma(toy, 0.75, estimate) == solve_sigma(toy, 0.75)


def test_an_unreachable_target_is_refused_with_or_without_estimate():
    with pytest.raises(PrivacyError, match="cannot be reached"):
        solve_sigma(lambda s: 1e9 / s, 1e-6, 5.0)


def test_estimate_is_close_to_the_root_of_the_full_accountant():
    import dp_accounting as dpa

    def event(s: float) -> dpa.DpEvent:
        return dpa.SelfComposedDpEvent(dpa.PoissonSampledDpEvent(0.25, dpa.GaussianDpEvent(s)), 100)

    guess = estimate_sigma(event, 1e-5, 1.0)
    assert guess is not None
    # the full ε at the guess, a hair either side, straddles the target
    assert _rounds_eps(guess * (1 - 1e-6)) > 1.0 >= _rounds_eps(guess * (1 + 1e-6))
