"""DP synthetic-data baselines to compare condensation against at the same (ε, δ).

``dp_gaussian`` (built in)
    Class-conditional (classification) or event-conditional (survival) independent Gaussians:
    one Gaussian mechanism releases, per group, the count and the sums of ``x`` and ``x²`` of
    the encoded free coordinates (each in [-1, 1], so one record moves them by at most
    ``√(1 + 2D)``); rows are sampled from the implied per-coordinate normal distributions,
    clipped to the public box and decoded. Calibrated with the same accountant as
    condensation; no data access beyond that one release.

``mst`` / ``aim`` (optional)
    smartnoise-synth's MST and AIM (``pip install '.[baselines]'``); when the package is not
    installed :func:`available_baselines` says so and the benchmark report notes it.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pandas as pd

from fedcondense.protocol.accounting import epsilon_spent, solve_sigma
from fedcondense.protocol.condenser import free_coordinates, record_groups
from fedcondense.protocol.schema import Schema
from fedcondense.protocol.site_update import Records
from fedcondense.protocol.synthetic_set import SyntheticSet


def available_baselines() -> dict[str, str]:
    """Baseline name → "available" or why not."""
    snsynth = importlib.util.find_spec("snsynth") is not None
    note = "available" if snsynth else "not installed (pip install '.[baselines]')"
    return {"dp_gaussian": "available", "mst": note, "aim": note}


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
