"""Objects (kind ``obj``): links (data, parent, collections, material slots), transform, modifiers,
animation and the pose of armature objects.

An object whose data has not arrived gets an empty stand-in made by the
data kind's ``stub``, under the data's uuid; the data's keys fill it in.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping

import bpy
from mathutils import Matrix

from .. import ids, rna
from ..arrays import floats, matrix_rows
from ..assign import rename, set_changed
from ..context import ApplyContext, ReadContext
from ..evaluate import evaluate_without_animation
from .base import Kind

POSE_BONE_PROPS = (
    "rotation_mode",
    "location",
    "rotation_quaternion",
    "rotation_euler",
    "rotation_axis_angle",
    "scale",
)
TRANSFORM_PROPS = (
    "location",
    "rotation_euler",
    "rotation_quaternion",
    "rotation_axis_angle",
    "scale",
    "delta_location",
    "delta_rotation_euler",
    "delta_scale",
)
META_FLAGS = (
    "hide_viewport",
    "hide_render",
    "hide_select",
    "empty_display_type",
    "empty_display_size",
    "display_type",
)


# ---------------------------------------------------------------- read


def read_pose(ob: bpy.types.Object) -> dict[str, object]:
    """Pose bone transforms of an armature object, sorted by bone name."""
    bones = ob.pose.bones if ob.pose is not None else ()
    return {
        "bones": sorted(
            (
                {"name": pb.name, **{attr: rna.plain(getattr(pb, attr)) for attr in POSE_BONE_PROPS}}
                for pb in bones
            ),
            key=lambda b: b["name"],
        )
    }


def serialise(
    ob: bpy.types.Object, ctx: ReadContext, data_kinds: Mapping[str, str | None]
) -> dict[str, object]:
    data_kind = data_kinds.get(ob.type)
    collections = sorted({r for r in (ctx.collection_ref(c) for c in ob.users_collection) if r is not None})
    view_layer = bpy.context.view_layer
    try:
        hidden = bool(ob.hide_get(view_layer=view_layer))
    except RuntimeError:  # object not in this view layer
        hidden = False
    slots = [
        [slot.link, ctx.ref(slot.material) if slot.link == "OBJECT" else None] for slot in ob.material_slots
    ]
    meta = {
        "name": ob.name,
        "type": ob.type,
        "data_kind": data_kind,
        "data": ctx.ref(ob.data) if data_kind else None,
        "parent": ctx.ref(ob.parent),
        "parent_type": ob.parent_type,
        "hide_viewport": ob.hide_viewport,
        "hide_render": ob.hide_render,
        "hide_select": ob.hide_select,
        "hide": hidden,
        "collections": collections,
        "material_slots": slots,
        "empty_display_type": ob.empty_display_type,
        "empty_display_size": float(ob.empty_display_size),
        "display_type": ob.display_type,
    }
    transform = {
        "location": floats(ob.location),
        "rotation_mode": ob.rotation_mode,
        "rotation_euler": floats(ob.rotation_euler),
        "rotation_quaternion": floats(ob.rotation_quaternion),
        "rotation_axis_angle": floats(ob.rotation_axis_angle),
        "scale": floats(ob.scale),
        "delta_location": floats(ob.delta_location),
        "delta_rotation_euler": floats(ob.delta_rotation_euler),
        "delta_scale": floats(ob.delta_scale),
        "parent_inverse": matrix_rows(ob.matrix_parent_inverse),
    }
    modifiers = [
        {
            "name": mod.name,
            "type": mod.type,
            "show_viewport": mod.show_viewport,
            "show_render": mod.show_render,
            "props": ctx.props(
                mod, skip=("show_viewport", "show_render", "show_in_editmode", "show_on_cage", "type")
            ),
        }
        for mod in ob.modifiers
    ]
    ad = ob.animation_data
    action = ad.action if ad is not None else None
    anim = {
        "action": ctx.ref(action),
        "slot": ad.action_slot.identifier if action is not None and ad.action_slot is not None else None,
    }
    parts = {"meta": meta, "transform": transform, "modifiers": modifiers, "anim": anim}
    if ob.type == "ARMATURE":
        parts["pose"] = read_pose(ob)
    return parts


def describe(ob: bpy.types.Object, ctx: ReadContext) -> dict:
    ad = ob.animation_data
    return {
        "name": ob.name,
        "type": ob.type,
        "data": ctx.ref(ob.data) if ob.data is not None else None,
        "parent": ctx.ref(ob.parent),
        "parent_type": ob.parent_type,
        "matrix_basis": [floats(row) for row in ob.matrix_basis],
        "matrix_parent_inverse": [floats(row) for row in ob.matrix_parent_inverse],
        "rotation_mode": ob.rotation_mode,
        "visibility": [ob.hide_viewport, ob.hide_render, ob.hide_select],
        "collections": sorted(r for r in (ctx.collection_ref(c) for c in ob.users_collection) if r),
        "material_slots": [[s.link, ctx.ref(s.material)] for s in ob.material_slots],
        "modifiers": [[m.name, m.type, ctx.props(m)] for m in ob.modifiers],
        "action": ctx.ref(ad.action) if ad is not None else None,
        "slot": ad.action_slot.identifier if ad is not None and ad.action_slot is not None else None,
        "empty": [ob.empty_display_type, ob.empty_display_size] if ob.type == "EMPTY" else None,
        "pose": read_pose(ob) if ob.type == "ARMATURE" else None,
    }


# ---------------------------------------------------------------- apply


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    data = None
    if doc.get("data_kind") and doc.get("data"):
        data = ctx.object_data(doc["data_kind"], doc["data"], doc["type"])
    return bpy.data.objects.new(doc["name"], data)


def apply_meta(ob: bpy.types.Object, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    rename(ob, doc["name"])
    if doc.get("data_kind") and doc.get("data"):
        data = ctx.object_data(doc["data_kind"], doc["data"], doc["type"])
        if ob.data != data:
            ob.data = data
    parent = ctx.resolve(doc["parent"])
    if ob.parent != parent and parent is not ob:
        ob.parent = parent
    set_changed(ob, "parent_type", doc["parent_type"])
    for attr in META_FLAGS:
        set_changed(ob, attr, doc[attr])
    wanted = {}
    for ref in doc["collections"]:
        coll = ctx.resolve_collection(ref)
        if coll is not None:
            wanted[coll.as_pointer()] = coll
    synced = {scene.collection.as_pointer() for scene in bpy.data.scenes if ids.peek_uuid(scene)}
    for coll in list(ob.users_collection):
        ptr = coll.as_pointer()
        if ptr not in wanted and (ptr in synced or ids.peek_uuid(coll) is not None):
            coll.objects.unlink(ob)
    present = {c.as_pointer() for c in ob.users_collection}
    for ptr, coll in wanted.items():
        if ptr not in present:
            coll.objects.link(ob)
    view_layer = bpy.context.view_layer
    try:
        if bool(ob.hide_get(view_layer=view_layer)) != doc["hide"]:
            ob.hide_set(doc["hide"], view_layer=view_layer)
    except RuntimeError:
        pass
    if len(ob.material_slots) < len(doc["material_slots"]) and doc.get("data"):
        # The data's material list has not arrived yet: apply again once it has.
        ctx.wait_for("meta", doc["data"])
    for slot, (link, mat_uuid) in zip(ob.material_slots, doc["material_slots"], strict=False):
        set_changed(slot, "link", link)
        if link == "OBJECT":
            mat = ctx.resolve(mat_uuid)
            if slot.material != mat:
                slot.material = mat
    return ob


def apply_transform(ob: bpy.types.Object, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    set_changed(ob, "rotation_mode", doc["rotation_mode"])
    for attr in TRANSFORM_PROPS:
        set_changed(ob, attr, doc[attr])
    flat = doc["parent_inverse"]
    matrix = Matrix([flat[0:4], flat[4:8], flat[8:12], flat[12:16]])
    if ob.matrix_parent_inverse != matrix:
        ob.matrix_parent_inverse = matrix
    return ob


def apply_modifiers(ob: bpy.types.Object, doc: list, ctx: ApplyContext) -> bpy.types.ID:
    if [(m.name, m.type) for m in ob.modifiers] != [(d["name"], d["type"]) for d in doc]:
        ob.modifiers.clear()
        for d in doc:
            try:
                ob.modifiers.new(d["name"], d["type"])
            except (TypeError, RuntimeError):
                continue
    by_name = {m.name: m for m in ob.modifiers}
    for d in doc:
        mod = by_name.get(d["name"])
        if mod is None:
            continue
        set_changed(mod, "show_viewport", d["show_viewport"])
        set_changed(mod, "show_render", d["show_render"])
        rna.write_props(mod, d["props"], ctx.resolve)
    return ob


def apply_anim(ob: bpy.types.Object, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    action = ctx.resolve(doc["action"])
    if action is None:
        if ob.animation_data is not None and ob.animation_data.action is not None:
            ob.animation_data.action = None
        return ob
    ad = ob.animation_data or ob.animation_data_create()
    if ad.action != action:
        ad.action = action
    slot = next((s for s in action.slots if s.identifier == doc["slot"]), None)
    if slot is not None and ad.action_slot != slot:
        ad.action_slot = slot
    return ob


def apply_pose(ob: bpy.types.Object, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    if ob.type != "ARMATURE":
        return ob
    wanted = doc["bones"]

    def incomplete() -> bool:
        return ob.pose is None or any(d["name"] not in ob.pose.bones for d in wanted)

    if wanted and incomplete():
        # The pose is rebuilt from the armature's bones when the object is evaluated in a scene
        # (which need not be the window's scene).
        ob.update_tag()
        for scene in ob.users_scene:
            evaluate_without_animation(scene)
    if incomplete():
        # The object is not in the view layer yet, or its armature's bones have not arrived:
        # tried again at the end of each step.
        ctx.retry_after_step(ids.get_uuid(ob))
        return ob
    for d in wanted:
        pb = ob.pose.bones[d["name"]]
        for attr in POSE_BONE_PROPS:
            set_changed(pb, attr, d[attr])
    return ob


def make_kind(data_kinds: Iterable[Kind]) -> Kind:
    """The object kind: objects whose type is EMPTY or one of the ``object_types`` of ``data_kinds``."""
    # Object.type of a synchronised object -> the kind of its data (EMPTY has no data).
    by_type: dict[str, str | None] = {"EMPTY": None}
    by_type.update({t: kind.name for kind in data_kinds for t in kind.object_types})
    return Kind(
        name="obj",
        collection="objects",
        rna_type="Object",
        parts={
            "meta": apply_meta,
            "transform": apply_transform,
            "modifiers": apply_modifiers,
            "anim": apply_anim,
            "pose": apply_pose,
        },
        create=create,
        serialise=functools.partial(serialise, data_kinds=by_type),
        describe=describe,
        accepts=lambda ob: ob.type in by_type,
    )
