"""Federated condensation over Flower SecAgg+ reproduces the central engine."""

import numpy as np
import pandas as pd
import pytest
from fault_injection import StageFault

from fedcondense.protocol.condensation.condenser import CondenseConfig
from fedcondense.protocol.data.schema import Schema
from fedcondense.protocol.data.site_table import load_site_table
from fedcondense.server.central_run import condense
from fedcondense.simulations.evaluation.datasets import export_dataset
from fedcondense.simulations.evaluation.site_splits import split_sites
from fedcondense.simulations.runtime.federated_condense import run_federated

CFG = dict(rows=4, models=("logistic_regression",), rounds=3, directions=6, seed=5)


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    d = tmp_path_factory.mktemp("fed")
    export_dataset("heart_disease", d)
    schema_path = d / "heart_disease.schema.json"
    schema = Schema.load(schema_path)
    df = pd.read_csv(d / "heart_disease.csv")
    parts = split_sites(df, schema, 3, partition="dirichlet:0.5", seed=0)
    files = []
    for i, part in enumerate(parts):
        files.append(d / f"site{i}.csv")
        part.to_csv(files[-1], index=False)
    pooled = d / "pooled.csv"
    pd.concat(parts).to_csv(pooled, index=False)
    return schema, schema_path, files, pooled


def test_secure_federation_equals_central_on_pooled_data(sites):
    schema, schema_path, files, pooled = sites
    cfg = CondenseConfig(epsilon=float("inf"), sample_rate=1.0, **CFG)
    central = condense(load_site_table(pooled, schema), schema, cfg)
    fed = run_federated(files, schema_path, cfg, secure=True, backend="local")
    diff = np.abs(fed.orchestrator.synthetic.Z - central.synthetic.Z).max()
    assert diff < 1e-3, diff  # SecAgg+ quantisation only
    assert fed.orchestrator.privacy_report()["private"] is False


def test_dropped_site_is_charged_and_the_run_finishes(sites):
    schema, schema_path, files, _ = sites
    cfg = CondenseConfig(epsilon=2.0, sample_rate=0.5, **CFG)
    fault = StageFault(site_id="site-2", round_index=2, stage="collect_masked_vectors")
    ck = files[0].parent / "coordinator.npz"
    fed = run_federated(files, schema_path, cfg, secure=True, backend="local", threshold=2,
                        extra_mods=[fault], checkpoint=ck)
    orch = fed.orchestrator
    assert orch.finished() and orch.rounds_done == 3
    report = orch.privacy_report()
    assert set(report["per_site"]) == {"site-1", "site-2", "site-3"}
    # site-2 failed mid-round 2: charged for that round's delivery, not counted as a
    # contributor, and (as in a deployed run) not asked again for the rest of the run
    reqs = report["per_site_requests"]
    assert reqs["site-2"]["rounds"] == 2 and reqs["site-2"]["rounds_contributed"] == 1
    assert reqs["site-1"]["rounds"] == reqs["site-3"]["rounds"] == 3
    assert "site-2" not in fed.report.rounds[-1]["sent"]
    from fedcondense.protocol.release.checkpoint import Checkpoint

    saved = Checkpoint.load(ck, schema)  # coordinator checkpoint after the last round
    assert saved.round_index == 3 and np.array_equal(saved.synthetic.Z, orch.synthetic.Z)
    assert saved.meta["accounts"]["site-2"]["round_requests"] == reqs["site-2"]["rounds"]
    eps = report["per_site"]
    assert 0 < eps["site-2"] < min(eps["site-1"], eps["site-3"])  # one round fewer
    # Distributed noise: the headline ε rests on an honest-but-curious coordinator; each
    # site's ε against a malicious one (only its own σ/√t share counts) is reported too.
    assert "honest-but-curious" in report["trust_assumption"]
    bad = report["per_site_against_malicious_coordinator"]
    assert all(bad[s] > eps[s] for s in eps)
    assert report["epsilon_against_malicious_coordinator"] == max(bad.values())
    assert report["private"] is False and report["warnings"]  # seeded: not private
    assert "sites" in saved.meta and all("n_records" not in v for v in saved.meta["sites"].values())


@pytest.mark.slow
def test_ray_simulation_engine_with_secagg_matches_central(sites):
    schema, schema_path, files, pooled = sites
    cfg = CondenseConfig(epsilon=float("inf"), sample_rate=1.0, **{**CFG, "rounds": 2})
    central = condense(load_site_table(pooled, schema), schema, cfg)
    fed = run_federated(files, schema_path, cfg, secure=True, backend="ray")
    assert np.abs(fed.orchestrator.synthetic.Z - central.synthetic.Z).max() < 1e-3


def test_distributed_noise_without_secure_aggregation_is_refused(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", "from fedcondense.cli.main import main; main()",
                        "simulate", "--dataset", "heart_disease", "--sites", "3", "--out",
                        str(tmp_path / "o"), "--no-secure-aggregation", "--noise", "distributed",
                        "--engine", "local", "--quiet"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("error: --noise distributed needs secure")
    assert not (tmp_path / "o" / "synthetic.csv").exists()
