"""The unit of conflict is the property: two edits of one datablock made at the same moment both survive.

"The same moment" is forced at the key level: both artists start from the same
room state, each makes an edit and serialises it (the batch it sends) before
either has seen the other's. The server orders A's batch first, so:

- A applies B's whole batch after its own (A's ack comes first);
- B ignores A's values for the keys B has an unacknowledged edit of
  (docs/protocol.md §3), and applies the rest of A's batch;
- a late joiner applies the room: the base, then A's batch, then B's.

Each replica is rebuilt in this one Blender process in turn, and each must
hold both edits (not only agree). The same pairs run through real processes
and a real server in test_concurrent_artists.py.
"""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from node_builders import (  # noqa: E402
    build_geometry_nodes,
    build_node_items,
    build_zone_and_compositor,
    evaluated_vertices,
)
from replicas import applied_one_at_a_time, concurrently, edit_batch, replica  # noqa: E402
from scene_builders import link, reset_scene, triangle_mesh  # noqa: E402

from blender_addon import sync  # noqa: E402

pytestmark = pytest.mark.blender


# ---------------------------------------------------------------- scenes


def pillar_scene() -> None:
    """``Pillar`` (a mesh with a material) in collection ``Set``; collection ``Props``; empty ``Base``."""
    scene = bpy.context.scene
    for name in ("Set", "Props"):
        scene.collection.children.link(bpy.data.collections.new(name))
    mat = bpy.data.materials.new("Stone")
    me = triangle_mesh("PillarMesh")
    me.materials.append(mat)
    link(bpy.data.objects.new("Pillar", me), bpy.data.collections["Set"])
    link(bpy.data.objects.new("Base", None))
    link(bpy.data.objects.new("Lamp", None), bpy.data.collections["Props"])


def pillar() -> bpy.types.Object:
    return next(ob for ob in bpy.data.objects if ob.type == "MESH")


def bsdf() -> bpy.types.Node:
    return bpy.data.materials["Stone"].node_tree.nodes["Principled BSDF"]


def member_names(coll: str) -> set[str]:
    return {ob.name for ob in bpy.data.collections[coll].objects}


# ---------------------------------------------------------------- pairs


def test_location_and_scale():
    def check():
        assert tuple(pillar().location) == (7.0, 0.0, 0.0) and tuple(pillar().scale) == (2.0, 2.0, 2.0)

    concurrently(
        pillar_scene,
        lambda: setattr(pillar().location, "x", 7.0),
        lambda: setattr(pillar(), "scale", (2.0, 2.0, 2.0)),
        check,
    )


def test_move_to_collection_and_rename():
    def move():
        bpy.data.collections["Props"].objects.link(pillar())
        bpy.data.collections["Set"].objects.unlink(pillar())

    def check():
        assert pillar().name == "Column"
        assert "Column" in member_names("Props") and "Column" not in member_names("Set")

    concurrently(pillar_scene, move, lambda: setattr(pillar(), "name", "Column"), check)


def test_base_colour_and_roughness_of_one_material():
    def check():
        assert tuple(bsdf().inputs["Base Color"].default_value) == (1.0, 0.0, 0.0, 1.0)
        assert bsdf().inputs["Roughness"].default_value == pytest.approx(0.9)

    concurrently(
        pillar_scene,
        lambda: setattr(bsdf().inputs["Base Color"], "default_value", (1.0, 0.0, 0.0, 1.0)),
        lambda: setattr(bsdf().inputs["Roughness"], "default_value", 0.9),
        check,
    )


def test_rename_and_reparent():
    def check():
        assert pillar().name == "Column" and pillar().parent == bpy.data.objects["Base"]

    concurrently(
        pillar_scene,
        lambda: setattr(pillar(), "name", "Column"),
        lambda: setattr(pillar(), "parent", bpy.data.objects["Base"]),
        check,
    )


def test_add_modifier_and_move():
    def check():
        assert [m.type for m in pillar().modifiers] == ["SUBSURF"] and pillar().modifiers[0].levels == 3
        assert tuple(pillar().location) == (0.0, 4.0, 0.0)

    concurrently(
        pillar_scene,
        lambda: setattr(pillar().modifiers.new("Smooth", "SUBSURF"), "levels", 3),
        lambda: setattr(pillar().location, "y", 4.0),
        check,
    )


