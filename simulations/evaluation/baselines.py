"""DP synthetic-data baselines to compare condensation against at the same (ε, δ).

``dp_gaussian`` (built in)
    Class-conditional (classification) or event-conditional (survival) independent Gaussians:
    one Gaussian mechanism releases, per group, the count and the sums of ``x`` and ``x²`` of
    the encoded free coordinates (each in [-1, 1], so one record moves them by at most
    ``√(1 + 2D)``); rows are sampled from the implied per-coordinate normal distributions,
    clipped to the public box and decoded. Calibrated with the same accountant as
    condensation; no data access beyond that one release.

``mst`` / ``aim`` (optional)
    smartnoise-synth's MST and AIM (``pip install '.[baselines]'``) on a public discretisation
    of the table (:mod:`fedcondense.simulations.evaluation.marginal_baselines`), either in this process or
    with another interpreter that has them (``baselines_python``, e.g. a separate venv, since
    smartnoise-synth pins old opacus/jax). ``bash deploy/bootstrap.sh --extras baselines``
    makes that venv in ``.venv-baselines/`` at the repo root, and
    :func:`find_baselines_python` finds it when no interpreter is given. When neither has them
    :func:`available_baselines` says so and the benchmark report notes it.
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from ...protocol.condensation.condenser import free_coordinates, record_groups
from ...protocol.condensation.site_update import Records
from ...protocol.condensation.synthetic_set import SyntheticSet
from ...protocol.data.schema import Schema
from ...protocol.errors import FedcondenseError
from ...protocol.privacy.accounting import epsilon_spent, solve_sigma

BASELINES_VENV = ".venv-baselines"
"""Folder at the repo root where ``deploy/bootstrap.sh --extras baselines`` puts MST/AIM."""
REPO_ROOT = Path(__file__).resolve().parents[2]


def find_baselines_python(explicit: str | None = None, root: Path = REPO_ROOT) -> str | None:
    """The interpreter to run MST/AIM with: ``explicit`` if given, else the bootstrap's venv.

    Parameters
    ----------
    explicit
        An interpreter the user named (``--baselines-python``); it always wins.
    root
        Repository root holding ``.venv-baselines/`` (default: this checkout's).

    Returns
    -------
    str or None
        The interpreter's path, or ``None`` when none was given and the venv does not exist.
    """
    if explicit:
        return explicit
    python = root / BASELINES_VENV / "bin" / "python"
    return str(python) if python.is_file() and os.access(python, os.X_OK) else None


def available_baselines(baselines_python: str | None = None) -> dict[str, str]:
    """Baseline name → "available" (or "available via PYTHON") or why not."""
    if importlib.util.find_spec("snsynth") is not None:
        note = "available"
    elif baselines_python and _has_snsynth(baselines_python):
        note = f"available via {baselines_python}"
    elif baselines_python:
        note = (f"not installed in {baselines_python} (bash deploy/bootstrap.sh --extras "
                "baselines, or pip install smartnoise-synth there)")
    else:
        note = ("not installed (bash deploy/bootstrap.sh --extras baselines, or "
                "--baselines-python PYTHON)")
    return {"dp_gaussian": "available", "mst": note, "aim": note}


def _has_snsynth(python: str) -> bool:
    try:
        done = subprocess.run([python, "-c", "import snsynth, fedcondense.simulations"],
                              capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def marginal_baseline(method: str, frame: pd.DataFrame, schema: Schema, n_rows: int,
                      epsilon: float, delta: float, seed: int,
                      python: str | None = None) -> pd.DataFrame:
    """MST or AIM release of ``n_rows`` rows, here or with ``python`` when not importable here."""
    from . import marginal_baselines as mb

    if importlib.util.find_spec("snsynth") is not None:
        return mb.fit_sample(method, frame, schema, n_rows, epsilon, delta, seed)
    if python is None:
        raise FedcondenseError(f"{method}: smartnoise-synth is not installed; run bash "
                               "deploy/bootstrap.sh --extras baselines or pass --baselines-python.")
    return mb.run_in_subprocess(python, method, frame, schema, n_rows, epsilon, delta, seed)


def dp_gaussian(records: Records, schema: Schema, n_rows: int, epsilon: float, delta: float,
                rng: np.random.Generator) -> pd.DataFrame:
    """A DP synthetic table of ``n_rows`` rows from group-conditional independent Gaussians."""
    free = free_coordinates(records, schema)
    groups, n_groups = record_groups(records, schema)
    d = free.shape[1]
    vec = np.concatenate([np.ones((len(free), 1)), free, free**2], axis=1)
    sums = np.zeros((n_groups, vec.shape[1]))
    np.add.at(sums, groups, vec)
    if not math.isinf(epsilon):
        sigma = solve_sigma(lambda s: epsilon_spent([{"type": "gaussian", "sigma": s}], delta), epsilon)
        sums = sums + rng.normal(0.0, sigma * math.sqrt(1 + 2 * d), size=sums.shape)
    counts = np.maximum(sums[:, 0], 1.0)
    mean = np.clip(sums[:, 1 : 1 + d] / counts[:, None], -1, 1)
    var = np.clip(sums[:, 1 + d :] / counts[:, None] - mean**2, 1e-4, 1.0)
    share = counts / counts.sum()
    sizes = np.maximum(1, np.round(share * n_rows).astype(int))
    z = np.concatenate([mean[g] + np.sqrt(var[g]) * rng.standard_normal((sizes[g], d))
                        for g in range(n_groups)])
    target = np.repeat(np.arange(n_groups), sizes)
    kw = {"event": target} if schema.is_survival else {"labels": target}
    syn = SyntheticSet(schema, z, **kw)
    return syn.decode()  # decode projects into the public box
