"""The torch batched backend reproduces the library estimators it replaces.

Each batched solver is compared with the library called directly on the same standardised
data. The libraries are run to tight convergence (same objective, exact optimum); against the
families' default library settings (scikit-learn lbfgs ``tol=1e-4``, lifelines' default
stopping rule) the deviation is bounded by those libraries' own convergence error.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from fedcondense.protocol.families import batched_cox, batched_knn, batched_logistic, create_family
from fedcondense.protocol.families.base import FitTargets, class_frequencies, kaplan_meier_at

TIGHT = 1e-4  # required agreement with the converged library fit
B = 4


def _std(x):
    mu, sd = x.mean(0), x.std(0)
    return mu, np.where(sd > 1e-12, sd, 1.0)


def _classification(seed, m, d, k, separable=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, m)
    y[:k] = np.arange(k)
    X = rng.normal(size=(B, m, d))
    X[..., 0] += (4.0 if separable else 1.0) * y
    X[1, :, -1] = 2.5  # a column constant in one set
    return X, y, rng.normal(size=(60, d))


def _survival(seed, m, d):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(B, m, d))
    t = np.round(rng.exponential(8.0 * np.exp(-X[..., 0])) + 0.5)  # integer times: many ties
    e = (rng.random(m) < 0.7).astype(int)
    e[:2] = 1
    X[2, :, 1] = -1.0  # a constant column in one set (dropped by the reference)
    return X, t, e, rng.normal(size=(60, d))


def _sklearn_proba(x, y, xr, k, **kw):
    from sklearn.linear_model import LogisticRegression

    mu, sd = _std(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = LogisticRegression(**kw).fit((x - mu) / sd, y)
    out = np.zeros((len(xr), k))
    out[:, est.classes_] = est.predict_proba((xr - mu) / sd)
    return out


def _lifelines_surv(x, t, e, xr, horizons, **fit_options):
    from lifelines import CoxPHFitter

    mu, sd = _std(x)
    keep = np.flatnonzero(x.std(axis=0) > 1e-9)
    cols = [f"x{i}" for i in keep]
    df = pd.DataFrame((x[:, keep] - mu[keep]) / sd[keep], columns=cols)
    df["T"], df["E"] = t, e
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cph = CoxPHFitter(penalizer=0.1).fit(df, "T", "E", fit_options=fit_options)
        new = pd.DataFrame((xr[:, keep] - mu[keep]) / sd[keep], columns=cols)
        return cph.predict_survival_function(new, times=horizons).to_numpy().T


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("m", [20, 50])
@pytest.mark.parametrize("d", [3, 10])
@pytest.mark.parametrize("k", [2, 3])
def test_logistic_matches_sklearn(seed, m, d, k):
    X, y, xr = _classification(seed, m, d, k, separable=seed == 1)
    params = batched_logistic.fit(torch.tensor(X), torch.tensor(y), k, C=1.0)
    assert bool(params.ok.all())
    p = batched_logistic.predict_proba(params, torch.tensor(xr)).numpy()
    assert p.shape == (B, 60, k) and np.allclose(p.sum(axis=2), 1.0)
    for b in range(B):
        exact = _sklearn_proba(X[b], y, xr, k, solver="newton-cholesky", tol=1e-12, max_iter=1000)
        assert np.abs(p[b] - exact).max() < TIGHT
        default = _sklearn_proba(X[b], y, xr, k, max_iter=1000)  # the reference's settings
        assert np.abs(p[b] - default).max() < 2e-2


@pytest.mark.parametrize("k", [2, 4])
def test_logistic_wide_sets_match_sklearn(k):
    X, y, xr = _classification(2, 20, 40, k, separable=True)  # more features than rows
    p = batched_logistic.predict_proba(batched_logistic.fit(torch.tensor(X), torch.tensor(y), k),
                                       torch.tensor(xr)).numpy()
    for b in range(B):
        exact = _sklearn_proba(X[b], y, xr, k, solver="newton-cholesky", tol=1e-12, max_iter=1000)
        assert np.abs(p[b] - exact).max() < TIGHT


def test_logistic_absent_class_gets_zero_probability():
    X, y, xr = _classification(3, 30, 4, 2)
    p = batched_logistic.predict_proba(batched_logistic.fit(torch.tensor(X), torch.tensor(y), 4),
                                       torch.tensor(xr)).numpy()
    assert p.shape == (B, 60, 4) and np.all(p[:, :, 2:] == 0.0)
    exact = _sklearn_proba(X[0], y, xr, 4, solver="newton-cholesky", tol=1e-12)
    assert np.abs(p[0] - exact).max() < TIGHT


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("m", [20, 50])
@pytest.mark.parametrize("d", [3, 10])
def test_cox_matches_lifelines(seed, m, d):
    X, t, e, xr = _survival(seed, m, d)
    horizons = np.array([0.25, 2.0, 5.0, 7.5, 20.0, 1e3])  # before, between, after the times
    params = batched_cox.fit(torch.tensor(X), torch.tensor(t), torch.tensor(e), penalizer=0.1)
    assert bool(params.ok.all())
    s = batched_cox.predict_survival(params, torch.tensor(xr), torch.tensor(horizons)).numpy()
    assert s.shape == (B, 60, len(horizons))
    for b in range(B):
        exact = _lifelines_surv(X[b], t[b], e, xr, horizons, precision=1e-14, r_precision=1e-16)
        assert np.abs(s[b] - exact).max() < TIGHT
        default = _lifelines_surv(X[b], t[b], e, xr, horizons)  # the reference's settings
        assert np.abs(s[b] - default).max() < 2e-3


@pytest.mark.parametrize("m", [3, 20, 50])
def test_knn_matches_sklearn(m):
    from sklearn.neighbors import KNeighborsClassifier

    X, y, xr = _classification(4, m, 5, 2)
    X[1, :, -1] += np.arange(m) * 1e-3  # keep every column continuous: no distance ties
    p = batched_knn.predict_proba(batched_knn.fit(torch.tensor(X), torch.tensor(y), 3, 5),
                                  torch.tensor(xr)).numpy()
    for b in range(B):
        mu, sd = _std(X[b])
        est = KNeighborsClassifier(n_neighbors=min(5, m)).fit((X[b] - mu) / sd, y)
        ref = np.zeros((len(xr), 3))
        ref[:, est.classes_] = est.predict_proba((xr - mu) / sd)
        assert np.abs(p[b] - ref).max() < 1e-12


# ---------------------------------------------------------------------- through the families
@pytest.mark.parametrize("name", ["logistic_regression", "knn", "cox_ph"])
def test_auto_backend_is_batched_and_agrees_with_reference(name):
    fam = create_family(name)
    assert fam.backend == "batched"
    ref = create_family(name, backend="reference")
    if name == "cox_ph":
        X, t, e, xr = _survival(5, 30, 4)
        targets = FitTargets(event=e, horizons=(2.0, 5.0, 10.0))
        args, tol = (targets, t), 2e-3
    else:
        X, y, xr = _classification(5, 30, 4, 2)
        X[1, :, -1] += np.arange(30) * 1e-3
        targets = FitTargets(labels=y, n_classes=3)
        args, tol = (targets,), 2e-2
    p = fam.predict_batch(fam.fit_batch(X, *args), xr)
    q = ref.predict_batch(ref.fit_batch(X, *args), xr)
    assert p.shape == q.shape and np.abs(p - q).max() < tol


def test_batched_fallbacks_match_reference_rules():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(3, 20, 3))
    X[1, 0, 0] = np.nan
    xr = rng.normal(size=(10, 3))
    lr = create_family("logistic_regression", backend="batched")
    one = FitTargets(labels=np.zeros(20, int), n_classes=2)
    p = lr.predict_batch(lr.fit_batch(X, one), xr)
    assert np.allclose(p, class_frequencies(np.zeros(20, int), 2))
    y = np.repeat([0, 1], 10)
    fitted = lr.fit_batch(X, FitTargets(labels=y, n_classes=2))
    assert fitted.n_degenerate == 1 and fitted.models[1] is None
    assert np.allclose(lr.predict_batch(fitted, xr)[1], class_frequencies(y, 2))

    cox = create_family("cox_ph", backend="batched")
    t = rng.uniform(1, 30, size=(3, 20))
    hz = (5.0, 10.0)
    Xc = X.copy()
    Xc[1] = 1.0  # all columns constant
    no_events = FitTargets(event=np.zeros(20, int), horizons=hz)
    p = cox.predict_batch(cox.fit_batch(Xc, no_events, t), xr)
    assert np.all(p == 1.0)  # no events: Kaplan–Meier stays at 1
    e = (rng.random(20) < 0.6).astype(int)
    fitted = cox.fit_batch(Xc, FitTargets(event=e, horizons=hz), t)
    assert [m is None for m in fitted.models] == [False, True, False]
    out = cox.predict_batch(fitted, xr)
    assert np.allclose(out[1], kaplan_meier_at(t[1], e, hz))
    assert np.all(np.isfinite(out)) and np.all((out >= 0) & (out <= 1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    def both(fn, *arrays):
        cpu = fn(*[torch.tensor(a) for a in arrays])
        gpu = fn(*[torch.tensor(a).cuda() for a in arrays])
        assert gpu.device.type == "cuda" and torch.allclose(cpu, gpu.cpu(), atol=1e-9)

    X, y, xr = _classification(0, 30, 6, 3)
    both(lambda X, y, xr: batched_logistic.predict_proba(batched_logistic.fit(X, y, 3), xr), X, y, xr)
    X, t, e, xr = _survival(0, 30, 6)
    both(lambda X, t, e, xr, h: batched_cox.predict_survival(batched_cox.fit(X, t, e), xr, h),
         X, t, e, xr, np.array([2.0, 5.0]))


@pytest.mark.timeout(300)
def test_benchmark_script_runs():
    from fedcondense.simulations.benchmarks.bench_backends import main

    out = main(["--directions", "3", "--repeats", "1", "--warm-up", "0", "--skip-condense",
                "--skip-simulate", "--skip-cli", "--families",
                "logistic_regression,cox_ph,mlp,decision_tree", "--device", "cpu"])
    rows = out["fits"]
    assert [r["family"] for r in rows] == ["logistic_regression", "cox_ph", "mlp", "decision_tree"]
    assert [r["dataset"] for r in rows] == ["breast_cancer", "gbsg2", "breast_cancer",
                                            "breast_cancer"]
    assert all(r["batched"] > 0 and r["maxdiff"] < 2e-2 for r in rows[:2])
    assert "batched" not in rows[2]  # the mlp has one (torch) implementation
    assert rows[3]["maxdiff"] == 0.0  # batched trees predict exactly what scikit-learn's do


@pytest.mark.parametrize("labels", [(0, 1), (0, 2)])
def test_numpy_binary_logistic_equals_torch_solver(labels):
    from fedcondense.protocol.families import numpy_logistic
    from fedcondense.protocol.families.base import FitTargets

    rng = np.random.default_rng(3)
    y = np.resize(np.asarray(labels), 24)
    X = rng.normal(size=(10, 24, 5))
    X[:, :, 0] += 0.8 * (y > 0)
    X[4, :, 1] = 7.0  # a constant column
    X[5, :, 0] += 40.0 * (y > 0)  # linearly separable: the penalty keeps the optimum finite
    X[6, 0, 0] = np.inf  # a degenerate set
    xr = rng.normal(size=(50, 5))
    fam = create_family("logistic_regression", backend="batched", device="cpu")
    fitted = fam.fit_batch(X, FitTargets(labels=y, n_classes=3))
    assert "numpy" in fitted.extra and fitted.n_degenerate == 1
    p = fam.predict_batch(fitted, xr)
    params = batched_logistic.fit(torch.tensor(np.where(np.isfinite(X), X, 0.0)),
                                  torch.tensor(y), 3)
    q = batched_logistic.predict_proba(params, torch.tensor(xr)).numpy()
    keep = np.arange(10) != 6
    np.testing.assert_allclose(p[keep], q[keep], atol=1e-9)
    absent = ({0, 1, 2} - set(labels)).pop()
    assert np.all(p[keep][:, :, absent] == 0.0)
    assert isinstance(numpy_logistic.fit(X[:2], y, 3), numpy_logistic.BinaryLogisticParams)


def test_default_portfolio_on_a_binary_task_runs_without_torch():
    import os
    import subprocess
    import sys

    if os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/nvidia0"):
        pytest.skip("a CUDA driver is present: 'auto' asks torch")
    code = (
        "import sys, numpy as np\n"
        "from fedcondense.protocol.families import create_family\n"
        "from fedcondense.protocol.families.base import FitTargets\n"
        "X = np.random.default_rng(0).normal(size=(4, 12, 3)); y = np.resize([0, 1], 12)\n"
        "for name in ('logistic_regression', 'decision_tree'):\n"
        "    fam = create_family(name)\n"
        "    fam.predict_batch(fam.fit_batch(X, FitTargets(labels=y, n_classes=2)), X[0])\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
