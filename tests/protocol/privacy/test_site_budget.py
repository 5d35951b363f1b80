"""Site-side budget: the site prices each request itself, refuses, never double-charges."""

import functools
import math

import numpy as np
import pytest

from fedcondense.protocol.condensation.initialisation import sensitivity
from fedcondense.protocol.privacy.accounting import calibrate, epsilon_spent
from fedcondense.protocol.privacy.ledger import PrivacyLedger
from fedcondense.protocol.privacy.site_budget import (
    BUDGET_MARK,
    BudgetRefusal,
    DeclaredPlan,
    authorise,
    request_key,
)
from fedcondense.protocol.privacy.site_policy import SitePolicy
from fedcondense.protocol.wire.messages import RoundMessage

Q, ROUNDS, CLIP, N, DIM = 0.25, 4, 1.0, 400, 5


@functools.cache
def _plan(epsilon=1.0, mode="local", threshold=1, rounds=ROUNDS, init=True) -> DeclaredPlan:
    cal = calibrate(epsilon, 1e-5, Q, rounds, 0.3 if init else 0.0, 1)
    return DeclaredPlan(epsilon, 1e-5, "rdp", rounds, cal.sigma, cal.sigma_init or 0.0, mode,
                        threshold)


def _msg(plan: DeclaredPlan, t=1, attempt=0, kind="round", std=None, run="run-a") -> RoundMessage:
    scale = math.sqrt(plan.threshold) if plan.mode == "distributed" else 1.0
    if std is None:
        std = (plan.sigma * CLIP if kind == "round" else plan.sigma_init * sensitivity(DIM)) / scale
    return RoundMessage(schema_hash="h", run_id=run, round_index=t, round_seed=1, reply_dim=3,
                        noise_std=float(std), kind=kind, attempt=attempt,
                        hyper={"clip_norm": CLIP, "privacy": plan.to_hyper()})


def _book(tmp_path, budget=3.0):
    return PrivacyLedger.open(tmp_path / "ledger.json", site="h1", epsilon_budget=budget,
                              delta_budget=1e-5, create=True)


def test_honest_run_is_charged_per_request_and_survives_restart(tmp_path):
    plan = _plan()
    book = _book(tmp_path)
    authorise(book, _msg(plan, 0, kind="init"), q=Q, n_records=N, free_dim=DIM)
    for t in range(1, ROUNDS + 1):
        authorise(book, _msg(plan, t), q=Q, n_records=N, free_dim=DIM)
    again = PrivacyLedger.open(tmp_path / "ledger.json")
    assert again.keys_for_run("run-a") == ["run-a/init/0/0"] + [
        f"run-a/round/{t}/0" for t in range(1, ROUNDS + 1)]
    expected = epsilon_spent([{"type": "gaussian", "sigma": plan.sigma_init, "count": 1},
                              {"type": "sampled_gaussian", "q": Q, "sigma": plan.sigma,
                               "count": ROUNDS}], 1e-5)
    assert again.spent() == pytest.approx(expected, rel=1e-6)
    assert again.spent() <= 1.0 + 1e-3


def test_repeated_key_is_refused_and_not_charged(tmp_path):
    plan = _plan()
    book = _book(tmp_path)
    authorise(book, _msg(plan, 1), q=Q, n_records=N, free_dim=DIM)
    spent = PrivacyLedger.open(book.path).spent()
    with pytest.raises(BudgetRefusal, match="already answered run-a/round/1/0"):
        authorise(book, _msg(plan, 1), q=Q, n_records=N, free_dim=DIM)
    again = PrivacyLedger.open(book.path)
    assert again.spent() == spent and len(again.refusals) == 1
    # A retry (new attempt) is a new release and is charged.
    authorise(book, _msg(plan, 1, attempt=1), q=Q, n_records=N, free_dim=DIM)
    assert PrivacyLedger.open(book.path).spent() > spent


def test_under_noised_request_is_refused_before_spending(tmp_path):
    plan = _plan()
    book = _book(tmp_path)
    with pytest.raises(BudgetRefusal, match=r"site h1 refuses .*declared plan needs"):
        authorise(book, _msg(plan, 1, std=plan.sigma * 0.5), q=Q, n_records=N, free_dim=DIM)
    again = PrivacyLedger.open(book.path)
    assert again.events == () and again.refusals[0].key == "run-a/round/1/0"


def test_plan_that_breaks_its_own_epsilon_is_refused(tmp_path):
    plan = _plan()
    lying = DeclaredPlan(0.1, plan.delta, "rdp", ROUNDS, plan.sigma, plan.sigma_init,
                         "local", 1)
    with pytest.raises(BudgetRefusal, match="more than the declared ε=0.1"):
        authorise(_book(tmp_path), _msg(lying, 1), q=Q, n_records=N, free_dim=DIM)
    # The site's own sampling rate counts: the plan was calibrated for q=0.25, not 0.9.
    with pytest.raises(BudgetRefusal, match="q=0.9"):
        authorise(_book(tmp_path), _msg(plan, 1), q=0.9, n_records=N, free_dim=DIM)


