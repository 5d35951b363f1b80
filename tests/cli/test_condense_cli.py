"""`fedcondense condense` end to end through the real entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fedcondense.simulations.evaluation.datasets import export_dataset

CLI = [sys.executable, "-c", "from fedcondense.cli.main import main; main()"]
FAST = ["--rounds", "3", "--directions", "4", "--rows-per-class", "4",
        "--models", "logistic_regression", "--quiet"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    export_dataset("heart_disease", d)
    return d


def _condense(data: Path, out: str, *extra: str) -> subprocess.CompletedProcess:
    return run("condense", "heart_disease.csv", "--schema", "heart_disease.schema.json",
               "--out", out, *FAST, *extra, cwd=data)


def _no_exact_counts(out: Path, n_rows: int) -> None:
    """Neither file holds a record count, an ingress count or a site timing."""
    for name in ("privacy.json", "run.json"):
        text = (out / name).read_text()
        for key in ("n_records", "site_rows", "ingress", "rows_read", "rows_kept",
                    "clipped_by_column", "missing_by_column", "dropped_missing", "predict_s",
                    "privacy_s", "site_compute_s"):
            assert f'"{key}"' not in text, (name, key)
        assert f": {n_rows}," not in text and f": {n_rows}\n" not in text, (name, n_rows)


def test_condense_writes_the_release_and_reports(data):
    r = _condense(data, "out", "--epsilon", "2")
    assert r.returncode == 0, r.stderr
    out = data / "out"
    privacy = json.loads((out / "privacy.json").read_text())
    for key in ("epsilon", "delta", "accountant", "noise_multiplier", "sample_rate", "rounds",
                "clip_norm", "mode", "private", "adjacency", "bounds"):
        assert key in privacy
    assert privacy["private"] is True and privacy["mode"] == "central"
    assert privacy["adjacency"] == "add/remove one record"
    assert privacy["bounds"] == "declared public" and privacy["warnings"] == []
    assert 0 < privacy["epsilon"] <= 2.0
    run_info = json.loads((out / "run.json").read_text())
    assert run_info["function_evaluations_per_second"] > 0
    n_rows = len((data / "heart_disease.csv").read_text().splitlines()) - 1
    _no_exact_counts(out, n_rows)
    assert "rows used" in r.stderr  # the ingress summary stays on the local console
    assert run_info["compute"] == {"backend_by_family": {"logistic_regression": "batched"},
                                   "device": "cpu", "threads": 1}  # OMP_NUM_THREADS=1 in CI
    header = (out / "synthetic.csv").read_text().splitlines()[0].split(",")
    schema = json.loads((data / "heart_disease.schema.json").read_text())
    assert header == [c["name"] for c in schema["columns"]] + [schema["task"]["target"]]


def test_a_seeded_run_is_labelled_not_private(data):
    r = _condense(data, "seeded", "--seed", "1", "--epsilon", "2")
    assert r.returncode == 0, r.stderr
    privacy = json.loads((data / "seeded" / "privacy.json").read_text())
    assert privacy["private"] is False and "seed" in privacy["noise_source"]
    assert json.loads((data / "seeded" / "run.json").read_text())["run_seed"] == 1
    assert "NOT private" in r.stderr and "NOT PRIVATE" in r.stdout


def test_non_private_run_is_labelled(data):
    r = _condense(data, "open", "--epsilon", "inf", "--seed", "1")
    assert r.returncode == 0, r.stderr
    assert json.loads((data / "open" / "privacy.json").read_text())["private"] is False
    assert "NOT differentially private" in r.stderr


@pytest.mark.parametrize("extra,needle", [
    (["--epsilon", "0"], "ε must be > 0"),
    (["--epsilon", "nan"], "epsilon"),
    (["--delta", "0.5"], "δ"),
    (["--sample-rate", "1.5"], "sample-rate"),
    (["--models", "cox_ph"], "not a classification model family"),
])
def test_bad_privacy_parameters_are_refused_without_output(data, extra, needle):
    r = _condense(data, "bad", *extra)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], r.stderr
    assert not (data / "bad" / "synthetic.csv").exists()


def test_ledger_refuses_an_over_budget_run_before_reading_data(data):
    ledger = data / "ledger.json"
    missing = _condense(data, "l0", "--epsilon", "1", "--ledger", str(ledger), "--budget", "1.2")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr
    assert "no privacy ledger there" in missing.stderr and "fedcondense ledger create" in missing.stderr
    assert not ledger.exists() and not (data / "l0" / "synthetic.csv").exists()
    made = run("ledger", "create", str(ledger), "--site", "h1", "--budget-epsilon", "1.2",
               "--budget-delta", "1e-5", cwd=data)
    assert made.returncode == 0, made.stderr
    ok = _condense(data, "l1", "--epsilon", "1", "--ledger", str(ledger), "--budget", "1.2")
    assert ok.returncode == 0, ok.stderr
    before = ledger.read_bytes()
    again = _condense(data, "l2", "--epsilon", "1", "--ledger", str(ledger), "--budget", "1.2")
    assert again.returncode == 2 and "budget ε=1.2" in again.stderr
    assert ledger.read_bytes() == before
    assert not (data / "l2" / "synthetic.csv").exists()


def test_two_concurrent_ledger_runs_cannot_both_spend(tmp_path):
    """Two real `condense --ledger L --budget 1 --epsilon 0.9` processes started together:
    exactly one completes, the other is refused in one line, the ledger stays within budget."""
    export_dataset("heart_disease", tmp_path)
    ledger = tmp_path / "ledger.json"
    made = run("ledger", "create", str(ledger), "--site", "h1", "--budget-epsilon", "1",
               "--budget-delta", "1e-5", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    procs = [subprocess.Popen(CLI + ["condense", "heart_disease.csv", "--schema",
                                     "heart_disease.schema.json", "--out", f"run{i}", *FAST,
                                     "--epsilon", "0.9", "--ledger", str(ledger),
                                     "--budget", "1"],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], results
    refusal = next(err for rc, err in results if rc == 2)
    lines = refusal.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "budget ε=1" in lines[0]
    book = json.loads(ledger.read_text())
    assert len({e["run_id"] for e in book["events"]}) == 1
    assert 0.85 < book["epsilon_spent"] <= 1.0
    done = [i for i in range(2) if (tmp_path / f"run{i}" / "synthetic.csv").exists()]
    assert len(done) == 1


def test_condense_and_simulate_warn_about_an_inferred_schema(data, tmp_path):
    raw = json.loads((data / "heart_disease.schema.json").read_text())
    (tmp_path / "inferred.json").write_text(json.dumps({**raw, "bounds_source": "inferred"}))
    schema = str(tmp_path / "inferred.json")
    csv = str(data / "heart_disease.csv")
    for args in (["condense", csv, "--out", "o1"],
                 ["simulate", "--site-data", csv, "--site-data", csv, "--out", "o2"]):
        r = run(*args, "--schema", schema, "--epsilon", "0", cwd=tmp_path)  # refused after
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 2, r.stderr
        assert lines[0].startswith(f"warning: {schema}: ") and "not private" in lines[0]
        assert lines[1].startswith("error:")


def _backend_a_family_lacks() -> tuple[str, str, str]:
    """(task, family, backend) that the registry does not pair (another family of the task
    has that backend); derived, so it stays right as families gain backends."""
    from fedcondense.protocol.families import FAMILIES, families_for_task

    for task in ("classification", "survival"):
        names = families_for_task(task)
        every = {b for n in names for b in FAMILIES[n].backends}
        for n in names:
            for b in sorted(every - set(FAMILIES[n].backends)):
                return task, n, b
    raise AssertionError("every family has every backend: this test needs another example")


@pytest.mark.parametrize("which", ["lacking", "unknown"])
def test_a_backend_a_family_lacks_is_a_usage_error(data, which):
    task, family, backend = (_backend_a_family_lacks() if which == "lacking"
                             else ("classification", "decision_tree", "gpu"))
    name, first = ("heart_disease", "logistic_regression") if task == "classification" \
        else ("gbsg2", "cox_ph")
    if not (data / f"{name}.csv").exists():
        export_dataset(name, data)
    r = run("condense", f"{name}.csv", "--schema", f"{name}.schema.json",
            "--out", "bk", "--quiet", "--models", f"{first},{family}",
            "--backend", backend, cwd=data)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --backend"), r.stderr
    assert f"{first}: reference" in lines[0] and f"{family}: " in lines[0]
    assert "internal error" not in r.stderr and not (data / "bk").exists()
