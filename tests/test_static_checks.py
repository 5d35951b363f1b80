"""Static checks in the test command: ruff over the whole tree, mypy over ``protocol/``.

The rules live in ``pyproject.toml`` (``[tool.ruff]``, ``[tool.mypy]``); the tools are pinned in
the ``test`` extra, which ``deploy/test.sh`` installs. mypy checks ``protocol`` as the package
it is installed as (``fedcondense.protocol``): the repository root *is* the ``fedcondense``
package (setuptools ``package-dir``), and mypy does not follow the editable install's import
hook, so the check gives it a ``fedcondense`` link to the root on ``MYPYPATH``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, **kw)  # type: ignore[call-overload]


def test_ruff_finds_nothing() -> None:
    r = _run(["ruff", "check", "--no-cache", "."])
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_finds_nothing_in_protocol(tmp_path) -> None:
    (tmp_path / "fedcondense").symlink_to(ROOT, target_is_directory=True)
    env = {**os.environ, "MYPYPATH": str(tmp_path)}
    r = _run(["mypy", "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir",
              str(tmp_path / "cache"), "-p", "fedcondense.protocol"], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success" in r.stdout


def test_the_checks_catch_a_type_error_and_an_undefined_name(tmp_path) -> None:
    pkg = tmp_path / "fedcondense" / "protocol"
    pkg.mkdir(parents=True)
    (tmp_path / "fedcondense" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "bad.py").write_text("def f(x: int) -> str:\n    return x\n\n\n"
                               "def g() -> int:\n    return undefined_name\n")
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated",
                        "--select", "F", str(pkg)], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "F821" in r.stdout
    env = {**os.environ, "MYPYPATH": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"),
                        "-p", "fedcondense.protocol"], capture_output=True, text=True,
                       timeout=300, env=env, cwd=tmp_path)
    assert r.returncode != 0 and "Incompatible return value type" in r.stdout
