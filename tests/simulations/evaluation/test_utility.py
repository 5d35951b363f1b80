"""Survival scoring in ``evaluate``: test times past the last training time."""

from __future__ import annotations

import dataclasses

import numpy as np

from fedcondense.simulations.evaluation.datasets import load_dataset
from fedcondense.simulations.evaluation.utility import Table, _survival_scores


def _survival_case():
    _, schema = load_dataset("whas500")
    rng = np.random.default_rng(0)
    horizons = np.asarray(schema.task.horizons, dtype=float)
    n = 60
    time = rng.uniform(10, 2000, n)
    event = rng.integers(0, 2, n).astype(float)
    event[np.argmax(time)] = 1.0  # the censoring estimate stays > 0 after the last time
    train = Table(X=np.zeros((n, 1)), time=time, event=event)
    test_time = rng.uniform(10, 2000, n)
    test = Table(X=np.zeros((n, 1)), time=test_time, event=rng.integers(0, 2, n).astype(float))
    surv = np.sort(rng.uniform(0.2, 1.0, (n, len(horizons))), axis=1)[:, ::-1].copy()
    return schema, train, test, surv


def test_a_test_time_after_the_last_training_time_is_scored_not_crashed():
    schema, train, test, surv = _survival_case()
    last = train.time.max()
    late = test.time.copy()
    late[0] = last + 500.0  # alive past every horizon, later than any training time
    after = _survival_scores(schema, train, dataclasses.replace(test, time=late), surv)
    assert np.isfinite(after["integrated_brier"])
    # the score cannot depend on *how long* after every horizon that record lived
    late[0] = last - 1e-6
    just_before = _survival_scores(schema, train, dataclasses.replace(test, time=late), surv)
    assert after["integrated_brier"] == just_before["integrated_brier"]
    assert after["c_index"] == just_before["c_index"]
