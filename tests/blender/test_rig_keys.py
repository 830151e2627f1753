"""Rig data at the key level, in one process: custom properties, drivers, derived values."""

from __future__ import annotations

import struct

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from anim_builders import build_driver_curves  # noqa: E402
from scene_builders import (  # noqa: E402
    build_animated,
    build_custom_props,
    build_rig,
    evaluate_scenes,
    evaluated_vertices,
    reset_scene,
)

from blender_addon import sync  # noqa: E402
from blender_addon.sync import fcurves  # noqa: E402

pytestmark = pytest.mark.blender


def uuid_of(id_data) -> str:
    return sync.peek_uuid(id_data)


def replica_of(values: dict[str, bytes]) -> sync.ChangeTracker:
    """Rebuild the scene from ``values`` (a receiver), with a tracker that knows them."""
    reset_scene()
    tracker = sync.ChangeTracker()
    applier = sync.apply_ops(list(values.items()), tracker=tracker)
    assert applier.errors == [] and applier.pending_links == {}
    evaluate_scenes()
    return tracker


def test_a_custom_property_or_driver_edit_changes_only_its_key():
    build_custom_props()
    evaluate_scenes()
    tracker = sync.ChangeTracker()
    tracker.scan()
    face = bpy.data.objects["Face"]
    u = uuid_of(face)

    face["int"] = 8
    changed, deleted = tracker.scan([face])
    assert list(changed) == [f"obj/{u}/prop/int"] and deleted == []

    face.animation_data.drivers.find("location", index=2).driver.expression = "f * 5"
    changed, _ = tracker.scan([face])
    assert list(changed) == [f"obj/{u}/driver/location/2"]

    # The driver's input changes: the driven values (location, a light's energy, a shape key) are derived.
    face["float"] = 0.5
    evaluate_scenes()
    assert face.location.z == pytest.approx(2.5)
    changed, deleted = tracker.scan(list(bpy.data.objects) + list(bpy.data.lights) + list(bpy.data.meshes))
    assert list(changed) == [f"obj/{u}/prop/float"] and deleted == []

    del face["int"]
    assert tracker.scan([face]) == ({}, [f"obj/{u}/prop/int"])


def test_custom_properties_and_drivers_apply_over_a_replica():
    build_custom_props()
    evaluate_scenes()
    face = bpy.data.objects["Face"]
    rig = bpy.data.objects["Rig"]
    values = sync.serialise_scene()
    tracker = sync.ChangeTracker()
    tracker.scan()
    # On the sending side: a pose bone slider moves, a driver goes, a property goes, a new one comes.
    rig.pose.bones["Hand"]["ik_fk"] = 0.25
    face.animation_data.drivers.remove(face.animation_data.drivers.find("location", index=2))
    del face["ints"]
    face["fresh"] = {"deep": {"er": [1, 2]}}
    changed, deleted = tracker.scan([face, rig])
    u, r = uuid_of(face), uuid_of(rig)
    # Location Z was driven (read as None): without its driver it is the object's own value again.
    assert set(changed) == {f"obj/{u}/prop/fresh", f"obj/{r}/pbprop/Hand/ik_fk", f"obj/{u}/location"}
    assert set(deleted) == {f"obj/{u}/driver/location/2", f"obj/{u}/prop/ints"}
    evaluate_scenes()
    edited = sync.scene_hash()

    replica = replica_of(values)
    ops = [*changed.items(), *((key, None) for key in deleted)]
    sync.apply_ops(ops, tracker=replica)
    evaluate_scenes()
    face = bpy.data.objects["Face"]
    assert "ints" not in face and face["fresh"].to_dict() == {"deep": {"er": [1, 2]}}
    assert face.animation_data.drivers.find("location", index=2) is None
    assert bpy.data.objects["Rig"].pose.bones["Hand"]["ik_fk"] == 0.25
    assert sync.scene_hash() == edited
    assert replica.scan() == ({}, [])  # nothing applied comes back as an edit


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("", 1),
        ("x" * 63, "longest name"),
        ("a/b%2F*", [0.5, -0.5]),
        ("**", {"nested": {"": [1, 2, 3]}}),
        ("ü" * 31, ""),
        ("max", 2**31 - 1),
        ("min", -(2**31)),
        ("empty", []),
        ("bytes", b"\xff\x00non-utf8"),
        ("long", "y" * 100_000),
    ],
    ids=[
        "empty-name",
        "longest-name",
        "slash-percent-star",
        "double-star",
        "unicode",
        "max",
        "min",
        "empty",
        "bytes",
        "long",
    ],
)
def test_custom_property_edges_round_trip(name, value):
    ob = bpy.data.objects.new("Edgy", None)
    bpy.context.scene.collection.objects.link(ob)
    ob[name] = value
    values = sync.serialise_scene()
    key = sync.make_key("obj", uuid_of(ob), "prop", name)
    assert key in values and sync.split_key(key)[3] == (name,)
    before = sync.scene_hash()
    replica_of(values)
    got = bpy.data.objects["Edgy"][name]
    assert (
        got.to_dict() if hasattr(got, "to_dict") else got.to_list() if hasattr(got, "to_list") else got
    ) == (value)
    assert sync.scene_hash() == before


