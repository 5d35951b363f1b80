"""A site's answer on the wire: its scaled vector, range check and the flags it may send.

:func:`make_reply` scales the raw vector by the request's public power-of-two ``scale``,
checks it against the SecAgg+ clipping range (flag and clip, or refuse) and
:func:`quantisation_bound` is how far a secure sum may lie from the exact one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .messages import (
    PROTOCOL_VERSION,
    REPLY_PREFIX,
    ConfigValue,
    ProtocolError,
    ReplyRangeError,
    RoundMessage,
)


@dataclass(frozen=True)
class SiteReply:
    """What one site hands to the aggregation: the scaled vector and plaintext flags.

    Parameters
    ----------
    site_id : str
        The site's public identifier.
    scaled : ndarray
        ``v / scale`` (already clipped to ``±clipping_range`` when ``overflow`` is set).
    overflow : bool
        True if the site had to clip (the sum is then biased for this round).
    compute_seconds : float
        Wall time of the site handler, negative if the site does not report it (plaintext;
        it grows with the private Poisson batch size, so sites may withhold it).
    """

    site_id: str
    scaled: np.ndarray
    overflow: bool
    compute_seconds: float

    def metrics(self) -> dict[str, ConfigValue]:
        """Plaintext metrics (a ``FitRes.metrics`` dict: scalars only)."""
        return {REPLY_PREFIX + "site_id": self.site_id,
                REPLY_PREFIX + "overflow": int(self.overflow),
                REPLY_PREFIX + "compute_s": float(self.compute_seconds),
                REPLY_PREFIX + "protocol_version": PROTOCOL_VERSION}

    @staticmethod
    def parse_metrics(metrics: Mapping[str, Any]) -> tuple[str, bool, float]:
        """``(site_id, overflow, compute_seconds)`` from a reply's plaintext metrics."""
        site = metrics.get(REPLY_PREFIX + "site_id")
        if not isinstance(site, str):
            raise ProtocolError("malformed fedcondense reply: it lacks fc.site_id.")
        seconds = float(metrics.get(REPLY_PREFIX + "compute_s", -1.0))
        return (site, bool(metrics.get(REPLY_PREFIX + "overflow", 0)),
                seconds if seconds >= 0 else float("nan"))


def make_reply(message: RoundMessage, vector: np.ndarray, site_id: str,
               compute_seconds: float = 0.0) -> SiteReply:
    """Check a site's raw P-vector against the message and scale it for the wire.

    Parameters
    ----------
    message : RoundMessage
        The request being answered.
    vector : ndarray
        The site's raw answer ``v`` (length ``message.reply_dim``).
    site_id : str
        This site's identifier.
    compute_seconds : float
        Time the handler took.

    Returns
    -------
    SiteReply
        With ``scaled = v / scale``; under ``secure`` and ``overflow_policy="flag"`` the
        values beyond ``±clipping_range`` are clipped here, explicitly, and flagged.

    Raises
    ------
    ReplyRangeError
        Wrong length, non-finite values, or overflow under ``overflow_policy="refuse"``.
    """
    v = np.asarray(vector, dtype=np.float64).reshape(-1)
    if v.shape != (message.reply_dim,):
        raise ReplyRangeError(
            f"site {site_id} produced a vector of length {v.size}, the round expects "
            f"{message.reply_dim}."
        )
    if not np.all(np.isfinite(v)):
        raise ReplyRangeError(f"site {site_id} produced non-finite values in round "
                              f"{message.round_index}; refusing to send them.")
    scaled = v / message.scale
    overflow = False
    if message.secure and float(np.max(np.abs(scaled), initial=0.0)) > message.clipping_range:
        if message.overflow_policy == "refuse":
            raise ReplyRangeError(
                f"site {site_id}: round {message.round_index} answer exceeds the secure-"
                f"aggregation range (|v|/scale > {message.clipping_range}); refusing rather "
                f"than letting SecAgg+ clip silently; raise the public scale."
            )
        overflow = True
        scaled = np.clip(scaled, -message.clipping_range, message.clipping_range)
    return SiteReply(site_id, scaled, overflow, float(compute_seconds))


def quantisation_bound(n_sites: int, clipping_range: float, scale: float,
                       quantization_range: int = 2**22) -> float:
    """Worst-case per-coordinate |secure sum − exact sum| of SecAgg+ for ``n_sites``.

    Each site stochastically rounds ``(x + c) * Q / (2c)`` to an integer (error < 1 level,
    i.e. < ``2c/Q`` in value), the server de-quantises the sum exactly, so the error of the
    scaled sum is below ``n * 2c / Q`` and, after multiplying by ``scale``,
    ``n * 2 * c * scale / Q``. Stochastic rounding is unbiased: the typical error is about
    ``sqrt(n/6) * c * scale / Q``.
    """
    return n_sites * 2.0 * clipping_range * scale / quantization_range
