"""Attacks on a site replayed against the real site code: the site's randomness is its own."""

import dataclasses

import numpy as np
import pytest

from fedcondense.client.app import SiteFailure
from fedcondense.client.site_handler import CondensationHandler
from fedcondense.protocol.condensation.condenser import CondenseConfig
from fedcondense.protocol.data.schema import Schema
from fedcondense.protocol.privacy.ledger import PrivacyLedger
from fedcondense.protocol.wire.messages import RoundMessage
from fedcondense.server.orchestrator import Orchestrator, SiteInfo
from fedcondense.server.round_messages import build_message
from fedcondense.simulations.evaluation.datasets import export_dataset

CFG = CondenseConfig(epsilon=1.0, rows=4, models=("logistic_regression",), rounds=3,
                     directions=8, sample_rate=0.5, init="random")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("site")
    csv, schema_path = export_dataset("heart_disease", folder)
    schema = Schema.load(schema_path)
    orch = Orchestrator(schema, CFG, [SiteInfo("h1", 300, 0.5)], mode="local", threshold=1)
    msg = build_message(orch, schema, "run-x", 8.0)
    return {"site-id": "h1", "data-path": str(csv), "schema-path": str(schema_path),
            "capacity": 300}, msg


def _seeded(msg: RoundMessage, seed: int = 1234) -> RoundMessage:
    return dataclasses.replace(msg, hyper={**msg.hyper, "noise_seed": seed})


def _ledger_cfg(cfg, tmp_path):
    return {**cfg, "ledger-path": str(tmp_path / "ledger.json"), "budget-epsilon": 3.0,
            "budget-delta": 1e-5}


def test_a_coordinator_chosen_noise_seed_is_refused_before_anything_is_charged(setup, tmp_path):
    cfg, msg = setup
    site = _ledger_cfg(cfg, tmp_path)
    with pytest.raises(SiteFailure, match="names a noise seed"):
        CondensationHandler()(_seeded(msg), site)
    assert not (tmp_path / "ledger.json").exists()  # nothing charged, not even opened
    with pytest.raises(SiteFailure, match="names a noise seed"):  # no ledger: still refused
        CondensationHandler()(_seeded(msg), cfg)


def test_a_ledger_refuses_seeded_noise_even_where_the_site_config_allows_it(setup, tmp_path):
    cfg, msg = setup
    site = {**_ledger_cfg(cfg, tmp_path), "allow-seeded-noise": "true"}
    PrivacyLedger.open(site["ledger-path"], site="h1", epsilon_budget=3.0, delta_budget=1e-5,
                       create=True)
    with pytest.raises(SiteFailure, match="seeded noise is not private"):
        CondensationHandler()(_seeded(msg), site)
    assert PrivacyLedger.open(site["ledger-path"]).spent() == 0


def test_seeded_noise_only_where_the_sites_own_simulation_config_allows_it(setup):
    cfg, msg = setup
    sim = {**cfg, "allow-seeded-noise": "true"}
    a = CondensationHandler()(_seeded(msg), sim)
    b = CondensationHandler()(_seeded(msg), sim)
    np.testing.assert_array_equal(a, b)  # reproducible study
    # Unseeded answers differ: the coordinator cannot regenerate the site's noise.
    diffs = np.concatenate([CondensationHandler()(msg, cfg) - CondensationHandler()(msg, cfg)
                            for _ in range(6)])  # 48 coordinates: no luck involved
    assert np.std(diffs) > 0.5 * np.sqrt(2) * msg.noise_std


def test_a_site_process_freezes_its_heap_once_after_its_first_round(setup):
    import gc
    import os

    from fedcondense.client import site_handler

    cfg, msg = setup
    site_handler._SETTLED.discard(os.getpid())
    gc.unfreeze()
    try:
        CondensationHandler()(msg, cfg)
        frozen = gc.get_freeze_count()
        assert frozen > 1000 and os.getpid() in site_handler._SETTLED  # imports, table, ...
        CondensationHandler()(msg, cfg)
        assert gc.get_freeze_count() <= frozen  # once per process: no second freeze
    finally:
        gc.unfreeze()
