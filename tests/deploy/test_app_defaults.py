"""The deployed app's run-config defaults are `simulate`'s (and `condense`'s)."""

from __future__ import annotations

import tomllib
from dataclasses import fields

import pytest

from fedcondense.cli.options import resolve_rows
from fedcondense.deploy.consortium import APP_DIR
from fedcondense.protocol.condensation.condenser import CondenseConfig
from fedcondense.protocol.data.schema import Schema
from fedcondense.server.deployed_run import DeploySettings

APP_CONFIG = tomllib.loads((APP_DIR / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]


def test_app_defaults_equal_simulates() -> None:
    settings = DeploySettings.from_run_config(APP_CONFIG)
    default = CondenseConfig()
    for f in fields(CondenseConfig):
        if f.name in ("rows", "seed"):
            continue
        assert getattr(settings.condense, f.name) == getattr(default, f.name), f.name
    assert settings.condense.seed is None  # -1: a random public run seed
    assert settings.condense.rows == 0  # resolved per table, below


@pytest.mark.parametrize("survival", [False, True])
def test_rows_zero_resolves_like_simulate(survival: bool, tmp_path) -> None:
    from fedcondense.simulations.evaluation.datasets import export_dataset

    name = "gbsg2" if survival else "breast_cancer"
    try:
        _, schema_path = export_dataset(name, tmp_path)
    except Exception as exc:  # noqa: BLE001 - dataset not bundled in this install
        pytest.skip(f"{name}: {exc}")
    schema = Schema.load(schema_path)
    assert resolve_rows(schema, None, None) == (40 if survival else 10)