def test_delta_too_large_for_site_and_missing_plan_refused(tmp_path):
    plan = _plan()
    with pytest.raises(BudgetRefusal, match="not below 1/n for this site"):
        authorise(_book(tmp_path), _msg(plan, 1), q=Q, n_records=200_000, free_dim=DIM)
    bare = RoundMessage(schema_hash="h", run_id="r", round_index=1, round_seed=1, reply_dim=3,
                        noise_std=1.0, hyper={"clip_norm": 1.0})
    with pytest.raises(BudgetRefusal, match="without a valid declared privacy plan"):
        authorise(_book(tmp_path), bare, q=Q, n_records=N, free_dim=DIM)


def test_distributed_noise_is_priced_at_the_secure_sum_only_by_a_trusting_site(tmp_path):
    plan = _plan(mode="distributed", threshold=4)
    trusting = SitePolicy(trust_aggregator=True, min_contributors=3)
    book = _book(tmp_path)
    spend = authorise(book, _msg(plan, 1), q=Q, n_records=N, free_dim=DIM, policy=trusting)
    assert spend["sigma"] == pytest.approx(plan.sigma)
    # By default a site distrusts the aggregator: only its own share σ/√t counts.
    own = authorise(book, _msg(plan, 2), q=Q, n_records=N, free_dim=DIM)
    assert own["sigma"] == pytest.approx(plan.sigma / 2.0)
    # The same per-site std claimed as "local" would be 2× under-noised.
    local = DeclaredPlan(plan.epsilon, plan.delta, "rdp", ROUNDS, plan.sigma, plan.sigma_init,
                         "local", 1)
    msg = _msg(plan, 3)
    tampered = RoundMessage(**{**msg.__dict__, "hyper": {"clip_norm": CLIP,
                                                         "privacy": local.to_hyper()}})
    with pytest.raises(BudgetRefusal, match="needs σ≥"):
        authorise(book, tampered, q=Q, n_records=N, free_dim=DIM, policy=trusting)


def test_a_trusting_site_refuses_a_threshold_below_its_own_minimum(tmp_path):
    """Attack: the coordinator under-declares the threshold to shrink every site's share."""
    plan = _plan(mode="distributed", threshold=2)
    book = _book(tmp_path)
    with pytest.raises(BudgetRefusal, match="threshold of 2.*no fewer than 3"):
        authorise(book, _msg(plan, 1), q=Q, n_records=N, free_dim=DIM,
                  policy=SitePolicy(trust_aggregator=True, min_contributors=3))
    assert book.spent() == 0 and len(PrivacyLedger.open(book.path).refusals) == 1


def test_a_request_naming_a_noise_seed_is_refused_by_any_ledger(tmp_path):
    """Attack: the coordinator names the noise seed and would subtract the noise."""
    plan = _plan()
    msg = _msg(plan, 1)
    seeded = RoundMessage(**{**msg.__dict__, "hyper": {**msg.hyper, "noise_seed": 1234}})
    book = _book(tmp_path)
    for policy in (SitePolicy(), SitePolicy(allow_seeded_noise=True)):
        with pytest.raises(BudgetRefusal, match="names a noise seed"):
            authorise(book, seeded, q=Q, n_records=N, free_dim=DIM, policy=policy)
    assert book.spent() == 0


def test_exhausted_budget_refuses_naming_site_and_budget(tmp_path):
    plan = _plan(epsilon=2.0, rounds=20, init=False)
    book = _book(tmp_path, budget=0.6)
    answered = 0
    with pytest.raises(BudgetRefusal) as err:
        for t in range(1, 21):
            authorise(book, _msg(plan, t), q=Q, n_records=N, free_dim=DIM)
            answered += 1
    assert str(err.value).startswith(BUDGET_MARK)
    assert "site h1" in str(err.value) and "budget ε=0.6" in str(err.value)
    again = PrivacyLedger.open(book.path)
    assert 0 < answered < 20 and len(again.events) == answered
    assert again.spent() <= 0.6 + 1e-9
    assert [r.key for r in again.refusals] == [request_key(_msg(plan, answered + 1))]
    assert np.isfinite(again.remaining())


def test_a_fake_dropout_list_is_charged_at_what_it_reveals(tmp_path):
    """Attack: the coordinator claims the other sites dropped, so SecAgg+ reveals this site's
    own vector (noise σ/√t only). A distrusting site (the default) was charged exactly the ε
    of that vector alone; a trusting one the honest-but-curious figure."""
    t, rounds = 4, 6
    plan = _plan(mode="distributed", threshold=t, rounds=rounds, init=False)
    (tmp_path / "d").mkdir(), (tmp_path / "t").mkdir()
    distrust, trust = _book(tmp_path / "d", budget=50.0), _book(tmp_path / "t", budget=50.0)
    for r in range(1, rounds + 1):
        authorise(distrust, _msg(plan, r), q=Q, n_records=N, free_dim=DIM)
        authorise(trust, _msg(plan, r), q=Q, n_records=N, free_dim=DIM,
                  policy=SitePolicy(trust_aggregator=True, min_contributors=t))
    alone = epsilon_spent([{"type": "sampled_gaussian", "q": Q, "sigma": plan.sigma / 2.0,
                            "count": rounds}], 1e-5)
    summed = epsilon_spent([{"type": "sampled_gaussian", "q": Q, "sigma": plan.sigma,
                             "count": rounds}], 1e-5)
    assert PrivacyLedger.open(distrust.path).spent() == pytest.approx(alone, rel=1e-6)
    assert PrivacyLedger.open(trust.path).spent() == pytest.approx(summed, rel=1e-6)
    assert alone > summed