def test_the_layers_own_properties_stay_local():
    ob = bpy.data.objects.new("Own", None)
    bpy.context.scene.collection.objects.link(ob)
    ob["blendsync_other"] = 1
    values = sync.serialise_scene()
    assert not [k for k in values if "/prop/" in k]


def test_animated_components_read_as_none_and_the_rest_travels():
    build_animated(count=1, frames=10)
    ob = bpy.data.objects["Anim0"]
    doc = sync.decode_value(sync.serialise_scene()[sync.make_key("obj", uuid_of(ob), "location")])
    assert doc == [0.0, None, 1.0]
    rig = bpy.data.objects["Rig"]
    hand = sync.decode_value(sync.serialise_scene()[sync.make_key("obj", uuid_of(rig), "pose", "Hand")])
    assert hand["location"] == [None, None, None] and hand["scale"] == [1.0, 1.0, 1.0]
    # Muting the F-curve makes the channel an edit again.
    action = ob.animation_data.action
    action.layers[0].strips[0].channelbag(ob.animation_data.action_slot).fcurves.find(
        "location", index=1
    ).mute = True
    doc = sync.decode_value(sync.serialise_scene()[sync.make_key("obj", uuid_of(ob), "location")])
    assert None not in doc


def test_a_constraint_weight_or_bone_collection_edit_changes_only_its_key():
    build_rig()
    evaluate_scenes()
    tracker = sync.ChangeTracker()
    tracker.scan()
    rig, skin, cam = bpy.data.objects["Char"], bpy.data.objects["Skin"], bpy.data.objects["RigCam"]
    r, m, c = uuid_of(rig), uuid_of(skin.data), uuid_of(cam)
    a = uuid_of(rig.data)

    rig.pose.bones["Hand"].constraints["Copy Rotation"].influence = 0.75
    assert tracker.scan([rig])[0].keys() == {f"obj/{r}/pbcon/Hand/Copy Rotation"}
    cam.constraints["Track To"].track_axis = "TRACK_Y"
    assert tracker.scan([cam])[0].keys() == {f"obj/{c}/con/Track To"}
    cam.constraints.move(0, 1)
    assert tracker.scan([cam])[0].keys() == {f"obj/{c}/conorder"}
    skin.vertex_groups["Lower"].add([0], 0.3, "REPLACE")
    assert tracker.scan([skin.data])[0].keys() == {f"mesh/{m}/vgroup/Lower"}
    rig.data.collections_all["Controls"].is_visible = True
    assert tracker.scan([rig.data])[0].keys() == {f"arm/{a}/bcoll/Controls"}
    rig.pose.bones["Hand"].custom_shape = None
    assert tracker.scan([rig])[0].keys() == {f"obj/{r}/pbset/Hand/custom_shape"}
    evaluate_scenes()
    edited = sync.scene_hash()
    values = dict(tracker.values)
    replica_of(values)
    assert sync.scene_hash() == edited


