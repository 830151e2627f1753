"""Legacy textures (kind ``tex``): type and settings."""

from __future__ import annotations

import bpy

from .. import rna
from ..assign import rename
from ..context import ApplyContext, ReadContext
from .base import Kind

TEXTURE_SKIP = ("type", "use_nodes", "node_tree")


def serialise(tex: bpy.types.Texture, ctx: ReadContext) -> dict[str, object]:
    return {"meta": {"name": tex.name, "type": tex.type, "props": ctx.props(tex, skip=TEXTURE_SKIP)}}


def describe(tex: bpy.types.Texture, ctx: ReadContext) -> dict:
    return {"name": tex.name, "type": tex.type, "props": ctx.props(tex, skip=TEXTURE_SKIP)}


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return bpy.data.textures.new(doc["name"], type=doc["type"])


def apply_meta(tex: bpy.types.Texture, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    rename(tex, doc["name"])
    if tex.type != doc["type"]:
        tex.type = doc["type"]
        tex = bpy.data.textures[doc["name"]]  # the struct changed class; fetch it again
    rna.write_props(tex, doc["props"], ctx.resolve)
    return tex


KIND = Kind(
    name="tex",
    collection="textures",
    rna_type="Texture",
    parts={"meta": apply_meta},
    create=create,
    serialise=serialise,
    describe=describe,
)
