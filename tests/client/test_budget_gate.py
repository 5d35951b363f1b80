"""The site daemon's gate: charges its own ledger before data is touched, refuses in one line."""

import pandas as pd
import pytest

from fedcondense.client.app import SiteFailure
from fedcondense.client.budget_gate import gate, hello_info
from fedcondense.protocol.privacy.accounting import calibrate
from fedcondense.protocol.privacy.ledger import PrivacyLedger
from fedcondense.protocol.privacy.site_budget import DeclaredPlan
from fedcondense.protocol.wire.messages import RoundMessage
from fedcondense.simulations.evaluation.datasets import export_dataset


@pytest.fixture(scope="module")
def plan():
    cal = calibrate(1.0, 1e-5, 0.5, 3)
    return DeclaredPlan(1.0, 1e-5, "rdp", 3, cal.sigma, 0.0, "local", 1)


def _cfg(tmp_path, budget, create=True):
    csv, schema = export_dataset("heart_disease", tmp_path)
    if create:  # the operator's `fedcondense site init`
        PrivacyLedger.create(tmp_path / "ledger.json", site="h1", epsilon_budget=budget,
                             delta_budget=1e-5)
    return {"site-id": "h1", "data-path": str(csv), "schema-path": str(schema),
            "ledger-path": str(tmp_path / "ledger.json"), "budget-epsilon": budget,
            "budget-delta": 1e-5, "round-log": str(tmp_path / "rounds.log"), "capacity": 400}


def _msg(plan, t, session=1):
    return RoundMessage(schema_hash="h", run_id="r", round_index=t, round_seed=1, reply_dim=4,
                        noise_std=plan.sigma,
                        hyper={"clip_norm": 1.0, "privacy": plan.to_hyper(), "session": session,
                               "sample_rate_by_site": {"h1": 0.5}})


def test_gate_charges_then_refuses_naming_site_and_budget(tmp_path, plan):
    cfg = _cfg(tmp_path, 0.75)
    n = len(pd.read_csv(cfg["data-path"]))
    gate(_msg(plan, 1), cfg, n_records=n, free_dim=5)
    with pytest.raises(SiteFailure, match=r"site h1 refuses r/round/2/0: .*budget ε=0.75"):
        for t in range(2, 4):
            gate(_msg(plan, t), cfg, n_records=n, free_dim=5)
    book = PrivacyLedger.open(cfg["ledger-path"])
    assert book.keys_for_run("r")[0] == "r/round/1/0" and book.spent() <= 0.75
    lines = (tmp_path / "rounds.log").read_text().splitlines()
    assert "site h1 answered r round 1 attempt 0" in lines[0] and "REFUSED" in lines[-1]
    info = hello_info(cfg, {"run_id": "r", "session": 2})
    assert info["charged"].startswith("r/round/1/0")
    # The hello carries the declared capacity, never the exact record count.
    assert info["capacity"] == 400 and "n_records" not in info and n not in info.values()
    # The node config's budget can never differ from the ledger's.
    with pytest.raises(SiteFailure, match="cannot be changed"):
        gate(_msg(plan, 5), {**cfg, "budget-epsilon": 9.0}, n_records=n, free_dim=5)


def test_a_missing_ledger_is_refused_never_recreated(tmp_path, plan):
    cfg = _cfg(tmp_path, 1.0, create=False)
    with pytest.raises(SiteFailure, match=r"site h1: .*ledger.json: no privacy ledger there.*"
                                          r"never recreated.*site init"):
        gate(_msg(plan, 1), cfg, n_records=300, free_dim=5)
    with pytest.raises(SiteFailure, match="no privacy ledger"):
        hello_info(cfg, {"run_id": "r", "session": 1})
    assert not (tmp_path / "ledger.json").exists()


def test_gate_is_open_without_a_ledger(plan):
    gate(_msg(plan, 1), {"site-id": "sim"}, n_records=10, free_dim=5)  # simulations


def test_requests_of_an_earlier_coordinator_session_are_stale(tmp_path, plan):
    cfg = _cfg(tmp_path, 5.0)
    gate(_msg(plan, 1, session=1), cfg, n_records=300, free_dim=5)
    hello_info(cfg, {"run_id": "r", "session": 2})  # a resumed coordinator said hello
    with pytest.raises(SiteFailure, match="session 1, but session 2 .* stale"):
        gate(_msg(plan, 2, session=1), cfg, n_records=300, free_dim=5)
    gate(_msg(plan, 2, session=2), cfg, n_records=300, free_dim=5)
    book = PrivacyLedger.open(cfg["ledger-path"])
    assert book.keys_for_run("r") == ["r/round/1/0", "r/round/2/0"]
    assert book.current_session("r") == 2 and len(book.refusals) == 1
