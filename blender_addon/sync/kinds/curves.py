"""Curves (kind ``curve``): curves, surfaces, text curves; settings (fonts as links), splines, body and text
boxes, shape keys (shape_keys.py)."""

from __future__ import annotations

import bpy

from .. import derived, ids, rna, shape_keys
from ..arrays import fget, floats, fset
from ..assign import set_changed, set_materials
from ..codec import pack_f32
from ..context import ApplyContext, ReadContext
from ..settings import apply_name, setting_items, settings_part
from .base import Kind

CURVE_SKIP = (
    "body",
    "body_format",
    "shape_keys",
    "texspace_location",
    "texspace_size",
    "eval_time",
    "active_textbox",
)
SPLINE_FLAGS = (
    "type",
    "use_cyclic_u",
    "use_cyclic_v",
    "use_endpoint_u",
    "use_endpoint_v",
    "use_bezier_u",
    "use_bezier_v",
    "order_u",
    "order_v",
    "resolution_u",
    "resolution_v",
    "use_smooth",
    "material_index",
    "tilt_interpolation",
    "radius_interpolation",
)
NON_NURBS_FLAGS = tuple(
    f for f in SPLINE_FLAGS if not f.startswith(("order_", "use_endpoint_", "use_bezier_"))
)
FONT_POINTERS = ("font", "font_bold", "font_italic", "font_bold_italic")
TEXT_BOX = ("x", "y", "width", "height")


def curve_type(curve: bpy.types.Curve) -> str:
    return {"TextCurve": "FONT", "SurfaceCurve": "SURFACE"}.get(curve.bl_rna.identifier, "CURVE")


# ---------------------------------------------------------------- read


def _read_spline(spline, ctx: ReadContext, path: str) -> dict[str, object]:
    """A spline's flags and points (``path``: its data path; animated components of the points are 0.0,
    derived.py)."""
    flags = SPLINE_FLAGS if spline.type == "NURBS" else NON_NURBS_FLAGS
    doc: dict[str, object] = {flag: rna.plain(getattr(spline, flag)) for flag in flags}
    curve = spline.id_data

    def packed(pts, collection: str, attr: str, width: int) -> bytes:
        values = fget(pts, attr, len(pts), width)
        return pack_f32(ctx.masked_packed(curve, f"{path}.{collection}", attr, values, width))

    if spline.type == "BEZIER":
        pts = spline.bezier_points
        doc["bezier"] = {
            **{attr: packed(pts, "bezier_points", attr, 3) for attr in ("co", "handle_left", "handle_right")},
            "handle_left_type": [p.handle_left_type for p in pts],
            "handle_right_type": [p.handle_right_type for p in pts],
            "radius": packed(pts, "bezier_points", "radius", 1),
            "tilt": packed(pts, "bezier_points", "tilt", 1),
        }
    else:
        pts = spline.points
        doc["points"] = {
            "co": packed(pts, "points", "co", 4),
            **{attr: packed(pts, "points", attr, 1) for attr in ("radius", "tilt", "weight")},
            "count_u": spline.point_count_u,
            "count_v": spline.point_count_v,
        }
    return doc


def _read_boxes(curve: bpy.types.TextCurve) -> list[list[float]]:
    # + 0.0: -0.0 reads as 0.0 (a receiver would not write -0.0 over its 0.0 and would read another value)
    return [[float(getattr(box, attr)) + 0.0 for attr in TEXT_BOX] for box in curve.text_boxes]


def serialise(curve: bpy.types.Curve, ctx: ReadContext) -> dict[str, object]:
    kind = curve_type(curve)
    parts: dict[str, object] = {
        # dimensions decide which other settings exist: they come with the type
        "meta": {
            "curve_type": kind,
            "dimensions": curve.dimensions,
            "materials": [ctx.ref(m) for m in curve.materials],
        },
        "name": curve.name,
        "set": setting_items(ctx.props(curve, skip=(*CURVE_SKIP, "dimensions"))),
        "splines": [_read_spline(s, ctx, f"splines[{i}]") for i, s in enumerate(curve.splines)],
    }
    if kind == "FONT":
        parts["text"] = {"body": curve.body}
        parts["boxes"] = _read_boxes(curve)
    else:  # Blender gives text curves no shape keys
        parts.update(shape_keys.read(curve, ctx))
    return parts


