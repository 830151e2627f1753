"""Speakers (kind ``speaker``): name and settings (a key each), their sound as a link."""

from __future__ import annotations

import bpy

from ..context import ApplyContext, ReadContext
from ..settings import apply_name, setting_items, settings_part
from .base import Kind


def serialise(speaker: bpy.types.Speaker, ctx: ReadContext) -> dict[str, object]:
    return {"meta": {}, "name": speaker.name, "set": setting_items(ctx.props(speaker))}


def describe(speaker: bpy.types.Speaker, ctx: ReadContext) -> dict:
    return {"name": speaker.name, "props": ctx.props(speaker)}


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return bpy.data.speakers.new(ctx.new_name(uuid))


def stub(name: str, object_type: str) -> bpy.types.ID:
    return bpy.data.speakers.new(name)


def apply_meta(speaker: bpy.types.Speaker, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return speaker


KIND = Kind(
    name="speaker",
    collection="speakers",
    rna_type="Speaker",
    parts={"meta": apply_meta, "name": apply_name, "set": settings_part()},
    create=create,
    serialise=serialise,
    describe=describe,
    stub=stub,
    object_types=("SPEAKER",),
)