def test_a_drivers_mapping_curve_travels_on_the_drivers_key():
    build_driver_curves()
    evaluate_scenes()
    mapped = bpy.data.objects["Mapped"]
    # 0.5 through the keyframes (0 -> 0, 1 -> 10) and through 1 + 2x + 3x^2.
    assert list(mapped.location[:2]) == [pytest.approx(5.0), pytest.approx(2.75)]
    tracker = sync.ChangeTracker()
    tracker.scan()
    u = uuid_of(mapped)
    generator = mapped.animation_data.drivers.find("location", index=1).modifiers[0]
    generator.coefficients = (0.0, 4.0, 0.0)
    assert list(tracker.scan([mapped])[0]) == [f"obj/{u}/driver/location/1"]
    keyed = mapped.animation_data.drivers.find("location", index=0)
    keyed.keyframe_points[1].co = (1.0, 20.0)
    keyed.update()  # as the graph editor does after moving a key: handles follow
    assert list(tracker.scan([mapped])[0]) == [f"obj/{u}/driver/location/0"]
    evaluate_scenes()
    edited = sync.scene_hash()
    replica_of(dict(tracker.values))
    mapped = bpy.data.objects["Mapped"]
    assert list(mapped.location[:2]) == [pytest.approx(10.0), pytest.approx(2.0)]
    assert [m.type for m in mapped.animation_data.drivers.find("location", index=1).modifiers] == [
        "GENERATOR",
        "NOISE",
    ]
    assert sync.scene_hash() == edited


def test_custom_bbone_handles_travel_and_a_changed_handle_applies_in_place():
    build_rig()
    values = sync.serialise_scene()
    uuid = uuid_of(bpy.data.armatures["CharRig"])
    replica_of(values)
    lower = bpy.data.armatures["CharRig"].bones["Lower"]
    assert (lower.bbone_handle_type_start, lower.bbone_handle_type_end) == ("ABSOLUTE", "TANGENT")
    assert lower.bbone_custom_handle_start.name == "Upper"
    assert lower.bbone_custom_handle_end.name == "Hand"
    # Another artist points the end handle elsewhere and clears the start: only the bones key changes.
    before = sync.serialise_scene()
    lower.bbone_custom_handle_end = lower.id_data.bones["Upper"]
    lower.bbone_custom_handle_start = None
    changed = {k: v for k, v in sync.serialise_scene().items() if before.get(k) != v}
    assert list(changed) == [f"arm/{uuid}/bones"]
    replica_of(before)  # the first artist's copy, then the edit
    applier = sync.apply_ops(list(changed.items()))
    assert applier.errors == []
    lower = bpy.data.armatures["CharRig"].bones["Lower"]
    assert lower.bbone_custom_handle_start is None
    assert lower.bbone_custom_handle_end.name == "Upper"
    assert sync.serialise_scene()[f"arm/{uuid}/bones"] == changed[f"arm/{uuid}/bones"]


def test_an_envelope_modifiers_control_points_travel_on_the_drivers_key():
    build_driver_curves()
    mapped = bpy.data.objects["Mapped"]
    fc = mapped.driver_add("location", 2)
    fc.driver.type = "SUM"
    var = fc.driver.variables.new()
    var.targets[0].id, var.targets[0].data_path = mapped, '["amount"]'
    envelope = fc.modifiers.new("ENVELOPE")
    for frame in (0.0, 1.0):
        envelope.control_points.add(frame)
    # Set through foreach_set: a point's own property set runs Blender's modifier update on the point.
    envelope.control_points.foreach_set("min", [-2.0, -6.0])
    envelope.control_points.foreach_set("max", [2.0, 6.0])
    evaluate_scenes()
    shaped = mapped.location[2]
    assert shaped != pytest.approx(0.5)  # the envelope reshapes the driver's 0.5
    tracker = sync.ChangeTracker()
    tracker.scan()
    u = uuid_of(mapped)
    envelope.control_points.foreach_set("max", [2.0, 10.0])
    assert list(tracker.scan([mapped])[0]) == [f"obj/{u}/driver/location/2"]
    evaluate_scenes()
    edited, reshaped = sync.scene_hash(), mapped.location[2]
    assert reshaped != pytest.approx(shaped)
    replica_of(dict(tracker.values))
    mapped = bpy.data.objects["Mapped"]
    points = mapped.animation_data.drivers.find("location", index=2).modifiers[0].control_points
    assert [(p.frame, p.min, p.max) for p in points] == [(0.0, -2.0, 2.0), (1.0, -6.0, 10.0)]
    assert mapped.location[2] == pytest.approx(reshaped)
    assert sync.scene_hash() == edited


