"""The one builder of privacy.json and run.json: every mode's fields, the worst site's ε,
charged spends, and site timings kept out of private runs."""

import math

import pytest

from fedcondense.protocol.condensation.condenser import CondenseConfig, plan_privacy
from fedcondense.protocol.condensation.federation import SiteAccount
from fedcondense.protocol.privacy.accounting import epsilon_spent
from fedcondense.protocol.release.reports import privacy_report, run_report
from fedcondense.simulations.evaluation.datasets import load_dataset

CFG = CondenseConfig(epsilon=1.0, rounds=20, directions=8)


@pytest.fixture(scope="module")
def schema():
    return load_dataset("breast_cancer")[1]


def _accounts(rates: dict[str, float], rounds: int = 20) -> dict[str, SiteAccount]:
    return {k: SiteAccount(k, q, init_requests=1, round_requests=rounds,
                           rounds_contributed=rounds) for k, q in rates.items()}


def test_a_central_run_reports_its_calibrated_epsilon_without_per_site_fields(schema):
    plan = plan_privacy(CFG)
    report = privacy_report(schema=schema, config=CFG, plan=plan, mode="central", threshold=1,
                            accounts=_accounts({"central": CFG.sample_rate}))
    # fully charged, the run spent what it was calibrated for (closed loop with the accountant)
    assert report["spends"] == plan.spends
    assert report["epsilon"] == pytest.approx(epsilon_spent(plan.spends, CFG.delta, "rdp"))
    assert report["epsilon"] == pytest.approx(1.0, rel=0.02)
    assert report["private"] is True and report["mode"] == "central"
    assert "per_site" not in report and report["trust_assumption"].startswith("none")


def test_distributed_noise_reports_the_worst_site_under_both_trust_models(schema):
    plan = plan_privacy(CFG, sample_rate=0.5)
    accounts = _accounts({"a": 0.25, "b": 0.5})
    report = privacy_report(schema=schema, config=CFG, plan=plan, mode="distributed",
                            threshold=2, accounts=accounts)
    per_site = report["per_site"]
    assert per_site["b"] > per_site["a"] and report["epsilon"] == per_site["b"]
    against = report["per_site_against_malicious_coordinator"]
    assert all(against[k] > per_site[k] for k in accounts)  # only σ/√2 counts then
    assert report["epsilon_against_malicious_coordinator"] == against["b"]
    assert report["sample_rate"] == 0.5 and report["secure_aggregation_threshold"] == 2
    assert report["per_site_requests"]["a"] == {"init": 1, "rounds": 20, "rounds_contributed": 20}


def test_seeded_and_noiseless_runs_are_labelled_not_private(schema):
    accounts = _accounts({"s": 0.25})
    seeded = privacy_report(schema=schema, config=CFG, plan=plan_privacy(CFG), mode="local",
                            threshold=1, accounts=accounts, seeded=True,
                            noise_source="os-csprng")
    assert seeded["private"] is False and seeded["noise_source"].startswith("seeded")
    inf = CondenseConfig(epsilon=math.inf)
    none = privacy_report(schema=schema, config=inf, plan=plan_privacy(inf), mode="local",
                          threshold=1, accounts=accounts)
    assert none["private"] is False and none["epsilon"] == "inf" and none["spends"] == []


def test_run_json_drops_site_timings_of_private_runs_only(schema):
    rows = [{"round": 1, "applied": True, "wall_s": 1.0, "predict_s": 0.2,
             "time_split_s": {"wall_s": 1.0, "fit_s": 0.5, "privacy_s": 0.1}},
            {"round": 2, "applied": False, "wall_s": 2.0, "predict_s": 0.3}]
    kwargs = dict(command="simulate", config=CFG, schema=schema, run_seed=7, n_sites=2,
                  secure_aggregation=True, wall_seconds=4.0, rounds=rows,
                  time_split_seconds={"fit_s": 0.5, "predict_s": 0.5},
                  transport=[{"round": 1, "site_compute_s": {"a": 0.1}}], engine="local")
    private = run_report(private=True, **kwargs)
    open_ = run_report(private=False, **kwargs)
    assert "predict_s" not in private["rounds"][0] and "privacy_s" not in \
        private["rounds"][0]["time_split_s"]
    assert "predict_s" not in private["time_split_seconds"]
    assert "site_compute_s" not in private["transport"][0]
    assert open_["rounds"][0]["predict_s"] == 0.2 and open_["engine"] == "local"
    # 2 P fits per family per applied round (the discarded round fitted nothing centrally)
    assert private["function_evaluations"] == 2 * 8 * 2 * 1
    assert private["models"] == ["logistic_regression", "decision_tree"]
    assert private["schema_hash"] == schema.hash() and "python" in private["versions"]
