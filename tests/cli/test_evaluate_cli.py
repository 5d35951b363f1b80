"""`fedcondense evaluate` writes the utility table, the privacy audit and readable plots."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedcondense.simulations.benchmarks.benchmark_releases import decoded_frame, load_split
from fedcondense.simulations.evaluation.baselines import dp_gaussian

CLI = [sys.executable, "-c", "from fedcondense.cli.main import main; main()"]
PNG = b"\x89PNG\r\n\x1a\n"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    split = load_split("heart_disease")
    decoded_frame(split.train.frame, split.schema).to_csv(d / "train.csv", index=False)
    decoded_frame(split.test.frame, split.schema).to_csv(d / "test.csv", index=False)
    split.schema.save(d / "schema.json")
    dp_gaussian(split.train, split.schema, 60, 1.0, 1e-5,
                np.random.default_rng(0)).to_csv(d / "dp.csv", index=False)
    return d


def evaluate(d: Path, synthetic: str, out: str) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + ["evaluate", "--synthetic", synthetic, "--train", "train.csv",
                                 "--test", "test.csv", "--schema", "schema.json", "--out", out,
                                 "--models", "logistic_regression,decision_tree",
                                 "--subsets", "2"],
                          cwd=d, capture_output=True, text=True, timeout=300)


def test_evaluate_writes_audit_subgroups_and_plots(tables):
    r = evaluate(tables, "dp.csv", "out")
    assert r.returncode == 0, r.stderr
    out = tables / "out"
    audit = json.loads((out / "audit.json").read_text())
    names = [a["attack"] for a in audit["attacks"]]
    assert names == ["distance_to_closest_record", "loss_threshold[logistic_regression]",
                     "loss_threshold[decision_tree]"]
    for a in audit["attacks"]:
        assert a["ci_low"] <= a["auc"] <= a["ci_high"]
    assert audit["copies"]["exact_copies"] == 0 and audit["exact_copies_ok"] is True
    assert audit["members"] == len(pd.read_csv(tables / "train.csv"))
    sub = pd.read_csv(out / "subgroups.csv")
    assert set(sub.subgroup) == {"sex", "age"} and set(sub.source) == {"synthetic", "full_real"}
    assert (sub.n_test >= 10).all()
    for name in ("utility.png", "audit.png", "subgroups.png"):
        assert (out / "plots" / name).read_bytes()[:8] == PNG
    assert "exact copies of real training rows: 0" in r.stdout
    # the printed table: one row for the strongest loss-threshold attack, with its AUC
    top = max(audit["attacks"][1:], key=lambda a: a["auc"])
    shown = [ln for ln in r.stdout.splitlines() if "loss_threshold" in ln]
    assert len(shown) == 1 and f"{top['attack']} (max of 2)" in shown[0]
    assert f"{top['auc']:.3f}" in shown[0]


def test_audit_flags_a_release_that_copies_the_training_rows(tables):
    r = evaluate(tables, "train.csv", "leak")
    assert r.returncode == 0, r.stderr
    audit = json.loads((tables / "leak" / "audit.json").read_text())
    n = len(pd.read_csv(tables / "train.csv"))
    assert audit["copies"]["exact_copies"] == n and audit["exact_copies_ok"] is False
    dcr = audit["attacks"][0]
    assert dcr["auc"] > 0.9 and dcr["ci_low"] > 0.5
    assert "MUST BE 0" in r.stdout
