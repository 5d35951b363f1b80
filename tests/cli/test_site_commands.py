"""`fedcondense site check|status|start` and the site.toml format (in-process, no Flower run)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from fedcondense.cli.main import main
from fedcondense.deploy import pki
from fedcondense.deploy.site_config import SiteConfigError, load_site_config
from fedcondense.protocol.privacy.ledger import PrivacyLedger

SCHEMA = {
    "format": "fedcondense-schema/1", "name": "toy",
    "columns": [{"name": "age", "kind": "numeric", "min": 0, "max": 120, "integer": True},
                {"name": "smoker", "kind": "binary"},
                {"name": "stage", "kind": "categorical", "levels": ["I", "II", "III"]}],
    "task": {"type": "classification", "target": "outcome", "classes": ["0", "1"]},
}
SITE_TOML = """\
[site]
id = "hospital-a"
data = "data.csv"
schema = "schema.json"
ledger = "state/ledger.json"
capacity = 100

[privacy]
epsilon-budget = 3.0
delta-budget = 1e-5

[coordinator]
address = "127.0.0.1:9093"
root-certificates = "pki/ca.crt"
private-key = "pki/node.key"

[supernode]
runtime-port = 19094
"""


def _csv(rows: int = 30, bad: str | None = None) -> str:
    lines = ["age,smoker,stage,outcome"]
    lines += [f"{20 + i},{i % 2},{['I', 'II', 'III'][i % 3]},{i % 2}" for i in range(rows)]
    if bad is not None:
        lines[5] = bad
    return "\n".join(lines) + "\n"


@pytest.fixture
def site(tmp_path) -> Path:
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    (tmp_path / "data.csv").write_text(_csv())
    (tmp_path / "state").mkdir()
    ca = pki.create_ca(tmp_path / "pki")
    pki.create_node_keypair(tmp_path / "pki", "hospital-a")
    assert ca.cert == tmp_path / "pki" / "ca.crt"
    (tmp_path / "site.toml").write_text(SITE_TOML)
    return tmp_path


def cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["fedcondense", *args])
    monkeypatch.setenv("COLUMNS", "200")
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------ site check
def test_check_ok_prints_counts_only(site, monkeypatch, capsys):
    code, out, err = cli(monkeypatch, capsys, "site", "check", str(site / "data.csv"),
                         "--schema", str(site / "schema.json"))
    assert code == 0, err
    assert "ready: 30 rows" in out and "class 0" in out and "15" in out
    assert "III" not in out and "age" not in out  # counts only: no values, no column names


@pytest.mark.parametrize("bad,expect", [
    ("abc,1,I,0", "row 6, column 'age'"),            # text in a numeric column
    ("30,1,IV,0", "row 6, column 'stage'"),          # unknown level
])
def test_check_bad_file_one_line_exit_2(site, monkeypatch, capsys, bad, expect):
    (site / "data.csv").write_text(_csv(bad=bad))
    code, out, err = cli(monkeypatch, capsys, "site", "check", str(site / "data.csv"),
                         "--schema", str(site / "schema.json"))
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert expect in err and "Traceback" not in err


def test_check_not_ready_lists_problems(site, monkeypatch, capsys):
    (site / "data.csv").write_text(_csv(bad="200,1,I,0"))  # outside public bounds
    code, out, err = cli(monkeypatch, capsys, "site", "check", str(site / "data.csv"),
                         "--schema", str(site / "schema.json"))
    assert code == 2 and "not ready to join" in err and "1 values outside" in err
    assert "values outside public bounds" in out


# ------------------------------------------------------------------ site status
def test_status_without_and_with_ledger(site, monkeypatch, capsys):
    code, out, _ = cli(monkeypatch, capsys, "site", "status", "--config", str(site / "site.toml"))
    assert code == 0 and "no ledger yet" in out and "site init" in out
    book = PrivacyLedger.create(site / "state" / "ledger.json", site="hospital-a",
                                epsilon_budget=3.0, delta_budget=1e-5)
    book.record("run-1", "round", [{"type": "sampled_gaussian", "q": 0.1, "sigma": 2.0,
                                    "count": 4}])
    book.record("run-2", "round", [{"type": "sampled_gaussian", "q": 0.1, "sigma": 2.0,
                                    "count": 1}])
    book.refuse("run-2/round/2/0", "privacy budget: site hospital-a refuses ...")
    code, out, err = cli(monkeypatch, capsys, "site", "status", "--config",
                         str(site / "site.toml"))
    assert code == 0, err
    lines = {ln.split("│")[1].strip(): ln.split("│")[2].strip() for ln in out.splitlines()
             if ln.count("│") == 3}
    assert lines["rounds answered"] == "5" and lines["runs"] == "2"
    assert lines["rounds refused"] == "1"
    assert lines["budget ε / δ"] == "3 / 1e-05"
    spent = float(lines["spent ε (rdp)"])
    assert 0 < spent < 3 and abs(float(lines["remaining ε"]) - (3 - spent)) < 1e-3


# ------------------------------------------------------------------ site.toml
@pytest.mark.parametrize("edit,expect", [
    (lambda t: t.replace('id = "hospital-a"', 'id = "hospital a"'), "[site] id"),
    (lambda t: t.replace('ledger = "state/ledger.json"\n', ""), "missing ledger"),
    (lambda t: t + "\n[extra]\nx = 1\n", "unknown section"),
    (lambda t: t.replace("runtime-port", "runtime_port"), "unknown key"),
    (lambda t: t.replace('"127.0.0.1:9093"', '"https://127.0.0.1:9093"'), "without a URL"),
    (lambda t: t.replace("epsilon-budget = 3.0", "epsilon-budget = -1"), "ε > 0"),
    (lambda t: t.replace("delta-budget = 1e-5", "delta-budget = 1"), "0 < δ < 1"),
    (lambda t: t.replace('data = "data.csv"', 'data = "nope.csv"'), "does not exist"),
    (lambda t: t.replace("[privacy]", "[privacy"), "not valid TOML"),
    (lambda t: t.replace('ledger = "state/ledger.json"\n',
                         'ledger = "state/ledger.json"\nallow-inferred-schema = "yes"\n'),
     "[site] allow-inferred-schema"),
])
def test_bad_config_one_line(site, monkeypatch, capsys, edit, expect):
    (site / "site.toml").write_text(edit(SITE_TOML))
    with pytest.raises(SiteConfigError) as info:
        load_site_config(site / "site.toml")
    assert expect in str(info.value) and "\n" not in str(info.value)
    code, _, err = cli(monkeypatch, capsys, "site", "start", "--config", str(site / "site.toml"))
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1


def test_config_paths_and_key_permissions(site):
    cfg = load_site_config(site / "site.toml")
    assert cfg.data == (site / "data.csv").resolve() and cfg.runtime_port == 19094
    assert cfg.log_file == (site / "state" / "supernode.log").resolve()
    assert cfg.node_config() == {
        "site-id": "hospital-a", "data-path": str(cfg.data), "schema-path": str(cfg.schema),
        "ledger-path": str(cfg.ledger), "budget-epsilon": 3.0, "budget-delta": 1e-5,
        "capacity": 100, "trust-aggregator": "false", "min-contributors": 0,
        "round-log": str(cfg.log_file.parent / "supernode.rounds.log")}
    os.chmod(site / "pki" / "node.key", 0o644)
    with pytest.raises(SiteConfigError, match="chmod 600"):
        load_site_config(site / "site.toml")


# ------------------------------------------------------------------ site start
def test_start_refuses_malformed_csv_before_any_process(site, monkeypatch, capsys):
    (site / "data.csv").write_text(_csv(bad="31,maybe,I,0"))
    code, out, err = cli(monkeypatch, capsys, "site", "start", "--config",
                         str(site / "site.toml"))
    assert code == 2 and "row 6, column 'smoker'" in err and err.count("\n") == 1
    assert not (site / "state" / "supernode.log").exists()
    assert not (site / "state" / "ledger.json").exists()


def test_start_refuses_a_missing_ledger_until_site_init(site, monkeypatch, capsys):
    toml = str(site / "site.toml")
    for args in (["--dry-run"], []):
        code, out, err = cli(monkeypatch, capsys, "site", "start", "--config", toml, *args)
        assert code == 2 and err.count("\n") == 1 and "has no privacy ledger" in err
        assert f"fedcondense site init --config {site / 'site.toml'}" in err
        assert "never recreated" in err and not (site / "state" / "ledger.json").exists()
    code, out, err = cli(monkeypatch, capsys, "site", "init", "--config", toml)
    assert code == 0 and "created ledger" in out and "ε=3, δ=1e-05" in out, err
    book = PrivacyLedger.open(site / "state" / "ledger.json")
    assert (book.site, book.epsilon_budget, book.delta_budget) == ("hospital-a", 3.0, 1e-5)
    book.record("run-1", "round", [{"type": "gaussian", "sigma": 3.0, "count": 1}])
    before = (site / "state" / "ledger.json").read_bytes()
    code, out, err = cli(monkeypatch, capsys, "site", "init", "--config", toml)
    assert code == 2 and "already exists" in err and err.count("\n") == 1
    assert (site / "state" / "ledger.json").read_bytes() == before


def test_ledger_create_for_central_runs(tmp_path, monkeypatch, capsys):
    path = tmp_path / "ledger.json"
    code, out, err = cli(monkeypatch, capsys, "ledger", "create", str(path), "--site", "h1",
                         "--budget-epsilon", "1", "--budget-delta", "1e-6")
    assert code == 0 and "created ledger" in out, err
    assert PrivacyLedger.open(path).delta_budget == 1e-6
    for args, needle in ((["--site", "h1"], "already exists"),
                         (["--site", "bad id"], "--site"),):
        code, _, err = cli(monkeypatch, capsys, "ledger", "create", str(path), *args,
                           "--budget-epsilon", "1", "--budget-delta", "1e-6")
        assert code == 2 and needle in err and err.count("\n") == 1
    code, _, err = cli(monkeypatch, capsys, "ledger", "create", str(tmp_path / "n.json"),
                       "--site", "h1", "--budget-epsilon", "-1", "--budget-delta", "1e-6")
    assert code == 2 and "ε > 0" in err and not (tmp_path / "n.json").exists()


def test_start_dry_run_prints_supernode_command(site, monkeypatch, capsys):
    code, _, err = cli(monkeypatch, capsys, "site", "init", "--config", str(site / "site.toml"))
    assert code == 0, err
    code, out, err = cli(monkeypatch, capsys, "site", "start", "--config",
                         str(site / "site.toml"), "--dry-run")
    assert code == 0, err
    assert "site hospital-a: 30 rows" in out
    assert "fedcondense.deploy.flower_pins supernode --superlink 127.0.0.1:9093" in out
    for flag in ("--root-certificates", "--auth-supernode-private-key", "--node-config",
                 "--port 19094", "--isolation process", "--superexec-auth-secret-file"):
        assert flag in out
    assert "warm executor: " in out and "--runtime-api 127.0.0.1:19094" in out
    assert "--insecure" not in out
    assert not (site / "state" / "hospital-a.node-config.toml").exists()
    assert not list((site / "state").glob("*.secret"))  # a dry run writes nothing


def test_start_dry_run_with_flowers_own_executor(site, monkeypatch, capsys):
    monkeypatch.setenv("FEDCONDENSE_SITE_EXECUTOR", "flower")
    assert cli(monkeypatch, capsys, "site", "init", "--config", str(site / "site.toml"))[0] == 0
    code, out, err = cli(monkeypatch, capsys, "site", "start", "--config",
                         str(site / "site.toml"), "--dry-run")
    assert code == 0, err
    assert "flower-supernode --superlink 127.0.0.1:9093" in out
    assert "--isolation" not in out and "warm executor" not in out


def test_start_refuses_ledger_with_other_budget(site, monkeypatch, capsys):
    PrivacyLedger.create(site / "state" / "ledger.json", site="hospital-a", epsilon_budget=1.0,
                         delta_budget=1e-5)
    code, _, err = cli(monkeypatch, capsys, "site", "start", "--config",
                       str(site / "site.toml"), "--dry-run")
    assert code == 2 and "budget never changes" in err


def test_start_refuses_non_openssh_key(site, monkeypatch, capsys):
    key = site / "pki" / "node.key"
    key.write_bytes((site / "pki" / "ca.key").read_bytes())  # a PEM key, not OpenSSH
    os.chmod(key, 0o600)
    code, _, err = cli(monkeypatch, capsys, "site", "start", "--config",
                       str(site / "site.toml"), "--dry-run")
    assert code == 2 and "OpenSSH private key" in err


def test_start_refuses_an_inferred_schema_unless_the_operator_allows_it(site, monkeypatch,
                                                                        capsys):
    (site / "schema.json").write_text(json.dumps({**SCHEMA, "bounds_source": "inferred"}))
    toml = str(site / "site.toml")
    assert cli(monkeypatch, capsys, "site", "init", "--config", toml)[0] == 0
    code, _, err = cli(monkeypatch, capsys, "site", "start", "--config", toml, "--dry-run")
    assert code == 2 and err.count("\n") == 1 and "inferred from data" in err
    assert "not private" in err and "allow-inferred-schema = true" in err
    code, _, err = cli(monkeypatch, capsys, "site", "check", str(site / "data.csv"),
                       "--schema", str(site / "schema.json"))
    assert code == 0 and err.startswith("warning: ") and "not private" in err
    (site / "site.toml").write_text(SITE_TOML.replace(
        'ledger = "state/ledger.json"\n', 'ledger = "state/ledger.json"\n'
        'allow-inferred-schema = true\n'))
    assert load_site_config(site / "site.toml").allow_inferred_schema
    code, out, err = cli(monkeypatch, capsys, "site", "start", "--config", toml, "--dry-run")
    assert code == 0 and "flower_pins supernode" in out
    assert err.startswith("warning: ") and "allow-inferred-schema = true" in err
