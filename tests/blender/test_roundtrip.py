"""Each synchronised datablock kind survives serialise -> empty scene -> apply."""

from __future__ import annotations

import os
import random
from collections.abc import Callable

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from anim_builders import build_kind_animation, kind_animation_values  # noqa: E402
from replicas import applied_one_at_a_time  # noqa: E402
from scene_builders import (  # noqa: E402
    BUILDERS,
    CHANGES,
    add_driver,
    build_animated,
    build_armature,
    build_camera,
    build_collection,
    build_everything,
    build_mesh,
    build_node_group,
    build_shape_keys,
    evaluate_scenes,
    link,
    reset_scene,
    triangle_mesh,
)

from blender_addon import sync  # noqa: E402

pytestmark = pytest.mark.blender


def roundtrip(ops_order=None) -> tuple[str, dict[str, bytes], sync.Applier]:
    """Serialise the current scene, rebuild it from its keys in an empty scene; return the original hash.

    Both sides are compared as evaluated (animation written at the current frame), as an artist sees them.
    """
    evaluate_scenes()
    before = sync.scene_hash()
    values = sync.serialise_scene()
    reset_scene()
    ops = list(values.items())
    if ops_order is not None:
        ops = ops_order(ops)
    applier = sync.apply_ops(ops)
    assert applier.errors == []
    evaluate_scenes()
    return before, values, applier


@pytest.mark.parametrize("row", sorted(BUILDERS))
def test_kind_roundtrip(row):
    build, kind = BUILDERS[row]
    build()
    before, values, applier = roundtrip()
    assert any(key.startswith(kind + "/") for key in values), f"no {kind}/ key serialised"
    assert applier.pending_links == {}
    assert sync.scene_hash() == before
    # The rebuilt scene serialises to exactly the same bytes, key for key.
    assert sync.serialise_scene() == values


@pytest.mark.parametrize("row", sorted(CHANGES))
def test_kind_hash_sees_a_change(row):
    """The canonical hash reads each kind: one small edit changes it, and the keys of that kind change."""
    build, kind = BUILDERS[row]
    build()
    before = sync.scene_hash()
    values = sync.serialise_scene()
    CHANGES[row]()
    bpy.context.view_layer.update()
    assert sync.scene_hash() != before
    after = sync.serialise_scene()
    assert {k for k in values if values[k] != after.get(k)} & {k for k in values if k.startswith(kind + "/")}
    # ...and the change itself goes through a round trip.
    changed = sync.scene_hash()
    reset_scene()
    sync.apply_ops(list(after.items()))
    evaluate_scenes()  # animated and driven values written, as on the sending side
    assert sync.scene_hash() == changed


def test_changes_applied_onto_an_existing_replica():
    """Later values of the new kinds are applied in place over an older replica (no new datablocks)."""
    for build in {BUILDERS[row][0] for row in CHANGES}:
        build()
    values = sync.serialise_scene()
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    counts = {
        attr: len(getattr(bpy.data, attr))
        for attr in ("metaballs", "lattices", "lightprobes", "speakers", "sounds", "textures")
    }
    bpy.data.metaballs["Blobs"].elements[1].size_x = 0.5
    bpy.data.lattices["Cage"].points[4].co_deform = (0.1, 0.2, -0.5)
    bpy.data.lightprobes["Volume"].resolution_x = 7
    bpy.data.textures["Clouds"].noise_scale = 0.5
    edited_hash = sync.scene_hash()
    edited = sync.serialise_scene()
    assert applier.errors == []
    # Back to the old values, then the edited ones on top: only the changed keys.
    sync.apply_ops(list(values.items()), applier=applier)
    assert sync.scene_hash() != edited_hash
    sync.apply_ops([(k, v) for k, v in edited.items() if values.get(k) != v], applier=applier)
    assert applier.errors == []
    assert sync.scene_hash() == edited_hash
    assert counts == {attr: len(getattr(bpy.data, attr)) for attr in counts}


def _by_name() -> Callable[[tuple[str, bytes]], str]:
    """Sort key of an op: its key with every datablock uuid in it replaced by that datablock's name."""
    names = {uuid: f"{kind}:{id_data.name}" for uuid, (kind, id_data) in sync.index_all(assign=False).items()}
    return lambda op: "/".join(names.get(segment, segment) for segment in op[0].split("/"))


