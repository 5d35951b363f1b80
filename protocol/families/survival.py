"""Survival families (reference backend): Cox PH (lifelines) and random survival forest.

Both predict the survival probability of each real record at the schema's public horizons.
A degenerate fit (no events, lifelines non-convergence, ...) falls back to the Kaplan–Meier
curve of the synthetic rows, which keeps every per-record loss finite and bounded.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from fedcondense.protocol.families import register
from fedcondense.protocol.families.base import FitTargets, FittedBatch, ModelFamily, kaplan_meier_at
from fedcondense.protocol.families.classifiers import standardiser


class SurvivalFamily(ModelFamily):
    """Shared loop over the B sets with Kaplan–Meier fallbacks."""

    task = "survival"

    def fit_one_set(self, x: np.ndarray, time: np.ndarray, event: np.ndarray) -> Any:  # pragma: no cover
        raise NotImplementedError

    def survival_at(self, model: Any, x: np.ndarray, horizons: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def fit_batch(self, X: np.ndarray, targets: FitTargets, time: np.ndarray | None = None) -> FittedBatch:
        assert time is not None and targets.event is not None
        event = np.asarray(targets.event, dtype=np.int64)
        models: list[Any] = []
        fallback: list[np.ndarray | None] = []
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for b in range(X.shape[0]):
                t = np.asarray(time[b], dtype=float)
                model = None
                if event.sum() > 0 and np.all(np.isfinite(t)):
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
        out = np.zeros((fitted.size, len(X_real), len(horizons)))
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for b, m in enumerate(fitted.models):
                if m is None:
                    out[b] = fitted.fallback[b]
                    continue
                try:
                    out[b] = self.survival_at(m, X_real, horizons)
                except Exception:
                    out[b] = 0.5
        return np.clip(np.nan_to_num(out, nan=0.5), 0.0, 1.0)


@register
class CoxPHFamily(SurvivalFamily):
    """Standardise, then lifelines ``CoxPHFitter(penalizer=0.1)``; constant columns dropped."""

    name = "cox_ph"
    defaults = {"penalizer": 0.1}

    def fit_one_set(self, x: np.ndarray, time: np.ndarray, event: np.ndarray) -> Any:
        from lifelines import CoxPHFitter

        mu, sd = standardiser(x)
        keep = np.flatnonzero(x.std(axis=0) > 1e-9)
        if keep.size == 0:
            return None
        df = pd.DataFrame((x[:, keep] - mu[keep]) / sd[keep], columns=[f"x{i}" for i in keep])
        df["T"], df["E"] = time, event
        cph = CoxPHFitter(penalizer=self.params["penalizer"])
        cph.fit(df, duration_col="T", event_col="E")
        return cph, mu, sd, keep

    def survival_at(self, model: Any, x: np.ndarray, horizons: np.ndarray) -> np.ndarray:
        cph, mu, sd, keep = model
        df = pd.DataFrame((x[:, keep] - mu[keep]) / sd[keep], columns=[f"x{i}" for i in keep])
        return cph.predict_survival_function(df, times=horizons).to_numpy().T


@register
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
