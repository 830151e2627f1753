"""What a datablock of any kind may carry beside its kind's own data: custom properties
(``<kind>/<u>/prop/<name>``, custom_props.py) and, on kinds with animation data, drivers
(``<kind>/<u>/driver/<path>/<index>``, drivers.py). A kind takes them with ``parts={..., **extras.PARTS}``
and ``extras.read`` / ``extras.describe`` in its serialise / describe; the registry gives them to every
kind that does not (:func:`given`)."""

from __future__ import annotations

import dataclasses

import bpy

from . import custom_props, drivers
from .context import ReadContext
from .kinds.base import Kind

PARTS = {"prop": custom_props.PART, "driver": drivers.part()}


def read(id_data: bpy.types.ID, ctx: ReadContext) -> dict[str, object]:
    return {"prop": custom_props.items(id_data, ctx), "driver": drivers.items(id_data, ctx)}


def describe(id_data: bpy.types.ID) -> dict[str, object]:
    return {"custom_props": custom_props.describe(id_data), "drivers": drivers.describe(id_data)}


def given(kind: Kind) -> Kind:
    """``kind`` with custom properties and (if its datablocks have animation data) drivers added to its
    parts, serialise and describe, where it does not take them itself."""
    animated = "animation_data" in getattr(bpy.types, kind.rna_type).bl_rna.properties
    props = "prop" not in kind.parts
    driven = animated and "driver" not in kind.parts
    if not props and not driven:
        return kind
    parts = {**({"prop": PARTS["prop"]} if props else {}), **({"driver": PARTS["driver"]} if driven else {})}

    def serialise(id_data: bpy.types.ID, ctx: ReadContext) -> dict[str, object]:
        out = kind.serialise(id_data, ctx)
        if props:
            out["prop"] = custom_props.items(id_data, ctx)
        if driven:
            out["driver"] = drivers.items(id_data, ctx)
        return out

    def describe(id_data: bpy.types.ID, ctx: ReadContext) -> dict:
        out = kind.describe(id_data, ctx)
        if props:
            out = {**out, "custom_props": custom_props.describe(id_data)}
        if driven:
            out = {**out, "drivers": drivers.describe(id_data)}
        return out

    return dataclasses.replace(kind, parts={**kind.parts, **parts}, serialise=serialise, describe=describe)
