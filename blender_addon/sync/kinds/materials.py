"""Materials (kind ``mat``): settings, grease pencil style, and the material's node tree."""

from __future__ import annotations

import bpy

from .. import rna
from ..assign import rename
from ..context import ApplyContext, ReadContext
from ..node_trees import apply_node_tree, describe_node_tree, read_node_tree
from .base import Kind

MATERIAL_SKIP = ("node_tree", "grease_pencil", "paint_active_slot", "line_priority")


def serialise(mat: bpy.types.Material, ctx: ReadContext) -> dict[str, object]:
    meta: dict[str, object] = {"name": mat.name, "props": ctx.props(mat, skip=MATERIAL_SKIP)}
    if mat.is_grease_pencil:  # grease pencil materials carry their stroke and fill style
        meta["grease_pencil"] = ctx.props(mat.grease_pencil)
    return {"meta": meta, "nodes": read_node_tree(mat.node_tree, ctx)}


def describe(mat: bpy.types.Material, ctx: ReadContext) -> dict:
    return {
        "name": mat.name,
        "props": ctx.props(mat, skip=MATERIAL_SKIP),
        "tree": describe_node_tree(mat.node_tree, ctx),
        "grease_pencil": ctx.props(mat.grease_pencil) if mat.is_grease_pencil else None,
    }


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return bpy.data.materials.new(doc["name"])


def apply_meta(mat: bpy.types.Material, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    rename(mat, doc["name"])
    rna.write_props(mat, doc["props"], ctx.resolve)
    style = doc.get("grease_pencil")
    if style is not None:
        if not mat.is_grease_pencil:
            bpy.data.materials.create_gpencil_data(mat)
        rna.write_props(mat.grease_pencil, style, ctx.resolve)
    return mat


def apply_nodes(mat: bpy.types.Material, doc: dict | None, ctx: ApplyContext) -> bpy.types.ID:
    apply_node_tree(mat.node_tree, doc, ctx)
    return mat


KIND = Kind(
    name="mat",
    collection="materials",
    rna_type="Material",
    parts={"meta": apply_meta, "nodes": apply_nodes},
    create=create,
    serialise=serialise,
    describe=describe,
    embedded=("node_tree",),
)
