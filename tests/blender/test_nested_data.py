"""Data held inside other datablocks travels between artists: made by one, edited by another, equal on all.

Ana builds the scene in her Blender and sends it (the room's base). Ben joins (applies the base), edits, and
sends the batch his scan finds. Ana applies Ben's batch in her own Blender (her scene as she built it: saved
after sending and opened again) and a late joiner applies the room. Every one of them evaluates the same
scene (hash and what the depsgraph makes of it), and applying Ben's batch echoes nothing back.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from detail_builders import (  # noqa: E402
    build_curve_mappings,
    build_image_users,
    build_lattice_curve_shapes,
    build_text_boxes,
    build_texture_nodes,
    shape_key_geometry,
    text_boxes,
    texture_samples,
)
from node_builders import evaluated_vertices  # noqa: E402
from replicas import edit_batch, replica  # noqa: E402
from scene_builders import evaluate_scenes, reset_scene  # noqa: E402

from blender_addon import sync  # noqa: E402

pytestmark = pytest.mark.blender


def _settle(tracker: sync.ChangeTracker) -> None:
    """Evaluate as an artist's Blender does, and check that nothing is left to send."""
    evaluate_scenes()
    bpy.context.view_layer.update()
    assert tracker.scan() == ({}, [])


def across_artists(build: Callable[[], None], edit: Callable[[], None], observe: Callable[[], object]):
    """Ana builds, Ben edits; returns (what Ben's batch holds, what every artist observes: the same)."""
    reset_scene()
    build()
    evaluate_scenes()
    base = sync.serialise_scene()
    fd, path = tempfile.mkstemp(suffix=".blend")
    os.close(fd)
    try:
        bpy.ops.wm.save_as_mainfile(filepath=path, copy=True)
        # Ben joins the room and edits.
        ben = replica(base)
        _settle(ben)
        batch = edit_batch(ben, edit)
        evaluate_scenes()
        seen = {"ben": (sync.scene_hash(), observe())}
        # Ana, in the scene she built, applies Ben's batch.
        bpy.ops.wm.open_mainfile(filepath=path)
        ana = sync.ChangeTracker()
        ana.reset(base)
        assert ana.scan() == ({}, [])
        applier = sync.apply_ops(batch, tracker=ana)
        assert applier.errors == [] and applier.pending_links == {}
        _settle(ana)
        seen["ana"] = (sync.scene_hash(), observe())
    finally:
        os.remove(path)
    # A late joiner applies the room: the base, then Ben's batch.
    reset_scene()
    applier = sync.Applier()
    for ops in (list(base.items()), batch):
        applier.apply(ops)
    assert applier.errors == [] and applier.pending_links == {}
    evaluate_scenes()
    seen["late"] = (sync.scene_hash(), observe())
    assert seen["ana"] == seen["ben"] == seen["late"]
    return dict(batch), seen["ben"][1]


def _parts(batch: dict[str, bytes | None]) -> set[tuple[str, str]]:
    return {sync.parse_key(key)[0::2] for key in batch}


# ---------------------------------------------------------------- shape keys


def _shape_keys_observed() -> tuple:
    keys = (bpy.data.lattices["Squeeze"].shape_keys, bpy.data.curves["Ribbon"].shape_keys)
    return (
        shape_key_geometry(),
        [[(kb.name, round(kb.value, 4)) for kb in key.key_blocks] for key in keys],
        [
            (len(ad.drivers), len(ad.nla_tracks), ad.action.name if ad.action else None)
            for ad in (key.animation_data for key in keys)
        ],
    )


def test_shape_keys_of_a_lattice_and_a_curve():
    """Ben sets a lattice's and a curve's shape key value, moves a point of each, and adds a shape key to the
    lattice (its key blocks are made again on the others' side: the Key's action, NLA track and driver
    stay)."""
    reset_scene()
    build_lattice_curve_shapes()
    evaluate_scenes()
    still = shape_key_geometry()

    def edit():
        lattice = bpy.data.objects["Squeeze"]
        lattice.data.shape_keys.key_blocks["Squash"].value = 1.0
        bulge = lattice.shape_key_add(name="Bulge", from_mix=False)
        bulge.data[2].co = (-1.0, 1.0, -1.0)
        bulge.value = 0.5
        curl = bpy.data.curves["Ribbon"].shape_keys.key_blocks["Curl"]
        curl.value = 1.0
        curl.data[0].handle_left = (-1.0, -1.0, 0.5)
        curl.data[4].co.z = 1.5

    batch, observed = across_artists(build_lattice_curve_shapes, edit, _shape_keys_observed)
    assert _parts(batch) == {("lattice", "shapes"), ("curve", "shapes")}
    geometry, blocks, animation = observed
    assert geometry != still  # the values and points moved what the depsgraph makes
    assert blocks[0][-1] == ("Bulge", 0.5) and ("Curl", 1.0) in blocks[1]
    assert [(drivers, tracks) for drivers, tracks, _action in animation] == [(1, 1), (1, 1)]
    assert animation[0][2] is not None  # the lattice's keys keep their action


