"""Splits of a table for experiments: a stratified train/test split
(:func:`train_test_split_table`) and simulated hospitals (:func:`split_sites`: iid or Dirichlet
label skew, :func:`parse_partition` reads the ``--partition`` option)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...protocol.data.schema import Schema
from ...protocol.data.site_table import normalise_label
from ...protocol.errors import DataError, FedcondenseError


def _strata(df: pd.DataFrame, schema: Schema) -> np.ndarray:
    """Class label (classification) or event status (survival) of each row, as strings."""
    col = schema.task_columns[0] if not schema.is_survival else schema.task.event  # type: ignore[union-attr]
    return df[col].map(normalise_label).to_numpy(dtype=object)


def train_test_split_table(df: pd.DataFrame, schema: Schema, test_size: float = 0.3,
                           seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified (by class, or by event status for survival) train/test split."""
    from sklearn.model_selection import train_test_split

    if not 0 < test_size < 1:
        raise FedcondenseError(f"test size {test_size} must lie strictly between 0 and 1.")
    idx = np.arange(len(df))
    tr, te = train_test_split(idx, test_size=test_size, random_state=seed,
                              stratify=_strata(df, schema))
    return (df.iloc[np.sort(tr)].reset_index(drop=True),
            df.iloc[np.sort(te)].reset_index(drop=True))


def parse_partition(partition: str) -> float | None:
    """``'iid'`` → ``None``; ``'dirichlet:ALPHA'`` → ALPHA (> 0)."""
    if partition == "iid":
        return None
    kind, _, val = partition.partition(":")
    try:
        alpha = float(val)
    except ValueError:
        alpha = float("nan")
    if kind != "dirichlet" or not np.isfinite(alpha) or alpha <= 0:
        raise FedcondenseError(f"--partition '{partition}': use 'iid' or 'dirichlet:ALPHA' with "
                               f"ALPHA > 0 (e.g. dirichlet:0.5; smaller = more skew).")
    return alpha


def split_sites(df: pd.DataFrame, schema: Schema, n_sites: int, partition: str = "iid",
                seed: int = 0, min_rows: int = 10) -> list[pd.DataFrame]:
    """Split a table across ``n_sites`` simulated hospitals.

    ``iid``: a stratified deal — every site gets about ``1/n_sites`` of every class (event
    status for survival). ``dirichlet:ALPHA``: label skew — for every label ``c`` the
    proportions over sites are drawn from ``Dirichlet(ALPHA)``. Guarantees, in both cases:
    every site has at least ``min_rows`` rows and at least 2 labels (both classes present
    for binary tasks; both events and censored records for survival). In the Dirichlet case
    each site first receives ``ceil(min_rows / 2)`` rows of each of its two favoured labels,
    (falling back to the next label when one runs out), then the remaining rows are shared
    out by the drawn proportions.

    Raises
    ------
    FedcondenseError
        When the guarantees cannot be met (too many sites for the table).
    """
    if n_sites < 1:
        raise FedcondenseError("the number of sites must be at least 1.")
    alpha = parse_partition(partition)
    rng = np.random.default_rng(seed)
    labels = _strata(df, schema)
    uniq, inv = np.unique(labels, return_inverse=True)
    pools = [rng.permutation(np.flatnonzero(inv == k)) for k in range(len(uniq))]
    per = -(-min_rows // 2)
    small = min(len(p) for p in pools)
    if len(df) < n_sites * min_rows or len(uniq) < 2 or (alpha is None and small < n_sites) or (
            alpha is not None and sum(len(p) for p in pools) < n_sites * 2 * per):
        raise FedcondenseError(
            f"cannot split {len(df)} rows ({', '.join(f'{u}: {len(p)}' for u, p in zip(uniq, pools))})"
            f" into {n_sites} sites with at least {min_rows} rows and 2 labels each; use fewer "
            f"sites.")
    assign = np.full(len(df), -1, dtype=np.int64)
    if alpha is None:
        order = np.concatenate(pools)
        assign[order] = np.arange(len(order)) % n_sites
    else:
        props = rng.dirichlet(np.full(n_sites, alpha), size=len(uniq)).T  # (sites, labels)
        left = [list(p) for p in pools]
        for s in range(n_sites):
            got = 0
            for k in np.argsort(-props[s] + 1e-12 * rng.random(len(uniq))):
                if len(left[k]) >= per:
                    for _ in range(per):
                        assign[left[k].pop()] = s
                    got += 1
                if got == 2:
                    break
            if got < 2:
                raise FedcondenseError(
                    f"cannot give each of {n_sites} sites {per} rows of 2 labels "
                    f"({', '.join(f'{u}: {len(p)}' for u, p in zip(uniq, pools))}); use fewer "
                    f"sites or a smaller min_rows.")
        for k in range(len(uniq)):
            rest = np.asarray(left[k], dtype=np.int64)
            if rest.size:
                counts = rng.multinomial(rest.size, props[:, k] / props[:, k].sum())
                assign[rest] = np.repeat(np.arange(n_sites), counts)
    sites = [df.iloc[np.flatnonzero(assign == s)].reset_index(drop=True) for s in range(n_sites)]
    for s, part in enumerate(sites):
        if len(part) < min_rows or len(set(_strata(part, schema))) < 2:
            raise DataError(f"site {s + 1} of {n_sites} would get {len(part)} rows / fewer than "
                            f"2 labels; use fewer sites or a larger ALPHA.")
    return sites