def test_envelope_points_are_written_in_frame_order_without_setting_a_point_through_rna():
    # Blender runs the modifier's update when a point's min/max is set through the point, reading the
    # point as a modifier: with a point six places on whose min's low bytes read as a Cycles modifier's
    # type (4) and the next point's bytes as its curve, that update crashed the process.
    build_driver_curves()
    mapped = bpy.data.objects["Mapped"]
    fc = mapped.driver_add("location", 1)
    envelope = fc.modifiers.new("ENVELOPE")
    trap = struct.unpack("<f", b"\x04\x00\x80\x3f")[0]
    points = [[float(frame), trap if frame == 8 else 1.0, 2.0] for frame in range(8, -1, -1)]
    points.append([3.0, -9.0, 9.0])  # the same frame twice: the first one is kept
    points.append([float("nan"), 0.0, 0.0])
    fcurves.write_modifiers(fc, [{"type": "ENVELOPE", "props": {}, "points": points}])
    written = [(p.frame, p.min, p.max) for p in envelope.control_points]
    assert written == [(float(f), trap if f == 8 else 1.0, 2.0) for f in range(9)]


def test_bone_properties_and_collections_arriving_in_edit_mode_survive_leaving_it():
    # Leaving edit mode writes the edit bones back over the bones: what arrived meanwhile goes on the edit
    # bones, or it is lost (and the editor's next scan sends the old state back to everyone).
    build_rig()
    arm = bpy.data.armatures["CharRig"]
    rig = next(ob for ob in bpy.data.objects if ob.data == arm)
    evaluate_scenes()
    tracker = sync.ChangeTracker()
    tracker.scan()
    hand = arm.bones["Hand"]
    hand["grip"] = 0.75
    in_controls = "Controls" in [c.name for c in hand.collections]
    controls = arm.collections_all["Controls"]
    (controls.unassign if in_controls else controls.assign)(hand)
    remote, _ = tracker.scan([arm])  # another artist's edit, as it arrives
    u = uuid_of(arm)
    assert {f"arm/{u}/boneprop/Hand/grip", f"arm/{u}/bcoll/Controls"} <= set(remote)
    del hand["grip"]
    (controls.assign if in_controls else controls.unassign)(hand)
    tracker.scan([arm])

    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        applier = sync.apply_ops(list(remote.items()), tracker=tracker)
        assert applier.errors == []
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    hand = arm.bones["Hand"]
    assert hand.get("grip") == 0.75
    assert ("Controls" in [c.name for c in hand.collections]) != in_controls


def weights(ob: bpy.types.Object) -> dict[str, list[tuple[int, float]]]:
    names = [g.name for g in ob.vertex_groups]
    out: dict[str, list[tuple[int, float]]] = {name: [] for name in names}
    for vertex in ob.data.vertices:
        for element in vertex.groups:
            out[names[element.group]].append((vertex.index, round(element.weight, 5)))
    return out


def move_a_vertex(me: bpy.types.Mesh) -> None:
    me.vertices[3].co.y = 0.4


def add_a_vertex(me: bpy.types.Mesh) -> None:
    me.vertices.add(1)
    me.vertices[-1].co = (0.5, 0.5, 0.5)


