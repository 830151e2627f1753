"""Scenes (kind ``scene``): frame range, fps, resolution, camera, world, active clip; the current frame.

Blender always needs one scene: a local scene without a uuid (or one
marked with ``ids.ADOPT_PROP``) is taken over by the room's scene instead of
making a second one, and deleting the last scene only marks it so.
"""

from __future__ import annotations

import bpy

from .. import ids
from ..assign import rename, set_changed
from ..context import ApplyContext, ReadContext
from .base import Kind


def serialise(scene: bpy.types.Scene, ctx: ReadContext) -> dict[str, object]:
    render = scene.render
    return {
        "meta": {
            "name": scene.name,
            "frame_start": scene.frame_start,
            "frame_end": scene.frame_end,
            "frame_step": scene.frame_step,
            "fps": render.fps,
            "fps_base": float(render.fps_base),
            "resolution": [render.resolution_x, render.resolution_y, render.resolution_percentage],
            "camera": ctx.ref(scene.camera),
            "world": ctx.ref(scene.world),
            "active_clip": ctx.ref(scene.active_clip),
        },
        "frame": {"current": scene.frame_current},
    }


def describe(scene: bpy.types.Scene, ctx: ReadContext) -> dict:
    return {
        "name": scene.name,
        "frames": [scene.frame_start, scene.frame_end, scene.frame_current],
        "camera": ctx.ref(scene.camera),
        "world": ctx.ref(scene.world),
        "active_clip": ctx.ref(scene.active_clip),
        "children": sorted(ctx.ref(c) for c in scene.collection.children if ctx.is_synced(c)),
        "objects": sorted(ctx.ref(o) for o in scene.collection.objects if ctx.is_synced(o)),
    }


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    for scene in bpy.data.scenes:
        if ids.peek_uuid(scene) is None or ids.ADOPT_PROP in scene:
            if ids.ADOPT_PROP in scene:
                del scene[ids.ADOPT_PROP]
            old = ids.peek_uuid(scene)
            if old is not None:
                ctx.forget(old)
            return scene
    return bpy.data.scenes.new(doc["name"])


def remove(scene: bpy.types.Scene) -> None:
    if len(bpy.data.scenes) <= 1:
        # Blender needs one scene: keep it, empty of room identity, ready to be taken over.
        del scene[ids.UUID_PROP]
        scene[ids.ADOPT_PROP] = True
        return
    bpy.data.scenes.remove(scene)


def apply_meta(scene: bpy.types.Scene, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    rename(scene, doc["name"])
    for attr in ("frame_start", "frame_end", "frame_step"):
        set_changed(scene, attr, doc[attr])
    render = scene.render
    set_changed(render, "fps", doc["fps"])
    set_changed(render, "fps_base", doc["fps_base"])
    rx, ry, rp = doc["resolution"]
    set_changed(render, "resolution_x", rx)
    set_changed(render, "resolution_y", ry)
    set_changed(render, "resolution_percentage", rp)
    camera = ctx.resolve(doc["camera"])
    if scene.camera != camera:
        scene.camera = camera
    world = ctx.resolve(doc["world"])
    if scene.world != world:
        scene.world = world
    clip = ctx.resolve(doc.get("active_clip"))
    if scene.active_clip != clip:
        scene.active_clip = clip
    return scene


def apply_frame(scene: bpy.types.Scene, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    set_changed(scene, "frame_current", doc["current"])
    return scene


KIND = Kind(
    name="scene",
    collection="scenes",
    rna_type="Scene",
    parts={"meta": apply_meta, "frame": apply_frame},
    create=create,
    serialise=serialise,
    describe=describe,
    remove=remove,
    embedded=("collection",),
    members=lambda scene: scene.collection,
)
