"""Actions (kind ``action``): slots, and one key per f-curve with its keyframes (an object's use of one:
``obj/anim``), so two artists keying different channels of one action at the same moment keep both."""

from __future__ import annotations

import bpy

from .. import fcurves, ids
from ..arrays import floats
from ..assign import rename, set_changed
from ..context import ApplyContext, ReadContext
from .base import Items, Kind


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
    curves = {}
    for bag in _channelbags(action):
        if bag.slot is None:
            continue
        for fc in bag.fcurves:
            curves[(bag.slot.identifier, fc.data_path, str(fc.array_index))] = {
                "group": fc.group.name if fc.group is not None else None,
                "extrapolation": fc.extrapolation,
                "mute": fc.mute,
                "keys": fcurves.read_keyframes(fc),
                "modifiers": fcurves.read_modifiers(fc),
            }
    return {"meta": meta, "fcurve": dict(sorted(curves.items()))}


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
                            fcurves.describe_keyframes(fc),
                            fcurves.read_modifiers(fc),
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


def _strip(action: bpy.types.Action):
    if not action.layers:
        action.layers.new("Layer")
    layer = action.layers[0]
    if not layer.strips:
        layer.strips.new(type="KEYFRAME")
    return layer.strips[0]


def apply_fcurve(action: bpy.types.Action, item: tuple[str, ...], doc: dict | None, ctx: ApplyContext):
    """``action/<u>/fcurve/<slot>/<data path>/<index>``: one f-curve and its keyframes; deleted: removed."""
    slot_id, data_path, index_text = item
    index = int(index_text) if index_text.lstrip("-").isdigit() else 0
    slot = next((s for s in action.slots if s.identifier == slot_id), None)
    if slot is None:
        if doc is not None:
            ctx.wait_for("meta", ids.get_uuid(action))  # the slot has not arrived yet
        return action
    strip = _strip(action)
    bag = strip.channelbag(slot, ensure=doc is not None)
    if bag is None:
        return action
    fc = bag.fcurves.find(data_path, index=index)
    if doc is None:
        if fc is not None:
            bag.fcurves.remove(fc)
        return action
    if fc is None:
        fc = bag.fcurves.new(data_path, index=index, group_name=doc["group"] or "")
    elif (fc.group.name if fc.group is not None else None) != doc["group"]:
        bag.fcurves.remove(fc)
        fc = bag.fcurves.new(data_path, index=index, group_name=doc["group"] or "")
    fc.extrapolation = doc["extrapolation"]
    fc.mute = doc["mute"]
    fcurves.write_keyframes(fc, doc["keys"])
    fcurves.write_modifiers(fc, doc["modifiers"])
    action.update_tag()  # foreach_set tags nothing: the users' animation is evaluated again
    return action


KIND = Kind(
    name="action",
    collection="actions",
    rna_type="Action",
    parts={"meta": apply_meta, "fcurve": Items(apply_fcurve, depth=3)},
    create=create,
    serialise=serialise,
    describe=describe,
)
