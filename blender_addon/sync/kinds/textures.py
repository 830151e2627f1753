"""Legacy textures (kind ``tex``): type, name and settings (a key each; an image texture's image user too)."""

from __future__ import annotations

import bpy

from .. import ids, structs
from ..context import ApplyContext, ReadContext
from ..settings import apply_name, placeholder_name, setting_items, settings_part
from .base import Kind

TEXTURE_SKIP = ("type", "use_nodes", "node_tree")


def serialise(tex: bpy.types.Texture, ctx: ReadContext) -> dict[str, object]:
    return {
        "meta": {"type": tex.type},
        "name": tex.name,
        "set": setting_items({**ctx.props(tex, skip=TEXTURE_SKIP), **structs.read(tex, ctx)}),
    }


def describe(tex: bpy.types.Texture, ctx: ReadContext) -> dict:
    return {
        "name": tex.name,
        "type": tex.type,
        "props": ctx.props(tex, skip=TEXTURE_SKIP),
        "structs": structs.read(tex, None),
    }


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return bpy.data.textures.new(placeholder_name(uuid), type=doc["type"])


def apply_meta(tex: bpy.types.Texture, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return ids.retyped(tex, doc["type"], bpy.data.textures)


KIND = Kind(
    name="tex",
    collection="textures",
    rna_type="Texture",
    parts={"meta": apply_meta, "name": apply_name, "set": settings_part()},
    create=create,
    serialise=serialise,
    describe=describe,
)
