"""Objects (kind ``obj``): data link, name, parent, collection membership, settings, transform,
material slots, modifiers, particle systems, animation, the pose of armature objects and what the object
instances.

Each of these is its own key, and the sets and lists among them (the
collections an object is in, its settings, material slots, modifiers and
their settings and inputs) are one key per member, so two artists changing
different ones at the same moment both keep their change.

An object whose data has not arrived gets an empty stand-in made by the
data kind's ``stub``, under the data's uuid; the data's keys fill it in.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence

import bpy
from mathutils import Matrix

from .. import (
    animation,
    constraints,
    extras,
    ids,
    instancing,
    linked,
    modifiers,
    nla,
    object_settings,
    overrides,
    particles,
    pose_bones,
    replacing,
    rna,
    settings,
    shader_effects,
)
from ..arrays import floats, matrix_rows
from ..assign import rename, set_changed
from ..context import ApplyContext, ReadContext
from .base import Items, Kind

POSE_BONE_PROPS = (
    "rotation_mode",
    "location",
    "rotation_quaternion",
    "rotation_euler",
    "rotation_axis_angle",
    "scale",
)
ROTATION_PROPS = ("rotation_euler", "rotation_quaternion", "rotation_axis_angle")
DELTA_PROPS = ("delta_location", "delta_rotation_euler", "delta_scale")
# The parts every new object holds, in the order they are read: keyed only while they differ (Kind.unkeyed;
# its action link too: extras.ACTION_PARTS). No key for a stack's order is an empty stack: a merge reads
# it so (SyncSession._note_sent_mergeable).
UNKEYED: dict[str, object] = {
    "parent": {
        "parent": None,
        "parent_type": "OBJECT",
        "parent_bone": "",
        "parent_inverse": [float(r == c) for r in range(4) for c in range(4)],
    },
    "delta": {"delta_location": [0.0] * 3, "delta_rotation_euler": [0.0] * 3, "delta_scale": [1.0] * 3},
    "instance": {"type": "NONE", "collection": None, "linked": None},
    "modorder": [],
    "conorder": [],
    "rotation": {
        "mode": "XYZ",
        "rotation_euler": [0.0] * 3,
        "rotation_quaternion": [1.0, 0.0, 0.0, 0.0],
        "rotation_axis_angle": [0.0, 0.0, 1.0, 0.0],
    },
    "scale": [1.0] * 3,
}
# Flat settings of an object, one key each (``obj/<u>/set/<attr>``); ``hide`` is the view-layer hide.
SETTINGS = (
    "hide_viewport",
    "hide_render",
    "hide_select",
    "hide",
    "empty_display_type",
    "empty_display_size",
    "display_type",
)
# What Blender gives a new object of any type: a flag is keyed only while it differs, and a deleted key puts
# this back (as the other settings, object_settings.py). Keyed always, they were a quarter of a room of
# boxes' keys, each applied by a joiner.
FLAGS_NEW: dict[str, object] = {
    "hide_viewport": False,
    "hide_render": False,
    "hide_select": False,
    "hide": False,
    "empty_display_type": "PLAIN_AXES",
    "empty_display_size": 1.0,
    "display_type": "TEXTURED",
}


# ---------------------------------------------------------------- read


def read_pose(ob: bpy.types.Object, ctx: ReadContext | None = None) -> dict[str, object]:
    """Pose bone transforms of an armature object, sorted by bone name (with ``ctx``: what animation
    writes read as None, see derived.py)."""
    bones = ob.pose.bones if ob.pose is not None else ()

    def read(pb, attr: str) -> object:
        value = rna.plain(getattr(pb, attr))
        return value if ctx is None else ctx.masked(pb, attr, value)

    return {
        "bones": sorted(
            ({"name": pb.name, **{attr: read(pb, attr) for attr in POSE_BONE_PROPS}} for pb in bones),
            key=lambda b: b["name"],
        )
    }


def _hide_layer(
    ob: bpy.types.Object, scenes: Sequence[bpy.types.Scene] | None = None
) -> bpy.types.ViewLayer | None:
    """The view layer whose eye icon ``hide`` is: the window's if the object is in its scene (what the
    artist toggles), else the first of the first scene by name that has it (``scenes``: the object's, if
    known). Reading the window's layer alone read False for an object only in another scene, so two
    Blenders showing different scenes disagreed on it."""
    if scenes is None:
        scenes = ob.users_scene
    if bpy.context.scene in scenes:
        return bpy.context.view_layer
    for scene in sorted(scenes, key=lambda s: s.name):
        if scene.view_layers:
            return scene.view_layers[0]
    return None


def _hidden(ob: bpy.types.Object, ctx: ReadContext) -> bool:
    layer = _hide_layer(ob, ctx.object_scenes(ob))
    try:
        return layer is not None and bool(ob.hide_get(view_layer=layer))
    except RuntimeError:  # object not in this view layer
        return False


def _setting(ob: bpy.types.Object, attr: str, ctx: ReadContext) -> object:
    if attr == "hide":
        return _hidden(ob, ctx)
    value = getattr(ob, attr)
    return ctx.masked(ob, attr, float(value) if isinstance(value, float) else value)


def _flags(ob: bpy.types.Object, ctx: ReadContext) -> dict[tuple[str, ...], object]:
    """The flags that differ from a new object's (:data:`FLAGS_NEW`; None too: what animation writes), as
    items of the ``set`` part."""
    return settings.differing_items({attr: _setting(ob, attr, ctx) for attr in SETTINGS}, FLAGS_NEW)


def _transform(ob: bpy.types.Object, attr: str, ctx: ReadContext) -> list:
    return ctx.masked(ob, attr, floats(getattr(ob, attr)))  # animated channels: derived.py


def serialise(
    ob: bpy.types.Object, ctx: ReadContext, data_kinds: Mapping[str, str | None]
) -> dict[str, object]:
    data_kind = data_kinds.get(ob.type)
    collections = {r for r in (ctx.collection_ref(c) for c in ctx.object_collections(ob)) if r is not None}
    mods, mod_order, mod_settings, mod_inputs = modifiers.read(ob, ctx)
    effects, effect_order, effect_settings = shader_effects.read(ob, ctx)
    parts: dict[str, object] = {
        "meta": {
            "type": ob.type,
            "data_kind": data_kind,
            "data": ctx.uuid(ob.data) if data_kind else None,
            "linked_data": linked.ref(ob.data, ctx) if data_kind else None,
            "override": overrides.read(ob, ctx),
        },
        "name": ob.name,
        "parent": {
            "parent": ctx.ref(ob.parent),
            "parent_type": ob.parent_type,
            "parent_bone": ob.parent_bone,
            "parent_inverse": matrix_rows(ob.matrix_parent_inverse),
        },
        "in": {(ref,): True for ref in sorted(collections)},
        "set": {**_flags(ob, ctx), **object_settings.read(ob, ctx)},
        "location": _transform(ob, "location", ctx),
        "rotation": {
            "mode": ob.rotation_mode,
            **{attr: _transform(ob, attr, ctx) for attr in ROTATION_PROPS},
        },
        "scale": _transform(ob, "scale", ctx),
        "delta": {attr: _transform(ob, attr, ctx) for attr in DELTA_PROPS},
        "slot": _slots(ob, ctx),
        "mod": mods,
        "modorder": mod_order,
        "modset": mod_settings,
        "modin": mod_inputs,
        "fx": effects,
        **({"fxorder": effect_order} if effect_order else {}),  # only grease pencil objects have effects
        "fxset": effect_settings,
        "anim": animation.read(ob, ctx),
        "instance": instancing.read(ob, ctx),
        "psys": particles.read(ob, ctx),
        **nla.read(ob, ctx, "nla"),
    }
    if ob.type == "ARMATURE":
        # One key per pose bone: two artists posing different bones of one rig keep both.
        parts["pose"] = {(bone["name"],): bone for bone in read_pose(ob, ctx)["bones"]}
        parts["pbprop"] = pose_bones.read_props(ob, ctx)
        parts["pbset"] = pose_bones.read_settings(ob, ctx)
    parts.update(constraints.read_object(ob, ctx))
    parts.update(extras.read(ob, ctx))
    return parts


def describe(ob: bpy.types.Object, ctx: ReadContext) -> dict:
    ad = ob.animation_data
    return {
        "name": ob.name,
        "type": ob.type,
        "data": ctx.uuid(ob.data),
        "linked_data": linked.ref(ob.data, ctx),
        "parent": ctx.ref(ob.parent),
        "parent_type": ob.parent_type,
        "parent_bone": ob.parent_bone,
        "matrix_basis": [floats(row) for row in ob.matrix_basis],
        "matrix_parent_inverse": [floats(row) for row in ob.matrix_parent_inverse],
        "rotation_mode": ob.rotation_mode,
        # The view-layer hide is left out: it is read in the artist's current view layer, which need not
        # be the same scene on every replica.
        "visibility": [ob.hide_viewport, ob.hide_render, ob.hide_select, ob.display_type],
        "collections": sorted(r for r in (ctx.collection_ref(c) for c in ctx.object_collections(ob)) if r),
        "material_slots": [[s.link, ctx.ref(s.material)] for s in ob.material_slots],
        "modifiers": [modifiers.describe(m, ctx) for m in ob.modifiers],
        "effects": shader_effects.describe(ob, ctx),
        "action": ctx.ref(ad.action) if ad is not None else None,
        "slot": ad.action_slot.identifier if ad is not None and ad.action_slot is not None else None,
        "empty": [ob.empty_display_type, ob.empty_display_size] if ob.type == "EMPTY" else None,
        "settings": object_settings.describe(ob, ctx),
        "pose": read_pose(ob) if ob.type == "ARMATURE" else None,
        "instance": instancing.describe(ob, ctx),
        "override": overrides.read(ob, ctx),
        "particles": particles.describe(ob, ctx),
        "pose_props": pose_bones.describe_props(ob) if ob.type == "ARMATURE" else None,
        "pose_settings": pose_bones.describe_settings(ob, ctx) if ob.type == "ARMATURE" else None,
        **constraints.describe_object(ob, ctx),
        "nla": nla.describe(ob),
        **extras.describe(ob),
    }


# ---------------------------------------------------------------- apply


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID | None:
    # A library override is made by the applier (overrides.take_over).
    if doc.get("linked_data"):
        # Data linked from a library: made once the library has linked it (an object's type is its data's).
        data = linked.resolve(doc["linked_data"], ctx)
        return bpy.data.objects.new(ctx.new_name(uuid), data) if data is not None else None
    data = None
    if doc.get("data_kind") and doc.get("data"):
        data = ctx.object_data(doc["data_kind"], doc["data"], doc["type"])
    # The name is a key of its own (obj/<u>/name), applied right after this one: made with it if queued.
    return bpy.data.objects.new(ctx.new_name(uuid), data)


def apply_meta(ob: bpy.types.Object, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    if doc.get("linked_data"):
        data = linked.resolve(doc["linked_data"], ctx)
        if data is not None and ob.data != data:
            ob.data = data
    elif doc.get("data_kind") and doc.get("data"):
        data = ctx.object_data(doc["data_kind"], doc["data"], doc["type"])
        if ob.data != data:
            if ob.type != doc["type"]:
                return _retyped(ob, data, doc["type"], ctx)
            ob.data = data
    return ob


def _retyped(ob: bpy.types.Object, data: bpy.types.ID, doc_type: str, ctx: ApplyContext) -> bpy.types.Object:
    """An object whose type changed (an artist converted a curve to a mesh, which Blender does in place):
    Blender's API cannot change an object's type, so an object of the new type takes its place under its
    uuid (every user moved to it, custom properties and animation carried), and the applier applies the
    object's other keys to it again."""
    name = ob.name
    new = bpy.data.objects.new(name, data)
    if new.type != doc_type:
        bpy.data.objects.remove(new)
        raise ValueError(f"an object of type {doc_type!r} cannot hold {type(data).__name__} data")
    new = replacing.replace(ob, new, bpy.data.objects.remove)
    rename(new, name)  # the old object held the name until it was removed
    ctx.replaced = True
    return new