def test_two_settings_of_one_modifier_and_two_modifiers_added():
    def build():
        pillar_scene()
        pillar().modifiers.new("Smooth", "SUBSURF")

    def edit_a():
        pillar().modifiers["Smooth"].levels = 3
        pillar().modifiers.new("Bend", "SIMPLE_DEFORM")

    def edit_b():
        pillar().modifiers["Smooth"].render_levels = 4
        pillar().modifiers.new("Arr", "ARRAY")

    def check():
        mods = pillar().modifiers
        assert (mods["Smooth"].levels, mods["Smooth"].render_levels) == (3, 4)
        assert sorted(m.name for m in mods) == ["Arr", "Bend", "Smooth"] and mods[0].name == "Smooth"

    concurrently(build, edit_a, edit_b, check)


def test_link_and_unlink_of_different_collection_members():
    def check():
        assert member_names("Props") == {"Pillar"}

    concurrently(
        pillar_scene,
        lambda: bpy.data.collections["Props"].objects.link(pillar()),
        lambda: bpy.data.collections["Props"].objects.unlink(bpy.data.objects["Lamp"]),
        check,
    )


def test_link_and_unlink_of_different_child_collections():
    def build():
        pillar_scene()
        bpy.data.collections["Set"].children.link(bpy.data.collections.new("Old"))
        bpy.context.scene.collection.children.link(bpy.data.collections.new("New"))

    def check():
        assert {c.name for c in bpy.data.collections["Set"].children} == {"New"}

    concurrently(
        build,
        lambda: bpy.data.collections["Set"].children.link(bpy.data.collections["New"]),
        lambda: bpy.data.collections["Set"].children.unlink(bpy.data.collections["Old"]),
        check,
    )


def test_two_artists_add_nodes_and_links_to_one_tree():
    """Both add a Math node (the same name), and each links theirs: both nodes and links stay."""

    def add_math(value: float):
        def edit():
            tree = bpy.data.materials["Stone"].node_tree
            node = tree.nodes.new("ShaderNodeMath")
            node.inputs[1].default_value = value
            tree.links.new(node.outputs[0], bsdf().inputs["Metallic" if value < 0.5 else "Alpha"])

        return edit

    def check():
        tree = bpy.data.materials["Stone"].node_tree
        maths = sorted(
            (n.name, n.inputs[1].default_value, n.outputs[0].links[0].to_socket.name)
            for n in tree.nodes
            if n.bl_idname == "ShaderNodeMath"
        )
        assert [(v, to) for _, v, to in maths] in (
            [(0.25, "Metallic"), (0.75, "Alpha")],
            [(0.75, "Alpha"), (0.25, "Metallic")],
        )
        assert {name for name, _, _ in maths} == {"Math", "Math.001"}

    concurrently(pillar_scene, add_math(0.25), add_math(0.75), check)


def test_node_setting_and_geometry_nodes_modifier_input():
    def check():
        group = bpy.data.node_groups["Deform"]
        assert group.nodes["Combine XYZ"].inputs["X"].default_value == 2.0
        assert evaluated_vertices("Deformed")[0] == (2.0, 0.0, 3.0)

    def set_height():
        mod = bpy.data.objects["Deformed"].modifiers["Deform"]
        mod[bpy.data.node_groups["Deform"].interface.items_tree["Height"].identifier] = 3.0
        bpy.data.objects["Deformed"].update_tag()

    concurrently(
        build_geometry_nodes,
        lambda: setattr(
            bpy.data.node_groups["Deform"].nodes["Combine XYZ"].inputs["X"], "default_value", 2.0
        ),
        set_height,
        check,
    )


# ---------------------------------------------------------------- geometry nodes travel


def test_geometry_nodes_evaluate_the_same_on_the_receiver():
    """Set Position with an offset input, a nested group and a modifier input value: same evaluated mesh."""
    build_geometry_nodes()
    expected = evaluated_vertices("Deformed")
    assert expected[0] == (0.5, 0.0, 1.5)  # the modifier's Height (1.5), not the group's default (0.25)
    before = sync.scene_hash()
    values = sync.serialise_scene()
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    assert applier.errors == [] and applier.pending_links == {}
    assert evaluated_vertices("Deformed") == expected
    assert sync.scene_hash() == before
    # Keys arriving in the worst order (every link before the nodes, the modifier before its group) too.
    applied_one_at_a_time(
        sorted(values.items(), key=lambda op: sync.split_key(op[0])[2] != "meta", reverse=True)
    )
    assert evaluated_vertices("Deformed") == expected


