"""Scenes (kind ``scene``): frame range, fps, resolution, camera, world, active clip.

The current frame is each artist's own (their presence shows it): playing and scrubbing send nothing.

Blender always needs one scene: a local scene without a uuid (or one
marked with ``ids.ADOPT_PROP``) is taken over by the room's scene instead of
making a second one, and deleting the last scene only marks it so.
"""

from __future__ import annotations

import bpy

from .. import ids
from ..assign import set_changed
from ..context import ApplyContext, ReadContext
from ..settings import apply_name, placeholder_name
from .base import Items, Kind

# Scene settings, one key each (``scene/<u>/set/<setting>``): where each lives and whether it is a link.
SETTINGS: dict[str, tuple[str, bool]] = {
    "frame_start": ("scene", False),
    "frame_end": ("scene", False),
    "frame_step": ("scene", False),
    "fps": ("render", False),
    "fps_base": ("render", False),
    "resolution_x": ("render", False),
    "resolution_y": ("render", False),
    "resolution_percentage": ("render", False),
    "camera": ("scene", True),
    "world": ("scene", True),
    "active_clip": ("scene", True),
}


def _holder(scene: bpy.types.Scene, where: str):
    return scene.render if where == "render" else scene


def serialise(scene: bpy.types.Scene, ctx: ReadContext) -> dict[str, object]:
    settings = {}
    for attr, (where, is_link) in SETTINGS.items():
        value = getattr(_holder(scene, where), attr)
        settings[(attr,)] = (
            ctx.ref(value) if is_link else (float(value) if isinstance(value, float) else value)
        )
    return {"meta": {}, "name": scene.name, "set": settings}


def describe(scene: bpy.types.Scene, ctx: ReadContext) -> dict:
    return {
        "name": scene.name,
        "frames": [scene.frame_start, scene.frame_end, scene.frame_step],
        "render": [
            scene.render.fps,
            scene.render.fps_base,
            scene.render.resolution_x,
            scene.render.resolution_y,
            scene.render.resolution_percentage,
        ],
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
    return bpy.data.scenes.new(placeholder_name(uuid))


def remove(scene: bpy.types.Scene) -> None:
    if len(bpy.data.scenes) <= 1:
        # Blender needs one scene: keep it, empty of room identity, ready to be taken over.
        del scene[ids.UUID_PROP]
        scene[ids.ADOPT_PROP] = True
        return
    bpy.data.scenes.remove(scene)


def apply_meta(scene: bpy.types.Scene, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return scene


def apply_setting(scene: bpy.types.Scene, item: tuple[str, ...], doc: object, ctx: ApplyContext):
    spec = SETTINGS.get(item[0])
    if spec is None or (doc is None and not spec[1]):
        return scene
    where, is_link = spec
    holder = _holder(scene, where)
    if is_link:
        target = ctx.resolve(doc)
        if getattr(holder, item[0]) != target:
            setattr(holder, item[0], target)
    else:
        set_changed(holder, item[0], doc)
    return scene


KIND = Kind(
    name="scene",
    collection="scenes",
    rna_type="Scene",
    parts={"meta": apply_meta, "name": apply_name, "set": Items(apply_setting)},
    create=create,
    serialise=serialise,
    describe=describe,
    remove=remove,
    embedded=("collection",),
    members=lambda scene: scene.collection,
)