def apply_name(ob: bpy.types.Object, doc: str, ctx: ApplyContext) -> bpy.types.ID:
    rename(ob, doc)
    return ob


def apply_parent(ob: bpy.types.Object, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    parent = ctx.resolve(doc["parent"])
    if ob.parent != parent and parent is not ob:
        ob.parent = parent
    set_changed(ob, "parent_type", doc["parent_type"])
    set_changed(ob, "parent_bone", doc.get("parent_bone", ""))
    flat = doc["parent_inverse"]
    matrix = Matrix([flat[0:4], flat[4:8], flat[8:12], flat[12:16]])
    if ob.matrix_parent_inverse != matrix:
        ob.matrix_parent_inverse = matrix
    return ob


def _synced_holder(coll: bpy.types.Collection) -> bool:
    """A collection the room owns: a synchronised collection or a synchronised scene's master collection."""
    if ids.peek_uuid(coll) is not None:
        return True
    ptr = coll.as_pointer()
    return any(s.collection.as_pointer() == ptr for s in bpy.data.scenes if ids.peek_uuid(s))


def apply_membership(ob: bpy.types.Object, item: tuple[str, ...], doc: object, ctx: ApplyContext):
    """``obj/<u>/in/<collection or scene uuid>``: present links the object there, deleted unlinks it."""
    (ref,) = item
    if doc is None:
        target = ctx.lookup(ref)
        coll = target.collection if isinstance(target, bpy.types.Scene) else target
        if isinstance(coll, bpy.types.Collection) and _synced_holder(coll):
            ptr = coll.as_pointer()
            if any(c.as_pointer() == ptr for c in ob.users_collection):
                coll.objects.unlink(ob)
        return ob
    coll = ctx.resolve_collection(ref)
    if coll is None or ctx.link_later(ob, ref):
        return ob
    if all(c.as_pointer() != coll.as_pointer() for c in ob.users_collection):
        coll.objects.link(ob)
    return ob


def apply_setting(ob: bpy.types.Object, item: tuple[str, ...], doc: object, ctx: ApplyContext):
    (attr,) = item
    if attr not in SETTINGS:
        return object_settings.apply(ob, attr, doc, ctx)
    if doc is None:
        if not ctx.deleting:  # what animation writes (derived.py)
            return ob
        doc = FLAGS_NEW[attr]
    if attr == "hide":
        view_layer = _hide_layer(ob)
        try:
            if view_layer is None:
                raise RuntimeError("in no scene")
            if bool(ob.hide_get(view_layer=view_layer)) != doc:
                ob.hide_set(doc, view_layer=view_layer)
        except RuntimeError:
            # Not in the view layer (yet): a hidden object is hidden again once its collections arrive.
            if doc and not ob.users_scene:
                ctx.retry_after_step(ids.get_uuid(ob))
        return ob
    set_changed(ob, attr, doc)
    return ob


def apply_location(ob: bpy.types.Object, doc: list, ctx: ApplyContext) -> bpy.types.ID:
    set_changed(ob, "location", doc)
    return ob


def apply_rotation(ob: bpy.types.Object, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    set_changed(ob, "rotation_mode", doc["mode"])
    for attr in ROTATION_PROPS:
        set_changed(ob, attr, doc[attr])
    return ob


def apply_scale(ob: bpy.types.Object, doc: list, ctx: ApplyContext) -> bpy.types.ID:
    set_changed(ob, "scale", doc)
    return ob


def apply_delta(ob: bpy.types.Object, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    for attr in DELTA_PROPS:
        set_changed(ob, attr, doc[attr])
    return ob


def _slots(ob: bpy.types.Object, ctx: ReadContext) -> dict[tuple[str], list]:
    """Each material slot's link and (linked to the object) material, but a slot linked to the data (what
    a new object's slots are) has no key; an override's all have one, as it is made from what it
    overrides."""
    every = ob.override_library is not None
    return {
        (str(i),): [slot.link, ctx.ref(slot.material) if slot.link == "OBJECT" else None]
        for i, slot in enumerate(ob.material_slots)
        if every or slot.link != "DATA"
    }


def apply_slot(ob: bpy.types.Object, item: tuple[str, ...], doc: list | None, ctx: ApplyContext):
    """``obj/<u>/slot/<index>``: ``[link, material uuid]``; the number of slots follows the data. A deleted
    key links the slot to the data again (a slot gone with the data's material list: nothing to do)."""
    index = int(item[0]) if item[0].isdigit() else -1
    if doc is None:
        if 0 <= index < len(ob.material_slots):
            set_changed(ob.material_slots[index], "link", "DATA")
        return ob
    if index < 0:
        ctx.report(f"material slot {item[0]!r} is not an index")
        return ob
    if index >= len(ob.material_slots):
        data = ob.data
        if data is not None and ids.peek_uuid(data) is not None:
            # The data's material list has not arrived yet: apply again once it has.
            ctx.wait_for("meta", ids.peek_uuid(data))
        return ob
    slot = ob.material_slots[index]
    link, mat_uuid = doc
    set_changed(slot, "link", link)
    if link == "OBJECT":
        mat = ctx.resolve(mat_uuid)
        if slot.material != mat:
            slot.material = mat
    return ob


def apply_anim(ob: bpy.types.Object, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    animation.apply(ob, doc, ctx)
    return ob


def apply_pose_bone(ob: bpy.types.Object, item: tuple[str, ...], doc: dict | None, ctx: ApplyContext):
    """``obj/<u>/pose/<bone>``: one pose bone's transform (a deleted key goes with its bone)."""
    if ob.type != "ARMATURE" or doc is None:
        return ob
    pb = pose_bones.find(ob, item[0], ctx)
    if pb is None:
        return ob
    for attr in POSE_BONE_PROPS:
        set_changed(pb, attr, doc[attr])
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
            "name": apply_name,
            "parent": apply_parent,
            "in": Items(apply_membership),
            "set": Items(apply_setting),
            "location": apply_location,
            "rotation": apply_rotation,
            "scale": apply_scale,
            "delta": apply_delta,
            "slot": Items(apply_slot),
            "mod": Items(modifiers.apply_modifier),
            "modorder": modifiers.apply_order,
            "modset": Items(modifiers.apply_setting, depth=2),
            "modin": Items(modifiers.apply_input, depth=2),
            "fx": Items(shader_effects.apply_effect),
            "fxorder": shader_effects.apply_order,
            "fxset": Items(shader_effects.apply_setting, depth=2),
            "anim": apply_anim,
            **nla.parts("nla"),
            "pose": Items(apply_pose_bone),
            "instance": instancing.apply,
            "psys": Items(particles.apply),
            "pbprop": pose_bones.PROPS_PART,
            "pbset": pose_bones.SETTINGS_PART,
            **constraints.PARTS,
            **extras.PARTS,
        },
        create=create,
        serialise=functools.partial(serialise, data_kinds=by_type),
        describe=describe,
        accepts=lambda ob: ob.type in by_type,
        unkeyed=UNKEYED,
    )