def _values_by_name(values: dict[str, bytes]) -> dict[str, bytes]:
    """``values`` (the scene's keys) as :func:`_by_name` spells them."""
    by_name = _by_name()
    return {by_name(op): op[1] for op in values.items()}


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_everything_in_any_order_with_one_op_at_a_time(seed):
    """Links that arrive before their target are remembered and resolved later."""
    build_everything()
    before = sync.scene_hash()
    scene = sync.serialise_scene()
    values = _values_by_name(scene)
    # Nearly the same order every run: uuids are random, names are not (a node's id is random too).
    ops = sorted(scene.items(), key=_by_name())
    random.Random(seed).shuffle(ops)
    applied_one_at_a_time(ops)
    evaluate_scenes()  # animation writes its values, in every scene
    after = sync.scene_hash()
    if after != before:  # which keys read otherwise, by name: a rare order can be traced
        now = _values_by_name(sync.serialise_scene())
        assert sorted(k for k in values.keys() | now.keys() if values.get(k) != now.get(k)) == []
    assert after == before


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_animation_of_every_kind_plays_the_same_after_a_round_trip_in_any_order(seed):
    """The action and NLA tracks of a curve, an armature, a speaker, a scene, a metaball, a lattice, a
    texture, particle settings, grease pencil, a light probe, a volume, a point cloud and hair curves are
    linked on the receiving side (extras.given), whatever order their keys arrive in: every animated value
    evaluates the same at every frame."""
    build_kind_animation()
    scene = bpy.context.scene
    frames = (1, 12, 30, 45)
    expected = {}
    for frame in frames:
        scene.frame_set(frame)
        expected[frame] = kind_animation_values()
    assert expected[1] != expected[30]  # every value moves: none is keyed flat
    assert all(a != b for a, b in zip(expected[1], expected[30], strict=True))
    scene.frame_set(1)
    ops = sorted(sync.serialise_scene().items(), key=_by_name())
    random.Random(seed).shuffle(ops)
    applied_one_at_a_time(ops)
    for frame in frames:
        bpy.context.window.scene.frame_set(frame)
        assert kind_animation_values() == expected[frame], f"frame {frame}"


def test_hash_detects_a_moved_vertex_and_a_rename():
    build_mesh()
    before = sync.scene_hash()
    me = bpy.data.meshes["Tri"]
    me.vertices[0].co.x += 0.001
    moved = sync.scene_hash()
    assert moved != before
    me.vertices[0].co.x -= 0.001
    assert sync.scene_hash() == before
    bpy.data.objects["Tri"].name = "Renamed"
    assert sync.scene_hash() != before


def test_hash_ignores_creation_order_and_float_noise():
    def build(order):
        reset_scene()
        for name in order:
            ob = bpy.data.objects.new(name, None)
            ob[sync.UUID_PROP] = "uuid-" + name
            ob.location = (0.1 + 1e-9, 0.2, 0.3)
            bpy.context.scene.collection.objects.link(ob)
        bpy.context.scene[sync.UUID_PROP] = "scene-uuid"
        return sync.scene_hash()

    assert build(["a", "b", "c"]) == build(["c", "a", "b"])


def test_deleting_keys_removes_datablocks():
    build_everything()
    values = sync.serialise_scene()
    doomed = [k for k in values if k.startswith(("obj/", "mesh/"))]
    sync.apply_ops([(k, None) for k in doomed])
    # Only the library's own (linked) objects and meshes are left: they go with the library.
    assert {o.library is not None for o in bpy.data.objects} == {True}
    assert {m.library is not None for m in bpy.data.meshes} == {True}
    assert len(bpy.data.materials) > 0


def test_clear_scene_then_join():
    """Joining a room with content: local data is cleared and the room's scene takes over the local one."""
    build_everything()
    before = sync.scene_hash()
    values = sync.serialise_scene()
    reset_scene()
    build_mesh()  # local work that the join replaces
    sync.scene_hash()  # gives the local scene a uuid of its own
    sync.clear_scene()
    sync.apply_ops(list(values.items()))
    assert len(bpy.data.scenes) == 2
    evaluate_scenes()  # animation writes its values, in every scene
    assert sync.scene_hash() == before


def test_clear_scene_removes_what_its_collection_cannot():
    """``bpy.data.cache_files`` has no ``remove()``: a joiner whose scene held a cache file failed to clear
    it. Each kind's own removal is used, as the applier uses it for a deleted datablock."""
    from scene_builders import build_cache_file

    build_cache_file()
    sync.scene_hash()  # gives every datablock a uuid: synchronised
    sync.clear_scene()
    assert len(bpy.data.cache_files) == 0 and len(bpy.data.objects) == 0 and len(bpy.data.meshes) == 0


def test_a_scene_made_by_the_applier_writes_its_animation():
    """The joiner's window scene is taken over by the room's scene applied first (by uuid); every other one is
    made by the applier and shown by no window. Evaluating it must still write what its animation and drivers
    compute (those values never travel): here the animated scene is the one made."""
    build_animated(count=1, rig=False)  # no rig: building a pose evaluates the scene on its own
    animated = bpy.context.scene
    cam = bpy.data.cameras.new("PropCam")
    holder = link(bpy.data.objects.new("PropCam", cam))
    holder["float"] = 0.25
    add_driver(cam, "lens", 0, "30 + f", [("f", "SINGLE_PROP", [{"id": holder, "data_path": '["float"]'}])])
    animated.frame_set(50)
    animated[sync.UUID_PROP] = "f" * 32
    bpy.data.scenes.new("Still")[sync.UUID_PROP] = "0" * 32  # applied first: takes over the window's
    before = sync.scene_hash()
    values = sync.serialise_scene()
    reset_scene()
    sync.clear_scene()
    applier = sync.apply_ops(list(values.items()))
    assert applier.errors == []
    assert bpy.context.window.scene.name == "Still"
    evaluate_scenes()
    assert bpy.data.cameras["PropCam"].lens == pytest.approx(30.25)
    assert bpy.data.objects["Anim0"].location.y > 1.0  # keyed 0 on frame 1 and 5 on frame 100
    assert sync.scene_hash() == before


