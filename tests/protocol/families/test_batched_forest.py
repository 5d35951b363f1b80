"""The numpy forest kernel grows the forests scikit-learn grows: identical predictions.

It reproduces ``RandomForestClassifier``'s per-tree seeds, bootstrap counts, per-node feature
draws (Fisher–Yates from the splitter's xorshift stream, with its constant-feature
bookkeeping), splits, tie-breaking and leaf values, so predictions are compared for exact
equality. Rounded values and binary columns force tied scores and features constant inside
nodes, the cases where the feature draws depend on the data.
"""

import numpy as np
import pytest
from kernel_tables import breast_cancer_sets
from sklearn.ensemble import RandomForestClassifier
from sklearn.ensemble._forest import _generate_sample_indices

from fedcondense.protocol.families import batched_forest, batched_forest_backend, create_family
from fedcondense.protocol.families.base import FitTargets, class_frequencies


def _sklearn(x, y, k, xr, **params):
    est = RandomForestClassifier(n_jobs=1, **params).fit(x, y)
    out = np.zeros((len(xr), k))
    out[:, est.classes_] = est.predict_proba(xr)
    return out


def test_seeds_and_bootstrap_counts_equal_sklearn():
    rng = np.random.default_rng(0)
    m = 23
    x, y = rng.normal(size=(m, 4)), np.resize([0, 1], m)
    est = RandomForestClassifier(n_estimators=7, random_state=5, n_jobs=1).fit(x, y)
    seeds, _ = batched_forest.tree_seeds(5, 7)
    assert [t.random_state for t in est.estimators_] == list(seeds)
    counts = batched_forest.bootstrap_counts(5, 7, m)
    for t, tree in enumerate(est.estimators_):
        idx = _generate_sample_indices(tree.random_state, m, m, None)
        np.testing.assert_array_equal(counts[t], np.bincount(idx, minlength=m))


@pytest.mark.parametrize("seed", range(8))
def test_kernel_equals_sklearn_forest_for_forest(seed):
    rng = np.random.default_rng(seed)
    m, d, k = int(rng.integers(4, 45)), int(rng.integers(1, 35)), int(rng.integers(2, 4))
    trees, state = int(rng.integers(1, 15)), int(rng.integers(0, 100))
    depth = None if seed % 3 else int(rng.integers(1, 5))
    y = rng.integers(0, k, m)
    X = rng.normal(size=(5, m, d))
    X[:, :, 0] += y
    if seed % 4 == 1:
        X = np.round(X, 0)  # ties and constant features inside nodes
    elif seed % 4 == 2:
        X[:, :, d // 2:] = X[:, :, d // 2:] > 0.3  # one-hot-like binary columns
    elif seed % 4 == 3:
        X = 1.0 + 1e-7 * X  # neighbours within float32's 1e-7 tie threshold
    xr = rng.normal(size=(40, d)) * (1e-7 if seed % 4 == 3 else 1.0) + (seed % 4 == 3)
    xr[0, 0] = np.nan  # a missing value goes to the heavier child
    forest = batched_forest.fit(X, y, k, trees, state, depth)
    proba = batched_forest.predict_proba(forest, xr, chunk=1000)
    for b in range(len(X)):
        np.testing.assert_array_equal(
            proba[b], _sklearn(X[b], y, k, xr, n_estimators=trees, random_state=state,
                               max_depth=depth))


@pytest.mark.parametrize("rounded", [False, True])
def test_family_batched_equals_reference_on_a_real_table(rounded):
    sets, targets, xr = breast_cancer_sets(12, 0.1, paired=True)  # ± perturbed copies
    if rounded:
        sets = np.round(sets)
    sets[3, 0, 0] = np.nan  # degenerate sets: class frequencies, as the reference
    sets[5, 1, 2] = 1e39  # finite, but infinite in float32: scikit-learn rejects it
    ref = create_family("random_forest", backend="reference")
    bat = create_family("random_forest")  # auto → batched
    assert bat.backend == "batched" and not bat.uses_torch
    fitted = bat.fit_batch(sets, targets)
    assert fitted.n_degenerate == 2
    p = bat.predict_batch(fitted, xr)
    np.testing.assert_array_equal(p, ref.predict_batch(ref.fit_batch(sets, targets), xr))
    assert np.allclose(p[[3, 5]], class_frequencies(targets.labels, 2))


def test_single_class_labels_and_absent_classes():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2, 12, 3))
    bat = create_family("random_forest", backend="batched", n_estimators=5)
    p = bat.predict_batch(bat.fit_batch(X, FitTargets(labels=np.full(12, 2), n_classes=4)),
                          X[0])
    assert np.all(p[..., 2] == 1.0) and p.sum() == p[..., 2].sum()


def test_supported_parameters():
    ok = batched_forest_backend.supports
    assert ok({"n_estimators": 100, "random_state": 0, "max_depth": None})
    assert ok({"n_estimators": 1, "random_state": np.int64(7), "max_depth": 3})
    for bad in ({"random_state": None}, {"random_state": True}, {"n_estimators": 0},
                {"n_estimators": 3.0}, {"max_depth": 2.5}, {"max_depth": 0}):
        assert not ok({"n_estimators": 100, "random_state": 0, "max_depth": None, **bad})
