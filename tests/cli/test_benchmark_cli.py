"""`fedcondense benchmark` end to end through the real entry point: a tiny grid writes the CSV,
the report and the plots, and a second call resumes without redoing rows."""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-c", "from fedcondense.cli.main import main; main()"]
TINY = ["--datasets", "heart_disease", "--epsilons", "1", "--families",
        "portfolio,logistic_regression", "--seeds", "1", "--rounds", "2", "--eval-models",
        "logistic_regression,decision_tree", "--baselines", "dp_gaussian,mst"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "b"
    first = run("benchmark", "--out", str(out), *TINY)
    return out, first


def test_tiny_grid_writes_csv_report_and_plots(bench):
    out, first = bench
    assert first.returncode == 0, first.stderr
    got = rows(out / "results.csv")
    from fedcondense.simulations.evaluation.baselines import find_baselines_python

    # MST runs when smartnoise-synth is importable here or in the bootstrap's .venv-baselines/
    mst = importlib.util.find_spec("snsynth") is not None or find_baselines_python() is not None
    # full data, 1 random subset, 2 condensed (portfolio, logistic_regression), dp_gaussian
    # (+ MST when installed); each evaluated with 2 families
    assert len(got) == 2 * (5 + mst)
    assert {r["method"] for r in got} == {"full_real", "random_subset", "condensed",
                                          "dp_gaussian"} | ({"mst"} if mst else set())
    assert all(r["status"] == "ok" for r in got)
    assert {r["eval_family"] for r in got} == {"logistic_regression", "decision_tree"}
    for r in got:
        assert 0.0 <= float(r["score"]) <= 1.0 and 0.0 <= float(r["dcr_auc"]) <= 1.0
        if r["method"] in ("condensed", "dp_gaussian"):
            assert r["exact_copies"] == "0"
    full = [r for r in got if r["method"] == "full_real"]
    assert int(full[0]["exact_copies"]) == int(full[0]["release_rows"]) > 0
    # the console ends with the targets at ε = 1, table by table, as in the report
    assert "targets at ε = 1:" in first.stdout
    assert "- heart_disease (small, 207 training rows), ε=1, 1 seeds:" in first.stdout
    report = (out / "report.md").read_text()
    assert "## heart_disease" in report and "Cross-model transfer" in report
    assert "Privacy audit" in report and "dp_gaussian" in report
    sub = rows(out / "subgroups.csv")  # heart_disease marks sex and age as subgroups
    assert {r["subgroup"] for r in sub} == {"sex", "age"}
    assert {r["method"] for r in sub} == {r["method"] for r in got} - {"full_real"}
    assert "Utility by subgroup (evaluated with logistic_regression" in report
    if not mst:
        assert "mst: not installed" in report
    for name in ("utility_heart_disease.png", "audit_heart_disease.png",
                 "transfer_heart_disease_eps1.png"):
        png = out / "plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"plots/{name}" in report


def test_second_call_appends_nothing_and_an_interrupted_run_resumes(bench):
    out, _ = bench
    before = (out / "results.csv").read_text()
    again = run("benchmark", "--out", str(out), *TINY)
    assert again.returncode == 0, again.stderr
    assert (out / "results.csv").read_text() == before
    assert "already in" in again.stdout
    # drop the last job's rows, as if the run had been interrupted before writing them
    lines = before.splitlines(keepends=True)
    last = lines[-1].split(",")[:6]
    kept = [ln for ln in lines if ln.split(",")[:6] != last]
    (out / "results.csv").write_text("".join(kept))
    resumed = run("benchmark", "--out", str(out), *TINY)
    assert resumed.returncode == 0, resumed.stderr
    assert len(rows(out / "results.csv")) == len(lines) - 1
    assert sorted(rows(out / "results.csv"), key=str) != []
    redone = [ln for ln in (out / "results.csv").read_text().splitlines()[len(kept):]]
    assert redone and all(ln.split(",")[:6] == last for ln in redone)


def test_all_datasets_means_every_bundled_dataset():
    from fedcondense.cli.benchmark_commands import dataset_names
    from fedcondense.simulations.evaluation.datasets import DATASETS

    assert dataset_names("all") == tuple(DATASETS) and len(DATASETS) >= 7
    assert dataset_names("gbsg2, heart_disease") == ("gbsg2", "heart_disease")


def test_bad_grid_is_refused_in_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "b"
    r = run("benchmark", "--out", str(out), "--datasets", "nope")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "unknown dataset 'nope'" in r.stderr
    assert not out.exists()
    r = run("benchmark", "--out", str(out), "--epsilons", "1,abc")
    assert r.returncode == 2 and "--epsilons" in r.stderr and not out.exists()