def test_node_rename_keeps_its_keys_and_a_socket_that_cannot_exist_is_reported():
    build_geometry_nodes()
    tracker = sync.ChangeTracker()
    tracker.scan()
    bpy.data.node_groups["Lift"].nodes["Set Position"].name = "Raise"
    changed, deleted = tracker.scan()
    assert [sync.split_key(k)[2] for k in changed] == ["node"] and deleted == []
    values = sync.serialise_scene()
    group_uuid = sync.get_uuid(bpy.data.node_groups["Lift"])
    node_id = bpy.data.node_groups["Lift"].nodes["Raise"]["blendsync_id"]
    bogus = sync.make_key("ngroup", group_uuid, "in", node_id, "No/Such%Socket")
    assert sync.split_key(bogus)[3] == (node_id, "No/Such%Socket")
    reset_scene()
    applier = sync.apply_ops([*values.items(), (bogus, sync.encode_value(1.0))])
    assert [key for key, _ in applier.errors] == [bogus]
    assert "No/Such%Socket" in applier.errors[0][1]


def test_key_segments_are_escaped():
    key = sync.make_key("obj", "u" * 32, "modset", "a/b%2Fc", "levels")
    assert key == "obj/" + "u" * 32 + "/modset/a%2Fb%252Fc/levels"
    assert sync.split_key(key) == ("obj", "u" * 32, "modset", ("a/b%2Fc", "levels"))
    assert sync.split_key("obj/" + "u" * 32 + "/modset/only-one") is None  # an item of the wrong depth
    assert sync.split_key("obj/" + "u" * 32 + "/location/extra") is None  # a whole part has no item


def test_keyframes_on_different_channels_of_one_action():
    def build():
        ob = link(bpy.data.objects.new("Animated", None))
        ob.keyframe_insert("location", index=0, frame=1)

    def key_location():
        ob = bpy.data.objects["Animated"]
        ob.location.x = 5.0
        ob.keyframe_insert("location", index=0, frame=10)

    def key_scale():
        ob = bpy.data.objects["Animated"]
        ob.scale.z = 3.0
        ob.keyframe_insert("scale", index=2, frame=20)

    def check():
        action = bpy.data.objects["Animated"].animation_data.action
        bag = action.layers[0].strips[0].channelbags[0]
        curves = {
            (fc.data_path, fc.array_index): [tuple(k.co) for k in fc.keyframe_points] for fc in bag.fcurves
        }
        assert curves == {("location", 0): [(1.0, 0.0), (10.0, 5.0)], ("scale", 2): [(20.0, 3.0)]}

    concurrently(build, key_location, key_scale, check)


def test_repeat_zone_and_compositor_group_travel():
    """Zone nodes are paired on the receiver (a node waiting for another node of its tree)."""
    build_zone_and_compositor()
    expected = evaluated_vertices("Repeated")
    assert expected[0] == (0.0, 0.0, 3.0)
    before = sync.scene_hash()
    values = sync.serialise_scene()
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    assert applier.errors == [] and applier.pending_links == {}
    assert evaluated_vertices("Repeated") == expected
    assert bpy.data.node_groups["Comp"].bl_idname == "CompositorNodeTree"
    assert sync.scene_hash() == before and sync.serialise_scene() == values


def test_an_item_added_to_a_node_and_a_setting_of_the_node():
    """Ana adds a capture item (and gives its socket a value), Ben changes the capture's domain: a node's
    item lists are a key of their own."""

    def capture() -> bpy.types.Node:
        return bpy.data.node_groups["Items"].nodes["Capture Attribute"]

    def add_item():
        capture().capture_items.new("FLOAT", "Extra")
        capture().inputs["Extra"].default_value = 0.5

    def set_domain():
        capture().domain = "FACE"

    def check():
        assert [item.name for item in capture().capture_items] == ["Pos", "Idx", "Extra"]
        assert capture().inputs["Extra"].default_value == 0.5
        assert capture().domain == "FACE"

    concurrently(build_node_items, add_item, set_domain, check)


def test_two_settings_of_one_light_and_a_scene_and_a_rename():
    def build():
        light = bpy.data.lights.new("Key", "SPOT")
        link(bpy.data.objects.new("KeyLight", light))

    def edit_a():
        bpy.data.lights["Key"].energy = 500.0
        bpy.context.scene.frame_end = 120

    def edit_b():
        bpy.data.lights["Key"].color = (1.0, 0.5, 0.0)
        bpy.data.lights["Key"].name = "Rim"
        bpy.context.scene.render.fps = 30

    def check():
        light = bpy.data.lights["Rim"]
        assert (light.energy, tuple(light.color), light.type) == (500.0, (1.0, 0.5, 0.0), "SPOT")
        assert (bpy.context.scene.frame_end, bpy.context.scene.render.fps) == (120, 30)

    concurrently(build, edit_a, edit_b, check)


