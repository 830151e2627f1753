"""Collection instances (local and linked from a library) evaluate to the same geometry on a replica."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from scene_builders import build_instancing, instanced_geometry, link, reset_scene, write_library  # noqa: E402

from blender_addon import sync  # noqa: E402

pytestmark = pytest.mark.blender


def test_collection_instances_place_the_same_geometry():
    build_instancing()
    bpy.context.view_layer.update()
    geometry = instanced_geometry()
    assert {(i[0], i[1]) for i in geometry} >= {("KitPlacer", "KitPart"), ("PropsPlacer1", "Rock")}
    before = sync.scene_hash()
    values = sync.serialise_scene()
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    assert applier.errors == [] and applier.pending_links == {}
    bpy.context.view_layer.update()
    assert instanced_geometry() == geometry
    assert sync.scene_hash() == before


def test_an_instance_of_a_collection_the_library_does_not_link_yet_waits_for_it():
    """The instancer's key arrives before the library's key that links the collection it places."""
    path = write_library()
    with bpy.data.libraries.load(path, link=True) as (_source, target):
        target.objects = ["Tree"]
    link(bpy.data.objects["Tree"])
    values = sync.serialise_scene()
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    lib = bpy.data.libraries[0]
    # The sender links the Props collection and places it.
    with bpy.data.libraries.load(lib.filepath, link=True) as (_source, target):
        target.collections = ["Props"]
    placer = link(bpy.data.objects.new("Placer", None))
    placer.instance_type = "COLLECTION"
    placer.instance_collection = bpy.data.collections["Props"]
    bpy.context.view_layer.update()
    geometry, edited_hash = instanced_geometry(), sync.scene_hash()
    edited = sync.serialise_scene()
    bpy.data.objects.remove(placer)
    bpy.data.collections.remove(bpy.data.collections["Props"])
    changed = [(k, v) for k, v in edited.items() if values.get(k) != v]
    lib_ops = [op for op in changed if op[0].startswith("lib/")]
    assert lib_ops
    sync.apply_ops([op for op in changed if op not in lib_ops], applier=applier)
    assert any(token.startswith("meta:") for token in applier.pending_links)
    sync.apply_ops(lib_ops, applier=applier)
    assert applier.errors == [] and applier.pending_links == {}
    bpy.context.view_layer.update()
    assert instanced_geometry() == geometry
    assert sync.scene_hash() == edited_hash


def test_two_libraries_with_the_same_content_stay_two():
    """One .blend copied to two places: Blender makes one library per path, so each keeps its own file."""
    first = write_library()
    second = os.path.join(tempfile.mkdtemp(prefix="lib-copy-"), "assets.blend")
    shutil.copy(first, second)
    for i, path in enumerate((first, second)):
        with bpy.data.libraries.load(path, link=True) as (_source, target):
            target.collections = ["Props"]
        placer = link(bpy.data.objects.new(f"Placer{i}", None))
        placer.instance_type = "COLLECTION"
        placer.instance_collection = target.collections[0]
    before = sync.scene_hash()
    values = sync.serialise_scene()
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    assert applier.errors == []
    assert len(bpy.data.libraries) == 2
    assert sync.scene_hash() == before
