"""Node-specific item lists (zones, capture attribute, menu and index switch, bake, bundles, closures) travel:
the items, the sockets they make, the values and links on those sockets, in any order of arrival."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")

from node_builders import build_node_items, build_zone_and_compositor, evaluated_vertices, items_trees  # noqa: E402
from replicas import edit_batch  # noqa: E402
from scene_builders import reset_scene  # noqa: E402

from blender_addon import sync  # noqa: E402

pytestmark = pytest.mark.blender

# 3 turns of the repeat zone (up 1 + 0.5 + 0.25), the point's index up, the menu's Side (+2 in x), the
# index switch's third item (+0.3 in y).
EXPECTED = [(2.0, 0.3, 1.75), (3.0, 0.3, 2.75), (2.0, 1.3, 3.75), (3.0, 1.3, 4.75)]


def _part(key: str) -> str:
    return sync.split_key(key)[2]


def _built() -> tuple[dict, dict[str, bytes]]:
    build_node_items()
    assert evaluated_vertices("ItemsObject") == EXPECTED
    return items_trees(), sync.serialise_scene()


def test_item_lists_travel_and_evaluate_the_same():
    trees, values = _built()
    before = sync.scene_hash()
    item_keys = {key: sync.decode_value(v) for key, v in values.items() if _part(key) == "items"}
    assert {sync.split_key(key)[0] for key in item_keys} == {"ngroup", "mat", "world"}
    assert {name for doc in item_keys.values() for name in doc} >= {
        "repeat_items",
        "state_items",
        "capture_items",
        "enum_items",
        "index_switch_items",
        "bake_items",
        "input_items",
        "main_items",
        "generation_items",
        "bundle_items",
        "output_items",
        "format_items",
        "grid_items",
        "viewer_items",
        "file_output_items",
    }
    reset_scene()
    applier = sync.apply_ops(list(values.items()))
    assert applier.errors == [] and applier.pending_links == {}
    assert items_trees() == trees
    assert evaluated_vertices("ItemsObject") == EXPECTED
    assert sync.scene_hash() == before
    assert sync.serialise_scene() == values


@pytest.mark.parametrize(
    ("order", "waits_for"),
    [
        # Socket values and links naming item sockets wait for their node's items key.
        (lambda part: part == "items", "items"),
        # Items keys right after the datablocks (before their nodes) wait for the nodes.
        (lambda part: {"meta": 0, "items": 1}.get(part, 2), "node"),
    ],
    ids=["items last", "items before their nodes"],
)
def test_item_lists_applied_in_any_order(order, waits_for):
    """One op per step, in an order where the items keys and the keys naming their sockets miss each other."""
    trees, values = _built()
    ops = sorted(values.items(), key=lambda op: order(_part(op[0])))
    reset_scene()
    applier = sync.Applier()
    waited = set()
    for op in ops:
        applier.feed([op])
        applier.step()
        waited |= {token.split(":")[0].split("/")[0] for token in applier.pending_links}  # part[/item]:uuid
    assert waits_for in waited
    assert applier.errors == [] and applier.pending_links == {}
    assert items_trees() == trees
    assert evaluated_vertices("ItemsObject") == EXPECTED
    assert sync.serialise_scene() == values


ZONE_OUTPUTS = {
    "GeometryNodeRepeatOutput",
    "GeometryNodeSimulationOutput",
    "GeometryNodeForeachGeometryElementOutput",
    "NodeClosureOutput",
}


def _lone_zone_outputs() -> list[str]:
    """Zone outputs no zone input pairs with, in every tree of the scene."""
    trees = [*bpy.data.node_groups] + [
        t for t in (getattr(i, "node_tree", None) for i in (*bpy.data.materials, *bpy.data.worlds)) if t
    ]
    lone = []
    for tree in trees:
        paired = {n.paired_output.as_pointer() for n in tree.nodes if getattr(n, "paired_output", None)}
        lone += [
            f"{tree.name}/{n.name}"
            for n in tree.nodes
            if n.bl_idname in ZONE_OUTPUTS and n.as_pointer() not in paired
        ]
    return lone


def test_a_zone_output_is_never_left_without_its_input_between_steps():
    """Blender crashed evaluating a tree that held a zone's output without its input (a repeat output beside
    a simulation zone fed by a bake), which a joiner's half-applied tree did when the output's key came
    first: the output is made once its input is there. One op per step, every zone output before its
    input; the scene is evaluated after each step, as Blender does between the add-on's pumps."""
    trees, values = _built()
    nodes = {key: sync.decode_value(value) for key, value in values.items() if _part(key) == "node"}
    outputs = {key for key, doc in nodes.items() if "zone_input" in doc}
    assert len(outputs) >= 4  # repeat, simulation, for-each and closure zones
    ops = sorted(values.items(), key=lambda op: (op[0] not in outputs, op[0]))
    reset_scene()
    applier = sync.Applier()
    for op in ops:
        applier.feed([op])
        applier.step()
        assert _lone_zone_outputs() == [], op[0]
        bpy.context.view_layer.update()
    assert applier.errors == [] and applier.pending_links == {}
    assert items_trees() == trees
    assert evaluated_vertices("ItemsObject") == EXPECTED


