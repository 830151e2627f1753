"""Metaballs (kind ``mball``): settings, material list, elements."""

from __future__ import annotations

import bpy

from .. import rna
from ..assign import set_changed, set_materials
from ..context import ApplyContext, ReadContext
from ..settings import apply_name, setting_items, settings_part
from .base import Kind

TEXSPACE_SKIP = ("texspace_location", "texspace_size")
METABALL_ELEMENT = (
    "type",
    "co",
    "rotation",
    "radius",
    "size_x",
    "size_y",
    "size_z",
    "stiffness",
    "use_negative",
    "use_scale_stiffness",
    "hide",
)


def serialise(mb: bpy.types.MetaBall, ctx: ReadContext) -> dict[str, object]:
    elements = [  # animated components read as None (derived.py)
        {
            attr: ctx.masked(e, attr, rna.plain(getattr(e, attr)), f"elements[{i}]")
            for attr in METABALL_ELEMENT
        }
        for i, e in enumerate(mb.elements)
    ]
    return {
        "meta": {"materials": [ctx.ref(m) for m in mb.materials]},
        "name": mb.name,
        "set": setting_items(ctx.props(mb, skip=TEXSPACE_SKIP)),
        "elements": elements,
    }


def describe(mb: bpy.types.MetaBall, ctx: ReadContext) -> dict:
    return {
        "name": mb.name,
        "props": ctx.props(mb, skip=TEXSPACE_SKIP),
        "elements": [[rna.plain(getattr(e, attr)) for attr in METABALL_ELEMENT] for e in mb.elements],
        "materials": [ctx.ref(m) for m in mb.materials],
    }


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return bpy.data.metaballs.new(ctx.new_name(uuid))


def stub(name: str, object_type: str) -> bpy.types.ID:
    return bpy.data.metaballs.new(name)


def apply_meta(mb: bpy.types.MetaBall, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    set_materials(mb.materials, [ctx.resolve(u) for u in doc["materials"]])
    return mb


def apply_elements(mb: bpy.types.MetaBall, doc: list, ctx: ApplyContext) -> bpy.types.ID:
    elements = mb.elements
    if [e.type for e in elements] != [d["type"] for d in doc]:
        elements.clear()
        for d in doc:
            elements.new(type=d["type"])
    for element, d in zip(elements, doc, strict=False):
        for attr in METABALL_ELEMENT[1:]:
            set_changed(element, attr, d[attr])
    return mb


KIND = Kind(
    name="mball",
    collection="metaballs",
    rna_type="MetaBall",
    parts={"meta": apply_meta, "name": apply_name, "set": settings_part(), "elements": apply_elements},
    create=create,
    serialise=serialise,
    describe=describe,
    stub=stub,
    object_types=("META",),
)
