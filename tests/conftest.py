"""Shared pytest configuration."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Register markers (deselect slow tests with ``-m "not slow"``)."""
    config.addinivalue_line("markers", "slow: real processes or long runs (deselect with -m 'not slow')")
