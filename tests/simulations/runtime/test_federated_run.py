"""The real thing: ServerApp + ClientApp through Flower's Ray simulation engine with SecAgg+.

Kept to one Ray start-up (about 15-25 s on 2 cores); everything else is covered in-process
by tests/server/test_secure_sum.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fedcondense.server.secure_sum import TransportConfig
from fedcondense.simulations.runtime.federated_run import (
    DemoHandler,
    demo_rounds,
    demo_vector,
    simulate_transport,
)

HASH = "e" * 64
DIM = 32


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_ray_secaggplus_sum_with_a_site_failing_in_one_round(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("FLWR_TELEMETRY_ENABLED", "0")
    monkeypatch.setenv("FLWR_DISABLE_UPDATE_CHECK", "1")
    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "flwr"))
    rows: list[tuple[int, np.ndarray | None, int, dict[str, Any]]] = []
    make_round = demo_rounds(HASH, DIM, scale=1.0)
    report = simulate_transport(
        DemoHandler(fail=(("site-2", 2),)), make_round,
        lambda t, s, n, info: rows.append((t, s, n, info)), rounds=3,
        config=TransportConfig(3, secure_aggregation=True, min_sites=2), schema_hash=HASH,
        backend="ray", num_cpus=2)
    assert sorted(report.sites.values()) == ["site-1", "site-2", "site-3"]
    assert [r[2] for r in rows] == [3, 2, 3]
    for t, summed, n, info in rows:
        assert summed is not None and info["secure"]
        seed = make_round(t).round_seed
        exact = sum(demo_vector(s, seed, DIM) for s in info["contributed"])
        assert np.max(np.abs(summed - exact)) <= info["quantisation_bound"]
    info2 = rows[1][3]
    assert info2["dropped"] == ["site-2"] and info2["sent"] == ["site-1", "site-2", "site-3"]
    assert "failed in round 2" in info2["errors"]["site-2"]
    assert "private detail" not in info2["errors"]["site-2"]
