"""The shape of the package, checked from the source: no import loops, edges stay at the edges."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[2] / "playbook_sync"
EDGES = ("playbook_sync.cli", "playbook_sync.worker", "playbook_sync.api")  # the only modules that may import celery/typer/fastapi
EDGE_LIBRARIES = ("celery", "kombu", "typer", "fastapi", "uvicorn")
# The one exception: settings check a cron and a rate limit with Celery's own parsers (lazily, inside the
# validators), so a value beat or a worker would refuse is refused at start; a copy of the parsers would drift.
CONFIG_PARSERS = {"celery.schedules", "celery.schedules.crontab", "celery.schedules.ParseException",
                  "celery.utils.time", "celery.utils.time.rate"}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.relative_to(PACKAGE).parts:
            continue  # Alembic scripts are loaded by Alembic, not imported
        parts = ("playbook_sync", *path.relative_to(PACKAGE).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_names(path: Path) -> set[str]:
    """Every absolute import in the file, module level or inside functions (a lazy import is still a dependency)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def graph() -> dict[str, set[str]]:
    mods = modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for target in imported_names(path):
            while target and target not in mods:
                target = target.rpartition(".")[0]
            # A package's __init__ importing its own submodules is how packages are built, not a loop.
            if target and target != name and not target.startswith(name + "."):
                edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_has_no_cycles():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_domain_imports_neither_the_edges_nor_their_frameworks():
    offenders = []
    for name, path in modules().items():
        if name.startswith(EDGES):
            continue
        for target in imported_names(path):
            if name == "playbook_sync.config" and target in CONFIG_PARSERS:
                continue
            if target.startswith(EDGES) or target.split(".")[0] in EDGE_LIBRARIES:
                offenders.append(f"{name} imports {target}")
    assert offenders == []


def test_modules_stay_under_400_lines():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text(encoding="utf-8").splitlines())) >= 400}
    assert long == {}