def describe(curve: bpy.types.Curve, ctx: ReadContext) -> dict:
    splines = []
    for spline in curve.splines:
        if spline.type == "BEZIER":
            points = [
                [floats(p.co), floats(p.handle_left), floats(p.handle_right), p.radius, p.tilt]
                for p in spline.bezier_points
            ]
        else:
            points = [[floats(p.co), p.radius, p.tilt] for p in spline.points]
        splines.append([spline.type, spline.use_cyclic_u, spline.resolution_u, points])
    return {
        "name": curve.name,
        "type": curve_type(curve),
        "props": ctx.props(curve, skip=CURVE_SKIP),
        "splines": splines,
        "body": curve.body if curve_type(curve) == "FONT" else None,
        "boxes": _read_boxes(curve) if curve_type(curve) == "FONT" else None,
        "materials": [ctx.ref(m) for m in curve.materials],
        **shape_keys.describe(curve, ctx),
    }


# ---------------------------------------------------------------- apply


def new_curve(name: str, curve_kind: str) -> bpy.types.Curve:
    """A new curve; a new text curve drops the built-in font Blender gives it (its meta names its fonts)."""
    before = {f.as_pointer() for f in bpy.data.fonts}
    curve = bpy.data.curves.new(name, type=curve_kind)
    fresh = [f for f in bpy.data.fonts if f.as_pointer() not in before and ids.peek_uuid(f) is None]
    if fresh:
        for attr in FONT_POINTERS:
            setattr(curve, attr, None)
        for font in fresh:
            if font.users == 0:
                bpy.data.fonts.remove(font)
    return curve


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return new_curve(ctx.new_name(uuid), doc["curve_type"])


def stub(name: str, object_type: str) -> bpy.types.ID:
    return new_curve(name, object_type if object_type in ("SURFACE", "FONT") else "CURVE")


def apply_meta(curve: bpy.types.Curve, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    set_changed(curve, "dimensions", doc["dimensions"])
    set_materials(curve.materials, [ctx.resolve(u) for u in doc["materials"]])
    return curve


def apply_splines(curve: bpy.types.Curve, doc: list, ctx: ApplyContext) -> bpy.types.ID:
    curve.splines.clear()
    for sdoc in doc:
        spline = curve.splines.new(sdoc["type"])
        if "bezier" in sdoc:
            bez = sdoc["bezier"]
            n = len(bez["handle_left_type"])
            points = spline.bezier_points
            points.add(n - len(points))
            for i, point in enumerate(points):
                point.handle_left_type = bez["handle_left_type"][i]
                point.handle_right_type = bez["handle_right_type"][i]
            for attr in ("co", "handle_left", "handle_right", "radius", "tilt"):
                fset(points, attr, bez[attr])
        else:
            pdoc = sdoc["points"]
            n = len(pdoc["co"]) // 16
            points = spline.points
            points.add(n - len(points))
            for attr in ("co", "radius", "tilt", "weight"):
                fset(points, attr, pdoc[attr])
        for flag in SPLINE_FLAGS:
            if flag != "type" and flag in sdoc:
                set_changed(spline, flag, sdoc[flag])
    derived.reanimate(curve)
    return curve


def apply_text(curve: bpy.types.Curve, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    if curve_type(curve) == "FONT" and curve.body != doc["body"]:
        curve.body = doc["body"]
    return curve


def _count_boxes(curve: bpy.types.TextCurve, count: int) -> None:
    """Add or remove text boxes until there are ``count`` (Blender's API has only the operators, which work on
    the active object: a throw-away one)."""
    ob = bpy.data.objects.new("blendsync-temp", curve)
    try:
        with bpy.context.temp_override(object=ob, active_object=ob):
            while len(curve.text_boxes) < count:
                before = len(curve.text_boxes)
                bpy.ops.font.textbox_add()
                if len(curve.text_boxes) == before:  # at Blender's limit (256)
                    break
            while len(curve.text_boxes) > max(1, count):
                bpy.ops.font.textbox_remove(index=len(curve.text_boxes) - 1)
    finally:
        bpy.data.objects.remove(ob)


def apply_boxes(curve: bpy.types.Curve, doc: list, ctx: ApplyContext) -> bpy.types.ID:
    if curve_type(curve) != "FONT":
        return curve
    if len(curve.text_boxes) != len(doc):
        try:
            _count_boxes(curve, len(doc))
        except RuntimeError as exc:  # the operators refused (no context to run them in)
            ctx.report(f"text boxes: {exc}")
    for box, values in zip(curve.text_boxes, doc, strict=False):
        for attr, value in zip(TEXT_BOX, values, strict=True):
            set_changed(box, attr, value)
    return curve


KIND = Kind(
    name="curve",
    collection="curves",
    rna_type="Curve",
    parts={
        "meta": apply_meta,
        "name": apply_name,
        "set": settings_part(),
        "splines": apply_splines,
        "text": apply_text,
        "boxes": apply_boxes,
        **shape_keys.parts("splines"),
    },
    create=create,
    serialise=serialise,
    describe=describe,
    stub=stub,
    object_types=("CURVE", "SURFACE", "FONT"),
)
