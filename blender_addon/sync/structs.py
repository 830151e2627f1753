"""Structs that nodes, modifiers and textures hold and that RNA gives as read-only pointers: curve mapping
widgets (``CurveMapping``: RGB, Vector and Float Curves nodes, a Hook or Warp modifier's falloff curve, a
Vertex Weight modifier's map curve), image user settings (``ImageUser``: image and environment texture
nodes, image textures) and a legacy texture's colour ramp (``ColorRamp``; a node's travels as its own
``color_ramp``, node_trees.py).

Each is read as one document and written back in place, inside the key of what holds it: a node's in its
``node/<id>`` key (``structs``: identifier -> document), a modifier's as the setting key
``modset/<modifier>/<identifier>``, a texture's as ``set/<identifier>``.
"""

from __future__ import annotations

from collections.abc import Callable

import bpy

from . import assign, rna
from .arrays import floats
from .context import ReadContext

CURVE_MAPPING_PROPS = (
    "use_clip",
    "clip_max_x",
    "clip_max_y",
    "clip_min_x",
    "clip_min_y",
    "extend",
    "tone",
    "black_level",
    "white_level",
)


def read_curve_mapping(mapping: bpy.types.CurveMapping, ctx: ReadContext | None) -> dict[str, object]:
    """Settings, and each curve's points as ``[x, y, handle type]`` (what animation writes in a point's
    location is None, derived.py)."""

    def location(point) -> object:
        value = floats(point.location)
        return value if ctx is None else ctx.masked(point, "location", value)

    return {
        "props": {attr: rna.plain(getattr(mapping, attr)) for attr in CURVE_MAPPING_PROPS},
        "curves": [[[location(p), p.handle_type] for p in curve.points] for curve in mapping.curves],
    }


def write_curve_mapping(mapping: bpy.types.CurveMapping, doc: dict) -> None:
    # Twice: a clip bound is clamped to the other's old value (a minimum above the old maximum).
    for _ in range(2):
        for attr in CURVE_MAPPING_PROPS:
            assign.set_changed(mapping, attr, doc["props"][attr])
    for curve, points in zip(mapping.curves, doc["curves"], strict=False):
        pts = curve.points
        while len(pts) > max(2, len(points)):  # Blender keeps two points at least
            pts.remove(pts[len(pts) - 1])
        for location, _handle in points[len(pts) :]:
            pts.new(*(c or 0.0 for c in location))
        # In the value's order (sorted by x); update() sorts them again.
        for point, (location, handle) in zip(pts, points, strict=False):
            assign.set_changed(point, "location", location)
            assign.set_changed(point, "handle_type", handle)
    mapping.update()


# What an image user sets; its current frame is Blender's (computed from these on each frame change), and the
# layer, pass and view of a multilayer image are read-only in Blender's API.
IMAGE_USER_PROPS = ("frame_duration", "frame_start", "frame_offset", "use_auto_refresh", "use_cyclic")


def read_image_user(user: bpy.types.ImageUser, ctx: ReadContext | None) -> dict[str, object]:
    return {attr: rna.plain(getattr(user, attr)) for attr in IMAGE_USER_PROPS}


def write_image_user(user: bpy.types.ImageUser, doc: dict) -> None:
    for attr in IMAGE_USER_PROPS:
        assign.set_changed(user, attr, doc.get(attr))


def read_color_ramp(ramp: bpy.types.ColorRamp, ctx: ReadContext | None) -> dict[str, object]:
    return {
        "color_mode": ramp.color_mode,
        "interpolation": ramp.interpolation,
        "hue_interpolation": ramp.hue_interpolation,
        "elements": [[float(e.position), floats(e.color)] for e in ramp.elements],
    }


def write_color_ramp(ramp: bpy.types.ColorRamp, doc: dict) -> None:
    for attr in ("color_mode", "interpolation", "hue_interpolation"):
        assign.set_changed(ramp, attr, doc[attr])
    elements = ramp.elements
    wanted = doc["elements"]
    while len(elements) > max(1, len(wanted)):  # Blender keeps one element at least
        elements.remove(elements[len(elements) - 1])
    while len(elements) < len(wanted):
        elements.new(1.0)
    for element, (position, color) in zip(elements, wanted, strict=False):
        assign.set_changed(element, "position", position)
        assign.set_changed(element, "color", color)


Read = Callable[[bpy.types.bpy_struct, ReadContext | None], dict]
Write = Callable[[bpy.types.bpy_struct, dict], None]
KINDS: dict[str, tuple[Read, Write]] = {
    "CurveMapping": (read_curve_mapping, write_curve_mapping),
    "ImageUser": (read_image_user, write_image_user),
    "ColorRamp": (read_color_ramp, write_color_ramp),
}

_HELD: dict[str, tuple[str, ...]] = {}  # RNA type -> identifiers of the structs it holds (read once per type)


def held(struct: bpy.types.bpy_struct) -> tuple[str, ...]:
    """Identifiers of the structs of :data:`KINDS` that ``struct`` holds."""
    rna_type = struct.bl_rna.identifier
    found = _HELD.get(rna_type)
    if found is None:
        found = _HELD[rna_type] = tuple(
            prop.identifier
            for prop in struct.bl_rna.properties
            if prop.type == "POINTER" and prop.fixed_type.identifier in KINDS
        )
    return found


def read(
    struct: bpy.types.bpy_struct, ctx: ReadContext | None, skip: tuple[str, ...] = ()
) -> dict[str, dict]:
    """Identifier -> document of every struct ``struct`` holds but those in ``skip`` (``ctx`` None:
    describing, nothing masked)."""
    out = {}
    for ident in held(struct):
        if ident in skip:
            continue
        value = getattr(struct, ident)
        if value is not None:
            out[ident] = KINDS[value.bl_rna.identifier][0](value, ctx)
    return out


def write(struct: bpy.types.bpy_struct, ident: str, doc: object) -> bool:
    """Write the held struct ``ident`` (False: ``struct`` holds no such struct, it is a plain setting)."""
    if ident not in held(struct) or not isinstance(doc, dict):
        return False
    value = getattr(struct, ident)
    if value is not None:
        KINDS[value.bl_rna.identifier][1](value, doc)
        struct.id_data.update_tag()  # what uses it is evaluated again (Blender's API tags nothing here)
    return True
