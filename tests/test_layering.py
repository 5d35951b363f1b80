"""The package's layering, checked on the source tree (imports read with :mod:`ast`).

Data flows one way — schema → site table → per-record losses → noised sums → secure sum →
update → release — and the folders follow it:

* ``protocol`` imports no other fedcondense subpackage and not Flower (server and sites must
  agree on it bit for bit, testable alone);
* ``client`` and ``server`` are thin Flower adapters: of the project they import only
  ``protocol``;
* ``simulations`` never imports the command line (``cli``) or operations (``deploy``).

Every import counts, module-level or inside a function. Not checked yet: import cycles
(some remain through function-level imports, e.g. the families registry and its modules).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RULES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # folder: (project subpackages it may import besides itself, third-party roots it may not)
    "protocol": (frozenset(), frozenset({"flwr"})),
    "client": (frozenset({"protocol"}), frozenset()),
    "server": (frozenset({"protocol"}), frozenset()),
    "simulations": (frozenset({"protocol", "client", "server"}), frozenset()),
}


def imported_names(path: Path, root: Path) -> list[str]:
    """Absolute module names ``path`` (under package root ``root``) imports; relative
    imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ["fedcondense", *path.parent.relative_to(root).parts]
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                out.append(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                out.append(node.module)
    return out


def violations(root: Path) -> list[str]:
    """``"module imports name"`` for every import that breaks :data:`RULES` under ``root``."""
    found = []
    for folder, (allowed, banned) in RULES.items():
        for path in sorted((root / folder).rglob("*.py")):
            module = ".".join(path.relative_to(root).with_suffix("").parts)
            for name in imported_names(path, root):
                parts = name.split(".")
                if parts[0] == "fedcondense" and len(parts) > 1:
                    target = parts[1]
                    if target != folder and target not in allowed:
                        found.append(f"{module} imports {name}")
                elif parts[0] in banned:
                    found.append(f"{module} imports {name}")
    return found


def test_the_package_keeps_its_layers() -> None:
    assert violations(ROOT) == []


def test_the_check_catches_a_protocol_module_importing_flower_or_server(tmp_path) -> None:
    (tmp_path / "protocol").mkdir()
    (tmp_path / "protocol" / "bad.py").write_text(
        "import flwr.app\nfrom fedcondense.server import orchestrator\n"
        "def f():\n    from ..server.secure_sum import run_rounds\n")
    (tmp_path / "simulations").mkdir()
    (tmp_path / "simulations" / "bench.py").write_text("from fedcondense.cli.options import x\n")
    (tmp_path / "server").mkdir()
    (tmp_path / "server" / "ok.py").write_text("from fedcondense.protocol import schema\n")
    assert violations(tmp_path) == [
        "protocol.bad imports flwr.app",
        "protocol.bad imports fedcondense.server",
        "protocol.bad imports fedcondense.server.secure_sum",
        "simulations.bench imports fedcondense.cli.options",
    ]
