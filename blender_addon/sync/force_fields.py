"""A force field's settings (``FieldSettings``) as one document: an object's ``field`` and a particle
settings' ``force_field_1`` and ``force_field_2``.

A field of type NONE pushes nothing and is no document (its key goes, and a deleted key sets the type back
to NONE); ``type`` and ``shape`` decide which other settings a field has, so they are written first.
"""

from __future__ import annotations

import bpy

from . import rna

FIRST = ("type", "shape")


def tidy(values: dict[str, object], attr: str) -> None:
    """Drop ``values[attr]`` (a field read with ``ctx.props``) when it is no field, and what it has only
    with a texture: a new field's ``texture_nabla`` of 0 is below what Blender lets anyone write. (Blender
    seeds a new field's noise from the clock, ``(seconds + 1) % 128``, so 0 once every 128 seconds, below
    the 1 it writes: ``ctx.props`` reads such a seed as 1, as every number outside its range.)"""
    field = values.get(attr)
    if not isinstance(field, dict):
        return
    if field.get("type") == "NONE":
        del values[attr]
    elif field.get("texture") is None:
        field.pop("texture_nabla", None)


def write(field: bpy.types.FieldSettings, doc: object, resolve: rna.Resolver) -> None:
    """Make ``field`` hold ``doc`` (None: no force field)."""
    if doc is None:
        if field.type != "NONE":
            field.type = "NONE"
        return
    if not isinstance(doc, dict):
        raise ValueError(f"a force field's settings are a map, not {type(doc).__name__}")
    rna.write_props(field, doc, resolve, first=FIRST)
