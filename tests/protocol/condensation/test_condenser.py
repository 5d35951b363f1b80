"""A round's per-record maths on a synthetic set: locality, clipping, portfolio shares, empty
samples (the central loop itself: tests/server/test_central_run.py)."""

import numpy as np

from fedcondense.protocol.condensation.condenser import public_init_rng
from fedcondense.protocol.condensation.initialisation import build_synthetic_set
from fedcondense.protocol.condensation.site_update import (
    RoundConfig,
    fit_round,
    per_record_differences,
    site_update,
)
from fedcondense.protocol.condensation.synthetic_set import SyntheticSet
from fedcondense.protocol.data.schema import Schema
from fedcondense.protocol.families import create_family


def start(schema: Schema) -> SyntheticSet:
    """A data-free initial set (5 rows, public placement)."""
    return build_synthetic_set(schema, 5, public_init_rng(3), None, 0.3)


def test_changing_one_record_changes_only_its_own_differences(heart):
    schema, table = heart
    res = start(schema)
    fams = {"logistic_regression": create_family("logistic_regression")}
    fits = fit_round(res, fams, RoundConfig(1, 1, 8, 0.1, 1.0))
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
    res = start(schema)
    fams = {"logistic_regression": create_family("logistic_regression")}
    fits = fit_round(res, fams, RoundConfig(1, 1, 8, 0.5, 0.05))
    rng = np.random.default_rng(0)
    full = site_update(table, fits, 1.0, 0.0, rng).vector

    class Without:
        X, y, time, event = table.X[1:], table.y[1:], None, None

    less = site_update(Without, fits, 1.0, 0.0, rng).vector
    assert np.linalg.norm(full - less) <= 0.05 + 1e-9


def test_portfolio_gives_every_family_an_equal_share_of_the_clip_norm(heart):
    schema, table = heart
    res = start(schema)
    names = ("logistic_regression", "decision_tree")
    fams = {m: create_family(m) for m in names}
    fits = fit_round(res, fams, RoundConfig(1, 1, 8, 0.5, 0.2))
    idx = np.arange(len(table.X))
    both = per_record_differences(fits, table, idx)
    alone = {m: per_record_differences(
        fit_round(res, {m: fams[m]}, RoundConfig(1, 1, 8, 0.5, 0.1)), table, idx)
        for m in names}  # one family clipped to C / 2 = 0.1
    np.testing.assert_allclose(both, alone["logistic_regression"] + alone["decision_tree"])
    assert np.linalg.norm(both, axis=1).max() <= 0.2 + 1e-9
    for m in names:
        assert np.linalg.norm(alone[m], axis=1).max() <= 0.1 + 1e-9


def test_an_empty_poisson_sample_contributes_noise_only(heart):
    schema, table = heart
    res = start(schema)
    fams = {"decision_tree": create_family("decision_tree")}
    fits = fit_round(res, fams, RoundConfig(1, 1, 8, 0.1, 1.0))

    class Tiny:
        X, y, time, event = table.X[:1], table.y[:1], None, None

    rng = np.random.default_rng(0)
    quiet = site_update(Tiny, fits, 1e-9, 0.0, rng).vector
    noisy = site_update(Tiny, fits, 1e-9, 2.0, rng).vector
    assert np.all(quiet == 0) and noisy.std() > 0.5
