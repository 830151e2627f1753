"""Actions (kind ``action``): slots, f-curves and keyframes (an object's use of one: ``obj/anim``)."""

from __future__ import annotations

import bpy

from ..arrays import fget, floats, fset
from ..assign import rename, set_changed
from ..codec import pack_f32
from ..context import ApplyContext, ReadContext
from .base import Kind


def _keyframes(fc) -> dict[str, object]:
    points = fc.keyframe_points
    n = len(points)
    return {
        "co": pack_f32(fget(points, "co", n, 2)),
        "handle_left": pack_f32(fget(points, "handle_left", n, 2)),
        "handle_right": pack_f32(fget(points, "handle_right", n, 2)),
        "interpolation": [p.interpolation for p in points],
        "easing": [p.easing for p in points],
        "handle_left_type": [p.handle_left_type for p in points],
        "handle_right_type": [p.handle_right_type for p in points],
    }


def _channelbags(action: bpy.types.Action):
    for layer in action.layers:
        for strip in layer.strips:
            yield from getattr(strip, "channelbags", ())


def serialise(action: bpy.types.Action, ctx: ReadContext) -> dict[str, object]:
    meta = {
        "name": action.name,
        "slots": [[slot.identifier, slot.target_id_type] for slot in action.slots],
        "use_frame_range": action.use_frame_range,
        "frame_range": floats(action.frame_range) if action.use_frame_range else None,
    }
    bags = []
    for bag in _channelbags(action):
        fcurves = sorted(
            (
                {
                    "data_path": fc.data_path,
                    "index": fc.array_index,
                    "group": fc.group.name if fc.group is not None else None,
                    "extrapolation": fc.extrapolation,
                    "mute": fc.mute,
                    "keys": _keyframes(fc),
                }
                for fc in bag.fcurves
            ),
            key=lambda f: (f["data_path"], f["index"]),
        )
        bags.append({"slot": bag.slot.identifier if bag.slot is not None else None, "fcurves": fcurves})
    bags.sort(key=lambda b: b["slot"] or "")
    return {"meta": meta, "curves": {"channelbags": bags}}


def describe(action: bpy.types.Action, ctx: ReadContext) -> dict:
    curves = []
    for layer in action.layers:
        for strip in layer.strips:
            for bag in strip.channelbags:
                for fc in bag.fcurves:
                    curves.append(
                        [
                            bag.slot.identifier if bag.slot else None,
                            fc.data_path,
                            fc.array_index,
                            [
                                [floats(k.co), k.interpolation, floats(k.handle_left), floats(k.handle_right)]
                                for k in fc.keyframe_points
                            ],
                        ]
                    )
    curves.sort(key=lambda c: (c[0] or "", c[1], c[2]))
    return {"name": action.name, "slots": sorted(s.identifier for s in action.slots), "fcurves": curves}


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return bpy.data.actions.new(doc["name"])


def apply_meta(action: bpy.types.Action, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    rename(action, doc["name"])
    wanted = {identifier for identifier, _ in doc["slots"]}
    for slot in list(action.slots):
        if slot.identifier not in wanted:
            action.slots.remove(slot)
    present = {slot.identifier for slot in action.slots}
    for identifier, id_type in doc["slots"]:
        if identifier not in present:
            action.slots.new(id_type=id_type, name=identifier[2:])
    set_changed(action, "use_frame_range", doc["use_frame_range"])
    if doc["frame_range"] is not None:
        set_changed(action, "frame_range", doc["frame_range"])
    return action


def apply_curves(action: bpy.types.Action, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    if not action.layers:
        action.layers.new("Layer")
    layer = action.layers[0]
    if not layer.strips:
        layer.strips.new(type="KEYFRAME")
    strip = layer.strips[0]
    slots = {slot.identifier: slot for slot in action.slots}
    wanted = {bag["slot"] for bag in doc["channelbags"]}
    for bag in list(strip.channelbags):
        if bag.slot is None or bag.slot.identifier not in wanted:
            strip.channelbags.remove(bag)
    for bag_doc in doc["channelbags"]:
        slot = slots.get(bag_doc["slot"])
        if slot is None:
            continue
        bag = strip.channelbag(slot, ensure=True)
        bag.fcurves.clear()
        for fdoc in bag_doc["fcurves"]:
            fc = bag.fcurves.new(fdoc["data_path"], index=fdoc["index"], group_name=fdoc["group"] or "")
            fc.extrapolation = fdoc["extrapolation"]
            fc.mute = fdoc["mute"]
            keys = fdoc["keys"]
            n = len(keys["interpolation"])
            points = fc.keyframe_points
            points.add(n)
            fset(points, "co", keys["co"])
            for i, point in enumerate(points):
                point.interpolation = keys["interpolation"][i]
                point.easing = keys["easing"][i]
                point.handle_left_type = keys["handle_left_type"][i]
                point.handle_right_type = keys["handle_right_type"][i]
            fset(points, "handle_left", keys["handle_left"])
            fset(points, "handle_right", keys["handle_right"])
    return action


KIND = Kind(
    name="action",
    collection="actions",
    rna_type="Action",
    parts={"meta": apply_meta, "curves": apply_curves},
    create=create,
    serialise=serialise,
    describe=describe,
)
