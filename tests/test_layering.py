"""The package's layering, checked on the source tree (imports read with :mod:`ast`).

Data flows one way — schema → site table → per-record losses → noised sums → secure sum →
update → release — and the folders follow it:

* ``protocol`` imports no other fedcondense subpackage and not Flower (server and sites must
  agree on it bit for bit, testable alone);
* ``client`` and ``server`` are thin Flower adapters: of the project they import only
  ``protocol``;
* ``simulations`` never imports the command line (``cli``) or operations (``deploy``).

and no module imports itself back through others (no import cycles). Every import counts,
module-level or inside a function; ``from package import submodule`` counts as importing the
submodule (Python runs the package's ``__init__`` first either way, as for any submodule).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("protocol", "client", "server", "simulations", "cli", "deploy")
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


def module_graph(root: Path) -> dict[str, set[str]]:
    """``{module: project modules it imports}`` for every ``.py`` under ``root``'s folders."""
    files = {}
    paths = [p for folder in PACKAGES if (root / folder).is_dir()
             for p in (root / folder).rglob("*.py")]
    for path in sorted(paths):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(["fedcondense", *parts])] = path
    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: Iterable[str] = ()
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files
                         else node.module for a in node.names]
            graph[module] |= {n for n in names if n in files and n != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    assert cycles(module_graph(ROOT)) == []


def test_the_cycle_check_sees_a_cycle_through_a_function_level_import(tmp_path) -> None:
    (tmp_path / "cli").mkdir()
    (tmp_path / "cli" / "main.py").write_text(
        "def mount():\n    from fedcondense.cli import commands\n")
    (tmp_path / "cli" / "commands.py").write_text("from fedcondense.cli.main import mount\n")
    (tmp_path / "cli" / "other.py").write_text("from fedcondense.cli import commands\n")
    assert cycles(module_graph(tmp_path)) == [["fedcondense.cli.commands",
                                               "fedcondense.cli.main"]]


def package_folders(root: Path) -> set[str]:
    """Every folder of the card's packages that is a Python package (has ``__init__.py``)."""
    return {p.parent.relative_to(root).as_posix() for top in PACKAGES
            for p in (root / top).rglob("__init__.py")}


def test_the_architecture_doc_names_every_package_folder_and_only_real_ones():
    import re

    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:protocol|client|server|simulations|cli|deploy)(?:/\w+)*)/`",
                           doc))
    folders = package_folders(ROOT)
    assert folders - named == set(), "folders docs/architecture.md does not describe"
    assert named - folders == set(), "folders docs/architecture.md names that do not exist"


def test_pyproject_installs_every_package_folder():
    """``pip install .`` (not only ``-e .``) ships every room; ``deploy/app`` is a separate
    Flower app project with its own ``pyproject.toml``, run from the checkout."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    want = {"fedcondense"} | {"fedcondense." + f.replace("/", ".")
                              for f in package_folders(ROOT) if not f.startswith("deploy/app")}
    assert listed == want


def test_package_imports_are_relative_so_tools_can_follow_them_from_the_tree():
    """The repo root *is* the package; absolute ``fedcondense.…`` imports only resolve once
    installed, relative ones from the tree alone (``deploy/app`` imports the installed
    package on purpose: it is a separate Flower app project)."""
    absolute = []
    for top in PACKAGES:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "deploy/app" in path.as_posix():
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom)
                         and not node.level else [])
                absolute += [f"{path.relative_to(ROOT)}:{node.lineno}" for n in names
                             if n.split(".")[0] == "fedcondense"]
    assert absolute == []
