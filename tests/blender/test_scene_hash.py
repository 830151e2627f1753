"""The scene hash of a large mesh is made without holding the mesh as Python lists (canonical.py): its
vertices, edges and faces are listed in batches, and the bytes hashed are the canonical JSON's all the
same."""

from __future__ import annotations

import hashlib
import json

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from scene_builders import link, reset_scene  # noqa: E402

from blender_addon import sync  # noqa: E402
from blender_addon.sync import arrays, canonical  # noqa: E402

pytestmark = pytest.mark.blender


def _mesh() -> bpy.types.Mesh:
    """Triangles, quads and an n-gon (faces of different lengths), a loose edge, -0.0 and long floats."""
    me = bpy.data.meshes.new("Ragged")
    verts = [(i * 0.1234567, -0.0 if i % 3 == 0 else i / 7.0, (i % 5) * 1e-6) for i in range(40)]
    faces = [tuple(range(i, i + 3 + i % 4)) for i in range(0, 30, 6)]
    me.from_pydata(verts, [(38, 39)], faces)
    link(bpy.data.objects.new("Ragged", me))
    bpy.data.meshes.new("Empty")
    return me


def test_a_meshs_rows_are_hashed_in_batches_as_the_canonical_json(monkeypatch):
    reset_scene()
    me = _mesh()
    monkeypatch.setattr(arrays, "BATCH_ROWS", 7)  # many batches, the last one partial
    description = sync.scene_description()
    mesh = description["mesh"][sync.get_uuid(me)]
    # The rows as the description always listed them, one element at a time.
    assert mesh["vertices"] == canonical.rounded([[float(c) for c in v.co] for v in me.vertices])
    assert mesh["edges"] == [list(e.vertices) for e in me.edges]
    assert mesh["faces"] == [list(p.vertices) for p in me.polygons]
    assert [len(f) for f in mesh["faces"]] == [3, 5, 3, 5, 3]
    text = json.dumps(description, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert sync.scene_hash() == hashlib.sha256(text.encode()).hexdigest()
