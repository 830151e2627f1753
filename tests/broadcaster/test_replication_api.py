"""The broadcaster uses replication only through ``replication/__init__.py``, its public face.

(The Blender add-on does not use it at all: it speaks the protocol.)

Read from the source with ``ast``: any ``import replication.x`` or ``from replication.x import ...`` in
broadcaster/ fails, and so does a name imported from ``replication`` that it does not export.
"""

from __future__ import annotations

import ast
from pathlib import Path

import replication

ROOT = Path(__file__).resolve().parents[2]


def replication_imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every import of replication in ``path``, at any level."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "replication" or alias.name.startswith("replication."):
                    found.append((node.lineno, alias.name, []))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            module = node.module
            if module == "replication" or module.startswith("replication."):
                found.append((node.lineno, module, [alias.name for alias in node.names]))
    return found


def violations(root: Path) -> list[str]:
    exported = set(replication.__all__)
    out = []
    for path in sorted(root.rglob("*.py")):
        where = path.relative_to(root.parent)
        for line, module, names in replication_imports(path):
            if module != "replication":
                out.append(f"{where}:{line}: imports {module}; use what replication exports")
                continue
            out.extend(
                f"{where}:{line}: replication does not export {name}"
                for name in names
                if name not in exported
            )
    return out


def test_broadcaster_imports_only_the_public_face_of_replication():
    assert violations(ROOT / "broadcaster") == []


def test_the_blender_addon_does_not_import_replication():
    found = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in sorted((ROOT / "blender_addon").rglob("*.py"))
        for line, module, _ in replication_imports(path)
    ]
    assert found == []


def test_every_exported_name_exists():
    assert replication.__all__
    assert [name for name in replication.__all__ if not hasattr(replication, name)] == []


def test_the_check_sees_a_submodule_import_anywhere_in_a_file(tmp_path):
    (tmp_path / "a.py").write_text(
        "import replication.node\n"
        "def f():\n"
        "    from replication.tree import Tree\n"
        "    from replication import open_node, _private\n"
    )
    found = violations(tmp_path)
    assert len(found) == 3, found
    assert "imports replication.node" in found[0]
    assert "imports replication.tree" in found[1]
    assert "does not export _private" in found[2]
