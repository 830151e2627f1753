"""Worlds (kind ``world``): colour, settings and the world's node tree (one key per node, socket and link)."""

from __future__ import annotations

import bpy

from .. import rna
from ..arrays import floats
from ..assign import rename, set_changed
from ..context import ApplyContext, ReadContext
from ..node_trees import describe_node_tree, read_tree, tree_parts
from .base import Kind


def serialise(world: bpy.types.World, ctx: ReadContext) -> dict[str, object]:
    return {
        "meta": {"name": world.name, "color": floats(world.color), "props": ctx.props(world)},
        **read_tree(world.node_tree, ctx),
    }


def describe(world: bpy.types.World, ctx: ReadContext) -> dict:
    return {
        "name": world.name,
        "color": floats(world.color),
        "tree": describe_node_tree(world.node_tree, ctx),
    }


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    world = bpy.data.worlds.new(doc["name"])
    if world.node_tree is not None:  # the tree's nodes arrive as keys
        world.node_tree.nodes.clear()
    return world


def apply_meta(world: bpy.types.World, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    rename(world, doc["name"])
    set_changed(world, "color", doc["color"])
    rna.write_props(world, doc["props"], ctx.resolve)
    return world


KIND = Kind(
    name="world",
    collection="worlds",
    rna_type="World",
    parts={"meta": apply_meta, **tree_parts(lambda world: world.node_tree)},
    create=create,
    serialise=serialise,
    describe=describe,
    embedded=("node_tree",),
)
