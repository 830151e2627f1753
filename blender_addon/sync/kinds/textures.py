"""Legacy textures (kind ``tex``): type, name and settings (a key each; an image texture's image user and
the colour ramp too, structs.py), and the texture's node tree (node_trees.py)."""

from __future__ import annotations

import bpy

from .. import ids, structs
from ..context import ApplyContext, ReadContext
from ..items import Items
from ..node_trees import describe_node_tree, read_tree, tree_parts
from ..settings import apply_name, setting_items, settings_part
from .base import Kind

TEXTURE_SKIP = ("type", "node_tree")


def _settings(tex: bpy.types.Texture, ctx: ReadContext) -> dict[str, object]:
    # use_nodes is left out of every other datablock's settings (materials and worlds always use theirs)
    return {**ctx.props(tex, skip=TEXTURE_SKIP), "use_nodes": tex.use_nodes}


def serialise(tex: bpy.types.Texture, ctx: ReadContext) -> dict[str, object]:
    parts: dict[str, object] = {
        "meta": {"type": tex.type, "node_tree": tex.node_tree is not None},
        "name": tex.name,
        "set": setting_items({**_settings(tex, ctx), **structs.read(tex, ctx)}),
    }
    tree = read_tree(tex.node_tree, ctx)
    del tree["items"]  # texture nodes have no item lists (tree_parts below)
    parts.update(tree)
    return parts


def describe(tex: bpy.types.Texture, ctx: ReadContext) -> dict:
    return {
        "name": tex.name,
        "type": tex.type,
        "props": _settings(tex, ctx),
        "structs": structs.read(tex, None),
        "tree": describe_node_tree(tex.node_tree, ctx),
    }


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return bpy.data.textures.new(ctx.new_name(uuid), type=doc["type"])


def _use_nodes(tex: bpy.types.Texture, use: bool) -> bpy.types.Texture:
    """Set ``use_nodes`` without its side effects: Blender then makes the texture's type ``NONE`` (the type
    travels in the meta) and, when there is no tree, one with default nodes (the nodes travel as keys)."""
    kind, had_tree = tex.type, tex.node_tree is not None
    tex.use_nodes = use
    if not had_tree and tex.node_tree is not None:
        tex.node_tree.nodes.clear()
    return ids.retyped(tex, kind, bpy.data.textures)


def apply_meta(tex: bpy.types.Texture, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    if doc.get("node_tree") and tex.node_tree is None:
        # Blender's API makes a texture's node tree only by turning use_nodes on.
        use = tex.use_nodes
        tex = _use_nodes(_use_nodes(tex, True), use)
    return ids.retyped(tex, doc["type"], bpy.data.textures)


_SETTINGS = settings_part()


def apply_setting(tex: bpy.types.Texture, item: tuple[str, ...], doc: object, ctx: ApplyContext):
    if item == ("use_nodes",) and isinstance(doc, bool):
        return _use_nodes(tex, doc) if tex.use_nodes != doc else tex
    if item == ("color_ramp",) and doc is not None and tex.color_ramp is None:
        use = tex.use_color_ramp  # Blender's API makes the ramp only by turning it on (a setting of its own)
        tex.use_color_ramp = True
        tex.use_color_ramp = use
    return _SETTINGS.apply(tex, item, doc, ctx)


KIND = Kind(
    name="tex",
    collection="textures",
    rna_type="Texture",
    parts={
        "meta": apply_meta,
        "name": apply_name,
        "set": Items(apply_setting),
        **tree_parts(lambda tex: tex.node_tree, items=False),  # texture nodes have no item lists
    },
    create=create,
    serialise=serialise,
    describe=describe,
    embedded=("node_tree",),
)
