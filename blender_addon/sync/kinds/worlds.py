"""Worlds (kind ``world``): name, colour and settings (a key each), the node tree (a key per item)."""

from __future__ import annotations

import bpy

from .. import animation
from ..arrays import floats
from ..context import ApplyContext, ReadContext
from ..node_trees import describe_node_tree, read_tree, tree_parts
from ..settings import apply_name, setting_items, settings_part
from .base import Kind


def serialise(world: bpy.types.World, ctx: ReadContext) -> dict[str, object]:
    return {
        "meta": {},
        "name": world.name,
        "set": setting_items({"color": floats(world.color), **ctx.props(world)}),
        "anim": animation.read(world, ctx),
        **read_tree(world.node_tree, ctx),
    }


def describe(world: bpy.types.World, ctx: ReadContext) -> dict:
    return {
        "name": world.name,
        "color": floats(world.color),
        "tree": describe_node_tree(world.node_tree, ctx),
        "anim": animation.describe(world, ctx),
    }


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    world = bpy.data.worlds.new(ctx.new_name(uuid))
    if world.node_tree is not None:  # the tree's nodes arrive as keys
        world.node_tree.nodes.clear()
    return world


def apply_meta(world: bpy.types.World, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return world


KIND = Kind(
    name="world",
    collection="worlds",
    rna_type="World",
    parts={
        "meta": apply_meta,
        "name": apply_name,
        "set": settings_part(),
        "anim": animation.apply_part,
        **tree_parts(lambda w: w.node_tree),
    },
    create=create,
    serialise=serialise,
    describe=describe,
    embedded=("node_tree",),
)
