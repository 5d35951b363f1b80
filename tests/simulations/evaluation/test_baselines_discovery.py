"""`benchmark` finds the MST/AIM venv that `bootstrap.sh --extras baselines` makes, by itself.

The venv is stood in for by a tiny executable script at ``ROOT/.venv-baselines/bin/python`` that
answers the import probe (exit 0: smartnoise-synth importable; exit 1: not), so this runs in
well under a second with no network and no smartnoise-synth install.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from fedcondense.simulations.evaluation.baselines import (
    BASELINES_VENV,
    REPO_ROOT,
    available_baselines,
    find_baselines_python,
)


def fake_venv(root: Path, importable: bool) -> Path:
    python = root / BASELINES_VENV / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f"#!/bin/sh\nexit {0 if importable else 1}\n")
    python.chmod(0o755)
    return python


def test_the_bootstrap_venv_is_found_when_present(tmp_path):
    python = fake_venv(tmp_path, importable=True)
    found = find_baselines_python(None, root=tmp_path)
    assert found == str(python)
    if importlib.util.find_spec("snsynth") is None:
        assert available_baselines(found)["mst"] == f"available via {python}"
        assert available_baselines(found)["aim"] == f"available via {python}"


def test_without_the_venv_the_report_says_not_installed(tmp_path):
    assert find_baselines_python(None, root=tmp_path) is None
    assert find_baselines_python("", root=tmp_path) is None
    (tmp_path / BASELINES_VENV / "bin").mkdir(parents=True)  # a half-made venv is no venv
    assert find_baselines_python(None, root=tmp_path) is None
    if importlib.util.find_spec("snsynth") is None:
        note = available_baselines(find_baselines_python(None, root=tmp_path))["mst"]
        assert note.startswith("not installed") and "--extras baselines" in note


def test_a_venv_without_smartnoise_is_reported_as_such(tmp_path):
    if importlib.util.find_spec("snsynth") is not None:
        pytest.skip("smartnoise-synth is importable here, so the venv is not consulted")
    python = fake_venv(tmp_path, importable=False)
    note = available_baselines(find_baselines_python(None, root=tmp_path))["aim"]
    assert note.startswith(f"not installed in {python}")


def test_an_explicit_interpreter_wins_over_the_venv(tmp_path):
    fake_venv(tmp_path, importable=True)
    assert find_baselines_python("/opt/other/bin/python", root=tmp_path) == "/opt/other/bin/python"


def test_the_default_root_is_this_checkout():
    assert (REPO_ROOT / "pyproject.toml").is_file()
    assert (REPO_ROOT / "deploy" / "bootstrap.sh").is_file()
