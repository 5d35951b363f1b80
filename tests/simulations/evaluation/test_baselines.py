"""The built-in DP Gaussian baseline: valid tables, noise that shrinks with ε."""

import numpy as np

from fedcondense.protocol.data.site_table import load_site_table
from fedcondense.simulations.evaluation.baselines import available_baselines, dp_gaussian
from fedcondense.simulations.evaluation.datasets import export_dataset


def test_dp_gaussian_gives_a_valid_table_and_is_closer_with_more_epsilon(tmp_path):
    export_dataset("breast_cancer", tmp_path)
    from fedcondense.protocol.data.schema import Schema

    schema = Schema.load(tmp_path / "breast_cancer.schema.json")
    table = load_site_table(tmp_path / "breast_cancer.csv", schema)
    errs = {}
    for eps in (0.1, float("inf")):
        df = dp_gaussian(table, schema, 200, eps, 1e-5, np.random.default_rng(0))
        out = tmp_path / f"syn_{eps}.csv"
        df.to_csv(out, index=False)
        syn = load_site_table(out, schema, min_rows=2)  # decodes inside the public bounds
        errs[eps] = np.abs(syn.X.mean(0) - table.X.mean(0)).mean()
        assert 190 <= syn.n_rows <= 210
    assert errs[float("inf")] < errs[0.1]
    assert available_baselines()["dp_gaussian"] == "available"
