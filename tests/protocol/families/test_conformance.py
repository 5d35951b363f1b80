"""One conformance suite run over every registered model family and each of its backends.

Scikit-learn style: every (family, backend) pair must honour the batched contract of
:class:`fedcondense.protocol.families.base.ModelFamily` — output shape and range, class
columns in index order even when a class is missing, determinism, independence of the sets of
a batch, bounded data-free fallbacks on degenerate input (counted by ``n_degenerate``),
predictions that depend on the training rows, and better-than-chance learning on an
informative toy problem. Ensembles are shrunk (``FAST``) to keep the suite quick.
"""

import numpy as np
import pytest

from fedcondense.protocol.families import FAMILIES, create_family, families_for_task
from fedcondense.protocol.families.base import FitTargets, class_frequencies, kaplan_meier_at

CLASSIFIERS = families_for_task("classification")
SURVIVAL = families_for_task("survival")
FAST = {"random_forest": {"n_estimators": 10}, "gradient_boosting": {"n_estimators": 10},
        "random_survival_forest": {"n_estimators": 10}, "mlp": {"steps": 100}}
HORIZONS = (0.05, 5.0, 10.0, 20.0, 1e4)  # one before every time, one after every time
MID = 2  # index of the middle horizon (10.0)


def _cases(names):
    return [pytest.param(n, b, id=f"{n}-{b}") for n in names for b in FAMILIES[n].backends]


def _family(name, backend):
    return create_family(name, backend=backend, **FAST.get(name, {}))


def _separable(rng, m, d=4, classes=(0, 1)):
    y = np.resize(np.asarray(classes), m)
    x = rng.normal(scale=0.3, size=(m, d))
    x[:, 0] += np.where(y == classes[0], -0.8, 0.8)
    return x, y


def _survival(rng, m, d=4):
    x = rng.uniform(-1, 1, size=(m, d))
    t = np.clip(rng.exponential(10.0 * np.exp(-3.0 * x[:, 0])), 0.5, 50.0)
    e = (rng.random(m) < 0.8).astype(int)
    e[:2] = 1
    return x, t, e


def _valid_probabilities(p, shape):
    assert p.shape == shape
    assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))
    assert np.allclose(p.sum(axis=2), 1.0)


def test_every_interface_family_is_registered():
    assert set(CLASSIFIERS) == {"logistic_regression", "decision_tree", "random_forest",
                                "gradient_boosting", "knn", "mlp"}
    assert set(SURVIVAL) == {"cox_ph", "random_survival_forest"}
    for name in CLASSIFIERS + SURVIVAL:
        assert "reference" in FAMILIES[name].backends


def test_unknown_parameter_and_backend_are_rejected():
    with pytest.raises(ValueError, match="no parameter"):
        create_family("decision_tree", max_dpth=3)
    with pytest.raises(ValueError, match="backend"):
        create_family("decision_tree", backend="gpu")


# ---------------------------------------------------------------------- classification
@pytest.mark.parametrize(("name", "backend"), _cases(CLASSIFIERS))
def test_classifier_contract(name, backend):
    rng = np.random.default_rng(0)
    x, y = _separable(rng, 40)
    xt, yt = _separable(rng, 200)
    batch = np.stack([x, x + 0.05 * rng.normal(size=x.shape), -x])  # set 2: association flipped
    targets = FitTargets(labels=y, n_classes=3)  # class 2 absent from the labels
    fam = _family(name, backend)
    fitted = fam.fit_batch(batch, targets)
    assert fitted.size == 3 and fitted.n_degenerate == 0
    p = fam.predict_batch(fitted, xt)
    _valid_probabilities(p, (3, 200, 3))
    assert p[..., 2].max() < 0.05  # the absent class gets (next to) nothing
    # deterministic: a fresh instance refitted on the same input gives identical output
    again = _family(name, backend)
    assert np.array_equal(p, again.predict_batch(again.fit_batch(batch, targets), xt))
    # the sets of a batch are independent: set 1 fitted alone predicts the same
    alone = fam.predict_one(fam.fit_one(batch[1], targets), xt)
    assert alone.shape == (200, 3) and np.allclose(alone, p[1], atol=1e-6)
    # informative rows are learnt; predictions follow the training rows
    assert (p[0].argmax(1) == yt).mean() > 0.9
    assert (p[2].argmax(1) == yt).mean() < 0.1


