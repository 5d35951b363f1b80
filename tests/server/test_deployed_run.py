"""The deployed coordinator's requests pass the sites' own checks; resume reconciliation."""

import copy
import dataclasses

import pytest

from fedcondense.protocol.condensation.condenser import CondenseConfig
from fedcondense.protocol.condensation.synthetic_set import free_dim
from fedcondense.protocol.data.schema import Schema
from fedcondense.protocol.errors import FedcondenseError
from fedcondense.protocol.privacy.ledger import PrivacyLedger
from fedcondense.protocol.privacy.site_budget import authorise
from fedcondense.protocol.privacy.site_policy import SitePolicy
from fedcondense.server.deployed_run import DeploySettings, parse_key, reconcile
from fedcondense.server.orchestrator import Orchestrator, SiteInfo
from fedcondense.server.round_messages import build_message
from fedcondense.simulations.evaluation.datasets import export_dataset

CFG = CondenseConfig(epsilon=1.0, rows=4, models=("logistic_regression",), rounds=3,
                     directions=8, sample_rate=0.5, seed=3)
SITES = [SiteInfo("a", 120, 0.5), SiteInfo("b", 90, 0.5), SiteInfo("c", 100, 0.5)]


@pytest.fixture(scope="module")
def schema(tmp_path_factory):
    _, path = export_dataset("heart_disease", tmp_path_factory.mktemp("dep"))
    return Schema.load(path)


@pytest.fixture(scope="module")
def orchs(schema):
    return {init: Orchestrator(schema, dataclasses.replace(CFG, init=init), SITES,
                               mode="distributed", threshold=2) for init in ("dp", "random")}


@pytest.mark.parametrize("init", ["dp", "random"])
def test_honest_requests_pass_every_site_check(schema, orchs, tmp_path, init):
    orch = orchs[init]
    msg = build_message(orch, schema, "run-x", 8.0)
    assert msg.kind == ("init" if init == "dp" else "round")
    for site in SITES:
        book = PrivacyLedger.create(tmp_path / f"{site.site_id}.json", site=site.site_id,
                                    epsilon_budget=1.0, delta_budget=1e-5)
        rates = msg.hyper["sample_rate_by_site" if msg.kind == "round"
                          else "round_sample_rate_by_site"]
        spend = authorise(book, msg, q=rates[site.site_id], n_records=site.capacity,
                          free_dim=free_dim(schema),
                          policy=SitePolicy(trust_aggregator=True, min_contributors=2))
        expected = orch.plan.sigma_init if init == "dp" else orch.plan.sigma
        assert spend["sigma"] == pytest.approx(expected, rel=1e-9)


def test_reconcile_charges_interrupted_deliveries_once(orchs):
    orch = copy.deepcopy(orchs["random"])
    orch.resumed_from = 0
    hello = {"a": {"charged": "r/round/1/0,r/round/1/1,other/round/1/0"},
             "b": {"charged": "r/round/1/0"}, "c": {"charged": ""}}
    nxt = reconcile(orch, hello, "r")
    assert nxt == {("round", 1): 2}
    assert [orch.accounts[s].round_requests for s in "abc"] == [2, 1, 0]
    assert parse_key("r/init/0/3", "r") == ("init", 0, 3)
    assert parse_key("rx/round/1/0", "r") is None and parse_key("r/round/x/0", "r") is None


def test_run_config_missing_key_is_named():
    rc = {"schema-path": "s.json", "out-dir": "o", "sites": 4, "epsilon": 1.0, "delta": 1e-5,
          "rows": 4, "rounds": 2, "directions": 8, "sample-rate": 0.5, "models": "knn,mlp"}
    with pytest.raises(FedcondenseError, match="run config lacks 'schema-path'"):
        DeploySettings.from_run_config({k: v for k, v in rc.items() if k != "schema-path"})
    s = DeploySettings.from_run_config(rc)
    assert s.threshold == 3 and s.condense.models == ("knn", "mlp") and s.condense.seed is None


@pytest.mark.parametrize("init", ["dp", "random"])
def test_privacy_report_gives_both_trust_figures(orchs, init):
    orch = copy.deepcopy(orchs[init])
    orch._charge("round", ["a", "b", "c"])
    report = orch.privacy_report()
    honest, malicious = report["per_site"], report["per_site_against_malicious_coordinator"]
    assert set(honest) == set(malicious) == {"a", "b", "c"}
    assert all(0 < honest[s] < malicious[s] for s in honest)  # distributed, threshold 2
    assert report["adjacency"] == "add/remove one record" and report["bounds"] == "declared public"
    assert orch.epsilon_spent() == report["epsilon"] == max(honest.values())  # progress line
