"""One conformance suite run over every registered model family."""

import numpy as np
import pytest

from fedcondense.protocol.families import create_family, families_for_task
from fedcondense.protocol.families.base import FitTargets

CLASSIFIERS = families_for_task("classification")
SURVIVAL = families_for_task("survival")
HORIZONS = (5.0, 10.0, 20.0)
FAST = {"random_forest": {"n_estimators": 10}, "gradient_boosting": {"n_estimators": 10},
        "random_survival_forest": {"n_estimators": 10}, "mlp": {"steps": 50}}


def _family(name):
    return create_family(name, backend="reference", **FAST.get(name, {}))


def _separable(rng, m, d=4):
    y = np.repeat([0, 1], m // 2)
    x = rng.normal(scale=0.3, size=(m, d))
    x[:, 0] += np.where(y == 1, 0.8, -0.8)
    return x, y


def _survival(rng, m, d=4):
    x = rng.uniform(-1, 1, size=(m, d))
    t = rng.exponential(10.0 * np.exp(-3.0 * x[:, 0]))
    t = np.clip(t, 0.5, 50)
    e = (rng.random(m) < 0.8).astype(int)
    return x, t, e


def test_every_interface_family_is_registered():
    assert set(CLASSIFIERS) == {"logistic_regression", "decision_tree", "random_forest",
                                "gradient_boosting", "knn", "mlp"}
    assert set(SURVIVAL) == {"cox_ph", "random_survival_forest"}


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_contract(name):
    rng = np.random.default_rng(0)
    x, y = _separable(rng, 40)
    xt, yt = _separable(rng, 200)
    fam = _family(name)
    batch = np.stack([x, x + 0.05 * rng.normal(size=x.shape), x[::-1].copy()])
    targets = FitTargets(labels=y, n_classes=3)  # a class absent from the labels
    p = fam.predict_batch(fam.fit_batch(batch, targets), xt)
    assert p.shape == (3, 200, 3) and np.all(np.isfinite(p))
    assert np.all((p >= 0) & (p <= 1)) and np.allclose(p.sum(axis=2), 1.0)
    again = fam.predict_batch(fam.fit_batch(batch, targets), xt)
    assert np.array_equal(p, again)  # deterministic
    acc = (p[0].argmax(1) == yt).mean()
    assert acc > 0.9, acc  # informative training data is learnt
    assert not np.allclose(p[0], p[2])  # predictions depend on the training rows


@pytest.mark.parametrize("name", SURVIVAL)
def test_survival_contract(name):
    from sksurv.metrics import concordance_index_censored

    rng = np.random.default_rng(1)
    x, t, e = _survival(rng, 60)
    xt, tt, et = _survival(rng, 300)
    fam = _family(name)
    times = np.stack([t, t * 1.1, t[::-1].copy()])
    p = fam.predict_batch(fam.fit_batch(np.stack([x, x, x]), FitTargets(event=e, horizons=HORIZONS), times), xt)
    assert p.shape == (3, 300, 3) and np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))
    assert np.all(np.diff(p[0], axis=1) <= 1e-9)  # survival does not increase with time
    cidx = concordance_index_censored(et.astype(bool), tt, 1 - p[0, :, 1])[0]
    assert cidx > 0.7, cidx
    assert not np.allclose(p[0], p[2])


@pytest.mark.parametrize("name", SURVIVAL)
def test_degenerate_survival_fit_falls_back_without_raising(name):
    rng = np.random.default_rng(2)
    x = np.ones((2, 20, 3))  # constant columns
    t = np.tile(rng.uniform(1, 30, 20), (2, 1))
    fam = _family(name)
    no_events = fam.fit_batch(x, FitTargets(event=np.zeros(20, int), horizons=HORIZONS), t)
    assert no_events.n_degenerate == 2
    p = fam.predict_batch(no_events, rng.uniform(-1, 1, (5, 3)))
    assert np.allclose(p, 1.0)  # Kaplan–Meier without events


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_identical_rows_do_not_crash(name):
    x = np.zeros((1, 10, 3))
    p = _family(name).predict_batch(_family(name).fit_batch(x, FitTargets(labels=np.repeat([0, 1], 5), n_classes=2)),
                                    np.zeros((4, 3)))
    assert p.shape == (1, 4, 2) and np.all(np.isfinite(p))
