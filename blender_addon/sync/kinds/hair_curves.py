"""Hair curves (kind ``hair``, object type ``CURVES``): materials, name, settings and the curves.

The curves are one key: the number of points of each curve and every
point and curve attribute (position, radius, custom ones).  A receiver
whose curves have other sizes makes them again (``remove_curves``,
``add_curves``) before writing the attributes.
"""

from __future__ import annotations

import itertools

import bpy

from ..arrays import pack_i32, unpack_i32
from ..assign import set_materials
from ..attributes import read_attributes, write_attributes
from ..context import ApplyContext, ReadContext
from ..settings import apply_name, setting_items, settings_part
from .base import Kind


def curve_sizes(curves: bpy.types.Curves) -> list[int]:
    offsets = [item.value for item in curves.curve_offset_data]
    return [b - a for a, b in itertools.pairwise(offsets)]


def serialise(curves: bpy.types.Curves, ctx: ReadContext) -> dict[str, object]:
    return {
        "meta": {"materials": [ctx.ref(m) for m in curves.materials]},
        "name": curves.name,
        "set": setting_items(ctx.props(curves)),
        "curves": {"sizes": pack_i32(curve_sizes(curves)), "attributes": read_attributes(curves)},
    }


def describe(curves: bpy.types.Curves, ctx: ReadContext) -> dict:
    return {
        "name": curves.name,
        "materials": [ctx.ref(m) for m in curves.materials],
        "props": ctx.props(curves),
        "sizes": curve_sizes(curves),
        "attributes": [[a["name"], a["domain"], a["type"], a["data"].hex()] for a in read_attributes(curves)],
    }


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return bpy.data.hair_curves.new(ctx.new_name(uuid))


def stub(name: str, object_type: str) -> bpy.types.ID:
    return bpy.data.hair_curves.new(name)


def apply_meta(curves: bpy.types.Curves, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    set_materials(curves.materials, [ctx.resolve(u) for u in doc["materials"]])
    return curves


def apply_curves(curves: bpy.types.Curves, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    sizes = list(unpack_i32(doc["sizes"]))
    if curve_sizes(curves) != sizes:
        if len(curves.curves):
            curves.remove_curves()
        if sizes:
            curves.add_curves(sizes)
    write_attributes(curves, doc["attributes"], ctx)
    curves.update_tag()
    return curves


KIND = Kind(
    name="hair",
    collection="hair_curves",
    rna_type="Curves",
    parts={"meta": apply_meta, "name": apply_name, "set": settings_part(), "curves": apply_curves},
    create=create,
    serialise=serialise,
    describe=describe,
    stub=stub,
    object_types=("CURVES",),
)
