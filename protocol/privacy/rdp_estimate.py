"""A cheap, accurate guess of the noise multiplier at which an RDP ε crosses a target.

Calibration (:func:`fedcondense.protocol.privacy.accounting.calibrate`) bisects σ on dp-accounting's
RDP accountant over its ~160 default orders; most of the time goes into the fractional orders
(a series per order, recomputed at every bisection point). The RDP ε is the minimum over
orders of a per-order bound, and each order's value is computed independently, so an
accountant restricted to a few orders gives, at every σ, an ε at least the full one and equal
to it whenever the optimal order is among them. This module finds the root of such a
restricted ε:

1. on a coarse subset of the default orders (cheap), which also points at the optimal order;
2. on a window of consecutive default orders around that order, moved until the optimum at
   the root lies strictly inside the window.

Everything is computed by dp-accounting's ``RdpAccountant(orders=...)``; the result is only a
*guess*: :func:`~fedcondense.protocol.privacy.accounting.solve_sigma` confirms it with the full
accountant and falls back to the plain bisection when it is wrong.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

from scipy.optimize import brentq

from .accountant_library import dp_event, rdp_privacy_accountant

DEFAULT_RDP_ORDERS = rdp_privacy_accountant.DEFAULT_RDP_ORDERS

EventOfSigma = Callable[[float], dp_event.DpEvent]
# Every member is one of DEFAULT_RDP_ORDERS (so restricted values equal full ones per order).
_COARSE_ORDERS = (1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12, 16, 24, 32, 48, 63, 128)
_WINDOW_HALF_WIDTH = 3
_MIN_SIGMA, _MAX_SIGMA = 1e-2, 1e4


def restricted_epsilon(event: dp_event.DpEvent, delta: float,
                       orders: Sequence[float]) -> tuple[float, float]:
    """(ε, optimal order) of ``event`` by dp-accounting's RDP accountant on ``orders``."""
    acc = rdp_privacy_accountant.RdpAccountant(orders=list(orders))
    acc.compose(event)
    eps, order = acc.get_epsilon_and_optimal_order(delta)
    return float(eps), float(order)


def _root(event_of_sigma: EventOfSigma, delta: float, target: float,
          orders: Sequence[float], start: float, rtol: float) -> float | None:
    """σ where the restricted ε equals ``target`` (to ``rtol`` in log σ), or None."""

    def gap(log_sigma: float) -> float:
        return restricted_epsilon(event_of_sigma(math.exp(log_sigma)), delta, orders)[0] - target

    lo = hi = math.log(start)
    g_lo = g_hi = gap(lo)
    step = 0.3
    while g_hi > 0:  # ε too large: more noise
        lo, g_lo = hi, g_hi
        hi += step
        step *= 2.0
        if hi > math.log(_MAX_SIGMA):
            return None
        g_hi = gap(hi)
    while g_lo <= 0:  # ε within target: less noise
        hi, g_hi = lo, g_lo
        lo -= step
        step *= 2.0
        if lo < math.log(_MIN_SIGMA):
            return None
        g_lo = gap(lo)
    return math.exp(brentq(gap, lo, hi, xtol=rtol, rtol=rtol))


def estimate_sigma(event_of_sigma: EventOfSigma, delta: float, target: float) -> float | None:
    """Guess of the σ at which the full default-order RDP ε of ``event_of_sigma(σ)`` is
    ``target``; None when no guess was found (the caller then bisects on the full ε)."""
    sigma = _root(event_of_sigma, delta, target, _COARSE_ORDERS, 1.0, 1e-3)
    if sigma is None:
        return None
    orders = list(DEFAULT_RDP_ORDERS)
    centre = orders.index(restricted_epsilon(event_of_sigma(sigma), delta, _COARSE_ORDERS)[1])
    for _ in range(len(orders)):
        first = max(0, centre - _WINDOW_HALF_WIDTH)
        window = orders[first:centre + _WINDOW_HALF_WIDTH + 1]
        root = _root(event_of_sigma, delta, target, window, sigma, 1e-13)
        if root is None:
            return None
        sigma = root
        best = window.index(restricted_epsilon(event_of_sigma(sigma), delta, window)[1])
        at_low_edge = best == 0 and first > 0
        at_high_edge = best == len(window) - 1 and first + len(window) < len(orders)
        if not (at_low_edge or at_high_edge):
            return sigma
        centre = first + best
    return sigma