def _replica(base: dict[str, bytes]) -> tuple[sync.ChangeTracker, sync.Applier]:
    reset_scene()
    tracker = sync.ChangeTracker()
    applier = sync.apply_ops(list(base.items()), tracker=tracker)
    assert applier.errors == [] and tracker.scan() == ({}, [])
    return tracker, applier


def _edit_items() -> None:
    """Ben's edit: a new repeat item fed back each turn, a capture item renamed, the menu's first item
    removed (the others move up a place, with their values and links), a fourth index switch item picked."""
    group = bpy.data.node_groups["Items"]
    nodes = group.nodes
    rin, rout = nodes["Repeat Input"], nodes["Repeat Output"]
    rout.repeat_items.new("FLOAT", "Spin")
    rin.inputs["Spin"].default_value = 0.125
    group.links.new(rin.outputs["Spin"], rout.inputs["Spin"])
    nodes["Capture Attribute"].capture_items["Pos"].name = "Where"
    menu = nodes["Menu Switch"]
    menu.enum_items.remove(menu.enum_items["Up"])
    menu.inputs["Still"].default_value = (0.0, 5.0, 0.0)
    pick = nodes["Index Switch"]
    pick.index_switch_items.new()
    pick.inputs[4].default_value = 0.5
    pick.inputs["Index"].default_value = 3


def test_items_added_renamed_and_removed_on_one_artist_arrive_at_the_other():
    _trees, base = _built()
    ben, _ = _replica(base)
    batch = edit_batch(ben, _edit_items)
    assert {_part(key) for key, _ in batch} <= {"items", "in", "out", "link"}
    assert sum(_part(key) == "items" for key, _ in batch) == 4  # repeat, capture, menu, index switch
    moved = [(2.0, 0.5, 1.75), (3.0, 0.5, 2.75), (2.0, 1.5, 3.75), (3.0, 1.5, 4.75)]
    assert evaluated_vertices("ItemsObject") == moved
    bens = items_trees()
    ben_hash = sync.scene_hash()

    ana, applier = _replica(base)
    nodes = {node.name: node.as_pointer() for node in bpy.data.node_groups["Items"].nodes}
    sync.apply_ops(batch, tracker=ana, applier=applier)
    assert applier.errors == [] and applier.pending_links == {}
    assert items_trees() == bens
    assert {node.name: node.as_pointer() for node in bpy.data.node_groups["Items"].nodes} == nodes  # in place
    assert evaluated_vertices("ItemsObject") == moved
    assert sync.scene_hash() == ben_hash
    assert ana.scan() == ({}, [])  # nothing echoes

    # A late joiner gets the room: the base, then Ben's batch.
    reset_scene()
    joiner = sync.Applier()
    joiner.apply(list(base.items()))
    joiner.apply(batch)
    assert joiner.errors == [] and joiner.pending_links == {}
    assert items_trees() == bens and sync.scene_hash() == ben_hash


def test_a_room_written_before_item_sockets_were_named_by_position_keeps_its_links():
    """Keys an earlier version wrote name the sockets of zone nodes by identifier (``Item_0``). A receiver
    still applies them; the first reader sends the same links under their positions and deletes the old
    keys, and that delete leaves the link in place on every other replica."""
    build_zone_and_compositor()
    group = bpy.data.node_groups["Repeat"]
    values = sync.serialise_scene()
    uuid = sync.get_uuid(group)
    zone = {
        node["blendsync_id"]: node for node in group.nodes if node.bl_idname.startswith("GeometryNodeRepeat")
    }

    def by_identifier(key: str) -> str:
        from_id, from_sock, to_id, to_sock = sync.split_key(key)[3]
        if from_id in zone:
            from_sock = zone[from_id].outputs[int(from_sock[1:])].identifier
        if to_id in zone:
            to_sock = zone[to_id].inputs[int(to_sock[1:])].identifier
        return sync.make_key("ngroup", uuid, "link", from_id, from_sock, to_id, to_sock)

    renamed = {
        key: by_identifier(key)
        for key in values
        if key.startswith(f"ngroup/{uuid}/link/") and set(sync.split_key(key)[3][0::2]) & set(zone)
    }
    assert len(renamed) == 4 and all("Item_0" in key for key in renamed.values())
    legacy = {renamed.get(key, key): value for key, value in values.items()}
    expected = evaluated_vertices("Repeated")
    links = len(group.links)

    reset_scene()
    applier = sync.apply_ops(list(legacy.items()))
    assert applier.errors == [] and applier.pending_links == {}
    assert evaluated_vertices("Repeated") == expected
    # The first reader's batch: the position keys, and the identifier keys deleted.
    upgrade = [*((key, values[key]) for key in renamed), *((old, None) for old in renamed.values())]
    sync.apply_ops(upgrade, applier=applier)
    assert len(bpy.data.node_groups["Repeat"].links) == links
    assert evaluated_vertices("Repeated") == expected
    assert sync.serialise_scene() == values
