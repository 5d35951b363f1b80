"""Bundled real clinical tables, each with a hand-written *public* schema.

Every dataset loads offline from an installed package and comes as ``(DataFrame, Schema)``.
The bounds are written by hand from clinical plausibility and the data dictionaries, rounded
generously — never the min/max of the data — and every table passes
:func:`~fedcondense.protocol.data.site_table.load_site_table` without clipping (tested).

Cleaning decisions (also in :data:`DATASETS`):

* ``heart_disease`` — pingouin's copy of the Cleveland table codes missing values as
  ``ca = 4`` and ``thal = 0``: those 7 rows are dropped.
* ``flchain`` — ``chapter`` (cause of death) leaks the outcome; ``flc.grp`` is a decile of
  kappa + lambda cut on the whole cohort (data-dependent cut points, redundant): both dropped.
  ``creatinine`` is missing for 17 %: those rows are dropped. 3 rows with follow-up 0 days
  are dropped (survival times must be > 0).
* ``support2`` (and ``support2_mortality``, death within 180 days) — ``num_surv2m``,
  ``num_surv6m`` (model predictions), ``fac_sfdm2`` (2-month outcome) leak; ``fac_dnr``
  (DNR order, often written after admission) is outcome-adjacent;
  ``fac_dzclass`` duplicates ``fac_dzgroup``, ``fac_num_co`` duplicates ``num_num_co``;
  ``pid`` is an identifier; columns with > 15 % missing (edu, income, ph, pafi, bili, adls,
  alb, bun, glucose, urine, adlp) are dropped; the remaining rows with a missing cell
  (wblc, crea, one row of vitals) are dropped. Column prefixes ``num_``/``fac_`` are removed.

Splitting helpers for experiments live in :mod:`fedcondense.simulations.evaluation.site_splits`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ...protocol.data.schema import Schema
from ...protocol.errors import FedcondenseError

_YEARS = [365.0, 730.0, 1095.0, 1825.0]  # 1, 2, 3, 5 years in days


def _num(name: str, lo: float, hi: float, integer: bool = False) -> dict:
    return {"name": name, "kind": "numeric", "min": lo, "max": hi, "integer": integer}


def _cat(name: str, *levels: str) -> dict:
    return {"name": name, "kind": "categorical", "levels": list(levels)}


def _bin(name: str) -> dict:
    return {"name": name, "kind": "binary"}


# Demographic columns marked as subgroups: the privacy audit reports utility within each level
# (numeric columns in bands of their public range), since DP often hurts small groups most.
_SUBGROUPS = {"heart_disease": ["sex", "age"], "gbsg2": ["menostat", "age"],
              "whas500": ["gender", "age"], "flchain": ["sex", "age"],
              "support2": ["sex", "race", "age"], "support2_mortality": ["sex", "race", "age"]}


def _schema(name: str, columns: list[dict], task: dict) -> Schema:
    return Schema.from_dict({"name": name, "columns": columns, "task": task,
                             "subgroups": _SUBGROUPS.get(name, [])},
                            source=f"fedcondense.simulations.evaluation.datasets:{name}")


def _survival_task(time: str, event: str, tmax: float, horizons: list[float]) -> dict:
    return {"type": "survival", "time": time, "event": event, "time_min": 1.0,
            "time_max": tmax, "horizons": horizons}


# ---------------------------------------------------------------------- loaders
# Breast cancer (WDBC): features of cell nuclei in a digitised FNA image (radius in pixels
# of the image grid, perimeter/area accordingly, dimensionless shape ratios). Bounds are
# geometric plausibility, generously rounded.
_WDBC_BOUNDS = {
    "radius": (0, 50, 0, 5, 0, 60), "texture": (0, 60, 0, 10, 0, 80),
    "perimeter": (0, 300, 0, 40, 0, 400), "area": (0, 5000, 0, 1000, 0, 8000),
    "smoothness": (0, 0.3, 0, 0.05, 0, 0.4), "compactness": (0, 1, 0, 0.2, 0, 2),
    "concavity": (0, 1.5, 0, 0.5, 0, 2), "concave_points": (0, 0.5, 0, 0.1, 0, 0.5),
    "symmetry": (0, 0.6, 0, 0.1, 0, 1), "fractal_dimension": (0, 0.2, 0, 0.05, 0, 0.3),
}


def _breast_cancer() -> tuple[pd.DataFrame, Schema]:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    df = bunch.data.copy()
    df.columns = [c.replace(" ", "_").replace("error", "se") for c in df.columns]
    cols = []
    for prefix, off in (("mean_", 0), ("", 2), ("worst_", 4)):
        for feat, b in _WDBC_BOUNDS.items():
            name = f"{prefix}{feat}" if prefix else f"{feat}_se"
            cols.append(_num(name, b[off], b[off + 1]))
    df = df[[c["name"] for c in cols]]
    df["diagnosis"] = np.where(bunch.target.to_numpy() == 0, "malignant", "benign")
    task = {"type": "classification", "target": "diagnosis", "classes": ["benign", "malignant"]}
    return df, _schema("breast_cancer", cols, task)


def _heart_disease() -> tuple[pd.DataFrame, Schema]:
    import pingouin as pg

    try:
        df = pg.read_dataset("heart")
    except ValueError:  # pingouin >= 0.7 ships the table as 'chi2_independence'
        df = pg.read_dataset("chi2_independence")
    df = df[(df["ca"] != 4) & (df["thal"] != 0)].reset_index(drop=True)
    cols = [
        _num("age", 18, 100, True), _bin("sex"), _cat("cp", "0", "1", "2", "3"),
        _num("trestbps", 60, 250, True), _num("chol", 80, 700, True), _bin("fbs"),
        _cat("restecg", "0", "1", "2"), _num("thalach", 50, 250, True), _bin("exang"),
        _num("oldpeak", 0, 10), _cat("slope", "0", "1", "2"), _num("ca", 0, 3, True),
        _cat("thal", "1", "2", "3"),
    ]
    df = df[[c["name"] for c in cols] + ["target"]].copy()
    for c in ("cp", "restecg", "slope", "thal"):
        df[c] = df[c].astype(int).astype(str)
    df["target"] = df["target"].astype(int).astype(str)
    task = {"type": "classification", "target": "target", "classes": ["0", "1"]}
    return df, _schema("heart_disease", cols, task)


def _structured_to_frame(X: pd.DataFrame, y: np.ndarray, event: str, time: str) -> pd.DataFrame:
    df = X.copy()
    df[time] = y[time].astype(float)
    df[event] = y[event].astype(int)
    return df


def _gbsg2() -> tuple[pd.DataFrame, Schema]:
    from sksurv.datasets import load_gbsg2

    X, y = load_gbsg2()
    df = _structured_to_frame(X, y, "cens", "time")
    cols = [
        _num("age", 18, 100, True), _num("estrec", 0, 3000, True),
        _cat("horTh", "no", "yes"), _cat("menostat", "Pre", "Post"),
        _num("pnodes", 0, 100, True), _num("progrec", 0, 5000, True),
        _cat("tgrade", "I", "II", "III"), _num("tsize", 0, 200, True),
    ]
    task = _survival_task("time", "cens", 3650.0, _YEARS)
    return _finish(df, cols), _schema("gbsg2", cols, task)


def _whas500() -> tuple[pd.DataFrame, Schema]:
    from sksurv.datasets import load_whas500

    X, y = load_whas500()
    df = _structured_to_frame(X, y, "fstat", "lenfol")
    cols = [
        _num("age", 18, 110, True), _bin("gender"), _num("hr", 0, 300, True),
        _num("sysbp", 0, 300, True), _num("diasbp", 0, 250, True), _num("bmi", 10, 70),
        _bin("cvd"), _bin("afb"), _bin("sho"), _bin("chf"), _bin("av3"), _bin("miord"),
        _bin("mitype"), _num("los", 0, 365, True),
    ]
    task = _survival_task("lenfol", "fstat", 3650.0, _YEARS)
    return _finish(df, cols), _schema("whas500", cols, task)


def _flchain() -> tuple[pd.DataFrame, Schema]:
    from sksurv.datasets import load_flchain

    X, y = load_flchain()
    df = _structured_to_frame(X, y, "death", "futime")
    df = df.drop(columns=["chapter", "flc.grp"]).rename(columns={"sample.yr": "sample_yr"})
    df["sample_yr"] = df["sample_yr"].astype(int)
    df = df.dropna(subset=["creatinine"])
    df = df[df["futime"] > 0].reset_index(drop=True)
    cols = [
        _num("age", 18, 110, True), _cat("sex", "F", "M"), _num("sample_yr", 1990, 2010, True),
        _num("kappa", 0, 50), _num("lambda", 0, 50), _num("creatinine", 0, 20),
        _cat("mgus", "no", "yes"),
    ]
    task = _survival_task("futime", "death", 7300.0, _YEARS + [3650.0])
    return _finish(df, cols), _schema("flchain", cols, task)


# SUPPORT2 features (shared by the survival and the 6-month mortality tables).
_SUPPORT2_COLUMNS = [
    _num("age", 18, 110), _cat("sex", "female", "male"),
    _cat("race", "asian", "black", "hispanic", "other", "white", "missing"),
    _num("num_co", 0, 15, True), _bin("diabetes"), _bin("dementia"),
    _cat("ca", "metastatic", "no", "yes"),
    _cat("dzgroup", "ARF/MOSF w/Sepsis", "CHF", "COPD", "Cirrhosis", "Colon Cancer", "Coma",
         "Lung Cancer", "MOSF w/Malig"),
    _num("hday", 0, 365, True), _num("scoma", 0, 100), _num("sps", 0, 100),
    _num("meanbp", 0, 250), _num("wblc", 0, 300), _num("hrt", 0, 350),
    _num("resp", 0, 100), _num("temp", 30, 45), _num("crea", 0, 25), _num("sod", 100, 200),
]


def _support2() -> tuple[pd.DataFrame, Schema]:
    from SurvSet.data import SurvLoader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = SurvLoader().load_dataset("support2")["df"]
    keep = ["num_age", "fac_sex", "fac_race", "num_num_co", "fac_diabetes", "fac_dementia",
            "fac_ca", "fac_dzgroup", "num_hday", "num_scoma", "num_sps", "num_meanbp",
            "num_wblc", "num_hrt", "num_resp", "num_temp", "num_crea", "num_sod"]
    df = raw[keep + ["time", "event"]].dropna().reset_index(drop=True)
    df.columns = [c.split("_", 1)[1] if c.startswith(("num_", "fac_")) else c for c in df.columns]
    for c in ("diabetes", "dementia"):
        df[c] = df[c].astype(int)
    df["time"] = df["time"].astype(float)
    cols = _SUPPORT2_COLUMNS
    task = _survival_task("time", "event", 3650.0, [60.0, 180.0, 365.0, 730.0, 1825.0])
    return _finish(df, cols), _schema("support2", cols, task)


def _support2_mortality() -> tuple[pd.DataFrame, Schema]:
    """SUPPORT2 as a classification table: death within 180 days of study entry.

    SUPPORT's own prognostic target (its published models estimate 2- and 6-month survival).
    Every patient was followed for at least 180 days or died before, so no row is dropped
    for censoring; features as in ``support2``.
    """
    df, surv = _support2()
    died = (df["event"] == 1) & (df["time"] <= 180.0)
    if ((df["event"] == 0) & (df["time"] <= 180.0)).any():  # pragma: no cover - data guard
        raise ValueError("support2 has rows censored before 180 days; 6-month status unknown")
    out = df.drop(columns=["time", "event"]).copy()
    out["death_6m"] = np.where(died, "died", "alive")
    cols = _SUPPORT2_COLUMNS
    task = {"type": "classification", "target": "death_6m", "classes": ["alive", "died"]}
    return out.reset_index(drop=True), _schema("support2_mortality", cols, task)


def _finish(df: pd.DataFrame, cols: list[dict]) -> pd.DataFrame:
    """Plain dtypes: categoricals as str, binaries and integer columns as int."""
    df = df.copy()
    for c in cols:
        if c["kind"] == "categorical":
            df[c["name"]] = df[c["name"]].astype(str)
        elif c["kind"] == "binary" or c.get("integer"):
            df[c["name"]] = df[c["name"]].astype(float).round().astype(np.int64)
    return df.reset_index(drop=True)


# ---------------------------------------------------------------------- registry
@dataclass(frozen=True)
class DatasetInfo:
    """Registry entry; ``rows`` and ``columns`` (features) are after cleaning."""

    name: str
    task: str
    rows: int
    columns: int
    source: str
    description: str
    loader: Callable[[], tuple[pd.DataFrame, Schema]]


DATASETS: dict[str, DatasetInfo] = {d.name: d for d in (
    DatasetInfo("breast_cancer", "classification", 569, 30, "scikit-learn load_breast_cancer",
                "Wisconsin diagnostic breast cancer (FNA nuclei features); malignant vs benign.",
                _breast_cancer),
    DatasetInfo("heart_disease", "classification", 296, 13, "pingouin read_dataset (Cleveland)",
                "Cleveland heart disease; 7 rows with missing ca/thal dropped.", _heart_disease),
    DatasetInfo("gbsg2", "survival", 686, 8, "scikit-survival load_gbsg2",
                "German Breast Cancer Study Group 2; recurrence-free survival (days).", _gbsg2),
    DatasetInfo("whas500", "survival", 500, 14, "scikit-survival load_whas500",
                "Worcester Heart Attack Study; survival after MI (days).", _whas500),
    DatasetInfo("flchain", "survival", 6521, 7, "scikit-survival load_flchain",
                "Serum free light chain cohort; all-cause death (days). chapter/flc.grp dropped, "
                "rows without creatinine or with 0-day follow-up dropped.", _flchain),
    DatasetInfo("support2", "survival", 8872, 18, "SurvSet support2",
                "SUPPORT seriously ill inpatients; death (days). Leaks and sparse columns "
                "dropped, then rows with missing cells.", _support2),
    DatasetInfo("support2_mortality", "classification", 8872, 18, "SurvSet support2",
                "SUPPORT2 as classification: death within 180 days (SUPPORT's 6-month "
                "prognosis target); same rows and features as support2.", _support2_mortality),
)}


def load_dataset(name: str) -> tuple[pd.DataFrame, Schema]:
    """The named bundled dataset as ``(table, schema)``; table columns in schema order."""
    if name not in DATASETS:
        raise FedcondenseError(f"unknown dataset '{name}'; choose from {', '.join(DATASETS)}.")
    df, schema = DATASETS[name].loader()
    return df[schema.all_columns].reset_index(drop=True), schema


def export_dataset(name: str, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``out_dir/NAME.csv`` and ``out_dir/NAME.schema.json``; return both paths."""
    df, schema = load_dataset(name)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FedcondenseError(f"{out}: exists and is not a folder; pass a folder to --out.")
    out.mkdir(parents=True, exist_ok=True)
    csv_path, schema_path = out / f"{name}.csv", out / f"{name}.schema.json"
    df.to_csv(csv_path, index=False)
    schema.save(schema_path)
    return csv_path, schema_path
