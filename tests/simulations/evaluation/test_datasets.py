"""Bundled datasets pass ingress without clipping; split helpers keep their guarantees."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedcondense.protocol.data.schema import Schema
from fedcondense.protocol.data.site_table import load_site_table
from fedcondense.protocol.errors import FedcondenseError
from fedcondense.simulations.evaluation.datasets import DATASETS, export_dataset, load_dataset
from fedcondense.simulations.evaluation.site_splits import (
    parse_partition,
    split_sites,
    train_test_split_table,
)

LEAKS = {"flchain": {"chapter"}, "support2": {"surv2m", "surv6m", "sfdm2", "num_surv2m",
                                              "num_surv6m", "fac_sfdm2"}}


@pytest.fixture(scope="module")
def loaded():
    return {name: load_dataset(name) for name in DATASETS}


@pytest.mark.parametrize("name", list(DATASETS))
def test_dataset_passes_ingress_without_clipping(name, loaded, tmp_path):
    df, schema = loaded[name]
    info = DATASETS[name]
    assert len(df) == info.rows and len(schema.columns) == info.columns
    assert list(df.columns) == schema.all_columns
    assert info.task == ("survival" if schema.is_survival else "classification")
    assert not LEAKS.get(name, set()) & set(df.columns)
    csv_path, schema_path = export_dataset(name, tmp_path)
    assert csv_path.name == f"{name}.csv" and schema_path.name == f"{name}.schema.json"
    again = Schema.load(schema_path)
    assert again.hash() == schema.hash()
    # bounds written by hand from public ranges, never read from the table
    assert schema.bounds_source == again.bounds_source == "declared"
    table = load_site_table(csv_path, again)  # strict: no missing, nothing out of bounds
    assert table.n_rows == info.rows and table.report["clipped"] == 0
    assert np.isfinite(table.X).all() and table.X.min() >= -1 and table.X.max() <= 1
    if schema.is_survival:
        assert max(schema.task.horizons) < table.time.max()
        assert 0.2 < table.event.mean() < 0.8
    else:
        assert np.bincount(table.y).min() > 0.3 * table.n_rows


def test_unknown_dataset():
    with pytest.raises(FedcondenseError, match="unknown dataset 'nope'"):
        load_dataset("nope")


def test_train_test_split_stratified(loaded):
    df, schema = loaded["breast_cancer"]
    tr, te = train_test_split_table(df, schema, test_size=0.3, seed=0)
    assert len(tr) + len(te) == len(df) and abs(len(te) - 0.3 * len(df)) <= 1
    share = lambda d: (d["diagnosis"] == "malignant").mean()  # noqa: E731
    assert abs(share(tr) - share(te)) < 0.02
    df, schema = loaded["gbsg2"]
    tr, te = train_test_split_table(df, schema, test_size=0.3, seed=1)
    assert abs(tr["cens"].mean() - te["cens"].mean()) < 0.02
    with pytest.raises(FedcondenseError):
        train_test_split_table(df, schema, test_size=1.5)


def test_parse_partition():
    assert parse_partition("iid") is None and parse_partition("dirichlet:0.5") == 0.5
    for bad in ("dirichlet", "dirichlet:-1", "dirichlet:x", "random"):
        with pytest.raises(FedcondenseError, match="--partition"):
            parse_partition(bad)


def _check_sites(sites, df, col, min_rows):
    assert sum(len(s) for s in sites) == len(df)
    for s in sites:
        assert len(s) >= min_rows and s[col].nunique() >= 2
    all_rows = pd.concat(sites).sort_values(list(df.columns)).reset_index(drop=True)
    assert all_rows.equals(df.sort_values(list(df.columns)).reset_index(drop=True))


def test_split_sites_iid(loaded):
    df, schema = loaded["heart_disease"]
    sites = split_sites(df, schema, 5, "iid", seed=0)
    _check_sites(sites, df, "target", 10)
    assert max(len(s) for s in sites) - min(len(s) for s in sites) <= 1
    again = split_sites(df, schema, 5, "iid", seed=0)
    assert all(a.equals(b) for a, b in zip(sites, again))


@pytest.mark.parametrize("name,col", [("breast_cancer", "diagnosis"), ("whas500", "fstat")])
@pytest.mark.parametrize("alpha", [0.05, 0.5, 100.0])
def test_split_sites_dirichlet(loaded, name, col, alpha):
    df, schema = loaded[name]
    sites = split_sites(df, schema, 8, f"dirichlet:{alpha}", seed=3, min_rows=12)
    _check_sites(sites, df, col, 12)


def test_split_sites_skew_increases_with_small_alpha(loaded):
    df, schema = loaded["breast_cancer"]

    def spread(alpha):
        sites = split_sites(df, schema, 6, f"dirichlet:{alpha}", seed=0)
        return np.std([(s["diagnosis"] == "malignant").mean() for s in sites])

    assert spread(0.1) > spread(100.0)


def test_split_sites_impossible(loaded):
    df, schema = loaded["heart_disease"]
    with pytest.raises(FedcondenseError, match="fewer sites"):
        split_sites(df, schema, 40, "iid")
    with pytest.raises(FedcondenseError, match="fewer sites"):
        split_sites(df, schema, 40, "dirichlet:0.5")
    with pytest.raises(FedcondenseError):
        split_sites(df, schema, 0)
