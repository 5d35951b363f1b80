"""Round time split (fit/predict/privacy/framework) and fit sharing in simulations."""

import json

import numpy as np
import pandas as pd
import pytest

from fedcondense.protocol.condensation.condenser import CondenseConfig
from fedcondense.protocol.data.schema import Schema
from fedcondense.simulations.evaluation.datasets import export_dataset
from fedcondense.simulations.evaluation.site_splits import split_sites
from fedcondense.simulations.runtime.compute_plan import ComputePlan, plan_compute
from fedcondense.simulations.runtime.federated_condense import run_federated
from fedcondense.simulations.runtime.round_timing import (
    central_split,
    read_site_timings,
    round_split,
    split_table,
    split_totals,
)

CFG = dict(rows=4, models=("logistic_regression", "decision_tree"), rounds=2, directions=6,
           seed=3, epsilon=float("inf"), sample_rate=1.0)


def _site(pid, fit, predict=0.1, privacy=0.01, fitted=1):
    return {"fit": fit, "predict": predict, "privacy": privacy, "fitted": fitted, "pid": pid,
            "attempt": 0}


def test_round_split_sequential_sites_add_up_parallel_sites_overlap():
    one_process = {"a": _site(7, 0.5), "b": _site(7, 0.0, fitted=0), "c": _site(7, 0.0, fitted=0)}
    s = round_split(2.0, one_process)
    assert s["fit_s"] == pytest.approx(0.5) and s["predict_s"] == pytest.approx(0.3)
    assert s["site_s"] == pytest.approx(0.5 + 0.3 + 0.03) and s["fits"] == 1 and s["sites"] == 3
    assert s["framework_s"] == pytest.approx(2.0 - s["site_s"])
    parallel = {"a": _site(1, 0.5), "b": _site(2, 0.4)}
    p = round_split(1.0, parallel)
    assert p["site_s"] == pytest.approx(0.61) and p["fits"] == 2  # the slower site
    assert round_split(0.1, one_process)["framework_s"] == 0.0  # never negative


def test_read_site_timings_keeps_the_last_attempt(tmp_path):
    lines = [{"site": "s1", "round": 1, "attempt": 0, "pid": 5, "fitted": 1, "fit": 9.0,
              "predict": 1.0, "privacy": 0.0},
             {"site": "s1", "round": 1, "attempt": 1, "pid": 5, "fitted": 0, "fit": 0.0,
              "predict": 2.0, "privacy": 0.0}]
    (tmp_path / "site-timings-5.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines[::-1]))
    (tmp_path / "site-timings-6.jsonl").write_text(json.dumps({**lines[0], "site": "s2"}) + "\n")
    got = read_site_timings(tmp_path)
    assert set(got) == {1} and set(got[1]) == {"s1", "s2"}
    assert got[1]["s1"]["attempt"] == 1 and got[1]["s1"]["predict"] == 2.0


def test_central_split_per_round_and_totals():
    history = [{"round": 1, "seconds": 1.0, "fit_s": 0.6, "predict_s": 0.2, "privacy_s": 0.1},
               {"round": 2, "seconds": 0.5, "fit_s": 0.3, "predict_s": 0.1, "privacy_s": 0.0}]
    totals = {"fit": 0.9, "predict": 0.3, "privacy": 0.1, "update": 0.05, "checkpoint": 0.0}
    out = central_split(totals, history, 2.0, evaluations_per_round=128)
    assert out["site_s"] == pytest.approx(1.3)
    assert out["framework_s"] == pytest.approx(2.0 - 1.35)
    assert history[0]["time_split_s"]["framework_s"] == pytest.approx(0.1)
    assert history[1]["function_evaluations_per_second"] == pytest.approx(256)
    assert split_totals(history)["wall_s"] == pytest.approx(1.5)


def test_fast_polling_is_restored_after_the_run():
    from flwr.server.superlink.fleet.vce import vce_api
    from flwr.superlink.grid.inmemory_grid import InMemoryGrid

    from fedcondense.simulations.runtime.engine_polling import fast_polling

    class Factory:  # InMemoryGrid only asks its factory for a state object
        def state(self):
            return object()

    before = (vce_api.add_messages_to_queue, InMemoryGrid.__init__)
    with fast_polling(0.02) as patched:
        assert patched and vce_api.add_messages_to_queue is not before[0]
        assert InMemoryGrid(state_factory=Factory()).pull_interval == 0.02
    assert (vce_api.add_messages_to_queue, InMemoryGrid.__init__) == before
    assert InMemoryGrid(state_factory=Factory()).pull_interval == 0.1


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    d = tmp_path_factory.mktemp("timing")
    export_dataset("heart_disease", d)
    schema_path = d / "heart_disease.schema.json"
    df = pd.read_csv(d / "heart_disease.csv")
    files = []
    for i, part in enumerate(split_sites(df, Schema.load(schema_path), 3, seed=1)):
        files.append(d / f"site{i}.csv")
        part.to_csv(files[-1], index=False)
    return schema_path, files


def _check_split(history, n_sites, fits):
    for row in history:
        s = row["time_split_s"]
        assert s["sites"] == n_sites and s["fits"] == fits
        assert min(s["fit_s"], s["predict_s"], s["privacy_s"], s["framework_s"]) >= 0
        assert s["site_s"] + s["framework_s"] == pytest.approx(s["wall_s"])


def test_local_engine_fits_once_per_round_and_reports_the_split(sites):
    schema_path, files = sites
    fed = run_federated(files, schema_path, CondenseConfig(**CFG), backend="local")
    assert len(fed.orchestrator.history) == 2
    _check_split(fed.orchestrator.history, n_sites=3, fits=1)
    assert {r["time_split_s"]["threads"] for r in fed.orchestrator.history} == {
        fed.compute.threads}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ray_sites_share_one_process_and_its_fits_without_changing_the_result(sites):
    schema_path, files = sites
    # the run's thread count reaches the Ray actor (Ray would give it its CPU count or this
    # process's OMP_NUM_THREADS); 2 differs from both defaults of the test environment
    plan = plan_compute(CFG["models"], threads=2)
    shared = run_federated(files, schema_path, CondenseConfig(**CFG), backend="ray",
                           site_processes=1, compute=plan)
    _check_split(shared.orchestrator.history, n_sites=3, fits=1)
    assert {r["time_split_s"]["threads"] for r in shared.orchestrator.history} == {2}
    assert shared.compute == plan
    table = split_table(shared.orchestrator.history, "t")
    assert table.row_count == 3
    own = run_federated(files, schema_path, CondenseConfig(**CFG), backend="ray",
                        site_processes=None,  # one process per CPU, each fitting for itself
                        compute=ComputePlan(plan.backend_by_family, "cpu", 1, plan.uses_torch))
    assert all(r["time_split_s"]["fits"] >= 1 for r in own.orchestrator.history)
    # the same fits either way: equal up to SecAgg+'s (stochastic) quantisation
    diff = np.abs(shared.orchestrator.synthetic.Z - own.orchestrator.synthetic.Z).max()
    assert diff < 1e-4, diff