# ---------------------------------------------------------------- curve mapping widgets


def _mappings() -> list:
    """Every curve mapping of build_curve_mappings: owner, settings, points (rounded)."""
    holders = [
        *((n.name, n.mapping) for n in bpy.data.node_groups["Lift"].nodes if n.bl_idname.endswith("Curve")),
        *((n.name, n.mapping) for n in bpy.data.materials["Graded"].node_tree.nodes if hasattr(n, "mapping")),
        *((n.name, n.mapping) for n in bpy.data.node_groups["Grade"].nodes),
        *(
            (m.name, getattr(m, "falloff_curve", None) or m.map_curve)
            for m in bpy.data.objects["Hooked"].modifiers
        ),
    ]
    return sorted(
        (
            name,
            [round(mapping.clip_max_y, 4), mapping.use_clip, mapping.extend, mapping.tone],
            [round(c, 4) for c in (*mapping.black_level, *mapping.white_level)],
            [
                [(*(round(c, 4) for c in p.location), p.handle_type) for p in curve.points]
                for curve in mapping.curves
            ],
        )
        for name, mapping in holders
    )


def _curve_mappings_observed() -> tuple:
    return evaluated_vertices("Lifted"), evaluated_vertices("Hooked"), _mappings()


def test_curve_mapping_widgets_of_nodes_and_modifiers():
    """Ben reshapes a Float Curve node (a point moved, one added) that lifts a grid, removes a point of an RGB
    Curves node and changes its levels and clipping, moves a Hook falloff curve's point and changes its
    handle, extends a Warp's and a Vertex Weight Edit's curves and edits a compositor's Hue Correct."""
    reset_scene()
    build_curve_mappings()
    still = _curve_mappings_observed()

    def edit():
        lift = bpy.data.node_groups["Lift"].nodes["Float Curve"].mapping
        lift.curves[0].points[1].location = (0.5, 1.5)
        lift.curves[0].points.new(0.8, 0.9)
        lift.update()
        rgb = bpy.data.materials["Graded"].node_tree.nodes["RGB Curves"].mapping
        rgb.curves[3].points.remove(rgb.curves[3].points[1])
        rgb.black_level = (0.0, 0.0, 0.2)
        rgb.use_clip = True
        rgb.clip_max_y = 1.0
        rgb.update()
        hook = bpy.data.objects["Hooked"].modifiers["Hook"].falloff_curve
        hook.curves[0].points[1].location = (0.5, 0.75)
        hook.curves[0].points[1].handle_type = "VECTOR"
        hook.update()
        warp = bpy.data.objects["Hooked"].modifiers["Warp"].falloff_curve
        warp.extend = "EXTRAPOLATED"
        warp.curves[0].points.new(0.6, 0.4)
        warp.update()
        weights = bpy.data.objects["Hooked"].modifiers["Weights"].map_curve
        weights.curves[0].points.new(0.2, 0.6)
        weights.update()
        hue = bpy.data.node_groups["Grade"].nodes["Hue Correct"].mapping
        hue.curves[1].points[1].location = (0.5, 0.2)
        hue.update()
        for id_data in (bpy.data.node_groups["Lift"], bpy.data.objects["Hooked"]):
            id_data.update_tag()  # as the widget does after an edit

    batch, observed = across_artists(build_curve_mappings, edit, _curve_mappings_observed)
    parts = {(part, *sync.split_key(key)[3][1:]) for key in batch for part in [sync.parse_key(key)[2]]}
    # One key per node holding a widget, one setting key per modifier curve: nothing else.
    assert parts == {("node",), ("modset", "falloff_curve"), ("modset", "map_curve")}
    assert len(batch) == 6
    assert observed[0] != still[0] and observed[1] != still[1]  # the curves shape what is evaluated
    assert observed[2] != still[2]


# ---------------------------------------------------------------- text boxes


