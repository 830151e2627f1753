"""Armatures (kind ``arm``): settings and bones (an armature object's pose is ``obj/pose``).

Bones exist as editable bones only in edit mode: they are applied through
edit mode on a throw-away object using the armature.
"""

from __future__ import annotations

import contextlib

import bpy

from .. import bone_collections, custom_props, extras, ids, rna
from ..arrays import floats
from ..assign import rename, set_changed
from ..context import ApplyContext, ReadContext
from ..evaluate import animation_detached
from ..settings import apply_name, setting_items, settings_part
from .base import Items, Kind

BONE_PROPS = (
    "use_deform",
    "envelope_distance",
    "envelope_weight",
    "head_radius",
    "tail_radius",
    "use_envelope_multiply",
    "use_inherit_rotation",
    "inherit_scale",
    "use_local_location",
    "use_relative_parent",
    "bbone_segments",
    # B-Bone shape (the rest pose's; the pose's own B-Bone curves are obj/<u>/pbset/…)
    "bbone_x",
    "bbone_z",
    "bbone_mapping_mode",
    "bbone_easein",
    "bbone_easeout",
    "bbone_curveinx",
    "bbone_curveinz",
    "bbone_curveoutx",
    "bbone_curveoutz",
    "bbone_rollin",
    "bbone_rollout",
    "use_endroll_as_inroll",
    "bbone_scalein",
    "bbone_scaleout",
    "bbone_handle_type_start",
    "bbone_handle_type_end",
    "hide",
)
ROLL_DIGITS = 5  # the roll is derived from the bone matrix: rounded so float noise is not a change


HANDLES = ("bbone_custom_handle_start", "bbone_custom_handle_end")  # another bone of the armature, by name


def _handles(bone: bpy.types.Bone) -> dict[str, str | None]:
    return {attr: getattr(bone, attr).name if getattr(bone, attr) is not None else None for attr in HANDLES}


def bone_roll(bone: bpy.types.Bone | bpy.types.EditBone) -> float:
    """From the bone's matrix (an edit bone's too: its roll is any angle, the matrix's is within ±pi)."""
    matrix = bone.matrix if isinstance(bone, bpy.types.EditBone) else bone.matrix_local
    roll = round(float(bpy.types.Bone.AxisRollFromMatrix(matrix.to_3x3())[1]), ROLL_DIGITS)
    return 0.0 if roll == 0 else roll


def _rest(bone: bpy.types.Bone | bpy.types.EditBone) -> tuple[list[float], list[float]]:
    if isinstance(bone, bpy.types.EditBone):
        return floats(bone.head), floats(bone.tail)
    return floats(bone.head_local), floats(bone.tail_local)


def serialise(arm: bpy.types.Armature, ctx: ReadContext) -> dict[str, object]:
    bones = []
    # In edit mode the bones are stale until the artist leaves it: the edit bones, with their custom
    # properties and collections, are what the artist sees (live edit mode, edit_mode.py).
    current = arm.edit_bones if arm.is_editmode else arm.bones
    for bone in sorted(current, key=lambda b: b.name):
        head, tail = _rest(bone)
        doc: dict[str, object] = {
            "name": bone.name,
            "parent": bone.parent.name if bone.parent is not None else None,
            "head": head,
            "tail": tail,
            "roll": bone_roll(bone),
            "use_connect": bone.use_connect,
        }
        doc.update({attr: rna.plain(getattr(bone, attr)) for attr in BONE_PROPS})
        doc.update(_handles(bone))
        bones.append(doc)
    return {
        "meta": {},
        "name": arm.name,
        "set": setting_items(ctx.props(arm)),
        "bones": bones,
        "boneprop": {
            item: doc for bone in current for item, doc in custom_props.items(bone, ctx, bone.name).items()
        },
        "bcoll": bone_collections.read(arm, ctx, current),
        **extras.read(arm, ctx),
    }


def describe(arm: bpy.types.Armature, ctx: ReadContext) -> dict:
    bones = {
        bone.name: {
            "parent": bone.parent.name if bone.parent is not None else None,
            "head": floats(bone.head_local),
            "tail": floats(bone.tail_local),
            "roll": bone_roll(bone),
            "use_connect": bone.use_connect,
            "props": [rna.plain(getattr(bone, attr)) for attr in BONE_PROPS],
            "handles": _handles(bone),
        }
        for bone in arm.bones
    }
    bone_props = {bone.name: custom_props.describe(bone) for bone in arm.bones if bone.keys()}
    return {
        "name": arm.name,
        "props": ctx.props(arm),
        "bones": bones,
        "bone_props": bone_props,
        "bone_collections": bone_collections.describe(arm, ctx),
        **extras.describe(arm),
    }


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return bpy.data.armatures.new(ctx.new_name(uuid))


