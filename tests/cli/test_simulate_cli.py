"""`fedcondense simulate` through the real entry point: the run's compute plan and backend
usage errors (issue 17)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

CLI = [sys.executable, "-c", "from fedcondense.cli.main import main; main()"]


def _simulate(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLWR_HOME": str(tmp_path / "flwr"), "OMP_NUM_THREADS": "1"}
    return subprocess.run(CLI + ["simulate", "--dataset", "heart_disease", "--sites", "3",
                                 "--engine", "local", "--rounds", "2", "--directions", "4",
                                 "--rows-per-class", "4", "--seed", "0", "--quiet", *extra],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)


def test_simulate_writes_its_compute_plan(tmp_path):
    r = _simulate(tmp_path, "--out", "out", "--backend", "reference")
    assert r.returncode == 0, r.stderr
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["compute"] == {"backend_by_family": {"logistic_regression": "reference",
                                                    "decision_tree": "reference"},
                              "device": "cpu", "threads": 1}
    assert {row["time_split_s"]["threads"] for row in run["rounds"]} == {1}


def test_simulate_refuses_an_unknown_backend_in_one_line(tmp_path):
    r = _simulate(tmp_path, "--out", "bad", "--backend", "gpu")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "'gpu' is not a backend" in lines[0], r.stderr
    assert "decision_tree: reference" in lines[0]