def test_a_driver_whose_target_property_arrives_last_stays_on_when_the_scene_is_evaluated_between():
    """The object a camera's driver reads arrives first, then the camera and its driver, then the object's
    custom property, the scene evaluated after each (as Blender does between the add-on's pumps). The
    driver fails while the property is missing and Blender switches it off; it is switched on again when
    the property arrives, but Blender's evaluated copy of the object has the property only once the object
    is tagged: evaluated before, the driver failed again, for good, and the lens kept its undriven value."""
    reset_scene()
    cam = bpy.data.cameras.new("PropCam")
    link(bpy.data.objects.new("PropCam", cam))
    holder = link(bpy.data.objects.new("Holder", None))
    holder["float"] = 0.25
    add_driver(cam, "lens", 0, "30 + f", [("f", "SINGLE_PROP", [{"id": holder, "data_path": '["float"]'}])])
    evaluate_scenes()
    before = sync.scene_hash()
    holder_uuid = sync.get_uuid(holder)
    ops = sorted(sync.serialise_scene().items(), key=lambda op: holder_uuid not in op[0])  # the holder first
    prop = next(op for op in ops if op[0].endswith("/prop/float"))
    ops.remove(prop)
    reset_scene()
    applier = sync.Applier()
    for op in [*ops, prop]:
        applier.feed([op])
        applier.step()
        evaluate_scenes()
    assert applier.errors == [] and applier.pending_links == {}
    assert bpy.data.cameras["PropCam"].animation_data.drivers[0].driver.is_valid
    assert bpy.data.cameras["PropCam"].lens == pytest.approx(30.25)
    assert sync.scene_hash() == before


def test_values_are_msgpack_with_binary_arrays():
    build_mesh()
    values = sync.serialise_scene()
    key = next(k for k in values if k.startswith("mesh/") and k.endswith("/geometry"))
    doc = sync.decode_value(values[key])
    assert isinstance(doc["vertices"], bytes)
    mesh = next(m for m in bpy.data.meshes if sync.peek_uuid(m) == sync.parse_key(key)[1])
    assert len(doc["vertices"]) == 4 * 3 * len(mesh.vertices)
    assert list(sync.unpack_f32(doc["vertices"])[:3]) == list(mesh.vertices[0].co)
    assert sync.encode_value(doc) == values[key]
    assert sync.parse_key(key)[0] == "mesh"
    with pytest.raises(ValueError):
        sync.decode_value(sync.encode_value({1: "int keys are not allowed"}))


def _keys_of(values: dict[str, bytes], kind: str, part: str) -> list[str]:
    return [k for k in values if k.startswith(kind + "/") and k.endswith("/" + part)]


def test_shape_key_edit_changes_only_the_shapes_key():
    build_shape_keys()
    tracker = sync.ChangeTracker()
    tracker.scan()
    key = bpy.data.meshes["Face"].shape_keys
    key.key_blocks["Smile"].value = 0.5
    bpy.context.view_layer.update()
    # The depsgraph reports the Key datablock: the tracker maps it to its mesh.
    changed, deleted = tracker.scan([key])
    assert list(changed) == _keys_of(sync.serialise_scene(), "mesh", "shapes")
    assert deleted == []
    key.key_blocks["Wide"].data[1].co.y = 0.25
    changed, _ = tracker.scan()
    assert [sync.parse_key(k)[2] for k in changed] == ["shapes"]


def test_shape_keys_wait_for_the_vertices_and_can_be_removed():
    build_shape_keys()
    before = sync.scene_hash()
    values = sync.serialise_scene()
    reset_scene()
    applier = sync.Applier()
    mesh_keys = [k for k in values if k.startswith("mesh/")]
    geometry = _keys_of(values, "mesh", "geometry")[0]
    applier.apply([(k, values[k]) for k in mesh_keys if k != geometry])
    assert applier.pending_links  # the mesh has no vertices yet
    applier.apply([(geometry, values[geometry])])
    assert applier.pending_links == {}
    applier.apply([(k, v) for k, v in values.items() if not k.startswith("mesh/")])
    assert applier.errors == []
    assert sync.scene_hash() == before
    # Removing every shape key on one side removes them on the other.
    bpy.data.objects["Face"].shape_key_clear()
    cleared = sync.serialise_scene()
    assert _keys_of(cleared, "mesh", "shapes") == []  # as a new mesh: no key (deleted, it clears them)
    cleared_hash = sync.scene_hash()
    sync.apply_ops(list(values.items()), applier=applier)
    assert bpy.data.meshes["Face"].shape_keys is not None
    changes = [(k, v) for k, v in cleared.items() if values.get(k) != v]
    sync.apply_ops(changes + [(k, None) for k in values if k not in cleared], applier=applier)
    assert bpy.data.meshes["Face"].shape_keys is None
    assert sync.scene_hash() == cleared_hash


