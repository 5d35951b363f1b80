"""Classification families (reference backend: the library estimator, one fit per set).

Names and default hyper-parameters follow ``shared/interface.md``. Inputs are encoded
features (see :mod:`fedcondense.protocol.data.encoding`); standardisation, where a family uses it,
is computed on the training (synthetic) set itself.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any, Callable, ClassVar

import numpy as np

from .base import (
    FitTargets,
    FittedBatch,
    ModelFamily,
    class_frequencies,
    single_threaded,
)


def standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) std of the training set ``(m, d)``; std 0 → 1.

    Returns
    -------
    mu, sd:
        ``(d,)`` arrays such that ``(x - mu) / sd`` is the standardised set.
    """
    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    return mu, np.where(sd > 1e-12, sd, 1.0)


class SklearnClassifier(ModelFamily):
    """Shared loop: fit one scikit-learn estimator per synthetic set.

    ``models[b]`` is ``(estimator, mu, sd)``; prediction maps ``estimator.classes_`` into the
    K columns of the schema's classes (a class absent from the fit gets probability 0). A set
    the estimator rejects (non-finite values, a single class for some estimators, ...) gets
    the smoothed class frequencies of the synthetic labels instead.
    """

    task = "classification"
    standardise = False

    def make(self) -> Any:  # pragma: no cover - abstract
        """A fresh, unfitted estimator with this family's parameters."""
        raise NotImplementedError

    def fit_batch(self, X: np.ndarray, targets: FitTargets, time: np.ndarray | None = None) -> FittedBatch:
        assert targets.labels is not None
        labels = np.asarray(targets.labels, dtype=np.int64)
        k = int(targets.n_classes)
        models: list[Any] = []
        fallback: list[np.ndarray | None] = []
        self.make()  # import the estimator's module before the thread pools are limited
        with single_threaded(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for b in range(X.shape[0]):
                x = np.asarray(X[b], dtype=np.float64)
                mu, sd = standardiser(x) if self.standardise else (0.0, 1.0)
                try:
                    if not np.all(np.isfinite(x)):  # trees would accept NaN as "missing"
                        raise ValueError("non-finite synthetic set")
                    est = self.make().fit((x - mu) / sd, labels)
                    models.append((est, mu, sd))
                    fallback.append(None)
                except Exception:  # degenerate set: data-free prediction instead
                    models.append(None)
                    fallback.append(class_frequencies(labels, k))
        return FittedBatch(models, fallback, {"n_classes": k})

    def predict_batch(self, fitted: FittedBatch, X_real: np.ndarray) -> np.ndarray:
        k = int(fitted.extra["n_classes"])
        X_real = np.asarray(X_real, dtype=np.float64)
        out = np.zeros((fitted.size, len(X_real), k))
        with single_threaded(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for b, m in enumerate(fitted.models):
                if m is None:
                    out[b] = fitted.fallback[b]
                    continue
                est, mu, sd = m
                proba = est.predict_proba((X_real - mu) / sd)
                out[b][:, np.asarray(est.classes_, dtype=np.int64)] = proba
        return out


def _make(factory: Callable[[dict[str, Any]], Any]) -> Callable[[SklearnClassifier], Any]:
    return lambda self: factory(self.params)


class LogisticRegressionFamily(SklearnClassifier):
    """Standardise, then ``LogisticRegression(max_iter=1000)`` (L2, C=1).

    ``tol`` is the reference solver's stopping tolerance (scikit-learn's default lbfgs,
    ``tol=1e-4``: its predictions sit a few 1e-3 from the exact optimum on 20–50-row sets).
    The batched backend always solves to the optimum (Newton steps below 1e-10) and ignores
    it; the reference with ``tol=1e-10`` agrees with it within 1e-6 (conformance suite).
    """

    name = "logistic_regression"
    defaults = {"C": 1.0, "max_iter": 1000, "tol": 1e-4}
    backends = ("reference", "batched")
    standardise = True

    def fit_batch(self, X: np.ndarray, targets: FitTargets, time: np.ndarray | None = None) -> FittedBatch:
        if self.backend == "batched" and self.device == "cpu" \
                and np.unique(np.asarray(targets.labels)).size == 2:
            return self._fit_numpy(X, targets)  # same Newton solver, without torch
        if self.backend == "batched":  # torch Newton on all sets at once (batched_logistic)
            from . import batched_backend

            return batched_backend.fit_logistic(X, targets, self.params["C"], device=self.device)
        return super().fit_batch(X, targets, time)

    def _fit_numpy(self, X: np.ndarray, targets: FitTargets) -> FittedBatch:
        from . import numpy_logistic

        labels = np.asarray(targets.labels, dtype=np.int64)
        k = int(targets.n_classes)
        params = numpy_logistic.fit(X, labels, k, self.params["C"])
        freq = class_frequencies(labels, k)
        return FittedBatch([b if good else None for b, good in enumerate(params.ok)],
                           [None if good else freq for good in params.ok],
                           {"n_classes": k, "numpy": params})

    def predict_batch(self, fitted: FittedBatch, X_real: np.ndarray) -> np.ndarray:
        if "numpy" in fitted.extra:
            from . import numpy_logistic

            out = numpy_logistic.predict_proba(fitted.extra["numpy"], X_real)
            for b, model in enumerate(fitted.models):
                if model is None:
                    out[b] = fitted.fallback[b]
            return out
        if self.backend == "batched":
            from . import batched_backend

            return batched_backend.predict_logistic(fitted, X_real)
        return super().predict_batch(fitted, X_real)

    def make(self) -> Any:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=self.params["C"], max_iter=self.params["max_iter"],
                                  tol=self.params["tol"])


class KernelClassifier(SklearnClassifier):
    """A library classifier whose batched backend is a numpy kernel that reproduces it.

    ``glue`` names a module of this package with ``supports(params, n_rows)`` (whether the
    kernel reproduces these parameters on sets of ``n_rows`` rows), ``fit(X, targets,
    params)`` and ``predict(fitted, X_real)``. Parameters the kernel does not reproduce run
    the reference loop, so both backends always give the same predictions.
    """

    glue: ClassVar[str]
    backends = ("reference", "batched")
    torch_backends = ()

    def _glue(self) -> Any:
        return importlib.import_module(f".{self.glue}", __package__)

    def fit_batch(self, X: np.ndarray, targets: FitTargets, time: np.ndarray | None = None) -> FittedBatch:
        glue = self._glue()
        if self.backend == "batched" and glue.supports(self.params, np.shape(X)[1]):
            fitted: FittedBatch = glue.fit(X, targets, self.params)
            fitted.extra["kernel"] = True
            return fitted
        return super().fit_batch(X, targets, time)

    def predict_batch(self, fitted: FittedBatch, X_real: np.ndarray) -> np.ndarray:
        if fitted.extra.get("kernel"):
            return self._glue().predict(fitted, X_real)  # type: ignore[no-any-return]
        return super().predict_batch(fitted, X_real)


class DecisionTreeFamily(KernelClassifier):
    """``DecisionTreeClassifier(max_depth=4, random_state=0)``.

    The batched backend (numpy: :mod:`.batched_tree_bits` for sets of ≤ 64 rows, else
    :mod:`.batched_tree`; glue :mod:`.batched_tree_backend`) grows every set's tree at once
    with scikit-learn's splits, tie-breaking and leaf values: identical predictions.
    Parameters it does not reproduce (``max_depth=None``, ``random_state=None``) run the
    reference loop.
    """

    name = "decision_tree"
    defaults = {"max_depth": 4, "random_state": 0}
    glue = "batched_tree_backend"

    def make(self) -> Any:
        from sklearn.tree import DecisionTreeClassifier

        return DecisionTreeClassifier(**self.params)


class RandomForestFamily(KernelClassifier):
    """``RandomForestClassifier(n_estimators=100, random_state=0)``, single-threaded.

    The batched backend (numpy, :mod:`.batched_forest`) grows all sets' forests at once with
    scikit-learn's seeds, bootstrap samples, feature draws, splits and leaf values: identical
    predictions. Parameters it does not reproduce (``random_state=None``, a non-integer
    ``n_estimators`` or ``max_depth``) run the reference loop.
    """

    name = "random_forest"
    defaults = {"n_estimators": 100, "random_state": 0, "max_depth": None}
    glue = "batched_forest_backend"

    def make(self) -> Any:
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_jobs=1, **self.params)


