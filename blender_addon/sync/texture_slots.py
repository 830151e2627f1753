"""Texture slots of the datablocks that keep a fixed array of them (line styles, particle settings).

``texslot/<index>``: one filled slot's settings (its texture as a uuid). The array's length is Blender's
(18 for both); an empty slot has no key, and a deleted key empties the slot.
"""

from __future__ import annotations

import bpy

from . import rna
from .context import ApplyContext, ReadContext
from .items import Items

PART = "texslot"
SLOT_SKIP = ("output_node",)  # a texture node tree's output to use: its enum is the texture's own nodes


def read_slot(slot: bpy.types.bpy_struct, ctx: ReadContext) -> dict[str, object]:
    return ctx.props(slot, skip=SLOT_SKIP)


def read(id_data: bpy.types.ID, ctx: ReadContext) -> dict[tuple[str, ...], object]:
    """Every filled slot's settings, keyed by its index."""
    return {
        (str(i),): read_slot(slot, ctx) for i, slot in enumerate(id_data.texture_slots) if slot is not None
    }


def describe(id_data: bpy.types.ID, ctx: ReadContext) -> list:
    return [[i, read_slot(slot, ctx)] for i, slot in enumerate(id_data.texture_slots) if slot is not None]


def apply_slot(
    id_data: bpy.types.ID, item: tuple[str, ...], doc: dict | None, ctx: ApplyContext
) -> bpy.types.ID:
    slots = id_data.texture_slots
    index = int(item[0]) if item[0].isdigit() else -1
    if not 0 <= index < len(slots):
        ctx.report(f"{id_data.name!r} has no texture slot {item[0]!r}")
        return id_data
    slot = slots[index]
    if doc is None:
        if slot is not None and ctx.deleting:
            slots.clear(index)
        return id_data
    if not isinstance(doc, dict):
        raise ValueError(f"a texture slot's settings are a map, not {type(doc).__name__}")
    if slot is None:
        slot = slots.create(index)
    rna.write_props(slot, doc, ctx.resolve)
    id_data.update_tag()
    return id_data


PARTS = {PART: Items(apply_slot)}