def test_node_group_edits_change_only_the_group_and_apply_in_place():
    build_node_group()
    tracker = sync.ChangeTracker()
    tracker.scan()
    values = sync.serialise_scene()
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    tracker.reset(values)
    group = bpy.data.node_groups["Tint"]
    group.nodes["Mix"].blend_type = "ADD"
    changed, deleted = tracker.scan([group])
    assert [sync.parse_key(k)[0::2] for k in changed] == [("ngroup", "node")] and deleted == []
    # A new interface socket: the group's interface changes, and the material's group node gains a socket.
    group.interface.new_socket("Gain", in_out="INPUT", socket_type="NodeSocketFloat")
    group.nodes["Group Input"].location = (-200, 0)
    edited_hash = sync.scene_hash()
    edited = sync.serialise_scene()
    sync.apply_ops(list(values.items()), applier=applier)
    assert len(bpy.data.node_groups["Tint"].interface.items_tree) == 4
    sync.apply_ops([(k, v) for k, v in edited.items() if values.get(k) != v], applier=applier)
    assert applier.errors == []
    assert len(bpy.data.node_groups) == 2
    assert sync.scene_hash() == edited_hash
    assert len(bpy.data.materials["Tinted"].node_tree.nodes["Group"].inputs) == 3


@pytest.mark.parametrize("nesting_sorts_first", [True, False])
def test_a_socket_inserted_into_a_nested_group_moves_the_values_of_group_nodes_with_it(nesting_sorts_first):
    """Group nodes name a group's sockets by position: its interface applies before any other group's
    values, whichever of the two groups' uuids sorts first."""
    from node_builders import build_geometry_nodes

    build_geometry_nodes()
    lift, deform = bpy.data.node_groups["Lift"], bpy.data.node_groups["Deform"]
    sync.ids.set_uuid(deform, ("0" if nesting_sorts_first else "f") * 32)
    sync.ids.set_uuid(lift, ("f" if nesting_sorts_first else "0") * 32)
    lift.interface.new_socket("Sway", in_out="INPUT", socket_type="NodeSocketFloat")
    deform.nodes["Group"].inputs["Sway"].default_value = 3.0
    values = sync.serialise_scene()
    spin = lift.interface.new_socket("Spin", in_out="INPUT", socket_type="NodeSocketFloat")
    lift.interface.move_to_parent(spin, spin.parent, lift.interface.items_tree["Sway"].position)
    deform.nodes["Group"].inputs["Spin"].default_value = 2.0
    edited_hash = sync.scene_hash()
    edited = sync.serialise_scene()
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    sync.apply_ops([(k, v) for k, v in edited.items() if values.get(k) != v], applier=applier)
    assert applier.errors == [] and applier.pending_links == {}
    inputs = bpy.data.node_groups["Deform"].nodes["Group"].inputs
    assert [(s.name, s.default_value) for s in inputs if s.bl_idname == "NodeSocketFloat"] == [
        ("Spin", 2.0),
        ("Sway", 3.0),
    ]
    assert sync.scene_hash() == edited_hash


def test_armature_pose_and_bone_edits():
    build_armature()
    tracker = sync.ChangeTracker()
    tracker.scan()
    rig = bpy.data.objects["Rig"]
    rig.pose.bones["Hand"].location = (0.0, 0.3, 0.0)
    changed, deleted = tracker.scan([rig])
    assert [sync.split_key(k)[2:] for k in changed] == [("pose", ("Hand",))] and deleted == []
    values = sync.serialise_scene()
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    # A bone moved and one renamed on the replica's side: applied in place, pose kept for the others.
    arm = bpy.data.armatures["Skeleton"]
    from blender_addon.sync.kinds.armatures import armature_edit_mode

    with armature_edit_mode(arm):
        arm.edit_bones["Hand"].tail = (1.5, 0.5, 1.5)
        arm.edit_bones["Root"].name = "Hips"
    edited_hash = sync.scene_hash()
    edited = sync.serialise_scene()
    sync.apply_ops(list(values.items()), applier=applier)
    assert sorted(b.name for b in bpy.data.armatures["Skeleton"].bones) == ["Hand", "Root", "Spine"]
    sync.apply_ops([(k, v) for k, v in edited.items() if values.get(k) != v], applier=applier)
    assert applier.errors == [] and applier.pending_links == {}
    assert len(bpy.data.armatures) == 1 and len(bpy.data.objects) == 2
    assert sync.scene_hash() == edited_hash


