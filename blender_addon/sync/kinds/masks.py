"""Masks (kind ``mask``): the shapes a compositor's Mask node or a sequencer strip cuts with. ``meta``: name
and frame range; ``layers``: every layer in order with its settings and splines, each spline's settings and
points (position and handles, handle types, feather weight, the point's parent: a movie clip's track).

A mask's layers are one key: layers and splines are made and removed only as a whole list, so a list of
another shape is made again, and one of the same shape is written in place."""

from __future__ import annotations

import bpy

from .. import rna
from ..arrays import fget, fset
from ..assign import rename, set_changed
from ..codec import pack_f32
from ..context import ApplyContext, ReadContext
from .base import Kind

MASK_PROPS = ("frame_start", "frame_end")
LAYER_PROPS = (
    "alpha", "blend", "invert", "falloff", "use_fill_holes", "use_fill_overlap", "hide", "hide_select",
    "hide_render",
)  # fmt: skip
SPLINE_PROPS = (
    "offset_mode", "weight_interpolation", "use_cyclic", "use_fill", "use_self_intersection_check",
)  # fmt: skip
POINT_ARRAYS = (("co", 2), ("handle_left", 2), ("handle_right", 2), ("weight", 1))
HANDLE_TYPES = ("handle_type", "handle_left_type", "handle_right_type")


def _parent(point, ctx: ReadContext | None) -> list[object]:
    parent = point.parent
    target = parent.id
    ref = None if target is None else (target.name if ctx is None else ctx.ref(target))
    return [ref, parent.id_type, parent.type, parent.parent, parent.sub_parent]


def _spline(spline, ctx: ReadContext | None) -> dict[str, object]:
    points, n = spline.points, len(spline.points)
    doc: dict[str, object] = {attr: rna.plain(getattr(spline, attr)) for attr in SPLINE_PROPS}
    doc["count"] = n
    doc.update({attr: pack_f32(fget(points, attr, n, width)) for attr, width in POINT_ARRAYS})
    doc.update({attr: [getattr(p, attr) for p in points] for attr in HANDLE_TYPES})
    doc["parents"] = [_parent(p, ctx) for p in points]
    return doc


def _layer(layer, ctx: ReadContext | None) -> dict[str, object]:
    return {
        "name": layer.name,
        "props": {attr: rna.plain(getattr(layer, attr)) for attr in LAYER_PROPS},
        "splines": [_spline(s, ctx) for s in layer.splines],
    }


def serialise(mask: bpy.types.Mask, ctx: ReadContext) -> dict[str, object]:
    return {
        "meta": {"name": mask.name, "props": {attr: getattr(mask, attr) for attr in MASK_PROPS}},
        "layers": [_layer(layer, ctx) for layer in mask.layers],
    }


def describe(mask: bpy.types.Mask, ctx: ReadContext) -> dict:
    return {
        "name": mask.name,
        "props": {attr: getattr(mask, attr) for attr in MASK_PROPS},
        "layers": [_layer(layer, None) for layer in mask.layers],
    }


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return bpy.data.masks.new(name=doc["name"])


def apply_meta(mask: bpy.types.Mask, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    rename(mask, doc["name"])
    for attr in MASK_PROPS:
        set_changed(mask, attr, doc["props"][attr])
    return mask


def _shape(mask: bpy.types.Mask) -> list[object]:
    return [[layer.name, [len(s.points) for s in layer.splines]] for layer in mask.layers]


def _make(mask: bpy.types.Mask, docs: list[dict]) -> None:
    mask.layers.clear()
    for doc in docs:
        layer = mask.layers.new(name=doc["name"])
        layer.name = doc["name"]
        for spline_doc in doc["splines"]:
            points = layer.splines.new().points  # a new spline has one point
            if spline_doc["count"] > 1:
                points.add(spline_doc["count"] - 1)
            elif spline_doc["count"] == 0:
                points.remove(points[0])


def _write_parent(point, doc: list, ctx: ApplyContext) -> None:
    ref, id_type, kind, parent, sub_parent = doc
    target = ctx.resolve(ref) if ref is not None else None
    set_changed(point.parent, "id_type", id_type)
    if point.parent.id != target:
        point.parent.id = target
    set_changed(point.parent, "type", kind)
    set_changed(point.parent, "parent", parent)
    set_changed(point.parent, "sub_parent", sub_parent)


def apply_layers(mask: bpy.types.Mask, docs: list[dict], ctx: ApplyContext) -> bpy.types.ID:
    if _shape(mask) != [[d["name"], [s["count"] for s in d["splines"]]] for d in docs]:
        _make(mask, docs)
    for layer, doc in zip(mask.layers, docs, strict=True):
        rna.write_props(layer, doc["props"], ctx.resolve)
        for spline, spline_doc in zip(layer.splines, doc["splines"], strict=True):
            for attr in SPLINE_PROPS:
                set_changed(spline, attr, spline_doc[attr])
            points = spline.points
            for attr in HANDLE_TYPES:  # before the handles: a handle type moves them
                for point, value in zip(points, spline_doc[attr], strict=True):
                    set_changed(point, attr, value)
            for attr, _width in POINT_ARRAYS:
                fset(points, attr, spline_doc[attr])
            for point, parent in zip(points, spline_doc["parents"], strict=True):
                _write_parent(point, parent, ctx)
    return mask


KIND = Kind(
    name="mask",
    collection="masks",
    rna_type="Mask",
    parts={"meta": apply_meta, "layers": apply_layers},
    create=create,
    serialise=serialise,
    describe=describe,
)