@pytest.mark.parametrize(("name", "backend"), _cases(CLASSIFIERS))
def test_missing_middle_class_keeps_column_order(name, backend):
    rng = np.random.default_rng(1)
    x, y = _separable(rng, 30, classes=(0, 2))
    xt, yt = _separable(rng, 100, classes=(0, 2))
    fam = _family(name, backend)
    p = fam.predict_batch(fam.fit_batch(np.stack([x, x]), FitTargets(labels=y, n_classes=4)), xt)
    _valid_probabilities(p, (2, 100, 4))
    assert p[..., [1, 3]].max() < 0.05
    assert (p[0].argmax(1) == yt).mean() > 0.9  # columns 0 and 2 carry classes 0 and 2


@pytest.mark.parametrize(("name", "backend"), _cases(CLASSIFIERS))
def test_degenerate_classifier_sets_fall_back_without_raising(name, backend):
    rng = np.random.default_rng(2)
    x, y = _separable(rng, 20, d=3)
    bad = x.copy()
    bad[3, 1] = np.nan  # e.g. a perturbation that blew up
    batch = np.stack([x, bad, np.full_like(x, 0.3)])  # set 2: all rows identical
    fam = _family(name, backend)
    fitted = fam.fit_batch(batch, FitTargets(labels=y, n_classes=2))
    assert fitted.models[1] is None and fitted.n_degenerate >= 1
    xt = rng.normal(size=(7, 3))
    p = fam.predict_batch(fitted, xt)
    _valid_probabilities(p, (3, 7, 2))
    assert np.allclose(p[1], class_frequencies(y, 2))
    # a single class in the labels: still (B, n, K), valid, and never a crash
    one = fam.fit_batch(batch[:1], FitTargets(labels=np.zeros(20, int), n_classes=2))
    q = fam.predict_batch(one, xt)
    _valid_probabilities(q, (1, 7, 2))
    if one.n_degenerate:
        assert np.allclose(q[0], class_frequencies(np.zeros(20, int), 2))
    else:
        assert np.all(q[0].argmax(1) == 0)


# ---------------------------------------------------------------------- survival
@pytest.mark.parametrize(("name", "backend"), _cases(SURVIVAL))
def test_survival_contract(name, backend):
    from sksurv.metrics import concordance_index_censored

    rng = np.random.default_rng(3)
    x, t, e = _survival(rng, 60)
    x[:, 3] = 0.25  # a column constant in the set (lifelines diverges on these unless dropped)
    xt, tt, et = _survival(rng, 300)
    times = np.stack([t, t * 1.1, t[::-1].copy()])  # set 2: risk no longer follows x0
    targets = FitTargets(event=e, horizons=HORIZONS)
    fam = _family(name, backend)
    fitted = fam.fit_batch(np.stack([x, x, x]), targets, times)
    assert fitted.size == 3 and fitted.n_degenerate == 0
    p = fam.predict_batch(fitted, xt)
    assert p.shape == (3, 300, len(HORIZONS))
    assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))
    assert np.all(np.diff(p, axis=2) <= 1e-9)  # survival does not increase with time
    again = _family(name, backend)
    assert np.array_equal(p, again.predict_batch(again.fit_batch(np.stack([x, x, x]), targets, times), xt))
    alone = fam.predict_one(fam.fit_one(x, targets, times[1]), xt)
    assert alone.shape == (300, len(HORIZONS)) and np.allclose(alone, p[1], atol=1e-6)
    cidx = concordance_index_censored(et.astype(bool), tt, 1 - p[0, :, MID])[0]
    assert cidx > 0.7, cidx
    assert np.abs(p[0] - p[2]).max() > 0.05  # predictions follow the training rows


