"""Worlds (kind ``world``): colour, settings and the world's node tree."""

from __future__ import annotations

import bpy

from .. import rna
from ..arrays import floats
from ..assign import rename, set_changed
from ..context import ApplyContext, ReadContext
from ..node_trees import apply_node_tree, describe_node_tree, read_node_tree
from .base import Kind


def serialise(world: bpy.types.World, ctx: ReadContext) -> dict[str, object]:
    return {
        "meta": {"name": world.name, "color": floats(world.color), "props": ctx.props(world)},
        "nodes": read_node_tree(world.node_tree, ctx),
    }


def describe(world: bpy.types.World, ctx: ReadContext) -> dict:
    return {
        "name": world.name,
        "color": floats(world.color),
        "tree": describe_node_tree(world.node_tree, ctx),
    }


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return bpy.data.worlds.new(doc["name"])


def apply_meta(world: bpy.types.World, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    rename(world, doc["name"])
    set_changed(world, "color", doc["color"])
    rna.write_props(world, doc["props"], ctx.resolve)
    return world


def apply_nodes(world: bpy.types.World, doc: dict | None, ctx: ApplyContext) -> bpy.types.ID:
    apply_node_tree(world.node_tree, doc, ctx)
    return world


KIND = Kind(
    name="world",
    collection="worlds",
    rna_type="World",
    parts={"meta": apply_meta, "nodes": apply_nodes},
    create=create,
    serialise=serialise,
    describe=describe,
    embedded=("node_tree",),
)
