"""Lattices (kind ``lattice``): size and settings, deformed points, shape keys (shape_keys.py)."""

from __future__ import annotations

import bpy

from .. import derived, ids, rna, shape_keys
from ..arrays import fget, floats, fset
from ..assign import rename, set_changed
from ..codec import pack_f32
from ..context import ApplyContext, ReadContext
from .base import Kind

LATTICE_SIZE = ("points_u", "points_v", "points_w")


def serialise(lattice: bpy.types.Lattice, ctx: ReadContext) -> dict[str, object]:
    n = len(lattice.points)
    return {
        "meta": {
            "name": lattice.name,
            "size": [getattr(lattice, attr) for attr in LATTICE_SIZE],
            "props": ctx.props(lattice, skip=LATTICE_SIZE),
        },
        "points": {  # animated components: derived.py
            attr: pack_f32(
                ctx.masked_packed(lattice, "points", attr, fget(lattice.points, attr, n, width), width)
            )
            for attr, width in (("co_deform", 3), ("weight_softbody", 1))
        },
        **shape_keys.read(lattice, ctx),
    }


def describe(lattice: bpy.types.Lattice, ctx: ReadContext) -> dict:
    return {
        "name": lattice.name,
        "size": [getattr(lattice, attr) for attr in LATTICE_SIZE],
        "props": ctx.props(lattice, skip=LATTICE_SIZE),
        "points": [[floats(p.co_deform), p.weight_softbody] for p in lattice.points],
        **shape_keys.describe(lattice, ctx),
    }


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return bpy.data.lattices.new(doc["name"])


def stub(name: str, object_type: str) -> bpy.types.ID:
    return bpy.data.lattices.new(name)


def apply_meta(lattice: bpy.types.Lattice, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    rename(lattice, doc["name"])
    if lattice.shape_keys is not None and [getattr(lattice, a) for a in LATTICE_SIZE] != doc["size"]:
        # Blender keeps the size of a lattice with shape keys; the sender removed its shape keys to resize
        # (their key follows with the new size's points).
        shape_keys.clear(lattice)
    for attr, value in zip(LATTICE_SIZE, doc["size"], strict=True):
        set_changed(lattice, attr, value)  # only when different: setting a size resets the points
    rna.write_props(lattice, doc["props"], ctx.resolve)
    return lattice


def apply_points(lattice: bpy.types.Lattice, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    if len(doc["co_deform"]) == 12 * len(lattice.points):
        fset(lattice.points, "co_deform", doc["co_deform"])
        fset(lattice.points, "weight_softbody", doc["weight_softbody"])
        derived.reanimate(lattice)
    else:  # the size in meta has not arrived yet: apply again once it has
        ctx.wait_for("meta", ids.get_uuid(lattice))
    return lattice


KIND = Kind(
    name="lattice",
    collection="lattices",
    rna_type="Lattice",
    parts={"meta": apply_meta, "points": apply_points, **shape_keys.parts("meta")},
    create=create,
    serialise=serialise,
    describe=describe,
    stub=stub,
    object_types=("LATTICE",),
)
