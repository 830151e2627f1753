"""Cameras (kind ``cam``): settings with depth of field (focus object as a link) and stereo."""

from __future__ import annotations

import bpy

from .. import animation, extras
from ..context import ApplyContext, ReadContext
from ..settings import apply_name, placeholder_name, setting_items, settings_part
from .base import Kind

CAMERA_SKIP = ("angle", "angle_x", "angle_y")


def serialise(cam: bpy.types.Camera, ctx: ReadContext) -> dict[str, object]:
    return {
        "meta": {},
        "name": cam.name,
        "set": setting_items(ctx.props(cam, skip=CAMERA_SKIP, nested=("dof", "stereo"))),
        "anim": animation.read(cam, ctx),
        **extras.read(cam, ctx),
    }


def describe(cam: bpy.types.Camera, ctx: ReadContext) -> dict:
    return {
        "name": cam.name,
        "props": ctx.props(cam, skip=CAMERA_SKIP, nested=("dof", "stereo")),
        "anim": animation.describe(cam, ctx),
        **extras.describe(cam),
    }


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return bpy.data.cameras.new(placeholder_name(uuid))


def stub(name: str, object_type: str) -> bpy.types.ID:
    return bpy.data.cameras.new(name)


def apply_meta(cam: bpy.types.Camera, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return cam


KIND = Kind(
    name="cam",
    collection="cameras",
    rna_type="Camera",
    parts={
        "meta": apply_meta,
        "name": apply_name,
        "set": settings_part(),
        "anim": animation.apply_part,
        **extras.PARTS,
    },
    create=create,
    serialise=serialise,
    describe=describe,
    stub=stub,
    object_types=("CAMERA",),
)
