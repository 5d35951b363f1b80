"""Local vs distributed noise: the securely aggregated sum carries the expected noise std.

Each site adds only its noise share (no data), the shares travel through the real SecAgg+
workflow (in-process grid), and the aggregate's sample std is compared with the closed form
with a TFF-style tolerance 4/√(2N−2) (plus the quantisation error, negligible here).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from fedcondense.protocol.condensation.federation import site_noise_std
from fedcondense.protocol.privacy.dp_mechanism import gaussian_noise, noise_generator
from fedcondense.protocol.wire.messages import RoundMessage, pow2_scale
from fedcondense.server.secure_sum import TransportConfig
from fedcondense.simulations.runtime.federated_run import simulate_transport

HASH = "e" * 64
P = 4000
TOTAL = 1.0


class NoiseOnly:
    """A site whose whole answer is its noise share (seeded per site for the test)."""

    def __call__(self, message: RoundMessage, node_config: Mapping[str, Any]) -> np.ndarray:
        party = int(str(node_config["site-id"]).split("-")[1])
        rng, _ = noise_generator(1234, party=party)
        return gaussian_noise(message.reply_dim, message.noise_std, rng)


@pytest.mark.parametrize("mode,n_sites,threshold", [("local", 3, 3), ("distributed", 3, 3),
                                                    ("distributed", 4, 2)])
def test_aggregate_noise_std(mode, n_sites, threshold, tmp_path, monkeypatch):
    monkeypatch.setenv("FLWR_HOME", str(tmp_path))
    share = site_noise_std(TOTAL, mode, threshold)
    out: list[np.ndarray] = []

    def make_round(t: int) -> RoundMessage:
        return RoundMessage(schema_hash=HASH, run_id="noise", round_index=t, round_seed=t,
                            reply_dim=P, scale=pow2_scale(8 * share, 8.0), noise_std=share)

    simulate_transport(NoiseOnly(), make_round, lambda t, s, k, info: out.append(s), rounds=1,
                       config=TransportConfig(n_sites, min_sites=max(2, threshold)),
                       schema_hash=HASH, backend="local")
    agg = out[0]
    expected = share * np.sqrt(n_sites)  # local: σ√K ; distributed: σ√(K/t) ≥ σ
    tol = 4 / np.sqrt(2 * P - 2)
    assert abs(agg.std(ddof=1) / expected - 1) < tol
    assert agg.std(ddof=1) >= TOTAL * (1 - tol)  # the sum always carries at least σ
    if mode == "distributed" and threshold == n_sites:
        assert abs(agg.std(ddof=1) - TOTAL) < tol * TOTAL