def test_font_content_and_links_apply_in_place():
    """A font whose file changes is replaced under the same uuid; text curves follow it."""
    from scene_builders import build_fonts, shipped_font

    build_fonts()
    tracker = sync.ChangeTracker()
    tracker.scan()
    bpy.data.fonts["OnDisk"].name = "Bold"
    changed, deleted = tracker.audit(1000)  # fonts are not reported by the depsgraph: the audit finds it
    assert [sync.parse_key(k)[0::2] for k in changed] == [("font", "meta")] and deleted == []
    bpy.data.curves["Text"].font_italic = bpy.data.fonts["Packed"]
    changed, _ = tracker.scan([bpy.data.curves["Text"]])
    assert [sync.split_key(k)[2:] for k in changed] == [("set", ("font_italic",))]
    bpy.data.curves["Text"].font_italic = bpy.data.fonts["Bfont Regular"]
    values = sync.serialise_scene()
    font_keys = _keys_of(values, "font", "meta")
    assert len(font_keys) == 3  # packed, read from disk, built in
    assert {sync.decode_value(values[k])["builtin"] for k in font_keys} == {True, False}
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    assert all(f.packed_file is not None for f in bpy.data.fonts if f.filepath != "<builtin>")
    # The sender swaps the packed font's file and makes the built-in font the bold one.
    old = bpy.data.fonts["Packed"]
    new = bpy.data.fonts.load(shipped_font(2), check_existing=False)
    new.pack()
    uuid = old[sync.UUID_PROP]
    old.user_remap(new)
    bpy.data.fonts.remove(old)
    new.name = "Packed"
    new[sync.UUID_PROP] = uuid
    curve = bpy.data.curves["Text"]
    curve.font_bold = curve.font_italic
    edited_hash = sync.scene_hash()
    edited = sync.serialise_scene()
    sync.apply_ops(list(values.items()), applier=applier)
    assert sync.scene_hash() != edited_hash
    sync.apply_ops([(k, v) for k, v in edited.items() if values.get(k) != v], applier=applier)
    assert applier.errors == [] and applier.pending_links == {}
    assert len(bpy.data.fonts) == 3
    assert sync.scene_hash() == edited_hash


def test_grease_pencil_edits_apply_in_place():
    """Stroke edits change only the strokes key; layer and frame changes are applied over a replica."""
    from scene_builders import build_grease_pencil

    build_grease_pencil()
    tracker = sync.ChangeTracker()
    tracker.scan()
    gp = bpy.data.grease_pencils["Sketch"]
    drawing = gp.layers["Lines"].frames[0].drawing
    drawing.attributes["position"].data[2].vector = (2.0, 2.0, 0.0)
    changed, deleted = tracker.scan([gp])
    assert [sync.parse_key(k)[0::2] for k in changed] == [("gpencil", "strokes")] and deleted == []
    values = sync.serialise_scene()
    reset_scene()
    # The strokes arrive before the layers they belong to: they wait for them.
    strokes = _keys_of(values, "gpencil", "strokes")[0]
    applier = sync.apply_ops([(strokes, values[strokes])])
    applier = sync.apply_ops([(k, v) for k, v in values.items() if k != strokes], applier=applier)
    assert applier.errors == [] and applier.pending_links == {}
    assert sync.serialise_scene() == values
    # On the other side: a new layer below the others, a frame removed, a stroke added, a layer renamed.
    gp = bpy.data.grease_pencils["Sketch"]
    gp.layers["Shading"].name = "Tone"
    extra = gp.layers.new("Extra")
    gp.layers.move_bottom(extra)
    extra.frames.new(7).drawing.add_strokes([2, 2, 1])
    gp.layers["Lines"].frames.remove(5)
    gp.layers["Lines"].frames[0].drawing.add_strokes([6])
    order = [layer.name for layer in gp.layers]
    edited_hash = sync.scene_hash()
    edited = sync.serialise_scene()
    sync.apply_ops(list(values.items()), applier=applier)
    assert [layer.name for layer in bpy.data.grease_pencils["Sketch"].layers] == ["Lines", "Eyes", "Shading"]
    sync.apply_ops([(k, v) for k, v in edited.items() if values.get(k) != v], applier=applier)
    assert applier.errors == [] and applier.pending_links == {}
    assert [layer.name for layer in bpy.data.grease_pencils["Sketch"].layers] == order
    assert len(bpy.data.grease_pencils) == 1 and len(bpy.data.objects) == 2  # and its shadow's empty
    assert sync.scene_hash() == edited_hash
    assert sync.serialise_scene() == edited


def test_movie_clip_files_travel_and_are_replaced_in_place():
    """Every frame of a clip's image sequence travels; new content replaces the clip under its uuid."""
    from scene_builders import build_movieclip, image_sequence

    build_movieclip()
    values = sync.serialise_scene()
    (meta,) = _keys_of(values, "clip", "meta")
    assert [name for name, _data in sync.decode_value(values[meta])["files"]] == [
        "shot_0001.png",
        "shot_0002.png",
        "shot_0003.png",
    ]
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    clip = bpy.data.movieclips["Plate"]
    assert bpy.context.scene.active_clip == clip
    assert bpy.path.abspath(clip.filepath) != ""
    # The sender swaps the clip for another sequence under the same uuid.
    new = bpy.data.movieclips.load(image_sequence(count=2, shade=0.5), check_existing=False)
    uuid = clip[sync.UUID_PROP]
    clip.user_remap(new)
    bpy.data.movieclips.remove(clip)
    new.name = "Plate"
    new[sync.UUID_PROP] = uuid
    edited_hash = sync.scene_hash()
    edited = sync.serialise_scene()
    sync.apply_ops(list(values.items()), applier=applier)
    assert sync.scene_hash() != edited_hash
    changed = [(k, v) for k, v in edited.items() if values.get(k) != v]
    sync.apply_ops(
        changed + [(k, None) for k in values if k not in edited], applier=applier
    )  # its tracks gone
    assert applier.errors == []
    assert len(bpy.data.movieclips) == 1 and bpy.context.scene.active_clip == bpy.data.movieclips["Plate"]
    assert sync.scene_hash() == edited_hash