def stub(name: str, object_type: str) -> bpy.types.ID:
    return bpy.data.armatures.new(name)


@contextlib.contextmanager
def armature_edit_mode(arm: bpy.types.Armature):
    """Edit mode on a throw-away object using ``arm`` (edit bones exist only in edit mode)."""
    ob = bpy.data.objects.new("blendsync-temp", arm)
    scene = bpy.context.scene
    scene.collection.objects.link(ob)
    view_layer = bpy.context.view_layer
    previous = view_layer.objects.active
    view_layer.objects.active = ob
    window = bpy.context.window or bpy.context.window_manager.windows[0]
    try:
        with (
            animation_detached(scene),
            bpy.context.temp_override(
                window=window, scene=scene, view_layer=view_layer, active_object=ob, object=ob
            ),
        ):
            bpy.ops.object.mode_set(mode="EDIT")
            try:
                if ob.mode != "EDIT":
                    raise RuntimeError("cannot enter edit mode on the armature")
                yield
            finally:
                bpy.ops.object.mode_set(mode="OBJECT")
    finally:
        bpy.data.objects.remove(ob)
        if previous is not None and previous.name in view_layer.objects:
            view_layer.objects.active = previous


def apply_meta(arm: bpy.types.Armature, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return arm


def _bones_differ(arm: bpy.types.Armature, doc: list) -> bool:
    current = {b.name: b for b in arm.bones}
    if set(current) != {d["name"] for d in doc}:
        return True
    for d in doc:
        bone = current[d["name"]]
        parent = bone.parent.name if bone.parent is not None else None
        if (
            parent != d["parent"]
            or [float(x) for x in bone.head_local] != d["head"]
            or [float(x) for x in bone.tail_local] != d["tail"]
            or bone_roll(bone) != d["roll"]
            or bone.use_connect != d["use_connect"]
        ):
            return True
    return False


def apply_bones(arm: bpy.types.Armature, doc: list, ctx: ApplyContext) -> bpy.types.ID:
    if _bones_differ(arm, doc):
        with armature_edit_mode(arm):
            edit_bones = arm.edit_bones
            wanted = {d["name"] for d in doc}
            for eb in list(edit_bones):
                if eb.name not in wanted:
                    edit_bones.remove(eb)
            for d in doc:
                if d["name"] not in edit_bones:
                    rename(edit_bones.new(d["name"]), d["name"])
            for d in doc:
                eb = edit_bones[d["name"]]
                eb.use_connect = False
                eb.parent = edit_bones.get(d["parent"]) if d["parent"] else None
            for d in doc:
                eb = edit_bones[d["name"]]
                eb.head = d["head"]
                eb.tail = d["tail"]
                eb.roll = d["roll"]
            for d in doc:
                edit_bones[d["name"]].use_connect = d["use_connect"]
    bones = arm.bones
    for d in doc:
        bone = bones.get(d["name"])
        if bone is not None:
            for attr in BONE_PROPS:
                set_changed(bone, attr, d[attr])
    for d in doc:  # once every bone is there: a handle names another bone
        bone = bones.get(d["name"])
        for attr in HANDLES:
            if bone is not None and _handles(bone)[attr] != d.get(attr):
                setattr(bone, attr, bones.get(d[attr]) if d.get(attr) else None)
    return arm


def apply_bone_prop(arm: bpy.types.Armature, item: tuple[str, ...], doc: dict | None, ctx: ApplyContext):
    """``arm/<u>/boneprop/<bone>/<name>``: a custom property of a bone (the armature's, not the pose's); of
    its edit bone while this artist edits the armature (leaving edit mode writes the edit bones back)."""
    bone = (arm.edit_bones if arm.is_editmode else arm.bones).get(item[0])
    if bone is None:
        if doc is not None:
            ctx.wait_for("bones", ids.get_uuid(arm))
        return arm
    custom_props.write(bone, item[1], doc, ctx)
    return arm


KIND = Kind(
    name="arm",
    collection="armatures",
    rna_type="Armature",
    parts={
        "meta": apply_meta,
        "name": apply_name,
        "set": settings_part(),
        "bones": apply_bones,
        "boneprop": Items(apply_bone_prop, depth=2),
        "bcoll": bone_collections.PART,
        **extras.PARTS,
    },
    create=create,
    serialise=serialise,
    describe=describe,
    stub=stub,
    object_types=("ARMATURE",),
)