@pytest.mark.parametrize(
    "edit",
    [
        lambda: setattr(pillar(), "display_type", "WIRE"),
        lambda: setattr(bpy.context.scene.render, "fps", 12),
        lambda: setattr(bpy.context.scene.render, "resolution_percentage", 50),
        lambda: setattr(bpy.context.scene, "frame_step", 2),
        lambda: setattr(bpy.data.collections["Set"], "color_tag", "COLOR_02"),
        lambda: setattr(pillar().modifiers.new("Smooth", "SUBSURF"), "show_render", False),
    ],
    ids=["display-type", "fps", "resolution", "frame-step", "colour-tag", "modifier"],
)
def test_the_scene_hash_sees_what_the_keys_carry(edit):
    pillar_scene()
    before = sync.scene_hash()
    values = sync.serialise_scene()
    edit()
    bpy.context.view_layer.update()
    assert sync.serialise_scene() != values
    assert sync.scene_hash() != before


def test_moving_a_node_and_changing_its_setting():
    def build():
        pillar_scene()
        bpy.data.materials["Stone"].node_tree.nodes.new("ShaderNodeMath").name = "Math"

    def check():
        node = bpy.data.materials["Stone"].node_tree.nodes["Math"]
        assert (tuple(node.location), node.operation) == ((300.0, -200.0), "MULTIPLY")

    concurrently(
        build,
        lambda: setattr(bpy.data.materials["Stone"].node_tree.nodes["Math"], "location", (300.0, -200.0)),
        lambda: setattr(bpy.data.materials["Stone"].node_tree.nodes["Math"], "operation", "MULTIPLY"),
        check,
    )


def test_two_bones_of_one_rig_posed_at_once():
    def build():
        from scene_builders import build_armature

        build_armature()

    def check():
        bones = bpy.data.objects["Rig"].pose.bones
        assert tuple(bones["Hand"].location) == (0.0, 0.5, 0.0)
        assert tuple(bones["Root"].scale) == (2.0, 2.0, 2.0)

    concurrently(
        build,
        lambda: setattr(bpy.data.objects["Rig"].pose.bones["Hand"], "location", (0.0, 0.5, 0.0)),
        lambda: setattr(bpy.data.objects["Rig"].pose.bones["Root"], "scale", (2.0, 2.0, 2.0)),
        check,
    )


def test_an_object_converted_to_another_type_is_replaced_on_the_receiver_with_its_settings_and_users():
    # Blender converts a curve object to a mesh in place (same object, new type), but its API cannot change
    # an object's type: the receiver puts a mesh object in its place and applies the object's keys to it.
    reset_scene()
    cu = bpy.data.curves.new("PathData", "CURVE")
    points = cu.splines.new("POLY").points
    points.add(2)
    points.foreach_set("co", [0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 2.0, 1.0, 0.0, 1.0])
    cu.bevel_depth = 0.1
    path = link(bpy.data.objects.new("Path", cu))
    path.location = (1.0, 2.0, 3.0)
    path["take"] = 4
    path.constraints.new("LIMIT_ROTATION")
    path.hide_render = True
    child = link(bpy.data.objects.new("Marker", None))
    child.parent = path
    shelf = bpy.data.collections.new("Shelf")
    bpy.context.scene.collection.children.link(shelf)
    shelf.objects.link(path)
    bpy.context.view_layer.update()
    tracker = sync.ChangeTracker()
    tracker.scan()
    base = dict(tracker.values)

    def convert() -> None:
        bpy.context.view_layer.objects.active = path
        path.select_set(True)
        bpy.ops.object.convert(target="MESH")

    batch = edit_batch(tracker, convert)
    converted, faces = sync.scene_hash(), len(path.data.polygons)
    assert faces > 0
    receiver = replica(base)
    applier = sync.apply_ops(batch, tracker=receiver)
    assert applier.errors == []
    path = bpy.data.objects["Path"]
    assert path.type == "MESH" and len(path.data.polygons) == faces
    assert tuple(path.location) == (1.0, 2.0, 3.0) and path["take"] == 4
    assert [c.type for c in path.constraints] == ["LIMIT_ROTATION"] and path.hide_render
    assert bpy.data.objects["Marker"].parent == path
    assert path.name in bpy.data.collections["Shelf"].objects
    assert sync.scene_hash() == converted
    assert receiver.scan() == ({}, [])  # what it applied is what the room holds

    # A value whose type its data cannot have is refused, not replaced again and again.
    meta = f"obj/{sync.peek_uuid(path)}/meta"
    doc = sync.decode_value(receiver.values[meta])
    doc.update(type="CURVE", data="0" * 32)
    applier = sync.apply_ops([(meta, sync.encode_value(doc))], tracker=receiver)
    assert [key for key, _ in applier.errors] == [meta]
    assert bpy.data.objects["Path"].type == "MESH"