@pytest.mark.parametrize(("name", "backend"), _cases(SURVIVAL))
def test_degenerate_survival_sets_fall_back_without_raising(name, backend):
    rng = np.random.default_rng(4)
    x, t, e = _survival(rng, 20, d=3)
    xt = rng.uniform(-1, 1, (5, 3))
    times = np.stack([t, t])
    fam = _family(name, backend)
    # no events at all: every set falls back to Kaplan–Meier, which stays at 1
    none = fam.fit_batch(np.stack([x, x]), FitTargets(event=np.zeros(20, int), horizons=HORIZONS), times)
    assert none.n_degenerate == 2
    assert np.allclose(fam.predict_batch(none, xt), 1.0)
    # every column constant (set 0) and a non-finite value (set 1): bounded, never a crash
    bad = x.copy()
    bad[2, 0] = np.nan
    targets = FitTargets(event=e, horizons=HORIZONS)
    fitted = fam.fit_batch(np.stack([np.ones_like(x), bad]), targets, times)
    assert fitted.models[1] is None
    if name == "cox_ph":
        assert fitted.n_degenerate == 2  # nothing left to regress on
    p = fam.predict_batch(fitted, xt)
    assert p.shape == (2, 5, len(HORIZONS)) and np.all(np.isfinite(p))
    assert np.all((p >= 0) & (p <= 1))
    for b, model in enumerate(fitted.models):
        if model is None:
            assert np.allclose(p[b], kaplan_meier_at(t, e, HORIZONS))


# ---------------------------------------------------------------------- backend conformance
# Every family with a batched backend: its predictions match the reference backend's within
# 1e-4 on the same perturbed sets, with the reference run to its own exact optimum (the same
# estimator and objective, only the library's stopping rule tightened). Against the
# reference's *default* stopping rule the gap is that library's convergence error: scikit-learn
# lbfgs stops at tol=1e-4 (a few 1e-3 in probability on 20–50 rows), lifelines at
# precision=1e-7 (~1e-4). The mlp has no library reference: both backends run the same torch
# code and must agree exactly. The decision tree's batched kernel grows scikit-learn's trees
# (same splits, ties, thresholds and leaf values): exactly equal predictions; so do the
# gradient boosting kernel (same trees, seeds and Newton leaf steps) and the random forest's
# (same seeds, bootstrap samples and per-node feature draws as well).
CONFORMANCE = {  # name: (reference parameters at exact convergence, bound vs default reference)
    "logistic_regression": ({"tol": 1e-10}, 2e-2),
    "knn": ({}, 1e-4),
    "mlp": ({}, 0.0),
    "cox_ph": ({"precision": 1e-12}, 2e-3),
    "decision_tree": ({}, 0.0),
    "gradient_boosting": ({}, 0.0),
    "random_forest": ({}, 0.0),
}
AGREE = 1e-4


