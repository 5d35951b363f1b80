"""Survival families (reference backend): Cox PH (lifelines) and random survival forest.

Both predict the survival probability of each real record at the schema's public horizons.
A degenerate fit (no events, lifelines non-convergence, ...) falls back to the Kaplan–Meier
curve of the synthetic rows, which keeps every per-record loss finite and bounded.

A prediction that fails is replaced *per record*: the batch is predicted again record by
record and only a record whose own prediction fails gets the constant 0.5 (a non-finite
value likewise, element by element). A record's prediction therefore never depends on which
other records are in the batch — the per-record sensitivity the privacy proof needs.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from .base import (
    FitTargets,
    FittedBatch,
    ModelFamily,
    kaplan_meier_at,
    single_threaded,
)
from .classifiers import standardiser


class SurvivalFamily(ModelFamily):
    """Shared loop over the B sets with Kaplan–Meier fallbacks.

    ``extra["horizons"]`` of the fitted batch keeps the horizons of the targets, so
    :meth:`predict_batch` needs only the real records. A set without events, with non-finite
    features or times, or whose fit raises gets the Kaplan–Meier curve of its own
    (time, event) rows.
    """

    task = "survival"

    def fit_one_set(self, x: np.ndarray, time: np.ndarray, event: np.ndarray) -> Any:  # pragma: no cover
        """Fit one set ``(m, d)``; return the model, or ``None`` for a data-free fallback."""
        raise NotImplementedError

    def survival_at(self, model: Any, x: np.ndarray, horizons: np.ndarray) -> np.ndarray:  # pragma: no cover
        """Survival probabilities ``(n, H)`` of real records ``x`` at ``horizons``."""
        raise NotImplementedError

    def fit_batch(self, X: np.ndarray, targets: FitTargets, time: np.ndarray | None = None) -> FittedBatch:
        assert time is not None and targets.event is not None
        event = np.asarray(targets.event, dtype=np.int64)
        models: list[Any] = []
        fallback: list[np.ndarray | None] = []
        with single_threaded(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for b in range(X.shape[0]):
                t = np.asarray(time[b], dtype=float)
                model = None
                if event.sum() > 0 and np.all(np.isfinite(t)) and np.all(np.isfinite(X[b])):
                    try:
                        model = self.fit_one_set(X[b], t, event)
                    except Exception:  # lifelines ConvergenceError, singular matrices, ...
                        model = None
                models.append(model)
                fallback.append(None if model is not None
                                else kaplan_meier_at(t, event, targets.horizons))
        return FittedBatch(models, fallback, {"horizons": np.asarray(targets.horizons, dtype=float)})

    def predict_batch(self, fitted: FittedBatch, X_real: np.ndarray) -> np.ndarray:
        horizons = fitted.extra["horizons"]
        X_real = np.asarray(X_real, dtype=np.float64)
        out = np.zeros((fitted.size, len(X_real), len(horizons)))
        with single_threaded(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for b, m in enumerate(fitted.models):
                if m is None:
                    out[b] = fitted.fallback[b]
                    continue
                try:
                    out[b] = self.survival_at(m, X_real, horizons)
                except Exception:  # which record failed? each is answered on its own
                    out[b] = self.survival_record_by_record(m, X_real, horizons)
        return np.clip(np.nan_to_num(out, nan=0.5), 0.0, 1.0)

    def survival_record_by_record(self, model: Any, x: np.ndarray,
                                  horizons: np.ndarray) -> np.ndarray:
        """``(n, H)`` survival predicted one record at a time; 0.5 for a record that fails.

        A failure of one record never changes another record's value (unlike a batch-wide
        fallback, which would let one record move every other record's loss).
        """
        rows = np.full((len(x), len(horizons)), 0.5)
        for i in range(len(x)):
            try:
                rows[i] = self.survival_at(model, x[i:i + 1], horizons)[0]
            except Exception:
                pass  # this record's own, data-free fallback
        return rows


class CoxPHFamily(SurvivalFamily):
    """Standardise, then lifelines ``CoxPHFitter(penalizer=0.1)``; constant columns dropped.

    ``precision`` is lifelines' stopping rule of the reference fit (``fit_options``
    ``precision``, default 1e-7, with ``r_precision = min(1e-9, precision / 100)`` so the
    default is lifelines' own). The batched backend always solves to the optimum and ignores
    it; the reference with ``precision=1e-12`` agrees with it within 1e-6 (conformance suite).
    """

    name = "cox_ph"
    defaults = {"penalizer": 0.1, "precision": 1e-7}
    backends = ("reference", "batched")

    def fit_batch(self, X: np.ndarray, targets: FitTargets, time: np.ndarray | None = None) -> FittedBatch:
        if self.backend == "batched":  # torch Newton, Efron ties, Breslow baseline (batched_cox)
            from . import batched_backend

            assert time is not None
            return batched_backend.fit_cox(X, targets, time, self.params["penalizer"],
                                           device=self.device)
        return super().fit_batch(X, targets, time)

    def predict_batch(self, fitted: FittedBatch, X_real: np.ndarray) -> np.ndarray:
        if self.backend == "batched":
            from . import batched_backend

            return batched_backend.predict_cox(fitted, X_real)
        return super().predict_batch(fitted, X_real)

    def fit_one_set(self, x: np.ndarray, time: np.ndarray, event: np.ndarray) -> Any:
        mu, sd = standardiser(x)
        keep = np.flatnonzero(x.std(axis=0) > 1e-9)  # lifelines diverges on constant columns
        if keep.size == 0:
            return None
        z = (x[:, keep] - mu[keep]) / sd[keep]
        df = pd.DataFrame(np.column_stack([z, time, event]),
                          columns=[f"x{i}" for i in keep] + ["T", "E"])
        precision = float(self.params["precision"])
        options = {"precision": precision, "r_precision": min(1e-9, precision / 100)}
        cph = _cox_fitter(self.params["penalizer"]).fit(df, duration_col="T", event_col="E",
                                                        fit_options=options)
        # Prediction state, read once: exp(-H0(h) exp((z - mean) . beta)), H0 linearly
        # interpolated and clamped at the ends (lifelines' predict_survival_function).
        h0 = cph.baseline_cumulative_hazard_
        state = (np.asarray(cph._norm_mean, dtype=float), np.asarray(cph.params_, dtype=float),
                 np.asarray(h0.index, dtype=float), np.asarray(h0.to_numpy()[:, 0], dtype=float))
        if not all(np.all(np.isfinite(a)) for a in state):
            return None
        return state, mu, sd, keep

    def survival_at(self, model: Any, x: np.ndarray, horizons: np.ndarray) -> np.ndarray:
        (centre, beta, t0, h0), mu, sd, keep = model
        risk = np.exp(((x[:, keep] - mu[keep]) / sd[keep] - centre) @ beta)
        return np.exp(-np.interp(horizons, t0, h0)[None, :] * risk[:, None])


def _cox_fitter(penalizer: float) -> Any:
    """lifelines' Cox model with its default Breslow baseline, minus plotting bookkeeping.

    ``CoxPHFitter(penalizer=p).fit`` delegates to ``SemiParametricPHFitter``; fitting that
    class directly gives the same coefficients and baseline. The subclass skips
    ``DataFrame.describe`` of the training table (the "central values" used only by
    ``plot_partial_effects_on_outcome``), which was ~40% of a 50-row fit.
    """
    global _LEAN_COX
    if _LEAN_COX is None:
        try:
            from lifelines.fitters.coxph_fitter import SemiParametricPHFitter
        except ImportError:  # pragma: no cover - older/newer lifelines layout
            from lifelines import CoxPHFitter

            _LEAN_COX = CoxPHFitter
        else:
            class LeanCoxPH(SemiParametricPHFitter):  # type: ignore[misc, valid-type]
                def _compute_central_values_of_raw_training_data(
                    self, df: pd.DataFrame, strata: Any = None, name: str = "baseline"
                ) -> pd.DataFrame:
                    return pd.DataFrame(index=[name])

            _LEAN_COX = LeanCoxPH
    return _LEAN_COX(penalizer=penalizer)


_LEAN_COX: Any = None


class RandomSurvivalForestFamily(SurvivalFamily):
    """scikit-survival ``RandomSurvivalForest(n_estimators=100, min_samples_leaf=3, random_state=0)``."""

    name = "random_survival_forest"
    defaults = {"n_estimators": 100, "min_samples_leaf": 3, "random_state": 0}

    def fit_one_set(self, x: np.ndarray, time: np.ndarray, event: np.ndarray) -> Any:
        from sksurv.ensemble import RandomSurvivalForest
        from sksurv.util import Surv

        rsf = RandomSurvivalForest(n_jobs=1, **self.params)
        return rsf.fit(x, Surv.from_arrays(event.astype(bool), time))

    def survival_at(self, model: Any, x: np.ndarray, horizons: np.ndarray) -> np.ndarray:
        times = model.unique_times_
        surv = model.predict_survival_function(x, return_array=True)  # (n, len(times))
        idx = np.searchsorted(times, horizons, side="right") - 1
        out = np.where(idx[None, :] >= 0, surv[:, np.clip(idx, 0, None)], 1.0)
        return out
