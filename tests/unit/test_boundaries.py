"""Process boundaries that the import contracts (pyproject, `lint-imports`) cannot see."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path


def test_cli_start_up_does_not_load_pydantic_before_the_worker_starts() -> None:
    """The CLI starts the SSH worker first so its imports overlap ours: the modules that
    run before that must stay light (no pydantic, no spec models)."""
    code = (
        "import sys, reconciler.cli.main; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'pydantic', 'pyinfra', 'gevent'}); "
        "print(','.join(bad))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def _imports_of(path: Path, package: str) -> set[str]:
    """Modules of `package` that a file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m.startswith(package + ".")}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles, done = [], set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycles.append([*path[path.index(node) :], node])
            return
        if node in done:
            return
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, [*path, node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])
    return cycles


def test_no_module_of_a_room_imports_one_that_imports_it_back() -> None:
    """Import cycles hide inside function-level imports, where lint-imports' layers do not
    look; each room of the reconciler must be a graph without cycles."""
    root = Path(__file__).resolve().parents[2]
    for room in sorted(p for p in (root / "reconciler").iterdir() if (p / "__init__.py").exists()):
        package = f"reconciler.{room.name}"
        graph = {f"{package}.{f.stem}": _imports_of(f, package) for f in room.glob("*.py")}
        assert _cycles(graph) == [], f"import cycle in {package}"
