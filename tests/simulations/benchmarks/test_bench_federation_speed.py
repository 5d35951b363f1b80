"""The condense-vs-simulate speed benchmark runs end to end (tiny, in-process engine)."""

import json

from fedcondense.simulations.benchmarks.bench_federation_speed import KEYS, main


def test_benchmark_writes_both_sides_per_case(tmp_path, monkeypatch):
    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "flwr"))
    main(["--cases", "lr_dt", "--rounds", "3", "--directions", "4", "--repeats", "1",
          "--engine", "local", "--out", str(tmp_path)])
    (row,) = json.loads((tmp_path / "bench_federation_speed.json").read_text())
    assert row["case"] == "LR + DT" and row["floor_s"] > 0
    for side in ("condense", "simulate"):
        assert set(row[side]) == set(KEYS) and row[side]["fit_s"] > 0
        assert row[side]["fit_cpu_s"] > 0  # the fitting thread's CPU time reached both sides
    assert row["compute"]["threads"] >= 1 and isinstance(row["fit_ok"], bool)
