"""Lights (kind ``light``): type, name and settings (one key each)."""

from __future__ import annotations

import bpy

from .. import animation, extras, ids
from ..context import ApplyContext, ReadContext
from ..settings import apply_name, setting_items, settings_part
from .base import Kind


def serialise(light: bpy.types.Light, ctx: ReadContext) -> dict[str, object]:
    return {
        "meta": {"type": light.type},
        "name": light.name,
        "set": setting_items(ctx.props(light, skip=("type",))),
        "anim": animation.read(light, ctx),
        **extras.read(light, ctx),
    }


def describe(light: bpy.types.Light, ctx: ReadContext) -> dict:
    return {
        "name": light.name,
        "type": light.type,
        "props": ctx.props(light),
        "anim": animation.describe(light, ctx),
        **extras.describe(light),
    }


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return bpy.data.lights.new(ctx.new_name(uuid), type=doc["type"])


def stub(name: str, object_type: str) -> bpy.types.ID:
    return bpy.data.lights.new(name, type="POINT")


def apply_meta(light: bpy.types.Light, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return ids.retyped(light, doc["type"], bpy.data.lights)


KIND = Kind(
    name="light",
    collection="lights",
    rna_type="Light",
    parts={
        "meta": apply_meta,
        "name": apply_name,
        "set": settings_part(),
        "anim": animation.apply_part,
        **extras.PARTS,
    },
    create=create,
    serialise=serialise,
    describe=describe,
    stub=stub,
    object_types=("LIGHT",),
)
