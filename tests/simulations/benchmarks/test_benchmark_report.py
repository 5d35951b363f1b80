"""The benchmark grid, its resumable results file, the report derived from the CSV, and the
public discretisation used for MST/AIM."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest

from fedcondense.protocol.errors import FedcondenseError
from fedcondense.simulations.benchmarks.benchmark_grid import (
    COLUMNS,
    QUICK,
    GridSpec,
    Job,
    ResultsFile,
    grid_jobs,
)
from fedcondense.simulations.benchmarks.benchmark_report import (
    load_results,
    transfer_matrix,
    write_report,
)
from fedcondense.simulations.evaluation.datasets import load_dataset
from fedcondense.simulations.evaluation.marginal_baselines import BINS, discretise, undiscretise

SPEC = GridSpec(datasets=("heart_disease", "gbsg2"), epsilons=(1.0, math.inf),
                families=("portfolio", "logistic_regression", "cox_ph"), seeds=(0, 1),
                baselines=("dp_gaussian", "mst"))


def test_grid_jobs_follow_the_spec():
    jobs = grid_jobs(SPEC)
    assert len(set(j.key for j in jobs)) == len(jobs)
    heart = [j for j in jobs if j.dataset == "heart_disease" and j.method == "condensed"]
    assert {j.trained_with for j in heart} == {"portfolio", "logistic_regression"}
    gbsg = [j for j in jobs if j.dataset == "gbsg2" and j.method == "condensed"]
    assert {j.trained_with for j in gbsg} == {"portfolio", "cox_ph"}
    assert len(heart) == 2 * 2 * 2  # families × ε × seeds
    mst = [j for j in jobs if j.method == "mst"]
    assert mst and all(j.epsilon == "1" for j in mst)  # MST has no ε = inf mode
    assert sum(j.method == "full_real" for j in jobs) == 2


def test_a_slow_baseline_can_be_limited_to_some_seeds():
    spec = GridSpec(**{**SPEC.__dict__, "baselines": ("mst", "aim"),
                       "baseline_seeds": {"aim": (0,)}})
    jobs = grid_jobs(spec)
    assert sorted((j.dataset, j.seed) for j in jobs if j.method == "aim") == [
        ("gbsg2", 0), ("heart_disease", 0)]  # ε = 1 only, seed 0 only
    assert sorted({j.seed for j in jobs if j.method == "mst"}) == [0, 1]
    assert "aim seed 0 only" in spec.describe()



def test_quick_grid_runs_every_peer_on_at_least_three_seeds():
    jobs = grid_jobs(QUICK)
    for peer in ("mst", "aim", "dp_gaussian"):
        seeds = {(j.dataset, j.seed) for j in jobs if j.method == peer}
        assert seeds == {(d, s) for d in QUICK.datasets for s in QUICK.seeds}
    assert len(QUICK.seeds) >= 3
    assert QUICK.rounds is None  # the release a user gets: the condenser's default rounds


@pytest.mark.parametrize("bad", [dict(datasets=("nope",)), dict(epsilons=(0.0,)),
                                 dict(families=("svm",)), dict(baselines=("ctgan",)),
                                 dict(seeds=())])
def test_invalid_grids_are_refused(bad):
    spec = GridSpec(**{**SPEC.__dict__, **bad})
    with pytest.raises(FedcondenseError):
        spec.validate()


def _row(method, fam, eps, seed, score, trained_with="", dcr=0.5, mia=0.5, exact=0):
    return {"dataset": "heart_disease", "task": "classification", "method": method,
            "trained_with": trained_with, "epsilon": eps, "seed": seed, "eval_family": fam,
            "metric": "auroc", "score": score, "mia_auc": mia, "mia_ci_low": mia - 0.05,
            "mia_ci_high": mia + 0.05, "dcr_auc": dcr, "dcr_ci_low": dcr - 0.05,
            "dcr_ci_high": dcr + 0.05, "exact_copies": exact, "near_copies": exact,
            "release_rows": 20, "seconds": 1.0, "status": "ok"}


@pytest.fixture()
def results(tmp_path):
    rf = ResultsFile(tmp_path / "results.csv")
    rows = [_row("full_real", f, "", 0, 0.9, dcr=1.0, exact=207) for f in ("lr", "dt")]
    for seed, (a, b) in enumerate([(0.80, 0.60), (0.84, 0.64)]):
        rows += [_row("condensed", "lr", "1", seed, a, "portfolio"),
                 _row("condensed", "dt", "1", seed, b, "portfolio"),
                 _row("condensed", "lr", "1", seed, a + 0.02, "lr"),
                 _row("condensed", "dt", "1", seed, b - 0.1, "lr"),
                 _row("dp_gaussian", "lr", "1", seed, 0.70, mia=0.55),
                 _row("dp_gaussian", "dt", "1", seed, 0.70, mia=0.55)]
    rf.append(rows)
    (tmp_path / "benchmark.json").write_text(json.dumps(
        {"description": "test grid", "baselines": {"dp_gaussian": "available",
                                                    "mst": "not installed (pip ...)"}}))
    return tmp_path, rf


def test_results_file_knows_finished_jobs(results):
    path, rf = results
    assert Job("heart_disease", "condensed", "portfolio", "1", 1).key in rf.done()
    assert Job("heart_disease", "condensed", "portfolio", "1", 2).key not in rf.done()
    assert len(rf.rows()) == 14
    assert path.joinpath("results.csv").read_text().splitlines()[0].split(",") == list(COLUMNS)


def test_report_is_derived_from_the_csv(results):
    path, _ = results
    report = write_report(path).read_text()
    # condensed (portfolio) means: lr 0.82 > 0.70 wins, dt 0.62 < 0.70 loses
    assert "| dp_gaussian | 1 | 1/2 | +0.020 | lr | dt |" in report
    assert "| condensed (portfolio), ε=1 | 0.820 ± 0.028 | 0.620 ± 0.028 |" in report
    assert "mst: not installed" in report
    assert "No private release contains an exact copy" in report
    assert "| lr | 1 | 0.900 | – | 0.820 ± 0.028 | 0.700 ± 0.000 | – | – | **condensed** |" in report
    assert "1/2 families (target 75 % of cells) — **not met**" in report
    assert "| full_real | 1.000 [0.950, 1.050] |" in report
    m = transfer_matrix(load_results(path), "1")
    assert m.loc["lr", "lr"] == pytest.approx(0.84) and m.loc["lr", "dt"] == pytest.approx(0.52)
    for png in ("utility_heart_disease.png", "audit_heart_disease.png",
                "transfer_heart_disease_eps1.png"):
        assert (path / "plots" / png).stat().st_size > 10_000


def test_report_flags_exact_copies_in_a_private_release(results):
    path, rf = results
    rf.append([_row("dp_gaussian", "lr", "1", 5, 0.7, exact=3)])
    assert "**Exact copies of real rows found in: dp_gaussian, ε=1**" in write_report(path).read_text()


@pytest.mark.parametrize("name", ["heart_disease", "gbsg2"])
def test_public_discretisation_round_trip(name):
    df, schema = load_dataset(name)
    codes, cards = discretise(df, schema)
    assert list(codes.columns) == schema.all_columns and len(cards) == len(schema.all_columns)
    assert all((codes[c] >= 0).all() and (codes[c] < k).all() for c, k in zip(codes, cards))
    back = undiscretise(codes, schema, np.random.default_rng(0))
    again, _ = discretise(back, schema)
    assert (again.to_numpy() == codes.to_numpy()).all()  # decoded values stay in their bins
    for col in schema.columns:
        if col.kind == "numeric":
            assert back[col.name].between(col.min, col.max).all()
            card = cards[schema.all_columns.index(col.name)]
            assert card == (min(BINS, int(col.max - col.min) + 1) if col.integer else BINS)


@pytest.mark.skipif(importlib.util.find_spec("snsynth") is not None,
                    reason="checks the behaviour without smartnoise-synth")
def test_missing_smartnoise_is_reported_not_crashed():
    import sys

    from fedcondense.simulations.evaluation.baselines import available_baselines, marginal_baseline

    df, schema = load_dataset("heart_disease")
    assert available_baselines()["mst"].startswith("not installed")
    assert available_baselines(sys.executable)["aim"].startswith("not installed in")
    with pytest.raises(FedcondenseError, match="bootstrap.sh --extras baselines"):
        marginal_baseline("mst", df, schema, 50, 1.0, 1e-5, 0)
    with pytest.raises(FedcondenseError, match="mst with .* failed: .*snsynth"):
        marginal_baseline("mst", df, schema, 50, 1.0, 1e-5, 0, python=sys.executable)


def test_a_failed_job_is_retried_and_its_failure_leaves_the_report_once_it_succeeds(results):
    path, rf = results
    failed = {**_row("mst", "", "1", 0, float("nan")), "status": "failed: mst crashed"}
    rf.append([failed])
    assert Job("heart_disease", "mst", "", "1", 0).key not in rf.done()
    assert "failed: mst crashed" in write_report(path).read_text()
    rf.append([_row("mst", "lr", "1", 0, 0.6)])
    assert Job("heart_disease", "mst", "", "1", 0).key in rf.done()
    assert "failed: mst crashed" not in write_report(path).read_text()