class GradientBoostingFamily(KernelClassifier):
    """``GradientBoostingClassifier(random_state=0)``.

    The batched backend (numpy, :mod:`.batched_boosting`) boosts every set's ensemble at
    once with scikit-learn's trees, seeds and leaf steps: identical predictions. Parameters
    it does not reproduce (``random_state=None``, ``max_depth=None``, more than 128 rows)
    run the reference loop.
    """

    name = "gradient_boosting"
    defaults = {"n_estimators": 100, "max_depth": 3, "learning_rate": 0.1, "random_state": 0}
    glue = "batched_boosting_backend"

    def make(self) -> Any:
        from sklearn.ensemble import GradientBoostingClassifier

        return GradientBoostingClassifier(**self.params)


class KNNFamily(SklearnClassifier):
    """Standardise, then ``KNeighborsClassifier(n_neighbors=5)`` (k capped at the set size)."""

    name = "knn"
    defaults = {"n_neighbors": 5}
    backends = ("reference", "batched")
    standardise = True
    _m = 0

    def fit_batch(self, X: np.ndarray, targets: FitTargets, time: np.ndarray | None = None) -> FittedBatch:
        if self.backend == "batched":  # one torch.cdist over all sets (batched_knn)
            from . import batched_backend

            return batched_backend.fit_knn(X, targets, self.params["n_neighbors"],
                                           device=self.device)
        self._m = X.shape[1]
        return super().fit_batch(X, targets, time)

    def predict_batch(self, fitted: FittedBatch, X_real: np.ndarray) -> np.ndarray:
        if self.backend == "batched":
            from . import batched_backend

            return batched_backend.predict_knn(fitted, X_real)
        return super().predict_batch(fitted, X_real)

    def make(self) -> Any:
        from sklearn.neighbors import KNeighborsClassifier

        return KNeighborsClassifier(n_neighbors=max(1, min(self.params["n_neighbors"], self._m)))
