"""Texts (kind ``text``): name and content."""

from __future__ import annotations

import bpy

from ..assign import rename
from ..context import ApplyContext, ReadContext
from .base import Kind


def serialise(text: bpy.types.Text, ctx: ReadContext) -> dict[str, object]:
    return {"meta": {"name": text.name}, "body": {"content": text.as_string()}}


def describe(text: bpy.types.Text, ctx: ReadContext) -> dict:
    return {"name": text.name, "content": text.as_string()}


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return bpy.data.texts.new(doc["name"])


def apply_meta(text: bpy.types.Text, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    rename(text, doc["name"])
    return text


def apply_body(text: bpy.types.Text, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    if text.as_string() != doc["content"]:
        text.from_string(doc["content"])
    return text


KIND = Kind(
    name="text",
    collection="texts",
    rna_type="Text",
    parts={"meta": apply_meta, "body": apply_body},
    create=create,
    serialise=serialise,
    describe=describe,
)
