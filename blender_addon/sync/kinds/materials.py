"""Materials (kind ``mat``): name, settings (a key each), grease pencil style, and the node tree."""

from __future__ import annotations

import bpy

from .. import animation, extras, rna
from ..assign import rename
from ..context import ApplyContext, ReadContext
from ..node_trees import describe_node_tree, read_tree, tree_parts
from .base import Items, Kind

MATERIAL_SKIP = ("node_tree", "grease_pencil", "paint_active_slot", "line_priority")


def serialise(mat: bpy.types.Material, ctx: ReadContext) -> dict[str, object]:
    parts: dict[str, object] = {
        "meta": {},
        "name": mat.name,
        "set": {(prop,): value for prop, value in ctx.props(mat, skip=MATERIAL_SKIP).items()},
        # grease pencil materials carry their stroke and fill style
        "gpstyle": ctx.props(mat.grease_pencil) if mat.is_grease_pencil else None,
        "anim": animation.read(mat, ctx),
    }
    parts.update(read_tree(mat.node_tree, ctx))
    parts.update(extras.read(mat, ctx))
    return parts


def describe(mat: bpy.types.Material, ctx: ReadContext) -> dict:
    return {
        "name": mat.name,
        "props": ctx.props(mat, skip=MATERIAL_SKIP),
        "tree": describe_node_tree(mat.node_tree, ctx),
        "grease_pencil": ctx.props(mat.grease_pencil) if mat.is_grease_pencil else None,
        "anim": animation.describe(mat, ctx),
        **extras.describe(mat),
    }


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    # The name is a key of its own; the default nodes go: the tree's nodes arrive as keys.
    mat = bpy.data.materials.new(ctx.new_name(uuid))
    if mat.node_tree is not None:
        mat.node_tree.nodes.clear()
    return mat


def apply_meta(mat: bpy.types.Material, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return mat


def apply_name(mat: bpy.types.Material, doc: str, ctx: ApplyContext) -> bpy.types.ID:
    rename(mat, doc)
    return mat


def apply_setting(mat: bpy.types.Material, item: tuple[str, ...], doc: object, ctx: ApplyContext):
    if doc is not None:  # a setting's key goes away only with its material
        rna.write_props(mat, {item[0]: doc}, ctx.resolve)
    return mat


def apply_gpstyle(mat: bpy.types.Material, doc: dict | None, ctx: ApplyContext) -> bpy.types.ID:
    if doc is not None:
        if not mat.is_grease_pencil:
            bpy.data.materials.create_gpencil_data(mat)
        rna.write_props(mat.grease_pencil, doc, ctx.resolve)
    return mat


KIND = Kind(
    name="mat",
    collection="materials",
    rna_type="Material",
    parts={
        "meta": apply_meta,
        "name": apply_name,
        "set": Items(apply_setting),
        "gpstyle": apply_gpstyle,
        "anim": animation.apply_part,
        **tree_parts(lambda mat: mat.node_tree),
        **extras.PARTS,
    },
    create=create,
    serialise=serialise,
    describe=describe,
    embedded=("node_tree",),
)
