"""A grease pencil's layer groups (kinds/grease_pencils.py): the groups' settings and the layer tree travel
in its ``meta`` key; the layers keep their frames when they move between groups."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from replicas import applied_one_at_a_time, edit_batch, replica  # noqa: E402
from scene_builders import build_grease_pencil, reset_scene  # noqa: E402

from blender_addon import sync  # noqa: E402
from blender_addon.sync.kinds.grease_pencils import layer_tree  # noqa: E402

pytestmark = pytest.mark.blender

BUILT = [["Figure", ["Lines", ["Details", ["Eyes"]]]], "Shading"]


def sketch() -> bpy.types.GreasePencil:
    return bpy.data.grease_pencils["Sketch"]


def frames(gp: bpy.types.GreasePencil) -> dict[str, list[tuple[int, int]]]:
    """Layer name -> (frame number, stroke count) of each frame."""
    return {
        layer.name: [(f.frame_number, len(f.drawing.strokes)) for f in layer.frames] for layer in gp.layers
    }


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
        assert sync.scene_hash() == before


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