def test_library_links_and_file_apply_in_place_and_delete():
    """Linking more, unlinking, a new version of the .blend; deleting the library removes what it linked."""
    from scene_builders import build_library, write_library

    build_library()
    values = sync.serialise_scene()
    (meta,) = _keys_of(values, "lib", "meta")
    doc = sync.decode_value(values[meta])
    assert doc["linked"] == [["collections", "Props"], ["objects", "Tree"]]
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    lib = bpy.data.libraries[0]
    assert lib.filepath != "" and bpy.data.collections["Props"].library == lib
    # The sender links the Rock into the scene, takes Props out of Set and updates the file.
    with bpy.data.libraries.load(lib.filepath, link=True) as (_source, target):
        target.objects = ["Rock"]
    scene = bpy.context.scene
    scene.collection.objects.link(bpy.data.objects["Rock"])
    bpy.data.collections["Set"].children.unlink(bpy.data.collections["Props"])
    lib.filepath = write_library(rock_height=1.0)
    lib.reload()
    assert bpy.data.meshes["Rock"].vertices[2].co.z == 1.0
    edited_hash = sync.scene_hash()
    edited = sync.serialise_scene()
    sync.apply_ops(list(values.items()), applier=applier)
    assert sync.scene_hash() != edited_hash
    assert bpy.data.meshes["Rock"].vertices[2].co.z == 0.5
    assert "Rock" not in scene.collection.objects
    sync.apply_ops([(k, v) for k, v in edited.items() if values.get(k) != v], applier=applier)
    assert applier.errors == []
    assert len(bpy.data.libraries) == 1
    assert bpy.data.meshes["Rock"].vertices[2].co.z == 1.0
    assert "Rock" in scene.collection.objects and "Props" not in bpy.data.collections["Set"].children
    assert sync.scene_hash() == edited_hash
    sync.apply_ops([(meta, None)], applier=applier)
    assert len(bpy.data.libraries) == 0 and "Rock" not in bpy.data.objects


def _evaluated_points(name: str, frame: int) -> list[tuple[float, ...]]:
    bpy.context.scene.frame_set(frame)
    ob = bpy.data.objects[name].evaluated_get(bpy.context.evaluated_depsgraph_get())
    return [tuple(round(c, 4) for c in ob.matrix_world @ v.co) for v in ob.data.vertices]


def test_a_cache_files_content_travels_and_the_receiver_plays_the_same_geometry():
    """The Alembic file travels (the sender's copy deleted: the receiver reads its own); a new file under
    the same uuid replaces the cache and the modifier follows it."""
    from scene_builders import alembic_file, build_cache_file

    build_cache_file()
    sent = bpy.data.cache_files["Rise"]
    expected = _evaluated_points("Cached", 5)
    assert len(expected) == 3, [p.path for p in sent.object_paths]
    assert expected[2][2] == pytest.approx(1.251, abs=1e-3)  # a third of the way up at frame 5
    values = sync.serialise_scene()
    os.remove(bpy.path.abspath(sent.filepath))
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    assert applier.errors == [] and applier.pending_links == {}
    cache = bpy.data.cache_files["Rise"]
    assert cache.scale == 2.0 and os.path.isfile(bpy.path.abspath(cache.filepath))
    assert bpy.data.objects["Cached"].modifiers["Cache"].cache_file == cache
    assert _evaluated_points("Cached", 5) == expected
    # The sender bakes again (twice as high) into a new file under the same uuid.
    uuid = cache[sync.UUID_PROP]
    path = alembic_file(height=6.0)
    before = set(bpy.data.cache_files)
    bpy.ops.cachefile.open(filepath=path)
    (new,) = set(bpy.data.cache_files) - before
    cache.user_remap(new)
    bpy.data.batch_remove([cache])
    new.name, new.scale, new[sync.UUID_PROP] = "Rise", 2.0, uuid
    higher = _evaluated_points("Cached", 5)
    assert higher[2][2] == pytest.approx(2 * expected[2][2], abs=1e-3)
    edited_hash, edited = sync.scene_hash(), sync.serialise_scene()
    sync.apply_ops(list(values.items()), applier=applier)
    assert _evaluated_points("Cached", 5) == expected
    changes = [(k, v) for k, v in edited.items() if values.get(k) != v]
    sync.apply_ops(changes + [(k, None) for k in values if k not in edited], applier=applier)  # its action
    assert applier.errors == []
    assert len(bpy.data.cache_files) == 1
    assert _evaluated_points("Cached", 5) == higher
    assert sync.scene_hash() == edited_hash


