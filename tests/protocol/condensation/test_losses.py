"""Per-record losses: bounds, closed forms and locality."""

import numpy as np
import pytest

from fedcondense.protocol.condensation.losses import (
    classification_losses,
    max_loss,
    survival_losses,
    survival_status,
)


def test_classification_log_loss_closed_form_and_floor():
    probs = np.array([[[0.8, 0.2], [0.0, 1.0], [1.0, 0.0]]])
    y = np.array([0, 0, 0])
    out = classification_losses(probs, y, floor=1e-4)
    np.testing.assert_allclose(out[0], [-np.log(0.8), -np.log(1e-4), 0.0])
    assert out.max() <= max_loss(1e-4)


def test_survival_status_and_loss_closed_form():
    horizons = (10.0, 20.0)
    time = np.array([25.0, 15.0, 15.0, 5.0])
    event = np.array([0, 1, 0, 0])
    st = survival_status(time, event, horizons)
    np.testing.assert_array_equal(st[0], [1, 1])          # alive at both
    np.testing.assert_array_equal(st[1], [1, 0])          # alive at 10, died by 20
    assert st[2, 0] == 1 and np.isnan(st[2, 1])           # censored between horizons
    assert np.isnan(st[3]).all()                          # censored before first horizon
    s = np.array([[[0.9, 0.6]] * 4])
    out = survival_losses(s, time, event, horizons)[0]
    assert out[0] == pytest.approx(-(np.log(0.9) + np.log(0.6)) / 2)
    assert out[1] == pytest.approx(-(np.log(0.9) + np.log(0.4)) / 2)
    assert out[2] == pytest.approx(-np.log(0.9))
    assert out[3] == 0.0


def test_losses_are_local_to_each_record():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=(4, 30))
    y = rng.integers(0, 3, size=30)
    base = classification_losses(probs, y)
    y2 = y.copy()
    y2[7] = (y2[7] + 1) % 3
    changed = classification_losses(probs, y2)
    diff = np.abs(changed - base).max(axis=0)
    assert diff[7] > 0 and np.all(np.delete(diff, 7) == 0)


def test_a_failing_survival_prediction_changes_only_that_records_loss():
    """A record the model cannot predict gets its own fallback; every other record's loss is
    the same whether or not that record is in the batch (the per-record sensitivity)."""
    from fedcondense.protocol.families.base import FitTargets
    from fedcondense.protocol.families.survival import CoxPHFamily

    class FragileCox(CoxPHFamily):  # a real Cox fit whose prediction fails on some records
        def survival_at(self, model, x, horizons):
            if (x[:, 0] > 0.9).any():
                raise FloatingPointError("cannot predict this record")
            return super().survival_at(model, x, horizons)

    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (30, 3))
    t = rng.uniform(1, 100, 30)
    e = (rng.random(30) < 0.6).astype(int)
    horizons = (20.0, 50.0, 80.0)
    fam = FragileCox(backend="reference")
    fitted = fam.fit_batch(np.stack([x, x + 0.01]), FitTargets(event=e, horizons=horizons),
                           np.stack([t, t]))
    real = rng.uniform(-0.8, 0.8, (12, 3))
    rt, re_ = rng.uniform(1, 100, 12), (rng.random(12) < 0.5).astype(int)
    poison = real.copy()
    poison[4, 0] = 0.95
    clean = survival_losses(fam.predict_batch(fitted, real), rt, re_, horizons)
    mixed_pred = fam.predict_batch(fitted, poison)
    mixed = survival_losses(mixed_pred, rt, re_, horizons)
    others = np.arange(12) != 4
    np.testing.assert_array_equal(mixed[:, others], clean[:, others])
    assert (mixed_pred[:, 4] == 0.5).all() and not (mixed_pred[:, others] == 0.5).any()
