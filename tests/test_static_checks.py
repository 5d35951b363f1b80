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


MAX_MODULE_LINES = 400
MAX_FUNCTION_BODY_LINES = 80


def oversized(root: Path) -> list[str]:
    """Modules over :data:`MAX_MODULE_LINES` lines and functions whose body (from the first
    statement after the signature: a CLI command's long option list does not count) runs
    over :data:`MAX_FUNCTION_BODY_LINES` lines."""
    import ast

    found = []
    for top in ("protocol", "client", "server", "simulations", "cli", "deploy"):
        for path in sorted((root / top).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            name = path.relative_to(root).as_posix()
            if len(text.splitlines()) > MAX_MODULE_LINES:
                found.append(f"{name}: {len(text.splitlines())} lines")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    body = (node.end_lineno or node.lineno) - node.body[0].lineno + 1
                    if body > MAX_FUNCTION_BODY_LINES:
                        found.append(f"{name}:{node.lineno} {node.name}: {body} lines")
    return found


def test_no_module_or_function_is_oversized() -> None:
    assert oversized(ROOT) == []


def test_the_size_check_catches_a_long_function(tmp_path) -> None:
    (tmp_path / "protocol").mkdir()
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_BODY_LINES + 1))
    (tmp_path / "protocol" / "long.py").write_text(f"def f() -> None:\n{body}")
    assert oversized(tmp_path) == [f"protocol/long.py:1 f: {MAX_FUNCTION_BODY_LINES + 1} lines"]
