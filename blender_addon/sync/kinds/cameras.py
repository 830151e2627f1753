"""Cameras (kind ``cam``): settings with depth of field (focus object as a link) and stereo."""

from __future__ import annotations

import bpy

from .. import rna
from ..assign import rename
from ..context import ApplyContext, ReadContext
from .base import Kind

CAMERA_SKIP = ("angle", "angle_x", "angle_y")


def serialise(cam: bpy.types.Camera, ctx: ReadContext) -> dict[str, object]:
    return {"meta": {"name": cam.name, "props": ctx.props(cam, skip=CAMERA_SKIP, nested=("dof", "stereo"))}}


def describe(cam: bpy.types.Camera, ctx: ReadContext) -> dict:
    return {"name": cam.name, "props": ctx.props(cam, skip=CAMERA_SKIP, nested=("dof",))}


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return bpy.data.cameras.new(doc["name"])


def stub(name: str, object_type: str) -> bpy.types.ID:
    return bpy.data.cameras.new(name)


def apply_meta(cam: bpy.types.Camera, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    rename(cam, doc["name"])
    rna.write_props(cam, doc["props"], ctx.resolve, first=("sensor_fit", "sensor_width", "sensor_height"))
    return cam


KIND = Kind(
    name="cam",
    collection="cameras",
    rna_type="Camera",
    parts={"meta": apply_meta},
    create=create,
    serialise=serialise,
    describe=describe,
    stub=stub,
    object_types=("CAMERA",),
)
