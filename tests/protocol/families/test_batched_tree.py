"""The numpy CART kernel grows the trees scikit-learn grows: identical predictions.

Ties between equally good splits are frequent on 6–40-row sets (and forced here by rounding
values to one decimal); they are broken as scikit-learn's splitter breaks them (its seeded
feature order), so predictions are compared for exact equality, not within a tolerance.
"""

import numpy as np
import pytest
from kernel_tables import breast_cancer_sets
from sklearn.tree import DecisionTreeClassifier

from fedcondense.protocol.families import batched_tree, batched_tree_bits, create_family


def _sklearn(x, y, k, xr, **params):
    est = DecisionTreeClassifier(**params).fit(x, y)
    out = np.zeros((len(xr), k))
    out[:, est.classes_] = est.predict_proba(xr)
    return out


KERNELS = [batched_tree, batched_tree_bits]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("seed", range(6))
def test_kernel_equals_sklearn_tree_for_tree(seed, kernel):
    rng = np.random.default_rng(seed)
    m, d, k = int(rng.integers(5, 41)), int(rng.integers(1, 25)), int(rng.integers(2, 4))
    depth, state = int(rng.integers(1, 6)), int(rng.integers(0, 3))
    y = np.resize(np.arange(k), m)
    rng.shuffle(y)
    X = rng.normal(size=(24, m, d))
    X[:, :, 0] += y  # informative, so that trees differ in depth
    if seed % 2:
        X = np.round(X, 1)  # equal values within a feature and many tied scores
    xr = rng.normal(size=(60, d))
    trees = kernel.fit(X, y, k, depth, state)
    proba = batched_tree.predict_proba(trees, xr)
    compared = 0
    for b in range(len(X)):
        if trees.needs_reference[b]:
            continue
        compared += 1
        np.testing.assert_array_equal(
            proba[b], _sklearn(X[b], y, k, xr, max_depth=depth, random_state=state))
    assert compared >= len(X) // 2


@pytest.mark.parametrize("kernel", KERNELS)
def test_constant_feature_inside_a_node_is_flagged(kernel):
    # feature 1 is constant on the rows of class 1, a node the tree splits further
    x = np.array([[0.0, 0.0], [0.1, 1.0], [1.0, 5.0], [1.1, 5.0], [1.2, 5.0], [1.3, 5.0]])
    y = np.array([0, 0, 1, 1, 0, 1])
    assert kernel.fit(x[None], y, 2).needs_reference[0]
    assert not kernel.fit(x[None] + np.arange(6.0)[None, :, None] * 1e-3, y, 2)\
        .needs_reference[0]


def test_visit_order_is_a_permutation_per_call():
    ranks = batched_tree.visit_ranks(7, 15, 0)
    assert all(sorted(r) == list(range(7)) for r in ranks)
    assert len({tuple(r) for r in ranks}) > 1


@pytest.mark.parametrize("rounded", [False, True])
def test_family_batched_equals_reference_on_a_real_table(rounded):
    sets, targets, xr = breast_cancer_sets(32, 0.3)
    if rounded:  # constant features inside nodes: those sets go to scikit-learn itself
        sets = np.round(sets)
    sets[3, 0, 0] = np.nan  # a degenerate set: class frequencies, as the reference
    ref = create_family("decision_tree", backend="reference")
    bat = create_family("decision_tree")  # auto → batched
    assert bat.backend == "batched"
    fitted = bat.fit_batch(sets, targets)
    assert fitted.n_degenerate == 1
    np.testing.assert_array_equal(bat.predict_batch(fitted, xr),
                                  ref.predict_batch(ref.fit_batch(sets, targets), xr))


def test_stable_argsort_matches_numpy_on_signs_zeros_and_ties():
    rng = np.random.default_rng(3)
    x = np.round(rng.normal(size=(40, 7, 23)), 1).astype(np.float32)
    x[0, 0, :6] = [0.0, -0.0, 0.0, -0.0, -1.5, 1.5]  # -0.0 == 0.0: position order
    x[1, 1, :] = np.float32(-2.25)  # one value repeated
    x[2, 2, :3] = [np.finfo(np.float32).max, -np.finfo(np.float32).max, -np.float32(1e-40)]
    np.testing.assert_array_equal(batched_tree._stable_argsort(x),
                                  np.argsort(x, axis=-1, kind="stable"))


@pytest.mark.parametrize("kernel", KERNELS)
def test_missing_values_at_prediction_follow_the_larger_child_as_sklearn(kernel):
    rng = np.random.default_rng(5)
    y = np.resize([0, 1], 30)
    X = rng.normal(size=(4, 30, 5)) + y[None, :, None] * 0.5
    xr = rng.normal(size=(40, 5))
    xr[rng.random(xr.shape) < 0.3] = np.nan
    trees = kernel.fit(X, y, 2, 3, 0)
    proba = batched_tree.predict_proba(trees, xr)
    for b in range(len(X)):
        if not trees.needs_reference[b]:
            np.testing.assert_array_equal(
                proba[b], _sklearn(X[b], y, 2, xr, max_depth=3, random_state=0))


@pytest.mark.parametrize("seed", range(4))
def test_row_mask_kernel_grows_the_sort_kernels_trees(seed):
    # up to 64 rows (both mask widths), ties within the threshold, 2-3 classes, deep trees
    rng = np.random.default_rng(100 + seed)
    m, d, k = (7, 33, 64, 50)[seed], int(rng.integers(1, 12)), 2 + seed % 2
    y = np.resize(np.arange(k), m)
    rng.shuffle(y)
    X = rng.normal(size=(16, m, d)) + y[None, :, None] * 0.4
    X[::2] = np.round(X[::2], 1)
    X[1, :, 0] = np.arange(m) * 5e-8  # neighbours within 1e-7, spread beyond
    a, b = (kern.fit(X, y, k, 2 + seed, seed) for kern in KERNELS)
    # the mask kernel also flags a feature that is not constant but has no candidate split
    assert b.needs_reference[1] and not (a.needs_reference & ~b.needs_reference).any()
    ok = ~b.needs_reference
    for name in ("feature", "threshold", "left_heavy", "value"):
        np.testing.assert_array_equal(getattr(a, name)[ok], getattr(b, name)[ok])
    assert ok.sum() >= 8


def test_wave_schedule_covers_every_slot_once_after_its_parent():
    for depth in range(1, 8):
        waves = batched_tree_bits.waves(depth)
        at = {s: w for w, slots in enumerate(waves) for s in slots}
        assert sorted(at) == list(range(2**depth - 1))
        assert all(at[(s - 1) // 2] < at[s] for s in at if s)