def _perturbed_classification(seed, k, B=8, m=30, d=6):
    """2P perturbed copies of one synthetic set (as a condensation round fits them)."""
    rng = np.random.default_rng(seed)
    y = np.arange(m) % k
    base = rng.normal(size=(m, d))
    base[:, 0] += 0.8 * y
    u = rng.normal(size=(B // 2, m, d))
    return np.concatenate([base + 0.1 * u, base - 0.1 * u]), y, rng.normal(size=(150, d))


def _perturbed_survival(seed, B=8, m=30, d=6):
    rng = np.random.default_rng(seed)
    base = rng.uniform(-1, 1, size=(m, d))
    t0 = rng.exponential(10.0 * np.exp(-1.5 * base[:, 0]))
    u = rng.normal(size=(B // 2, m, d + 1))
    X = np.concatenate([base + 0.1 * u[..., :d], base - 0.1 * u[..., :d]])
    t = t0 * np.exp(0.1 * np.concatenate([u[..., d], -u[..., d]]))
    e = (rng.random(m) < 0.7).astype(int)
    e[:2] = 1
    return X, t, e, rng.uniform(-1, 1, size=(150, d))


def test_conformance_covers_every_batched_family():
    assert {n for n, c in FAMILIES.items() if "batched" in c.backends} == set(CONFORMANCE)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", sorted(CONFORMANCE))
def test_batched_backend_matches_reference(name, seed):
    exact_params, default_bound = CONFORMANCE[name]
    fast = FAST.get(name, {})
    batched = create_family(name, backend="batched", device="cpu", **fast)
    exact = create_family(name, backend="reference", device="cpu", **fast, **exact_params)
    default = create_family(name, backend="reference", **fast)
    cases = []
    if FAMILIES[name].task == "survival":
        X, t, e, xr = _perturbed_survival(seed)
        cases.append((FitTargets(event=e, horizons=HORIZONS), t))
    else:
        for k in (2, 3):
            X, y, xr = _perturbed_classification(seed, k)
            cases.append((FitTargets(labels=y, n_classes=k), None))
    for targets, times in cases:
        p = batched.predict_batch(batched.fit_batch(X, targets, times), xr)
        q = exact.predict_batch(exact.fit_batch(X, targets, times), xr)
        r = default.predict_batch(default.fit_batch(X, targets, times), xr)
        assert p.shape == q.shape == r.shape and np.all(np.isfinite(p))
        assert np.abs(p - q).max() < AGREE, np.abs(p - q).max()
        assert np.abs(p - r).max() <= max(default_bound, AGREE)
        assert np.abs(p[0] - p[len(p) // 2]).max() > 1e-4  # the perturbation matters


def test_device_keyword():
    import torch

    assert create_family("logistic_regression", device="cpu").device == "cpu"
    auto = create_family("cox_ph")
    assert auto.uses_torch and auto.device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert create_family("decision_tree").device == "cpu"  # a library family: always the CPU
    with pytest.raises(ValueError, match="CPU only"):
        create_family("random_forest", device="cuda")
    with pytest.raises(ValueError, match="CPU only"):
        create_family("logistic_regression", backend="reference", device="cuda")
    with pytest.raises(ValueError, match="not possible"):
        create_family("mlp", device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            create_family("mlp", device="cuda")


@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="no CUDA device")
@pytest.mark.parametrize("name", sorted(n for n in CONFORMANCE
                                        if "batched" in FAMILIES[n].torch_backends))
def test_cuda_matches_cpu_through_the_families(name):  # numpy kernels run on the CPU only
    cpu = create_family(name, backend="batched", device="cpu", **FAST.get(name, {}))
    gpu = create_family(name, backend="batched", device="cuda", **FAST.get(name, {}))
    if FAMILIES[name].task == "survival":
        X, t, e, xr = _perturbed_survival(0)
        args = (FitTargets(event=e, horizons=HORIZONS), t)
    else:
        X, y, xr = _perturbed_classification(0, 3)
        args = (FitTargets(labels=y, n_classes=3), None)
    p = cpu.predict_batch(cpu.fit_batch(X, *args), xr)
    q = gpu.predict_batch(gpu.fit_batch(X, *args), xr)
    assert np.abs(p - q).max() < (1e-4 if name == "mlp" else 1e-9)  # mlp trains in float32


@pytest.mark.parametrize("name, params", [
    ("decision_tree", {"max_depth": None}),
    ("random_forest", {"n_estimators": 3, "random_state": None}),
    ("gradient_boosting", {"n_estimators": 5, "random_state": None}),
])
def test_parameters_a_kernel_does_not_reproduce_run_the_reference_loop(name, params):
    fam = create_family(name, backend="batched", **params)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3, 12, 4))
    fitted = fam.fit_batch(X, FitTargets(labels=np.resize([0, 1], 12), n_classes=2))
    assert "kernel" not in fitted.extra and fitted.n_degenerate == 0
    assert fam.predict_batch(fitted, X[0]).shape == (3, 12, 2)