@pytest.mark.parametrize("edit", [move_a_vertex, add_a_vertex])
def test_a_skinned_mesh_edited_elsewhere_keeps_the_receivers_weights(edit):
    # A vertex moved (the mesh's shape: it is written in place) or added in no group (its topology: the
    # mesh is rebuilt, which drops its groups in Blender) changes the geometry key only: the groups' keys
    # do not come again, so the receiver must keep the groups, or its armature deforms nothing from then on.
    build_rig()
    evaluate_scenes()
    values = sync.serialise_scene()
    tracker = sync.ChangeTracker()
    tracker.scan()
    skin = bpy.data.objects["Skin"]
    edit(skin.data)
    skin.data.update()
    evaluate_scenes()
    changed, deleted = tracker.scan([skin.data])
    m = uuid_of(skin.data)
    assert list(changed) == [f"mesh/{m}/geometry"] and deleted == []
    expected_weights = weights(skin)
    expected_locks = [g.lock_weight for g in skin.vertex_groups]
    expected_shape = [c for co in evaluated_vertices(skin) for c in co]

    receiver = replica_of(values)
    applier = sync.apply_ops(list(changed.items()), tracker=receiver)
    assert applier.errors == []
    evaluate_scenes()
    skin = bpy.data.objects["Skin"]
    assert weights(skin) == expected_weights
    assert [g.lock_weight for g in skin.vertex_groups] == expected_locks
    assert [c for co in evaluated_vertices(skin) for c in co] == pytest.approx(expected_shape, abs=1e-5)
    assert receiver.scan() == ({}, [])  # the receiver has nothing to send back


def _shape_keyed(name: str, lift: float) -> bpy.types.Object:
    """A triangle with shape keys Basis, A (its first vertex lifted) and B (its second)."""
    from scene_builders import link, triangle_mesh

    ob = link(bpy.data.objects.new(name, triangle_mesh(f"{name}Mesh")))
    ob.shape_key_add(name="Basis")
    ob.shape_key_add(name="A").data[0].co = (0.0, 0.0, lift)
    ob.shape_key_add(name="B").data[1].co = (1.0, 0.0, lift)
    return ob


@pytest.mark.parametrize("order", ["as-read", "reversed", "one-at-a-time-reversed", "face-shapes-last"])
def test_a_shape_key_driven_by_shape_keys_keeps_its_target(order):
    """A shape key driven by another of its own mesh, and one driven by another mesh's: the target is a
    ``Key``, which travels as its owner (``key_of``), whichever arrives first."""
    from replicas import applied_one_at_a_time

    reset_scene()
    face, brow = _shape_keyed("Face", 1.0), _shape_keyed("Brow", 2.0)
    face.data.shape_keys.key_blocks["A"].value = 0.6
    for owner in (face, brow):  # B of each follows Face's A
        fc = owner.data.shape_keys.key_blocks["B"].driver_add("value")
        var = fc.driver.variables.new()
        var.name, var.type = "a", "SINGLE_PROP"
        var.targets[0].id_type, var.targets[0].id = "KEY", face.data.shape_keys
        var.targets[0].data_path = 'key_blocks["A"].value'
        fc.driver.expression = "a * 0.5"
    evaluate_scenes()
    expected = {name: evaluated_vertices(bpy.data.objects[name]) for name in ("Face", "Brow")}
    assert expected["Brow"][1][2] == pytest.approx(0.6)  # 0.3 of B's lift of 2
    before = sync.scene_hash()
    values = sync.serialise_scene()
    ops = list(values.items())
    if order == "one-at-a-time-reversed":
        applier = applied_one_at_a_time(reversed(ops))
    elif order == "face-shapes-last":  # the drivers made before the shape keys they read
        shapes = f"mesh/{uuid_of(face.data)}/shapes"
        applier = applied_one_at_a_time([op for op in ops if op[0] != shapes] + [(shapes, values[shapes])])
    else:
        reset_scene()
        applier = sync.apply_ops(ops if order == "as-read" else ops[::-1])
    assert applier.errors == [] and applier.pending_links == {}
    evaluate_scenes()
    for name in ("Face", "Brow"):
        target = (
            bpy.data.objects[name].data.shape_keys.animation_data.drivers[0].driver.variables[0].targets[0]
        )
        assert target.id == bpy.data.objects["Face"].data.shape_keys
        assert evaluated_vertices(bpy.data.objects[name]) == expected[name]
    assert sync.scene_hash() == before
    assert sync.serialise_scene() == values
