"""Accountant wrapper checked against dp-accounting itself and against closed forms."""

import math

import dp_accounting as dpa
import pytest
from dp_accounting import rdp

from fedcondense.protocol.errors import PrivacyError
from fedcondense.protocol.privacy.accounting import calibrate, epsilon_spent, validate_privacy


def test_sampled_gaussian_matches_library_directly():
    acc = rdp.RdpAccountant()
    acc.compose(dpa.SelfComposedDpEvent(dpa.PoissonSampledDpEvent(0.01, dpa.GaussianDpEvent(1.0)), 1000))
    ours = epsilon_spent([{"type": "sampled_gaussian", "q": 0.01, "sigma": 1.0, "count": 1000}], 1e-5)
    assert ours == pytest.approx(acc.get_epsilon(1e-5), rel=1e-9)
    # the figure recorded in shared/facts/datasets.md for these parameters
    assert ours == pytest.approx(2.10, abs=0.01)


def test_pld_gaussian_matches_analytic_gaussian_mechanism():
    # Balle & Wang's exact ε of one Gaussian mechanism (closed form inverted numerically).
    exact = dpa.get_epsilon_gaussian(3.0, 1e-5)
    ours = epsilon_spent([{"type": "gaussian", "sigma": 3.0}], 1e-5, accountant="pld")
    assert ours == pytest.approx(exact, abs=0.02)


def test_rdp_gaussian_matches_rdp_closed_form():
    # RDP of the Gaussian mechanism is α/(2σ²); convert with the library's conversion bound.
    sigma, delta = 4.0, 1e-5
    orders = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)) + [128, 256, 512]
    best = min(
        a / (2 * sigma**2) + math.log1p(-1 / a) - (math.log(delta) + math.log(a)) / (a - 1)
        for a in orders
    )
    ours = epsilon_spent([{"type": "gaussian", "sigma": sigma}], delta)
    assert ours == pytest.approx(best, rel=0.02)


def test_composition_is_not_a_plain_sum_but_bounded_by_it():
    a = {"type": "gaussian", "sigma": 5.0}
    b = {"type": "sampled_gaussian", "q": 0.1, "sigma": 2.0, "count": 50}
    both = epsilon_spent([a, b], 1e-5)
    assert both < epsilon_spent([a], 1e-5) + epsilon_spent([b], 1e-5)
    assert both > max(epsilon_spent([a], 1e-5), epsilon_spent([b], 1e-5))


@pytest.mark.parametrize("share", [0.0, 0.3])
def test_calibration_spends_at_most_target_and_is_tight(share):
    cal = calibrate(1.0, 1e-5, 0.2, 40, init_share=share)
    spends = cal.spends(0.2, 40, 1 if share else 0)
    assert epsilon_spent(spends, 1e-5) <= 1.0 + 1e-9
    looser = [dict(s) for s in spends]
    looser[-1]["sigma"] *= 0.99
    assert epsilon_spent(looser, 1e-5) > 1.0
    if share:
        assert cal.epsilon_init == pytest.approx(0.3, abs=0.01)


@pytest.mark.parametrize(
    "eps,delta,n",
    [(0.0, 1e-5, 100), (-1.0, 1e-5, 100), (float("nan"), 1e-5, 100), (1.0, 0.02, 100), (1.0, 0.0, 100)],
)
def test_invalid_privacy_parameters_are_refused(eps, delta, n):
    with pytest.raises(PrivacyError):
        validate_privacy(eps, delta, n)


def test_delta_message_suggests_a_fix():
    with pytest.raises(PrivacyError, match=r"1/n.*--delta"):
        validate_privacy(1.0, 0.01, 500)


def test_epsilon_spent_is_canonical_in_order_and_counts() -> None:
    from fedcondense.protocol.privacy.accounting import epsilon_spent

    init = {"type": "gaussian", "sigma": 5.0, "count": 1}
    r = {"type": "sampled_gaussian", "q": 0.25, "sigma": 1.2, "count": 3, "run": "x"}
    one = dict(r, count=1)
    a = epsilon_spent([init, r, one], 1e-5)
    assert a == epsilon_spent([dict(r, count=2), init, dict(one, count=2)], 1e-5)  # same multiset
    assert a > epsilon_spent([init, r], 1e-5) > 0  # one round more costs more
    assert epsilon_spent([dict(r, count=0)], 1e-5) == 0.0
