"""Speakers (kind ``speaker``): settings, their sound as a link."""

from __future__ import annotations

import bpy

from .. import rna
from ..assign import rename
from ..context import ApplyContext, ReadContext
from .base import Kind


def serialise(speaker: bpy.types.Speaker, ctx: ReadContext) -> dict[str, object]:
    return {"meta": {"name": speaker.name, "props": ctx.props(speaker)}}


def describe(speaker: bpy.types.Speaker, ctx: ReadContext) -> dict:
    return {"name": speaker.name, "props": ctx.props(speaker)}


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return bpy.data.speakers.new(doc["name"])


def stub(name: str, object_type: str) -> bpy.types.ID:
    return bpy.data.speakers.new(name)


def apply_meta(speaker: bpy.types.Speaker, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    rename(speaker, doc["name"])
    rna.write_props(speaker, doc["props"], ctx.resolve)
    return speaker


KIND = Kind(
    name="speaker",
    collection="speakers",
    rna_type="Speaker",
    parts={"meta": apply_meta},
    create=create,
    serialise=serialise,
    describe=describe,
    stub=stub,
    object_types=("SPEAKER",),
)
