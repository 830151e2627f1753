"""What an armature object carries per pose bone beside its transform (``obj/<u>/pose/<bone>``):
custom properties (``obj/<u>/pbprop/<bone>/<name>``) and constraints (constraints.py); finding a pose bone
while applying (the pose is built only when the object is evaluated in a scene)."""

from __future__ import annotations

import bpy

from . import custom_props, ids, rna
from .context import ApplyContext, ReadContext
from .evaluate import evaluate_without_animation
from .items import Items


def find(ob: bpy.types.Object, name: str, ctx: ApplyContext) -> bpy.types.PoseBone | None:
    """Pose bone ``name`` of ``ob``, building the pose if needed; None (and a retry at the end of the
    applier's step) while the object is in no scene or its armature's bones have not arrived."""
    if ob.type != "ARMATURE":
        return None

    def missing() -> bool:
        return ob.pose is None or name not in ob.pose.bones

    bones = getattr(ob.data, "bones", None)
    if missing() and bones is not None and name in bones:
        # The pose is rebuilt from the armature's bones when the object is evaluated in a scene
        # (which need not be the window's scene). Not before the bone has arrived: evaluating could not
        # make it, and a retry after every step would evaluate the scene each time.
        ob.update_tag()
        for scene in ob.users_scene:
            evaluate_without_animation(scene)
    if missing():
        data_uuid = ids.peek_uuid(ob.data) if ob.data is not None else None
        if data_uuid is not None and (bones is None or name not in bones):
            ctx.wait_for("bones", data_uuid)  # the bone has not arrived: trying after every step is quadratic
        else:
            ctx.retry_after_step(ids.get_uuid(ob))  # in no scene yet: evaluated once its collections arrive
        return None
    return ob.pose.bones[name]


def read_props(ob: bpy.types.Object, ctx: ReadContext) -> dict[tuple[str, ...], dict]:
    """Items of the ``pbprop`` part: (bone, property) -> custom_props document."""
    out: dict[tuple[str, ...], dict] = {}
    if ob.pose is not None:
        for pb in ob.pose.bones:
            out.update(custom_props.items(pb, ctx, pb.name))
    return out


def describe_props(ob: bpy.types.Object) -> dict:
    if ob.pose is None:
        return {}
    return {pb.name: custom_props.describe(pb) for pb in ob.pose.bones if pb.keys()}


def _apply_prop(ob: bpy.types.Object, item: tuple[str, ...], doc: dict | None, ctx: ApplyContext):
    bone, name = item
    if doc is None and (ob.pose is None or bone not in ob.pose.bones):
        return ob  # gone with its bone
    pb = find(ob, bone, ctx)
    if pb is not None:
        custom_props.write(pb, name, doc, ctx)
    return ob


PROPS_PART = Items(_apply_prop, depth=2)


# Pose bone transforms travel in obj/<u>/pose/<bone>; the rest of a pose bone's settings (custom shape,
# IK limits and stretch, B-Bone pose curves, locks) one key each: obj/<u>/pbset/<bone>/<setting>.
SETTINGS_SKIP = (
    "rotation_mode",
    "location",
    "rotation_quaternion",
    "rotation_euler",
    "rotation_axis_angle",
    "scale",
    "custom_shape_transform",
    "matrix",  # the posed matrices follow from the transform, the constraints and the parents
    "matrix_basis",
)


def read_settings(ob: bpy.types.Object, ctx: ReadContext) -> dict[tuple[str, ...], object]:
    out: dict[tuple[str, ...], object] = {}
    if ob.pose is not None:
        for pb in ob.pose.bones:
            for attr, value in ctx.props(pb, skip=SETTINGS_SKIP).items():
                out[(pb.name, attr)] = value
    return out


def describe_settings(ob: bpy.types.Object, ctx: ReadContext) -> dict:
    if ob.pose is None:
        return {}
    return {pb.name: ctx.props(pb, skip=SETTINGS_SKIP) for pb in ob.pose.bones}


def _apply_setting(ob: bpy.types.Object, item: tuple[str, ...], doc: object, ctx: ApplyContext):
    bone, attr = item
    if doc is None:
        return ob  # a setting's key goes away only with its bone
    pb = find(ob, bone, ctx)
    if pb is not None:
        rna.write_props(pb, {attr: doc}, ctx.resolve)
    return ob


SETTINGS_PART = Items(_apply_setting, depth=2)