def test_a_cache_opened_with_no_scale_reaches_everyone_as_the_least_they_can_hold():
    """Blender's ``cachefile.open`` gives a new cache a scale of 0, below what its API writes (a receiver's
    write holds 0.0001): the cache is read as holding that least, so every replica and the hash agree."""
    from scene_builders import alembic_file

    from blender_addon.sync.kinds.cache_files import open_cache_file

    least = bpy.types.CacheFile.bl_rna.properties["scale"].hard_min

    assert open_cache_file(alembic_file()).scale == 0.0
    before, values = sync.scene_hash(), sync.serialise_scene()
    (meta,) = [k for k in values if k.startswith("cache/")]
    assert sync.decode_value(values[meta])["props"]["scale"] == least > 0.0
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    assert applier.errors == [] and bpy.data.cache_files[0].scale == least
    assert sync.scene_hash() == before


def test_a_modifier_naming_a_vertex_group_or_uv_map_waits_for_it():
    """Blender refuses a modifier's vertex group or UV map name while the object has none by that name: set
    before the mesh's groups and geometry arrive, the setting is applied again once they have."""
    me = triangle_mesh("Weighed")
    me.uv_layers.new(name="First")
    me.uv_layers.new(name="Second")
    ob = link(bpy.data.objects.new("Weighed", me))
    ob.vertex_groups.new(name="Top").add([3], 1.0, "REPLACE")
    ob.modifiers.new("Edit", "VERTEX_WEIGHT_EDIT").vertex_group = "Top"
    displace = ob.modifiers.new("Displace", "DISPLACE")
    displace.texture_coords = "UV"
    displace.uv_layer = "Second"
    before = sync.scene_hash()
    values = sync.serialise_scene()
    reset_scene()
    applier = sync.Applier()
    for first in (True, False):  # the objects (a stand-in mesh) first, then the rest
        applier.apply([(k, v) for k, v in values.items() if k.startswith("obj/") == first])
    assert applier.errors == [] and applier.pending_links == {}
    mods = bpy.data.objects["Weighed"].modifiers
    assert (mods["Edit"].vertex_group, mods["Displace"].uv_layer) == ("Top", "Second")
    assert sync.scene_hash() == before


def test_matrix_settings_are_not_transposed():
    """A matrix setting (a Hook modifier's inverse matrix, a Child Of constraint's) is read as rows and
    written back as the same matrix."""
    import mathutils

    ob = link(bpy.data.objects.new("Hooked", triangle_mesh("Hooked")))
    ob.modifiers.new("Hook", "HOOK").matrix_inverse = mathutils.Matrix.Translation((0.0, 0.0, -1.0))
    child = ob.constraints.new("CHILD_OF")
    child.target = link(bpy.data.objects.new("Parent", None))
    child.inverse_matrix = mathutils.Matrix.Translation((1.0, 2.0, 3.0))
    before = sync.scene_hash()
    roundtrip()
    ob = bpy.data.objects["Hooked"]
    assert tuple(ob.modifiers["Hook"].matrix_inverse.translation) == (0.0, 0.0, -1.0)
    assert tuple(ob.constraints["Child Of"].inverse_matrix.translation) == (1.0, 2.0, 3.0)
    assert sync.scene_hash() == before


def test_a_hook_keeps_its_inverse_matrix_whatever_the_order_of_its_keys():
    """Blender computes a Hook modifier's inverse matrix again when its object is set; the matrix travels on
    its own key, so the object's key arriving after it must leave it as it is."""
    ob = link(bpy.data.objects.new("Hooked", triangle_mesh("Hooked")))
    handle = link(bpy.data.objects.new("Handle", None))
    handle.location = (0.0, 0.0, 1.0)
    bpy.context.view_layer.update()
    hook = ob.modifiers.new("Hook", "HOOK")
    hook.vertex_indices_set([3])
    hook.object = handle  # the inverse of where the handle is now
    handle.location = (0.0, 0.0, 2.0)  # pulls the vertex up by 1
    bpy.context.view_layer.update()
    before = sync.scene_hash()
    values = sync.serialise_scene()
    reset_scene()
    target = next(k for k in values if k.endswith("/modset/Hook/object"))
    applier = sync.apply_ops([(k, v) for k, v in values.items() if k != target])
    bpy.context.view_layer.update()  # the handle is where it is on the sending side
    sync.apply_ops([(target, values[target])], applier=applier)
    assert applier.errors == [] and applier.pending_links == {}
    assert bpy.data.objects["Hooked"].modifiers["Hook"].matrix_inverse.translation.z == pytest.approx(-1.0)
    assert sync.scene_hash() == before


def test_a_hook_takes_the_vertices_assigned_to_it():
    """A Hook modifier's vertices assigned in edit mode (not a vertex group) are read-only in RNA and set with
    ``vertex_indices_set``; the hooked object evaluates the same on the receiving side."""
    from node_builders import evaluated_vertices

    ob = link(bpy.data.objects.new("Hooked", triangle_mesh("Hooked")))
    handle = link(bpy.data.objects.new("Handle", None))
    hook = ob.modifiers.new("Hook", "HOOK")
    hook.object = handle
    hook.vertex_indices_set([1, 3])
    handle.location = (0.0, 0.0, 1.0)  # pulls vertices 1 and 3 up
    bpy.context.view_layer.update()
    moved = evaluated_vertices("Hooked")
    assert [v[2] for v in moved] == [0.0, 1.0, 0.0, 1.5]
    before, _values, _applier = roundtrip()
    assert list(bpy.data.objects["Hooked"].modifiers["Hook"].vertex_indices) == [1, 3]
    assert evaluated_vertices("Hooked") == moved
    assert sync.scene_hash() == before


