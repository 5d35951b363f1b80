"""The numpy boosting kernel builds the ensembles scikit-learn builds: identical predictions.

Predictions are compared for exact equality, not within a tolerance: the kernel replays the
splitter's summation orders (feature order for left sums, its sample array for node totals),
its seeded feature order for ties, and numpy's pairwise sums for the leaf steps. Sets with
tied values (rounded tables, a binary feature) are fitted by scikit-learn itself.
"""

import numpy as np
import pytest
from kernel_tables import breast_cancer_sets
from sklearn.ensemble import GradientBoostingClassifier

from fedcondense.protocol.families import batched_boosting, create_family
from fedcondense.protocol.families.base import FitTargets, class_frequencies


def _sklearn(x, y, k, xr, **params):
    est = GradientBoostingClassifier(**params).fit(x, y)
    out = np.zeros((len(xr), k))
    out[:, est.classes_] = est.predict_proba(xr)
    return out


def _table(seed, B=6):
    rng = np.random.default_rng(seed)
    k = 2 if seed % 2 == 0 else 3
    m, d = int(rng.integers(8, 40)), int(rng.integers(1, 20))
    y = np.resize(np.arange(k), m)
    rng.shuffle(y)
    X = rng.normal(size=(B, m, d))
    X[:, :, 0] += y
    return X, y, k, rng.normal(size=(50, d))


@pytest.mark.parametrize("seed", range(4))
def test_family_equals_sklearn_on_random_tables(seed):
    X, y, k, xr = _table(seed)
    params = {"n_estimators": 40, "max_depth": 3, "learning_rate": 0.1, "random_state": seed}
    fam = create_family("gradient_boosting", backend="batched", **params)
    fitted = fam.fit_batch(X, FitTargets(labels=y, n_classes=k))
    assert not fitted.extra["exact"]  # continuous values: no set left to scikit-learn
    proba = fam.predict_batch(fitted, xr)
    for b in range(len(X)):
        np.testing.assert_array_equal(proba[b], _sklearn(X[b], y, k, xr, **params))


@pytest.mark.parametrize("k", [2, 3])
def test_ties_and_a_binary_feature_go_to_sklearn(k):
    rng = np.random.default_rng(k)
    m, d = 24, 5
    y = np.resize(np.arange(k), m)
    X = rng.normal(size=(6, m, d))
    X[:, :, 0] += y
    X[:3] = np.round(X[:3])  # duplicate values
    X[3:, :, 1] = np.arange(m) % 2  # a binary feature
    xr = rng.normal(size=(50, d))
    params = {"n_estimators": 20, "max_depth": 3, "learning_rate": 0.1, "random_state": 0}
    fam = create_family("gradient_boosting", backend="batched", **params)
    fitted = fam.fit_batch(X, FitTargets(labels=y, n_classes=k))
    assert fitted.extra["boosted"].needs_reference.all()
    proba = fam.predict_batch(fitted, xr)
    for b in range(len(X)):
        np.testing.assert_array_equal(proba[b], _sklearn(X[b], y, k, xr, **params))


def test_kernel_flags_only_tied_sets():
    X, y, _, _ = _table(0, B=4)
    X[1, 3, 0] = X[1, 5, 0]
    init = np.zeros(1)
    assert batched_boosting.fit(X, y, 2, init, 2).needs_reference.tolist() == [
        False, True, False, False]


def test_partition_replays_sklearns_swaps():
    def swaps(a, go, s, e):
        a, ps, pe = a.copy(), s, e
        while ps < pe:
            if go[a[ps]]:
                ps += 1
            else:
                pe -= 1
                a[ps], a[pe] = a[pe], a[ps]
        return a

    rng = np.random.default_rng(0)
    for _ in range(500):
        m = int(rng.integers(2, 25))
        s = int(rng.integers(0, m - 1))
        e = int(rng.integers(s + 2, m + 1))
        a, go_row = rng.permutation(m), rng.random(m) < rng.random()
        go = go_row[a]
        if go[s:e].all() or not go[s:e].any():
            continue
        out = batched_boosting._partition(a[None], go[None], np.array([s]), np.array([e]))
        np.testing.assert_array_equal(out[0], swaps(a, go_row, s, e))


def test_leaf_means_sum_as_numpy_does():
    rng = np.random.default_rng(0)
    count = rng.integers(1, 129, size=300)
    vals = np.zeros((300, 128))
    for g, c in enumerate(count):
        vals[g, :c] = rng.normal(size=c) * 10.0 ** rng.integers(-3, 3, size=c)
    means = batched_boosting._numpy_mean(vals, count)
    np.testing.assert_array_equal(means, [np.mean(v[:c]) for v, c in zip(vals, count)])


@pytest.mark.parametrize("rounded", [False, True])
def test_family_batched_equals_reference_on_a_real_table(rounded):
    sets, targets, xr = breast_cancer_sets(8, 0.3)
    if rounded:  # tied values: those sets go to scikit-learn itself
        sets[:4] = np.round(sets[:4])
    sets[3, 0, 0] = np.nan  # a degenerate set: class frequencies, as the reference
    ref = create_family("gradient_boosting", backend="reference")
    bat = create_family("gradient_boosting")  # auto → batched
    assert bat.backend == "batched"
    fitted = bat.fit_batch(sets, targets)
    assert fitted.n_degenerate == 1
    assert len(fitted.extra["exact"]) == (3 if rounded else 0)
    np.testing.assert_array_equal(bat.predict_batch(fitted, xr),
                                  ref.predict_batch(ref.fit_batch(sets, targets), xr))


def test_missing_class_and_single_class_match_the_reference():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(3, 12, 4))
    xr = rng.normal(size=(20, 4))
    bat = create_family("gradient_boosting", backend="batched", n_estimators=10)
    ref = create_family("gradient_boosting", backend="reference", n_estimators=10)
    for y in (np.resize([0, 2], 12), np.zeros(12, dtype=int)):
        targets = FitTargets(labels=y, n_classes=3)
        p = bat.predict_batch(bat.fit_batch(X, targets), xr)
        np.testing.assert_array_equal(p, ref.predict_batch(ref.fit_batch(X, targets), xr))
    assert np.allclose(p, class_frequencies(np.zeros(12, dtype=int), 3))
