"""The privacy audit detects a leaky release and passes a data-free one."""

import numpy as np
import pandas as pd

from fedcondense.simulations.evaluation.audit import attack_auc, copy_counts, dcr_attack
from fedcondense.simulations.evaluation.utility import Table


def _tables(seed=0):
    rng = np.random.default_rng(seed)
    members = Table(rng.uniform(-1, 1, size=(150, 6)), y=rng.integers(0, 2, 150))
    nonmembers = Table(rng.uniform(-1, 1, size=(150, 6)), y=rng.integers(0, 2, 150))
    return rng, members, nonmembers


def test_dcr_attack_flags_a_release_that_copies_members():
    rng, members, nonmembers = _tables()
    leaky = Table(members.X[:60] + rng.normal(scale=1e-3, size=(60, 6)), y=members.y[:60])
    res = dcr_attack(members, nonmembers, leaky)
    assert res.auc > 0.65 and res.ci_low > 0.5


def test_dcr_attack_is_near_chance_for_data_free_rows():
    rng, members, nonmembers = _tables(1)
    fresh = Table(rng.uniform(-1, 1, size=(60, 6)), y=rng.integers(0, 2, 60))
    res = dcr_attack(members, nonmembers, fresh)
    assert 0.4 < res.auc < 0.6 and res.ci_low < 0.5 < res.ci_high


def test_attack_auc_of_separable_scores_is_one():
    res = attack_auc("x", np.array([3.0, 4.0, 5.0]), np.array([0.0, 1.0, 2.0]), n_boot=20)
    assert res.auc == 1.0


def test_copy_counts_exact_and_near():
    real = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    released = pd.DataFrame({"a": [1, 5], "b": ["x", "y"]})
    enc_real = np.array([[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]])
    enc_rel = np.array([[0.0, 0.0], [0.9, 0.1]])
    out = copy_counts(real, released, enc_real, enc_rel)
    assert out["exact_copies"] == 1 and out["near_copies"] == 1
