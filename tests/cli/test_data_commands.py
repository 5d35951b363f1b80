"""`fedcondense datasets ...` / `fedcondense schema infer` through a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fedcondense.protocol.data.schema import Schema
from fedcondense.protocol.data.site_table import load_site_table

CLI = [sys.executable, "-c", "from fedcondense.cli.main import main; main()"]


def start(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(CLI + list(args), cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), cwd=cwd, capture_output=True, text=True, timeout=120)


def test_datasets_list(tmp_path):
    r = run("datasets", "list", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for name in ("breast_cancer", "heart_disease", "gbsg2", "whas500", "flchain", "support2"):
        assert name in r.stdout


def test_export_then_infer(tmp_path):
    r = run("datasets", "export", "gbsg2", "--out", "data", "--test-size", "0.3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    data = tmp_path / "data"
    for f in ("gbsg2.csv", "gbsg2.schema.json", "gbsg2.train.csv", "gbsg2.test.csv"):
        assert (data / f).is_file()
    r = run("schema", "infer", "data/gbsg2.csv", "--time", "time", "--event", "cens",
            "-o", "inferred.json", "--name", "g", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "NOT private" in r.stderr and r.stderr.count("\n") == 1
    schema = Schema.load(tmp_path / "inferred.json")
    assert schema.name == "g" and schema.is_survival and schema.bounds_source == "inferred"
    assert json.loads((tmp_path / "inferred.json").read_text())["bounds_source"] == "inferred"
    assert Schema.load(data / "gbsg2.schema.json").bounds_source == "declared"
    assert json.loads((tmp_path / "inferred.json").read_text())["task"]["event"] == "cens"
    table = load_site_table(data / "gbsg2.csv", schema)
    assert table.n_rows == 686 and table.report["clipped"] == 0


def test_bad_inputs_give_one_error_line(tmp_path):
    """Through the real entry point: exit status 2, one `error:` line on stderr, no traceback."""
    cases = {
        "unknown dataset": (["datasets", "export", "nope", "--out", "o"], "unknown dataset"),
        "both tasks": (["schema", "infer", "t.csv", "--target", "y", "--time", "x", "-o", "s.json"],
                       "not both"),
        "missing file": (["schema", "infer", "nope.csv", "--target", "y", "-o", "s.json"],
                         "file not found"),
    }
    procs = {k: start(*args, cwd=tmp_path) for k, (args, _) in cases.items()}
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, key
        assert err.startswith("error:"), (key, err)
        assert err.count("\n") == 1 and "Traceback" not in err, (key, err)
        assert cases[key][1] in err, (key, err)


@pytest.fixture(scope="module")
def cli_app():
    from fedcondense.cli.main import _mount, app

    _mount()
    return app


@pytest.mark.parametrize("args,text", [
    (["schema", "infer", "t.csv", "--time", "x", "-o", "s.json"], "--event"),
    (["schema", "infer", "t.csv", "-o", "s.json"], "--target"),
    (["schema", "infer", "t.csv", "--target", "y", "-o", "taken.json"], "--force"),
    (["schema", "infer", "t.csv", "--target", "y", "-o", "s.json"], "'id'"),
    (["schema", "infer", "t.csv", "--target", "zz", "-o", "s.json"], "'zz'"),
    (["schema", "infer", "t.csv", "--target", "y", "-o", "nodir/s.json"], "nodir"),
    (["datasets", "export", "gbsg2", "--out", "o", "--test-size", "2"], "--test-size"),
])
def test_option_errors(cli_app, tmp_path, monkeypatch, args, text):
    from typer.testing import CliRunner

    from fedcondense.protocol.errors import FedcondenseError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.csv").write_text("id,x,y\n" + "".join(f"p{i},{i},{i % 2}\n" for i in range(20)))
    (tmp_path / "taken.json").write_text("{}")
    result = CliRunner().invoke(cli_app, args)
    assert isinstance(result.exception, FedcondenseError), result.output
    msg = str(result.exception)
    assert text in msg and "\n" not in msg
    assert not (tmp_path / "s.json").exists() and (tmp_path / "taken.json").read_text() == "{}"


@pytest.mark.parametrize("args", [["datasets", "--help"], ["schema", "infer", "--help"]])
def test_help(cli_app, args):
    from typer.testing import CliRunner

    result = CliRunner().invoke(cli_app, args)
    assert result.exit_code == 0 and "Usage" in result.output
