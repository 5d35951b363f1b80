"""Central condensation: determinism, resume, locality, clipping, improvement."""

from pathlib import Path

import numpy as np
import pytest

from fedcondense.protocol.condenser import CondenseConfig, condense
from fedcondense.protocol.schema import Schema
from fedcondense.protocol.site_table import load_site_table
from fedcondense.protocol.site_update import RoundConfig, fit_round, per_record_differences, site_update
from fedcondense.protocol.families import create_family
from fedcondense.simulations.datasets import export_dataset, load_dataset, train_test_split_table
from fedcondense.simulations.evaluation import as_table, utility

FAST = dict(rounds=4, directions=8, rows=5, models=("logistic_regression",), seed=3)


@pytest.fixture(scope="module")
def heart(tmp_path_factory):
    d = tmp_path_factory.mktemp("heart")
    export_dataset("heart_disease", d)
    schema = Schema.load(d / "heart_disease.schema.json")
    return schema, load_site_table(d / "heart_disease.csv", schema)


def test_fixed_seed_is_reproducible_and_seeds_differ(heart):
    schema, table = heart
    a = condense(table, schema, CondenseConfig(**FAST))
    b = condense(table, schema, CondenseConfig(**FAST))
    c = condense(table, schema, CondenseConfig(**{**FAST, "seed": 4}))
    assert np.array_equal(a.synthetic.Z, b.synthetic.Z)
    assert not np.array_equal(a.synthetic.Z, c.synthetic.Z)
    assert a.noise_source.startswith("seeded")


def test_resume_from_checkpoint_equals_uninterrupted_run(heart, tmp_path):
    schema, table = heart
    full = condense(table, schema, CondenseConfig(**FAST))
    ck = tmp_path / "state.npz"

    def crash_after_two(r, info):
        if r == 2:
            raise KeyboardInterrupt  # the process dies after round 2 was checkpointed

    with pytest.raises(KeyboardInterrupt):
        condense(table, schema, CondenseConfig(**FAST), progress=crash_after_two, checkpoint=ck)
    resumed = condense(table, schema, CondenseConfig(**FAST), checkpoint=ck, resume=True)
    assert np.array_equal(full.synthetic.Z, resumed.synthetic.Z)


def test_changing_one_record_changes_only_its_own_differences(heart):
    schema, table = heart
    res = condense(table, schema, CondenseConfig(**{**FAST, "rounds": 1}))
    fams = {"logistic_regression": create_family("logistic_regression")}
    fits = fit_round(res.synthetic, fams, RoundConfig(1, 1, 8, 0.1, 1.0))
    idx = np.arange(len(table.X))
    base = per_record_differences(fits, table, idx)
    X2 = table.X.copy()
    X2[5] = -X2[5]

    class Changed:
        X, y, time, event = X2, table.y, None, None

    changed = per_record_differences(fits, Changed, idx)
    moved = np.abs(changed - base).max(axis=1)
    assert moved[5] > 0 and np.all(np.delete(moved, 5) == 0)


def test_site_sum_moves_by_at_most_clip_norm_when_a_record_is_removed(heart):
    schema, table = heart
    res = condense(table, schema, CondenseConfig(**{**FAST, "rounds": 1}))
    fams = {"logistic_regression": create_family("logistic_regression")}
    fits = fit_round(res.synthetic, fams, RoundConfig(1, 1, 8, 0.5, 0.05))
    rng = np.random.default_rng(0)
    full = site_update(table, fits, 1.0, 0.0, rng).vector

    class Without:
        X, y, time, event = table.X[1:], table.y[1:], None, None

    less = site_update(Without, fits, 1.0, 0.0, rng).vector
    assert np.linalg.norm(full - less) <= 0.05 + 1e-9


def test_portfolio_gives_every_family_an_equal_share_of_the_clip_norm(heart):
    schema, table = heart
    res = condense(table, schema, CondenseConfig(**{**FAST, "rounds": 1}))
    names = ("logistic_regression", "decision_tree")
    fams = {m: create_family(m) for m in names}
    fits = fit_round(res.synthetic, fams, RoundConfig(1, 1, 8, 0.5, 0.2))
    idx = np.arange(len(table.X))
    both = per_record_differences(fits, table, idx)
    alone = {m: per_record_differences(
        fit_round(res.synthetic, {m: fams[m]}, RoundConfig(1, 1, 8, 0.5, 0.1)), table, idx)
        for m in names}  # one family clipped to C / 2 = 0.1
    np.testing.assert_allclose(both, alone["logistic_regression"] + alone["decision_tree"])
    assert np.linalg.norm(both, axis=1).max() <= 0.2 + 1e-9
    for m in names:
        assert np.linalg.norm(alone[m], axis=1).max() <= 0.1 + 1e-9


def test_condensation_beats_its_own_initialisation():
    df, schema = load_dataset("breast_cancer")
    tr, te = train_test_split_table(df, schema, test_size=0.3, seed=0)
    tmp = Path(__import__("tempfile").mkdtemp())
    tr.to_csv(tmp / "tr.csv", index=False)
    te.to_csv(tmp / "te.csv", index=False)
    train, test = load_site_table(tmp / "tr.csv", schema), load_site_table(tmp / "te.csv", schema)
    cfg = dict(epsilon=4.0, rows=10, models=("logistic_regression",), directions=32, init="random",
               sample_rate=0.5, seed=0)
    scores = []
    for rounds in (1, 40):
        res = condense(train, schema, CondenseConfig(rounds=rounds, **cfg))
        out = tmp / f"syn{rounds}.csv"
        res.synthetic.decode().to_csv(out, index=False)
        syn = load_site_table(out, schema, min_rows=2)
        scores.append(utility(schema, "logistic_regression", as_table(syn), as_table(test))["auroc"])
    assert scores[1] > scores[0] + 0.05, scores


def test_an_empty_poisson_sample_contributes_noise_only(heart):
    schema, table = heart
    res = condense(table, schema, CondenseConfig(**{**FAST, "rounds": 1}))
    fams = {"decision_tree": create_family("decision_tree")}
    fits = fit_round(res.synthetic, fams, RoundConfig(1, 1, 8, 0.1, 1.0))

    class Tiny:
        X, y, time, event = table.X[:1], table.y[:1], None, None

    rng = np.random.default_rng(0)
    quiet = site_update(Tiny, fits, 1e-9, 0.0, rng).vector
    noisy = site_update(Tiny, fits, 1e-9, 2.0, rng).vector
    assert np.all(quiet == 0) and noisy.std() > 0.5