def test_a_modifier_naming_a_removed_vertex_group_or_uv_map_is_read_as_naming_none():
    """Blender keeps a modifier's vertex group or UV map name when the group or map is removed, and refuses
    that name on an object without one: the receiver waited for a group that never came, and its modifier
    named none while the sender's named the removed one."""
    me = triangle_mesh("Weighed")
    me.uv_layers.new(name="Gone")
    ob = link(bpy.data.objects.new("Weighed", me))
    ob.vertex_groups.new(name="Top").add([3], 1.0, "REPLACE")
    ob.modifiers.new("Edit", "VERTEX_WEIGHT_EDIT").vertex_group = "Top"
    displace = ob.modifiers.new("Displace", "DISPLACE")
    displace.texture_coords = "UV"
    displace.uv_layer = "Gone"
    ob.vertex_groups.remove(ob.vertex_groups["Top"])
    me.uv_layers.remove(me.uv_layers["Gone"])
    assert (ob.modifiers["Edit"].vertex_group, displace.uv_layer) == ("Top", "Gone")
    before, _values, applier = roundtrip()
    assert applier.pending_links == {}
    assert sync.scene_hash() == before


def test_a_collections_line_art_settings_travel():
    """Which collections Line Art draws, their intersection masks and priorities (build_collection)."""
    build_collection()
    roundtrip()
    inner, shared = bpy.data.collections["Inner"], bpy.data.collections["Shared"]
    assert inner.lineart_usage == "EXCLUDE" and shared.lineart_usage == "INCLUDE"
    assert shared.lineart_use_intersection_mask and list(shared.lineart_intersection_mask)[:3] == [
        False,
        False,
        True,
    ]
    assert shared.use_lineart_intersection_priority and shared.lineart_intersection_priority == 40


def test_a_cameras_background_images_are_rewritten_in_place_when_one_goes_and_another_changes():
    reset_scene()
    build_camera()
    base = sync.serialise_scene()
    tracker = sync.ChangeTracker()
    tracker.scan()
    cam = bpy.data.cameras["Cam"]
    cam.background_images.remove(cam.background_images[1])
    cam.background_images[0].alpha = 0.9
    cam.background_images[0].image_user.frame_offset = 5
    changed, deleted = tracker.scan([cam])
    assert [sync.parse_key(k)[0::2] for k in changed] == [("cam", "bg")] and deleted == []
    edited_hash = sync.scene_hash()
    reset_scene()
    sync.apply_ops(list(base.items()))
    applier = sync.apply_ops(list(changed.items()))
    assert applier.errors == []
    backgrounds = bpy.data.cameras["Cam"].background_images
    assert len(backgrounds) == 1 and backgrounds[0].image == bpy.data.images["Plate"]
    assert backgrounds[0].alpha == pytest.approx(0.9) and backgrounds[0].image_user.frame_offset == 5
    assert sync.scene_hash() == edited_hash


def test_a_library_past_the_old_48_mib_bound_travels():
    """A linked .blend of ~54 MB (random vertex positions, written uncompressed) travels in chunks, as images
    and caches of up to 512 MiB do; its linked collection is instanced on the receiver with every vertex."""
    import tempfile

    import numpy as np

    from blender_addon.sync import file_sets

    reset_scene()
    count = 4_500_000
    me = bpy.data.meshes.new("Cloud")
    me.vertices.add(count)
    me.vertices.foreach_set("co", np.random.default_rng(7).random(3 * count, dtype=np.float32))
    heavy = bpy.data.collections.new("Heavy")
    heavy.objects.link(bpy.data.objects.new("Cloud", me))
    path = os.path.join(tempfile.mkdtemp(prefix="lib-"), "heavy.blend")
    bpy.data.libraries.write(path, {heavy}, fake_user=True, compress=False)
    bpy.data.batch_remove([heavy, me, bpy.data.objects["Cloud"]])
    assert 48 * 1024 * 1024 < os.path.getsize(path) <= file_sets.MAX_BYTES
    with bpy.data.libraries.load(path, link=True) as (_source, target):
        target.collections = ["Heavy"]
    link(bpy.data.objects.new("Placed", None)).instance_type = "COLLECTION"
    bpy.data.objects["Placed"].instance_collection = bpy.data.collections["Heavy"]
    before, values, _applier = roundtrip()
    (meta,) = _keys_of(values, "lib", "meta")
    assert len(values[meta]) < 64 * 1024  # the file's bytes are chunks the value names
    assert bpy.data.objects["Placed"].instance_collection.library is not None
    assert len(bpy.data.collections["Heavy"].objects["Cloud"].data.vertices) == count
    assert sync.scene_hash() == before
