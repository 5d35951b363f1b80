"""DP initialisation: sensitivity bound, exact without noise, no copied rows."""

import numpy as np

from fedcondense.protocol.initialisation import (
    build_synthetic_set, noisy_group_sums, record_vectors, sensitivity, statistics_from_sums,
)
from fedcondense.protocol.schema import Schema

SCHEMA = Schema.from_dict({
    "columns": [{"name": "a", "kind": "numeric", "min": 0, "max": 10},
                {"name": "c", "kind": "categorical", "levels": ["x", "y", "z"]}],
    "task": {"type": "classification", "target": "t", "classes": ["n", "p"]},
})


def test_one_record_moves_the_group_sums_by_at_most_the_sensitivity():
    rng = np.random.default_rng(0)
    free = rng.uniform(-1, 1, size=(50, 4))
    groups = rng.integers(0, 2, size=50)
    full = noisy_group_sums(free, groups, 2, 0.0, rng)
    for i in range(50):
        without = noisy_group_sums(np.delete(free, i, 0), np.delete(groups, i), 2, 0.0, rng)
        assert np.linalg.norm(full - without) <= sensitivity(4) + 1e-12
    assert np.linalg.norm(record_vectors(np.ones((1, 4)))) == np.sqrt(5)


def test_noise_free_statistics_are_the_group_means():
    free = np.array([[0.5, 1.0, 0.0, 0.0], [-0.5, 0.0, 1.0, 0.0], [0.2, 0.0, 0.0, 1.0]])
    groups = np.array([0, 0, 1])
    stats = statistics_from_sums(noisy_group_sums(free, groups, 2, 0.0, np.random.default_rng(0)))
    np.testing.assert_allclose(stats.counts, [2, 1])
    np.testing.assert_allclose(stats.means[0], free[:2].mean(0))


def test_built_sets_are_balanced_inside_bounds_and_decode():
    rng = np.random.default_rng(1)
    syn = build_synthetic_set(SCHEMA, 5, rng)
    assert syn.Z.shape == (10, 4)
    assert np.bincount(syn.labels).tolist() == [5, 5]
    assert np.all(syn.Z >= syn.lower) and np.all(syn.Z <= syn.upper)
    table = syn.decode()
    assert list(table.columns) == ["a", "c", "t"]
    assert table["a"].between(0, 10).all() and set(table["c"]) <= {"x", "y", "z"}
