"""Cameras (kind ``cam``): settings with depth of field (focus object as a link) and stereo, background
images."""

from __future__ import annotations

import bpy

from .. import animation, extras, rna, structs
from ..context import ApplyContext, ReadContext
from ..settings import apply_name, setting_items, settings_part
from .base import Kind

CAMERA_SKIP = ("angle", "angle_x", "angle_y")
BACKGROUND_SKIP = ("show_expanded",)  # a panel folded in each artist's interface


def read_backgrounds(cam: bpy.types.Camera, ctx: ReadContext) -> list[dict[str, object]]:
    """The background images, in order: source, image or movie clip (a uuid; one that does not travel is
    left out: each receiver keeps its own), placement, opacity, depth, frame method and the image user."""
    return [{**ctx.props(bg, skip=BACKGROUND_SKIP), **structs.read(bg, ctx)} for bg in cam.background_images]


def apply_backgrounds(cam: bpy.types.Camera, doc: list, ctx: ApplyContext) -> bpy.types.ID:
    """As many background images as listed, each written in place (one that links to what has not
    arrived is written again once it has)."""
    backgrounds = cam.background_images
    while len(backgrounds) > len(doc):
        backgrounds.remove(backgrounds[len(backgrounds) - 1])
    while len(backgrounds) < len(doc):
        backgrounds.new()
    for bg, values in zip(backgrounds, doc, strict=True):
        plain = {k: v for k, v in values.items() if not structs.write(bg, k, v)}  # the image user
        rna.write_props(bg, plain, ctx.resolve, first=("source",))
    return cam


def serialise(cam: bpy.types.Camera, ctx: ReadContext) -> dict[str, object]:
    return {
        "meta": {},
        "name": cam.name,
        "set": setting_items(ctx.props(cam, skip=CAMERA_SKIP, nested=("dof", "stereo"))),
        "bg": read_backgrounds(cam, ctx),
        "anim": animation.read(cam, ctx),
        **extras.read(cam, ctx),
    }


def describe(cam: bpy.types.Camera, ctx: ReadContext) -> dict:
    return {
        "name": cam.name,
        "props": ctx.props(cam, skip=CAMERA_SKIP, nested=("dof", "stereo")),
        "backgrounds": read_backgrounds(cam, ctx),
        "anim": animation.describe(cam, ctx),
        **extras.describe(cam),
    }


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return bpy.data.cameras.new(ctx.new_name(uuid))


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
        "bg": apply_backgrounds,
        "anim": animation.apply_part,
        **extras.PARTS,
    },
    create=create,
    serialise=serialise,
    describe=describe,
    stub=stub,
    object_types=("CAMERA",),
)
