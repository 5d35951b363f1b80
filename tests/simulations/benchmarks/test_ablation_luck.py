"""The ablation script: each variant changes only what it names, and a short real run writes
its CSV, table and plot and resumes without redoing releases."""

from __future__ import annotations

import math

import pandas as pd

from fedcondense.protocol.condensation.condenser import CondenseConfig
from fedcondense.simulations.benchmarks.ablation_luck import main, variant_config


def test_variants_change_only_what_they_name():
    base = variant_config("default", 10, 1.0, None, 3)
    assert base == CondenseConfig(epsilon=1.0, rows=10, seed=3)
    assert variant_config("init_share_0.5", 10, 1.0, 50, 3) == CondenseConfig(
        epsilon=1.0, rows=10, seed=3, rounds=50, init_share=0.5)
    assert variant_config("rows_x2.5", 10, 1.0, None, 3).rows == 25
    assert variant_config("rounds_x3", 10, 1.0, 40, 3).rounds == 120
    assert math.isinf(variant_config("no_noise", 10, 1.0, None, 3).epsilon)
    assert variant_config("init_random", 10, 1.0, None, 3).init == "random"


def test_a_short_run_writes_table_plot_and_resumes(tmp_path, capsys):
    argv = ["--out", str(tmp_path), "--datasets", "heart_disease", "--variants",
            "default,no_noise", "--seeds", "2", "--rounds", "2"]
    assert main(argv) == 0
    df = pd.read_csv(tmp_path / "ablation.csv")
    assert len(df) == 2 * 2 * 6  # variants × seeds × classification families
    assert df.score.between(0, 1).all()
    # the non-private variant's releases differ from the private ones (noise is there)
    assert not df[df.variant == "default"].score.equals(df[df.variant == "no_noise"].score)
    md = (tmp_path / "ablation.md").read_text()
    assert "| default | 2 |" in md and "| no_noise | 2 |" in md
    assert (tmp_path / "ablation.png").stat().st_size > 10_000
    assert main(argv) == 0  # everything already there: nothing is redone
    assert len(pd.read_csv(tmp_path / "ablation.csv")) == 24


def test_unknown_variant_is_one_line(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--variants", "default,bogus"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--variants: unknown bogus" in err
    assert not (tmp_path / "ablation.csv").exists()
