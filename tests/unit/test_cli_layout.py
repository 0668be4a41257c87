"""The CLI package stays a picture a newcomer can read: no import loop, no SQL of its own, small modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[2] / "playbook_sync" / "cli"
SQL_NAMES = {"select", "func", "update", "delete", "insert", "text", "query", "execute", "scalars"}


def _modules() -> dict[str, ast.Module]:
    trees = {}
    for path in sorted(PACKAGE.glob("*.py")):
        name = "playbook_sync.cli" if path.stem == "__init__" else f"playbook_sync.cli.{path.stem}"
        trees[name] = ast.parse(path.read_text(encoding="utf-8"))
    return trees


def _imports(tree: ast.Module, known: set[str]) -> set[str]:
    """The CLI modules a module imports (at any depth: imports inside functions are edges too)."""
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def test_the_cli_modules_import_each_other_without_a_loop():
    trees = _modules()
    graph = {name: _imports(tree, set(trees)) - {name} for name, tree in trees.items()}
    assert "playbook_sync.cli.shared" in graph and "playbook_sync.cli.run" in graph
    # Only the package (which registers the commands) and `python -m` may import the package itself.
    importers = {name for name, deps in graph.items() if "playbook_sync.cli" in deps}
    assert importers <= {"playbook_sync.cli.__main__"}, importers
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import loop: {' -> '.join(path + (name,))}"
        if name not in done:
            for dep in graph[name]:
                visit(dep, path + (name,))
            done.add(name)

    for name in graph:
        visit(name, ())


def test_the_cli_holds_no_sql_of_its_own():
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(("sqlalchemy", "playbook_sync.models")), f"{name} imports {node.module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("sqlalchemy") for a in node.names), name
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "session":
                assert node.attr not in SQL_NAMES | {"get"}, f"{name}: session.{node.attr} (put the query in store.py)"


def test_every_cli_module_stays_under_400_lines():
    for path in PACKAGE.glob("*.py"):
        assert len(path.read_text(encoding="utf-8").splitlines()) < 400, path.name
