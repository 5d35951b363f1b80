"""Canary audit: the one-run bound's maths, and the audit on real vs deliberately broken sites."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from canary_doubles import CoordinatorSeededSite, NoiseOffSite, NoiseSubtractingCoordinator
from scipy import stats

from fedcondense.protocol.condensation.condenser import CondenseConfig, plan_privacy
from fedcondense.simulations.benchmarks.canary_audit import (
    HonestSite,
    demo_site_table,
    main,
    run_canary_audit,
)
from fedcondense.simulations.benchmarks.one_run_bound import (
    audit_guesses,
    count_correct,
    default_choices,
    epsilon_lower_bound,
    p_value,
)
from fedcondense.simulations.evaluation.canaries import make_canaries


# ---------------------------------------------------------------------- the bound's maths
def test_p_value_at_zero_epsilon_is_the_fair_coin_tail() -> None:
    # ε = 0, δ = 0: guesses are coin flips, P[V ≥ v] = P[Binomial(r, 1/2) ≥ v]
    r, v = 20, 15
    direct = sum(math.comb(r, j) for j in range(v, r + 1)) / 2**r
    assert p_value(100, r, v, 0.0, 0.0) == pytest.approx(direct, rel=1e-12)


def test_p_value_delta_term_matches_its_definition() -> None:
    m, r, v, eps, delta = 50, 12, 10, 0.5, 1e-3
    q = math.exp(eps) / (1 + math.exp(eps))
    alpha = max(sum(stats.binom.pmf(v - j, r, q) for j in range(1, i + 1)) / i
                for i in range(1, v + 1))
    expected = stats.binom.sf(v - 1, r, q) + 2 * m * delta * alpha
    assert p_value(m, r, v, eps, delta) == pytest.approx(expected, rel=1e-12)
    assert p_value(m, r, v, eps, delta) > p_value(m, r, v, eps, 0.0)


@pytest.mark.parametrize("r", [10, 24, 100])
def test_all_guesses_correct_gives_the_closed_form(r: int) -> None:
    # δ = 0, v = r: p-value p_ε^r < β  ⇔  ε < log(p*/(1-p*)) with p* = β^(1/r)
    p_star = 0.05 ** (1 / r)
    closed = math.log(p_star / (1 - p_star))
    assert epsilon_lower_bound(r, r, r, 0.0, 0.95) == pytest.approx(closed, abs=1e-3)
    assert epsilon_lower_bound(r, r, r, 0.0, 0.95) <= closed  # errs on the safe side


def test_random_guessing_certifies_nothing_and_more_correct_certifies_more() -> None:
    assert epsilon_lower_bound(1000, 1000, 500, 1e-5) == 0.0
    assert epsilon_lower_bound(1000, 1000, 520, 1e-5) == 0.0  # within chance at 95 %
    bounds = [epsilon_lower_bound(200, 100, v, 1e-5) for v in (60, 70, 80, 90, 100)]
    assert bounds[0] < bounds[1] < bounds[2] < bounds[3] < bounds[4]
    assert epsilon_lower_bound(200, 100, 90, 1e-5, 0.99) < bounds[3]  # more confidence, less ε


def test_bound_is_valid_and_nearly_tight_on_randomised_response() -> None:
    # An ε-DP randomised response on each canary's bit: the bound must stay below ε in at least
    # 95 % of runs, and with many canaries come close to ε (the paper's pure-DP tightness).
    rng = np.random.default_rng(0)
    eps, m, runs = 2.0, 1000, 200
    keep = math.exp(eps) / (1 + math.exp(eps))
    bounds = []
    for _ in range(runs):
        bits = rng.random(m) < 0.5
        told = np.where(rng.random(m) < keep, bits, ~bits)
        bounds.append(epsilon_lower_bound(m, m, int((told == bits).sum()), 0.0))
    assert np.mean(np.asarray(bounds) > eps) <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / runs)
    assert np.median(bounds) > 0.75 * eps


def test_guess_counting_and_bonferroni_grid() -> None:
    scores = np.array([0.9, 0.1, 0.8, 0.2, 0.5, 0.4])
    included = np.array([True, False, True, False, False, True])
    assert count_correct(scores, included, 2, 2) == 4
    assert count_correct(scores, included, 3, 0) == 2  # 0.5 is out
    assert default_choices(48) == [(6, 6), (12, 12), (18, 18)]
    res = audit_guesses(np.r_[np.ones(24), np.zeros(24)], np.r_[np.ones(24), np.zeros(24)] > 0,
                        1e-5)
    assert (res.k_plus, res.correct, res.choices_tried) == (18, 36, 3)
    # each choice is tested at 1 - 0.05/3, so the best is below the uncorrected bound
    assert res.epsilon_lower_bound == pytest.approx(
        epsilon_lower_bound(48, 36, 36, 1e-5, 1 - 0.05 / 3), abs=1e-9)
    assert res.epsilon_lower_bound < epsilon_lower_bound(48, 36, 36, 1e-5, 0.95)


# ---------------------------------------------------------------------- the audit
ROUNDS, CANARIES, REAL_ROWS = 10, 48, 8


@pytest.fixture(scope="module")
def setting():
    real, schema = demo_site_table("heart_disease", 3, 1, REAL_ROWS)
    config = CondenseConfig(epsilon=1.0, delta=1e-5, rounds=ROUNDS, seed=3)  # 64 directions
    return real, schema, config


def _audit(setting, site_factory=None, reply_filter=None):
    real, schema, config = setting
    rng = np.random.default_rng(11)
    site = None if site_factory is None else site_factory(np.random.default_rng(12))
    return run_canary_audit(real, schema, config, canaries=CANARIES, rng=rng, site=site,
                            reply_filter=reply_filter)


def test_canaries_are_valid_rows_of_the_schema(setting) -> None:
    _, schema, _ = setting
    frame = make_canaries(schema, 30, np.random.default_rng(0))
    assert list(frame.columns) == schema.all_columns and len(frame) == 30
    for col in schema.columns:
        if col.kind == "numeric":
            assert frame[col.name].between(col.min, col.max).all()


def test_real_site_uses_the_production_noise_generator_by_default() -> None:
    from fedcondense.protocol.privacy.dp_mechanism import noise_generator

    assert HonestSite().noise_source == noise_generator(None)[1]


def test_audit_does_not_flag_the_real_site(setting) -> None:
    res = _audit(setting)
    assert res.settings["site_noise"] == "numpy PCG64 seeded by the auditor"
    assert res.accounted_epsilon == pytest.approx(1.0, abs=0.01)
    assert not res.flagged
    assert res.white_box.epsilon_lower_bound <= res.accounted_epsilon
    assert res.black_box.epsilon_lower_bound <= res.accounted_epsilon


def test_audit_flags_a_site_that_adds_no_noise(setting) -> None:
    res = _audit(setting, NoiseOffSite)
    assert res.accounted_epsilon == pytest.approx(1.0, abs=0.01)  # the claim is unchanged
    assert res.flagged and res.white_box.epsilon_lower_bound > 1.2
    assert res.white_box.correct >= res.white_box.guesses - 2


def test_audit_flags_noise_the_coordinator_can_regenerate(setting) -> None:
    _, _, config = setting
    seed = 1234
    std = plan_privacy(config).sigma * config.clip_norm  # what the coordinator asked for
    res = _audit(setting, lambda rng: CoordinatorSeededSite(rng, seed),
                 NoiseSubtractingCoordinator(seed, std))
    assert res.flagged and res.white_box.epsilon_lower_bound > 1.2
    # the same site audited by a coordinator that does not use the seed: not flagged
    plain = _audit(setting, lambda rng: CoordinatorSeededSite(rng, seed))
    assert not plain.flagged


def test_cli_writes_the_report_and_refuses_bad_input(tmp_path, capsys) -> None:
    code = main(["--dataset", "heart_disease", "--rounds", "2", "--directions", "16",
                 "--canaries", "8", "--real-rows", "8", "--seed", "0", "--out", str(tmp_path)])
    assert code == 0
    report = json.loads((tmp_path / "canary_audit.json").read_text())
    for key in ("accounted_epsilon", "empirical_epsilon_lower_bound", "confidence", "m",
                "k_plus", "k_minus", "correct_guesses", "flagged", "black_box"):
        assert key in report
    assert report["m"] == 8 and report["confidence"] == 0.95
    assert main(["--canaries", "1", "--out", str(tmp_path)]) == 2
    assert "--canaries" in capsys.readouterr().err
