"""Particle systems and their settings, hair curves, point clouds, volumes and custom split normals on a
replica."""

from __future__ import annotations

import os

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from replicas import applied_one_at_a_time, replica  # noqa: E402
from scene_builders import (  # noqa: E402
    build_custom_normals,
    build_hair_curves,
    build_particle_physics,
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


def test_settings_arriving_after_their_particle_system_leave_nothing_of_the_receivers_own():
    """The object's keys (its particle system modifier, then the system naming the settings) before the
    settings' keys, one at a time: the settings the receiver's new modifier came with hold no name the
    room's need, are never published, and are gone once the system points at the room's settings. Before,
    they were read as a new datablock of the receiver's and sent to the room."""
    build_particles()
    grass = bpy.data.particles["Grass"]
    grass.name = "ParticleSettings"  # as Blender names the settings a new modifier comes with
    before = sync.scene_hash()
    values = sync.serialise_scene()
    objects_first = sorted(values.items(), key=lambda op: (not op[0].startswith("obj/"), op[0]))
    applier = applied_one_at_a_time(objects_first, tracked=True)  # no errors, every link resolved
    assert sorted(p.name for p in bpy.data.particles) == ["ParticleSettings", "Sparks"]
    assert applier.tracker.scan() == ({}, [])  # nothing of the receiver's own to send
    assert sync.scene_hash() == before


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


def _physics() -> dict[str, object]:
    """What the particle physics builder set, as a receiver sees it."""
    flock, drops, tufts = (bpy.data.particles[n] for n in ("Flock", "Drops", "Tufts"))
    return {
        "boids": flock.boids.air_speed_max if flock.boids else None,
        "states": [
            [
                s.name,
                s.ruleset_type,
                [[r.type, getattr(r, "object", None) and r.object.name] for r in s.rules],
            ]
            for s in (flock.boids.states if flock.boids else ())
        ],
        "fluid": drops.fluid and [drops.fluid.stiffness, drops.fluid.solver],
        "clump": [tuple(round(c, 4) for c in p.location) for p in tufts.clump_curve.curves[0].points]
        if tufts.clump_curve
        else None,
        "gravity": tufts.effector_weights.gravity,
        "field": [tufts.force_field_1.type, tufts.force_field_1.strength],
        "slots": [
            [i, s.texture and s.texture.name, s.length_factor] for i, s in enumerate(tufts.texture_slots) if s
        ],
    }


def test_particle_physics_structs_travel():
    build_particle_physics()
    sent = _physics()
    assert sent["states"] == [
        ["State", "FUZZY", [["SEPARATE", None], ["FLOCK", None]]],
        ["Hunting", "RANDOM", [["GOAL", "Target"]]],
    ]
    assert sent["fluid"] == [2.5, "CLASSICAL"] and sent["slots"] == [[2, "Patches", 0.5]]
    before, _values, _applier = roundtrip()
    assert _physics() == sent
    assert sync.scene_hash() == before


def test_particle_physics_edits_apply_onto_a_replica():
    build_particle_physics()
    values = sync.serialise_scene()
    replica(values)  # the edits are made on a replica of the room, as an artist who joined makes them
    flock, tufts = bpy.data.particles["Flock"], bpy.data.particles["Tufts"]
    with bpy.context.temp_override(particle_settings=flock):
        flock.boids.active_boid_state_index = 0
        bpy.ops.boid.state_del()  # the first state goes: Hunting is the only one
        bpy.ops.boid.rule_add(type="AVOID")
    tufts.clump_curve.curves[0].points[1].location = (0.5, 0.1)
    tufts.force_field_1.type = "NONE"  # its key goes
    tufts.texture_slots.clear(2)
    tufts.texture_slots.create(0).texture = bpy.data.textures["Patches"]
    tufts.effector_weights.gravity = 1.0
    bpy.data.particles["Drops"].physics_type = "NEWTON"  # the fluid settings' key goes
    edited, edited_hash, sent = sync.serialise_scene(), sync.scene_hash(), _physics()
    assert sent["states"] == [["Hunting", "RANDOM", [["GOAL", "Target"], ["AVOID", None]]]]
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    changes = [(k, v) for k, v in edited.items() if values.get(k) != v]
    changes += [(k, None) for k in values if k not in edited]
    assert any(k.endswith("/set/force_field_1") for k, v in changes if v is None)
    sync.apply_ops(changes, applier=applier)
    assert applier.errors == [] and applier.pending_links == {}
    assert _physics() == sent
    assert sync.scene_hash() == edited_hash


def test_a_malformed_boid_brain_or_slot_is_refused_by_name_and_stops_nothing_else():
    build_particle_physics()
    values = sync.serialise_scene()
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    flock = bpy.data.particles["Flock"]
    uuid = sync.get_uuid(flock)
    boids_key, count_key = (sync.make_key("part", uuid, "set", s) for s in ("boids", "count"))
    slot_key = sync.make_key("part", uuid, "texslot", "99")
    good = sync.decode_value(values[boids_key])
    bad_values = [
        "not a map",
        {**good, "states": "x"},
        {**good, "states": [{"name": "S"}] * 65},  # more states than any brain needs
        {**good, "states": [{"name": "S", "rules": [{"type": "NO_SUCH_RULE"}]}]},
        {**good, "states": [{"name": "S", "rules": [1, 2]}]},
    ]
    for bad in bad_values:
        ops = [(boids_key, sync.encode_value(bad)), (count_key, sync.encode_value(9))]
        applier = sync.apply_ops(ops, applier=applier)
        assert [key for key, _ in applier.errors] == [boids_key], bad
        assert flock.count == 9 and len(flock.boids.states) <= 64
    applier = sync.apply_ops([(slot_key, sync.encode_value({"use_map_length": True}))], applier=applier)
    applier = sync.apply_ops([(boids_key, values[boids_key])], applier=applier)
    assert list(applier.errors) == [(slot_key, "'Flock' has no texture slot '99'")]
    assert [s.name for s in flock.boids.states] == ["State", "Hunting"]


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
