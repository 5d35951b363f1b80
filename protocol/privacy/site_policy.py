"""A site's own trust policy: what it believes about the coordinator, decided by the site alone.

A site trusts nothing the coordinator sends. Whatever a request says, the site's *own*
configuration decides

* **whose randomness it uses** — noise and Poisson sampling always come from the site's
  cryptographically secure source, unless the site's configuration explicitly allows seeded
  (reproducible, non-private) noise, which only a one-machine study (``fedcondense
  simulate --seed``) sets for its simulated sites. A request that names a noise seed anyway
  is refused before anything is charged or computed (:func:`check_randomness`).
* **which trust assumption its ledger is charged under** — by default the site distrusts the
  aggregator: it is charged at the noise it adds itself (its *local* σ), because a malicious
  coordinator can lie about dropouts or register nodes to isolate one site's masked vector
  (SecAgg+ in Flower protects against an honest-but-curious server only). Only when the
  site's configuration says ``trust-aggregator`` does a distributed-noise round count the
  noise of the other ``t`` contributions (σ·√t), and then only for declared thresholds ``t``
  at least the site's own ``min-contributors`` (:func:`charged_sigma`).

Flower-free; the ClientApp reads the policy from the node config
(:meth:`SitePolicy.from_node_config`): ``trust-aggregator`` (``"true"``/``"false"``, default
false), ``min-contributors`` (integer ≥ 2, required with trust), ``allow-seeded-noise``
(simulations only; never written by ``fedcondense site start``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import PrivacyError
from ..wire.messages import RoundMessage

POLICY_MARK = "site policy:"
"""Every policy refusal starts with this (after the budget mark when raised as a refusal)."""


class PolicyRefusal(PrivacyError):
    """The site refuses a request that tries to steer its randomness or trust."""


def truthy(value: Any) -> bool:
    """A node-config flag: "1", "true", "yes" or "on" (any case) is true."""
    return str(value).strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class SitePolicy:
    """The site's trust settings (from its own configuration, never from a request).

    Parameters
    ----------
    trust_aggregator : bool
        Charge distributed-noise rounds under the honest-but-curious assumption (σ·√t).
    min_contributors : int
        With trust: the least secure-aggregation threshold the site accepts.
    allow_seeded_noise : bool
        Accept a request's ``noise_seed`` (reproducible, *non-private* studies only).
    """

    trust_aggregator: bool = False
    min_contributors: int = 0
    allow_seeded_noise: bool = False

    def __post_init__(self) -> None:
        if self.trust_aggregator and self.min_contributors < 2:
            raise PrivacyError("trust-aggregator needs min-contributors ≥ 2: the least number "
                               "of sites whose noise a secure sum must hold.")

    @classmethod
    def from_node_config(cls, cfg: Mapping[str, Any]) -> "SitePolicy":
        """Parse the node config keys; a malformed value is an error, never a default."""
        trust = truthy(cfg.get("trust-aggregator", "false"))
        raw = cfg.get("min-contributors", 0)
        try:
            minimum = int(raw)
        except (TypeError, ValueError):
            raise PrivacyError(f"node config min-contributors={raw!r} is not an integer; "
                               f"set it to the least number of sites (≥ 2).") from None
        return cls(trust, minimum, truthy(cfg.get("allow-seeded-noise", "false")))

    @property
    def assumption(self) -> str:
        """The trust assumption the site's ledger is charged under, in words."""
        if self.trust_aggregator:
            return (f"honest-but-curious aggregator, at least {self.min_contributors} "
                    f"contributions per secure sum")
        return "malicious coordinator (only the site's own noise counts)"


def check_randomness(message: RoundMessage, policy: SitePolicy, site: str) -> None:
    """Refuse a request that names a noise seed the site did not agree to use.

    Raises
    ------
    PolicyRefusal
        One line naming the site and what to change.
    """
    if "noise_seed" in message.hyper and not policy.allow_seeded_noise:
        raise PolicyRefusal(
            f"{POLICY_MARK} site {site} refuses {message.kind} {message.round_index}: the "
            f"request names a noise seed, but this site draws its noise from its own secure "
            f"source (seeded noise is allowed only in a site's own simulation config).")


def charged_sigma(noise_std: float, sensitivity: float, mode: str, threshold: int,
                  policy: SitePolicy, site: str) -> float:
    """The noise multiplier a site's ledger is charged at for adding ``noise_std``.

    Parameters
    ----------
    noise_std : float
        The noise std the site adds itself.
    sensitivity : float
        The L2 sensitivity of the site's answer (clip norm C, or the initialisation's Δ).
    mode : str
        The declared noise mode (``"local"`` or ``"distributed"``).
    threshold : int
        The declared secure-aggregation threshold t.
    policy : SitePolicy
        The site's own policy.
    site : str
        The site id (for the refusal line).

    Raises
    ------
    PolicyRefusal
        A trusting site is asked to count on fewer contributions than its own minimum.
    """
    sigma = noise_std / sensitivity
    if mode != "distributed" or not policy.trust_aggregator:
        return sigma
    if threshold < policy.min_contributors:
        raise PolicyRefusal(
            f"{POLICY_MARK} site {site} refuses a secure-aggregation threshold of {threshold}: "
            f"its own configuration accepts no fewer than {policy.min_contributors} "
            f"contributions per sum (min-contributors).")
    return sigma * math.sqrt(threshold)
