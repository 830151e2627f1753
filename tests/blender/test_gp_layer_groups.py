"""A grease pencil's layer groups and masks (gp_layers.py): the groups' settings, the layer tree and each
layer's masks travel in its ``meta`` key; the layers keep their frames when they move between groups."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from replicas import applied_one_at_a_time, edit_batch, replica  # noqa: E402
from scene_builders import build_grease_pencil, reset_scene  # noqa: E402

from blender_addon import sync  # noqa: E402
from blender_addon.sync.gp_layers import layer_tree  # noqa: E402

pytestmark = pytest.mark.blender

BUILT = [["Figure", ["Lines", ["Details", ["Eyes"]]]], "Shading"]


def sketch() -> bpy.types.GreasePencil:
    return bpy.data.grease_pencils["Sketch"]


def frames(gp: bpy.types.GreasePencil) -> dict[str, list[tuple[int, int]]]:
    """Layer name -> (frame number, stroke count) of each frame."""
    return {
        layer.name: [(f.frame_number, len(f.drawing.strokes)) for f in layer.frames] for layer in gp.layers
    }


def layer_masks(gp: bpy.types.GreasePencil) -> dict[str, list[tuple[str, bool, bool]]]:
    return {layer.name: [(m.name, m.invert, m.hide) for m in layer.mask_layers] for layer in gp.layers}


MASKS = {"Lines": [], "Eyes": [], "Shading": [("Eyes", True, False), ("Lines", False, False)]}


def test_layer_groups_reach_a_joiner_in_any_arrival_order():
    reset_scene()
    build_grease_pencil()
    assert layer_tree(sketch()) == BUILT
    made = frames(sketch())
    before = sync.scene_hash()
    ops = list(sync.serialise_scene().items())
    for order in (ops, ops[::-1]):
        applied_one_at_a_time(order)
        gp = sketch()
        assert layer_tree(gp) == BUILT
        details = gp.layer_groups["Details"]
        assert details.hide and not details.use_onion_skinning
        assert details.parent_group == gp.layer_groups["Figure"]
        assert gp.layer_groups["Figure"].color_tag == "COLOR3"
        assert gp.layers["Eyes"].opacity == 0.5
        assert frames(gp) == made
        assert layer_masks(gp) == MASKS and gp.layers["Shading"].use_masks
        assert sync.scene_hash() == before


def test_masks_changed_reordered_and_removed_travel_and_the_artists_active_layer_stays():
    reset_scene()
    build_grease_pencil()
    base = sync.serialise_scene()
    tracker = replica(base)

    def edit() -> None:
        gp, owner = sketch(), bpy.data.objects["Sketch"]
        shading, lines = gp.layers["Shading"], gp.layers["Lines"]
        shading.mask_layers["Lines"].hide = True
        gp.layers.active = lines
        with bpy.context.temp_override(object=owner, active_object=owner):
            bpy.ops.grease_pencil.layer_mask_add(name="Shading")  # a new mask on another layer
        gp.layers.active = shading
        shading.mask_layers.active_mask_index = 0
        with bpy.context.temp_override(object=owner, active_object=owner):
            bpy.ops.grease_pencil.layer_mask_remove()  # Eyes

    batch = edit_batch(tracker, edit)
    assert [key for key, _ in batch] == [sync.make_key("gpencil", sync.get_uuid(sketch()), "meta")]
    after, wanted = sync.scene_hash(), layer_masks(sketch())
    assert wanted["Shading"] == [("Lines", False, True)] and wanted["Lines"] == [("Shading", False, False)]
    receiver = replica(base)
    gp = sketch()
    gp.layers.active = gp.layers["Eyes"]  # this artist's own
    assert sync.apply_ops(batch, tracker=receiver).errors == []
    assert layer_masks(gp) == wanted and gp.layers.active.name == "Eyes"
    assert sync.scene_hash() == after
    assert receiver.scan() == ({}, [])


def test_layers_moved_between_groups_a_group_removed_and_nodes_reordered_travel_in_the_data_keys_alone():
    """The tree in ``meta``; ``strokes`` lists the layers' frames in the layers' order, so it follows."""
    reset_scene()
    build_grease_pencil()
    base = sync.serialise_scene()
    tracker = replica(base)

    def edit() -> None:
        gp = sketch()
        layers, groups = gp.layers, gp.layer_groups
        groups.remove(groups["Figure"], keep_children=True)  # Lines and Details go to the root
        tone = groups.new("Tone")
        tone.lock = True
        layers.move_to_layer_group(layers["Shading"], tone)
        layers.move_to_layer_group(layers["Lines"], groups["Details"])
        layers.move_bottom(layers["Lines"])  # below Eyes, in Details
        groups.move_top(groups["Details"])

    batch = edit_batch(tracker, edit)
    uuid = sync.get_uuid(sketch())
    assert sorted(key for key, _ in batch) == [sync.make_key("gpencil", uuid, p) for p in ("meta", "strokes")]
    after_tree = layer_tree(sketch())
    assert after_tree == [["Tone", ["Shading"]], ["Details", ["Lines", "Eyes"]]]
    made = frames(sketch())
    after = sync.scene_hash()
    receiver = replica(base)
    applier = sync.apply_ops(batch, tracker=receiver)
    assert applier.errors == []
    gp = sketch()
    assert layer_tree(gp) == after_tree
    assert "Figure" not in gp.layer_groups and gp.layer_groups["Tone"].lock
    assert frames(gp) == made  # the layers kept their frames and strokes
    assert sync.scene_hash() == after
    assert receiver.scan() == ({}, [])  # applying it echoes nothing


def test_a_group_and_a_layer_trading_a_name_and_groups_dropped_by_a_flat_value():
    """A group's name taken by a layer in the same value (the group goes first); then a value without
    groups (from an add-on that keyed none) leaves the layers flat, in its order, their frames kept."""
    reset_scene()
    build_grease_pencil()
    base = sync.serialise_scene()
    tracker = replica(base)

    def edit() -> None:
        gp = sketch()
        gp.layer_groups.remove(gp.layer_groups["Details"], keep_children=True)
        gp.layers["Eyes"].name = "Details"

    batch = edit_batch(tracker, edit)
    traded = layer_tree(sketch())
    assert traded == [["Figure", ["Lines", "Details"]], "Shading"]
    receiver = replica(base)
    assert sync.apply_ops(batch, tracker=receiver).errors == []
    assert layer_tree(sketch()) == traded
    assert receiver.scan() == ({}, [])

    ((key, value),) = [op for op in batch if op[0].endswith("/meta")]
    doc = sync.decode_value(value)
    flat = {k: v for k, v in doc.items() if k not in ("groups", "tree")}
    flat["layers"] = [flat["layers"][i] for i in (2, 0, 1)]  # Shading, Lines, Details
    assert sync.apply_ops([(key, sync.encode_value(flat))], tracker=receiver).errors == []
    gp = sketch()
    assert len(gp.layer_groups) == 0
    assert layer_tree(gp) == ["Shading", "Lines", "Details"]
    assert [f[0][0] for f in (frames(gp)["Lines"], frames(gp)["Details"])] == [1, 3]


def test_masks_naming_no_layer_or_of_the_wrong_shape_stop_nothing_else():
    """A mask naming a layer that is not here (or the layer itself, or with NUL) is left out; masks that are
    not a list of [name, invert, hide] refuse the value (listed), and the rest of the batch applies."""
    reset_scene()
    build_grease_pencil()
    base = sync.serialise_scene()
    receiver = replica(base)
    (key,) = [k for k in base if k.startswith("gpencil/") and k.endswith("/meta")]
    doc = sync.decode_value(base[key])
    shading = next(d for d in doc["layers"] if d["name"] == "Shading")
    shading["masks"] = [["Nowhere\x00", True, False], ["Shading", False, False], ["Lines", 1, 0]]
    other = sync.make_key("obj", sync.get_uuid(bpy.data.objects["Sketch"]), "location")
    ops = [(key, sync.encode_value(doc)), (other, sync.encode_value([0.0, 9.0, 0.0]))]
    assert sync.apply_ops(ops, tracker=receiver).errors == []
    assert layer_masks(sketch())["Shading"] == [("Lines", True, False)]
    shading["masks"] = "Lines"
    applier = sync.apply_ops([(key, sync.encode_value(doc)), (other, sync.encode_value([1.0, 2.0, 3.0]))])
    assert [k for k, _ in applier.errors] == [key]
    assert tuple(bpy.data.objects["Sketch"].location) == (1.0, 2.0, 3.0)
