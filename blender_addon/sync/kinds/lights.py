"""Lights (kind ``light``): type and settings."""

from __future__ import annotations

import bpy

from .. import rna
from ..assign import rename
from ..context import ApplyContext, ReadContext
from .base import Kind


def serialise(light: bpy.types.Light, ctx: ReadContext) -> dict[str, object]:
    return {"meta": {"name": light.name, "type": light.type, "props": ctx.props(light, skip=("type",))}}


def describe(light: bpy.types.Light, ctx: ReadContext) -> dict:
    return {"name": light.name, "type": light.type, "props": ctx.props(light)}


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return bpy.data.lights.new(doc["name"], type=doc["type"])


def stub(name: str, object_type: str) -> bpy.types.ID:
    return bpy.data.lights.new(name, type="POINT")


def apply_meta(light: bpy.types.Light, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    rename(light, doc["name"])
    if light.type != doc["type"]:
        light.type = doc["type"]
        light = bpy.data.lights[doc["name"]]  # the struct changed class; fetch it again
    rna.write_props(light, doc["props"], ctx.resolve)
    return light


KIND = Kind(
    name="light",
    collection="lights",
    rna_type="Light",
    parts={"meta": apply_meta},
    create=create,
    serialise=serialise,
    describe=describe,
    stub=stub,
    object_types=("LIGHT",),
)
