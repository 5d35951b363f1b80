"""DP initialisation: sensitivity bound, exact without noise, no copied rows."""

import numpy as np

from fedcondense.protocol.condensation.initialisation import (
    MAX_EVENT_FRACTION,
    MIN_EVENT_FRACTION,
    GroupStatistics,
    build_synthetic_set,
    noisy_group_sums,
    record_vectors,
    sensitivity,
    statistics_from_sums,
)
from fedcondense.protocol.data.schema import Schema

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


def _two_group_sums(diff: float, noise_std: float, dim: int, n: int, rng: np.random.Generator):
    """Noisy sums of two groups of ``n`` records whose true means differ by ``diff`` per coordinate."""
    centre = np.full(dim, 0.1)
    means = np.stack([centre - diff / 2, centre + diff / 2])
    sums = np.concatenate([np.full((2, 1), float(n)), n * means], axis=1)
    return sums + rng.normal(0.0, noise_std, size=sums.shape), means


def test_shrinkage_matches_the_james_stein_factor():
    rng = np.random.default_rng(2)
    sums, _ = _two_group_sums(0.2, 30.0, 20, 100, rng)
    stats = statistics_from_sums(sums, 30.0)
    counts = sums[:, 0]
    raw = sums[:, 1:] / counts[:, None]
    w = counts / counts.sum()
    pooled = w @ raw
    var = (30.0 / counts) ** 2
    dev_var0 = (1 - w[0]) ** 2 * var[0] + w[1] ** 2 * var[1]
    dev0 = raw[0] - pooled
    factor = max(0.0, 1 - 18 * dev_var0 / (dev0 @ dev0))
    np.testing.assert_allclose(stats.means[0], np.clip(pooled + factor * dev0, -1, 1))


def test_noise_dominated_group_differences_are_shrunk_and_clear_ones_kept():
    rng = np.random.default_rng(3)
    gaps_noisy, gaps_clear = [], []
    for _ in range(50):
        sums, _ = _two_group_sums(0.0, 50.0, 20, 100, rng)  # no true difference, noise 0.5/coord
        raw = sums[:, 1:] / sums[:, :1]
        shrunk = statistics_from_sums(sums, 50.0).means
        gaps_noisy.append(np.linalg.norm(shrunk[1] - shrunk[0]) / np.linalg.norm(raw[1] - raw[0]))
        sums, truth = _two_group_sums(0.8, 5.0, 20, 100, rng)  # clear difference, noise 0.05
        shrunk = statistics_from_sums(sums, 5.0).means
        gaps_clear.append(np.linalg.norm(shrunk[1] - shrunk[0]) / np.linalg.norm(truth[1] - truth[0]))
    assert np.mean(gaps_noisy) < 0.35  # spurious separation mostly removed
    assert 0.9 < np.mean(gaps_clear) < 1.1  # real separation kept


SURVIVAL = Schema.from_dict({
    "columns": [{"name": "a", "kind": "numeric", "min": 0, "max": 10}],
    "task": {"type": "survival", "time": "t", "event": "e", "time_min": 1, "time_max": 100,
             "horizons": [10, 50]},
})


def test_survival_event_rows_follow_the_noisy_counts_within_public_limits():
    means = np.zeros((2, 2))
    for events, expected in [(50, 20), (8, round(40 / 3)), (99, 36)]:  # of 100 records
        stats = GroupStatistics(counts=np.array([100.0 - events, float(events)]), means=means)
        syn = build_synthetic_set(SURVIVAL, 40, np.random.default_rng(0), stats)
        assert int(syn.event.sum()) == expected, events
    assert MIN_EVENT_FRACTION == 1 / 3 and MAX_EVENT_FRACTION == 0.9
    data_free = build_synthetic_set(SURVIVAL, 40, np.random.default_rng(0))
    assert int(data_free.event.sum()) == 20
