"""Dynamic paint (part of the modifiers, modifiers.py): a canvas's surfaces and a brush's settings, as
``modset/<m>/canvas_settings`` (the surfaces in order, each ``{name, settings…}``) and
``modset/<m>/brush_settings``, keyed while the modifier has them.

Blender's API makes neither, nor a surface: its Dynamic Paint operators do (Toggle Type makes or removes the
canvas or brush settings of the object's dynamic paint modifier, Add and Remove Surface Slot act on the
canvas's surfaces). A receiver runs them on the object: when the surfaces' names differ it adds or removes
slots at the end, names them, then writes every surface's settings. Where a surface writes its images (a
folder on this machine) and which effect tab it shows stay each artist's. A brush's colour ramps (the paint
ramp of its proximity falloff, the velocity ramp) are settings of its document, as a node's ramp is.
"""

from __future__ import annotations

import bpy

from . import ids, rna, structs
from .context import ApplyContext, ReadContext

CANVAS = "canvas_settings"
BRUSH = "brush_settings"
PROPS = (CANVAS, BRUSH)
SURFACE_SKIP = ("image_output_path", "effect_ui")
SURFACE_FIRST = ("surface_format", "surface_type")  # which other settings a surface has


def read(mod: bpy.types.Modifier, ctx: ReadContext) -> dict[str, object]:
    if mod.type != "DYNAMIC_PAINT":
        return {}
    out: dict[str, object] = {}
    if mod.canvas_settings is not None:
        out[CANVAS] = [
            {"name": s.name, **ctx.props(s, skip=SURFACE_SKIP, nested=("effector_weights",))}
            for s in mod.canvas_settings.canvas_surfaces
        ]
    if mod.brush_settings is not None:
        out[BRUSH] = {**ctx.props(mod.brush_settings), **structs.read(mod.brush_settings, ctx)}
    return out


def _run(ob: bpy.types.Object, operator, **args) -> None:
    with bpy.context.temp_override(object=ob, active_object=ob):
        operator(**args)


def apply(ob: bpy.types.Object, mod: bpy.types.Modifier, prop: str, doc: object, ctx: ApplyContext) -> None:
    """A canvas's surfaces or a brush's settings; None (a deleted key) removes them."""
    if mod.type != "DYNAMIC_PAINT":
        raise ValueError(f"modifier {mod.name!r} is a {mod.type}, not a dynamic paint modifier")
    kind = "CANVAS" if prop == CANVAS else "BRUSH"
    if doc is None:
        if getattr(mod, prop) is not None:
            _run(ob, bpy.ops.dpaint.type_toggle, type=kind)  # it toggles: they are there, so it removes them
        return
    if prop == BRUSH and not isinstance(doc, dict):
        raise ValueError(f"a brush's settings are a map, not {type(doc).__name__}")
    if prop == CANVAS and not (
        isinstance(doc, list) and all(isinstance(d, dict) and isinstance(d.get("name"), str) for d in doc)
    ):
        raise ValueError("a canvas's surfaces are a list of maps with a name")
    mesh = ob.data if isinstance(ob.data, bpy.types.Mesh) else None
    mesh_uuid = ids.peek_uuid(mesh)
    if prop == CANVAS and mesh is not None and not mesh.vertices and mesh_uuid is not None:
        # A canvas made on a mesh without points (an object placed before its mesh arrived) paints
        # differently from run to run once the points come (Blender keeps state from the empty mesh):
        # made once the mesh's geometry is here.
        ctx.wait_for("geometry", mesh_uuid)
        return
    if getattr(mod, prop) is None:
        _run(ob, bpy.ops.dpaint.type_toggle, type=kind)
    settings = getattr(mod, prop)
    if settings is None:
        raise ValueError(f"Blender gave modifier {mod.name!r} no {kind.lower()} settings")
    if prop == BRUSH:
        plain = {k: v for k, v in doc.items() if not structs.write(settings, k, v)}  # the ramps
        rna.write_props(settings, plain, ctx.resolve)
    else:
        _surfaces(ob, settings.canvas_surfaces, doc, ctx)
    ob.update_tag()


def _surfaces(ob: bpy.types.Object, surfaces, doc: list, ctx: ApplyContext) -> None:
    names = [d["name"] for d in doc]
    if [s.name for s in surfaces] != names:
        while len(surfaces) < len(names):
            _run(ob, bpy.ops.dpaint.surface_slot_add)
        while len(surfaces) > len(names):
            surfaces.active_index = len(surfaces) - 1
            _run(ob, bpy.ops.dpaint.surface_slot_remove)
        for i, surface in enumerate(surfaces):  # names are unique in a canvas: free them all first
            surface.name = f"blendsync-{i}"
        for surface, name in zip(surfaces, names, strict=True):
            surface.name = name
    for surface, d in zip(surfaces, doc, strict=True):
        settings = {k: v for k, v in d.items() if k != "name"}
        rna.write_props(surface, settings, ctx.resolve, first=SURFACE_FIRST)
