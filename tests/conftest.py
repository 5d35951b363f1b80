"""Shared pytest configuration."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Register markers (deselect slow tests with ``-m "not slow"``)."""
    config.addinivalue_line("markers", "slow: real processes or long runs (deselect with -m 'not slow')")


@pytest.fixture(scope="session")
def heart(tmp_path_factory: pytest.TempPathFactory):
    """The bundled heart-disease table as a site would load it: ``(schema, site table)``."""
    from fedcondense.protocol.data.schema import Schema
    from fedcondense.protocol.data.site_table import load_site_table
    from fedcondense.simulations.evaluation.datasets import export_dataset

    d = tmp_path_factory.mktemp("heart")
    export_dataset("heart_disease", d)
    schema = Schema.load(d / "heart_disease.schema.json")
    return schema, load_site_table(d / "heart_disease.csv", schema)
