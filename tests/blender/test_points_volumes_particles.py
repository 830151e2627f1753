"""Particle systems and their settings, hair curves, point clouds, volumes and custom split normals on a
replica."""

from __future__ import annotations

import os

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from scene_builders import (  # noqa: E402
    build_custom_normals,
    build_hair_curves,
    build_particles,
    build_pointcloud,
    build_volume,
    instanced_geometry,
    reset_scene,
)

from blender_addon import sync  # noqa: E402

pytestmark = pytest.mark.blender


def roundtrip() -> tuple[str, dict[str, bytes], sync.Applier]:
    before = sync.scene_hash()
    values = sync.serialise_scene()
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    assert applier.errors == [] and applier.pending_links == {}
    bpy.context.view_layer.update()
    return before, values, applier


def test_hair_and_emitter_particles_place_the_same_instances():
    build_particles()
    bpy.context.view_layer.update()
    geometry = instanced_geometry()
    assert len(geometry) == 12 + 5  # a pebble on every strand of grass and on every spark
    before, _values, _applier = roundtrip()
    assert instanced_geometry() == geometry
    assert sync.scene_hash() == before
    # The settings the receiver's new particle system modifiers came with are gone.
    assert sorted(p.name for p in bpy.data.particles) == ["Grass", "Sparks"]


def test_particle_edits_apply_onto_a_replica():
    build_particles()
    values = sync.serialise_scene()
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    grass = bpy.data.particles["Grass"]
    grass.count = 20
    grass.use_absolute_path_time = True  # converts path start and end: one key with them
    bpy.data.objects["Ground"].particle_systems["Grass"].seed = 3
    bpy.data.particles["Sparks"].instance_object = None  # a setting pointing at nothing
    bpy.context.view_layer.update()
    edited, geometry = sync.serialise_scene(), instanced_geometry()
    changed = {k for k in edited if edited[k] != values.get(k)}
    uuid = sync.get_uuid(grass)
    assert {f"part/{uuid}/set/count", f"part/{uuid}/path"} <= changed
    assert any(k.endswith("/psys/Grass") for k in changed)
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    sync.apply_ops([(k, edited[k]) for k in changed], applier=applier)
    assert applier.errors == []
    bpy.context.view_layer.update()
    assert instanced_geometry() == geometry
    assert len(geometry) == 20
    assert bpy.data.particles["Sparks"].instance_object is None


def test_a_point_cloud_with_another_count_replaces_it_in_place():
    build_pointcloud()
    values = sync.serialise_scene()
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    assert len(bpy.data.pointclouds["Stars"].points) == 6
    from blender_addon.sync.kinds.pointclouds import new_pointcloud

    # The sender's cloud now has nine points.
    old = bpy.data.pointclouds["Stars"]
    bigger = new_pointcloud(9)
    bigger.attributes["position"].data.foreach_set("vector", [float(i % 7) for i in range(27)])
    bigger.materials.append(old.materials[0])
    uuid = sync.get_uuid(old)
    old.user_remap(bigger)
    bpy.data.pointclouds.remove(old)
    bigger.name = "Stars"
    bigger["blendsync_uuid"] = uuid
    edited, edited_hash = sync.serialise_scene(), sync.scene_hash()
    sync.apply_ops(list(values.items()), applier=applier)
    assert len(bpy.data.pointclouds["Stars"].points) == 6
    sync.apply_ops([(k, v) for k, v in edited.items() if values.get(k) != v], applier=applier)
    assert applier.errors == []
    assert len(bpy.data.pointclouds) == 1 and len(bpy.data.pointclouds["Stars"].points) == 9
    assert bpy.data.objects["Stars"].data == bpy.data.pointclouds["Stars"]
    assert bpy.data.pointclouds["Stars"].materials[0].name == "Starlight"
    assert sync.scene_hash() == edited_hash


def test_a_volume_file_travels_and_reads_the_same_grids():
    build_volume()
    source = bpy.data.volumes["Fog"].filepath
    before, _values, _applier = roundtrip()
    vol = bpy.data.volumes["Fog"]
    assert vol.filepath != source and os.path.isfile(vol.filepath)
    assert "blendsync-volumes" in vol.filepath
    assert vol.grids.load() and [g.name for g in vol.grids] == ["density"]
    assert sync.scene_hash() == before


def test_custom_split_normals_travel():
    build_custom_normals()
    normals = [tuple(round(x, 4) for x in n.vector) for n in bpy.data.meshes["Shaded"].corner_normals]
    assert normals[0] != normals[3]
    roundtrip()
    assert [tuple(round(x, 4) for x in n.vector) for n in bpy.data.meshes["Shaded"].corner_normals] == normals


def _curves_state() -> list:
    fur = bpy.data.hair_curves["Fur"]
    sizes = [c.points_length for c in fur.curves]
    attributes = sorted(
        (
            a.name,
            a.domain,
            [round(v, 5) for d in a.data for v in (d.vector if a.data_type == "FLOAT_VECTOR" else [d.value])],
        )
        for a in fur.attributes
        if not a.name.startswith(".")
    )
    return [sizes, attributes, fur.surface.name if fur.surface else None, fur.use_mirror_x]


def test_hair_curves_travel_and_take_new_sizes_in_place():
    build_hair_curves()
    state = _curves_state()
    before, values, applier = roundtrip()
    assert _curves_state() == state
    assert sync.scene_hash() == before
    # The sender adds a curve of four points and gives every point a new position.
    fur = bpy.data.hair_curves["Fur"]
    fur.add_curves([4])
    fur.attributes["position"].data.foreach_set("vector", [float(i) for i in range(27)])
    edited, edited_hash, edited_state = sync.serialise_scene(), sync.scene_hash(), _curves_state()
    sync.apply_ops(list(values.items()), applier=applier)
    assert _curves_state() == state
    sync.apply_ops([(k, v) for k, v in edited.items() if values.get(k) != v], applier=applier)
    assert applier.errors == []
    assert len(bpy.data.hair_curves) == 1 and _curves_state() == edited_state
    assert edited_state[0] == [3, 2, 4]
    assert sync.scene_hash() == edited_hash