def _boxes_observed() -> tuple:
    curve = bpy.data.curves["Columns"]
    boxes = [[round(getattr(b, a), 4) for a in ("x", "y", "width", "height")] for b in curve.text_boxes]
    return boxes, evaluated_vertices("Columns")


def test_text_boxes_added_moved_and_removed():
    """Ben adds a fourth text box and moves and resizes another; then removes two: the text flows through the
    same boxes everywhere."""
    reset_scene()
    build_text_boxes()
    still = _boxes_observed()

    def more():
        ob = bpy.data.objects["Columns"]
        text_boxes(ob, 4)
        ob.data.text_boxes[3].x = 20.0
        ob.data.text_boxes[1].width = 2.5
        ob.data.text_boxes[1].y = 1.0

    batch, observed = across_artists(build_text_boxes, more, _boxes_observed)
    assert [sync.parse_key(key)[2] for key in batch] == ["boxes"]
    assert len(observed[0]) == 4 and observed[0][3][0] == 20.0
    assert observed[1] != still[1]  # the text is laid out in the new boxes

    batch, observed = across_artists(
        build_text_boxes, lambda: text_boxes(bpy.data.objects["Columns"], 1), _boxes_observed
    )
    assert [sync.parse_key(key)[2] for key in batch] == ["boxes"]
    assert observed[0] == still[0][:1]


# ---------------------------------------------------------------- image user settings


def _image_users() -> list:
    nodes = bpy.data.materials["Flicker"].node_tree.nodes
    users = [nodes["Image Texture"].image_user, nodes["Environment Texture"].image_user]
    users.append(bpy.data.textures["Flipbook"].image_user)
    attrs = ("frame_duration", "frame_start", "frame_offset", "use_auto_refresh", "use_cyclic")
    return [[getattr(user, attr) for attr in attrs] for user in users]


def test_image_user_settings_of_nodes_and_textures():
    """Ben changes the frames an image node, an environment node and an image texture take from a sequence."""
    reset_scene()
    build_image_users()
    still = _image_users()

    def edit():
        nodes = bpy.data.materials["Flicker"].node_tree.nodes
        user = nodes["Image Texture"].image_user
        user.frame_duration, user.frame_start, user.frame_offset = 2, 1, 0
        user.use_cyclic = False
        nodes["Environment Texture"].image_user.use_auto_refresh = True
        bpy.data.textures["Flipbook"].image_user.frame_offset = 4

    batch, observed = across_artists(build_image_users, edit, _image_users)
    assert sorted(sync.split_key(key)[2:] for key in batch)[-1] == ("set", ("image_user",))
    assert {sync.parse_key(key)[2] for key in batch} == {"node", "set"} and len(batch) == 3
    assert observed == [[2, 1, 0, True, False], [2, 1, -1, True, False], [3, 1, 4, False, True]]
    assert observed != still


# ---------------------------------------------------------------- a legacy texture's colour ramp and nodes


def test_texture_colour_ramp_and_node_tree():
    """Ben moves, adds and recolours stops of a clouds texture's colour ramp and blends its interpolation;
    in a node texture he changes the checker's colour, reshapes its curves and puts a mix node before the
    output: the textures evaluate the same everywhere."""
    reset_scene()
    build_texture_nodes()
    still = texture_samples()

    def edit():
        ramp = bpy.data.textures["Banded"].color_ramp
        ramp.interpolation = "LINEAR"
        ramp.elements[1].position = 0.6
        ramp.elements.new(0.9).color = (0.0, 0.0, 1.0, 1.0)
        tree = bpy.data.textures["Patterned"].node_tree
        tree.nodes["Checker"].inputs["Color1"].default_value = (0.2, 0.4, 0.6, 1.0)
        mapping = tree.nodes["RGB Curves"].mapping
        mapping.curves[3].points[1].location = (0.5, 0.8)
        mapping.update()
        mix = tree.nodes.new("TextureNodeMixRGB")
        mix.blend_type = "MULTIPLY"
        tree.links.new(tree.nodes["Color Ramp"].outputs[0], mix.inputs["Color1"])
        tree.links.new(mix.outputs[0], tree.nodes["Output"].inputs[0])
        tree.update_tag()

    batch, observed = across_artists(build_texture_nodes, edit, texture_samples)
    parts = {sync.split_key(key)[2:4] for key in batch}
    assert ("set", ("color_ramp",)) in parts and {part for part, _ in parts} >= {"node", "in", "link"}
    assert observed[0] != still[0] and observed[1] != still[1]
