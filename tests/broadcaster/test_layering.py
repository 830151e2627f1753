"""Each product package imports in one direction: no module reaches, through any chain of imports, back to
itself (broadcaster/, and likewise protocol/, blender_addon/ and replication/).

The graph is read from the source with ``ast`` (nothing is imported). Imports inside ``if TYPE_CHECKING:``
count too: an annotation-only cycle is still two modules that each need the other to be understood.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "broadcaster"


def module_names(package: Path) -> dict[str, Path]:
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports, anywhere in its source (functions included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    found.add(f"{base}.{alias.name}")
                elif base in known:
                    found.add(base)
    found.discard(name)
    # A package's own __init__ runs before any of its modules; importing it is never a step back up.
    return {other for other in found if not name.startswith(other + ".")}


def import_graph(package: Path) -> dict[str, set[str]]:
    known = module_names(package)
    return {name: imports_of(name, path, known) for name, path in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path [a, b, ..., a], or None (depth-first search with colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        stack.append(name)
        for other in sorted(graph.get(name, ())):
            if state.get(other) == 1:
                return [*stack[stack.index(other) :], other]
            if other not in state and (cycle := visit(other)) is not None:
                return cycle
        stack.pop()
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name)) is not None:
            return cycle
    return None


def test_finds_a_cycle_when_there_is_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_sees_relative_and_type_checking_imports(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .high import High\n"
    )
    (package / "high.py").write_text("from . import low\n")
    graph = import_graph(package)
    assert graph["pkg.low"] == {"pkg.high"} and graph["pkg.high"] == {"pkg.low"}
    assert find_cycle(graph) == ["pkg.high", "pkg.low", "pkg.high"]


@pytest.mark.parametrize(
    ("package", "a_module"),
    [
        ("broadcaster", "broadcaster.server"),
        ("protocol", "protocol.client_session"),
        ("replication", "replication.tree.machine"),
        ("blender_addon", "blender_addon.sync.kinds.objects"),
    ],
)
def test_no_import_cycle(package: str, a_module: str) -> None:
    graph = import_graph(REPO / package)
    assert a_module in graph
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph) or [])}"
