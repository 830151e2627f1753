"""Scenes (kind ``scene``): frame range, fps, resolution, world, active clip, render and look settings
(scene_settings.py), timeline markers (markers.py), view layers (view_layers.py),
Freestyle (the render switch and line thickness; each view layer's settings and line sets, freestyle.py); the
view state.

The view state (``scene/<u>/view/<item>``: active camera, current frame, preview range, the viewport shading
of the artist's 3D views, the same under every scene) is read and applied here like any part, but it is each
artist's own: the add-on sends and applies it only while the artist follows the shared view
(blender_addon/view_state.py), and the scene hash leaves it out: playing and scrubbing send nothing
unless the artist follows the shared view.

Blender always needs one scene: a local scene without a uuid (or one
marked with ``ids.ADOPT_PROP``) is taken over by the room's scene instead of
making a second one, and deleting the last scene only marks it so.
"""

from __future__ import annotations

import bpy

from .. import freestyle, ids, markers, scene_settings, view_layers
from ..assign import set_changed
from ..context import ApplyContext, ReadContext
from ..evaluate import make_evaluable
from ..settings import apply_name
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
    "world": ("scene", True),
    "active_clip": ("scene", True),
    "use_freestyle": ("render", False),
    "line_thickness_mode": ("render", False),
    "line_thickness": ("render", False),
}


def _holder(scene: bpy.types.Scene, where: str):
    return scene.render if where == "render" else scene


SHADING_TYPES = ("WIREFRAME", "SOLID", "MATERIAL", "RENDERED")


def _views_3d():
    """The 3D views of every window (the shading is the artist's, whichever scene a window shows)."""
    for window in getattr(bpy.context.window_manager, "windows", ()):
        if window.screen is None:
            continue
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                yield area.spaces.active


def serialise(scene: bpy.types.Scene, ctx: ReadContext) -> dict[str, object]:
    settings = {}
    for attr, (where, is_link) in SETTINGS.items():
        value = getattr(_holder(scene, where), attr)
        settings[(attr,)] = (
            ctx.ref(value) if is_link else (float(value) if isinstance(value, float) else value)
        )
    view: dict[tuple[str, ...], object] = {
        ("camera",): ctx.ref(scene.camera),
        ("frame",): scene.frame_current,
        ("preview",): [scene.use_preview_range, scene.frame_preview_start, scene.frame_preview_end],
    }
    shading = next((space.shading.type for space in _views_3d()), None)
    if shading is not None:
        view[("shading",)] = shading
    return {
        "meta": {},
        "name": scene.name,
        "set": settings,
        scene_settings.PART: scene_settings.read(scene, ctx),
        markers.PART: markers.read(scene, ctx),
        "view": view,
        **view_layers.read(scene, ctx),
        **freestyle.read(scene, ctx),
    }


def describe(scene: bpy.types.Scene, ctx: ReadContext) -> dict:
    # Without the view state: each artist has their own.
    return {
        "name": scene.name,
        "frames": [scene.frame_start, scene.frame_end, scene.frame_step],
        "render": [
            scene.render.fps,
            scene.render.fps_base,
            scene.render.resolution_x,
            scene.render.resolution_y,
            scene.render.resolution_percentage,
            scene.render.use_freestyle,
            scene.render.line_thickness_mode,
            scene.render.line_thickness,
        ],
        "settings": scene_settings.describe(scene, ctx),
        "markers": markers.describe(scene, ctx),
        "view_layers": view_layers.describe(scene, ctx),
        "freestyle": freestyle.describe(scene, ctx),
        "world": ctx.ref(scene.world),
        "active_clip": ctx.ref(scene.active_clip),
        "children": sorted(ctx.ref(c) for c in scene.collection.children if ctx.is_synced(c)),
        "objects": sorted(ctx.ref(o) for o in scene.collection.objects if ctx.is_synced(o)),
    }


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    scene = next((s for s in bpy.data.scenes if ids.peek_uuid(s) is None or ids.ADOPT_PROP in s), None)
    if scene is None:
        scene = bpy.data.scenes.new(ctx.new_name(uuid))
    else:
        if ids.ADOPT_PROP in scene:
            del scene[ids.ADOPT_PROP]
        old = ids.peek_uuid(scene)
        if old is not None:
            ctx.forget(old)
        freestyle.clear(scene)  # the room's line sets arrive as keys
    view_layers.prepare(scene)  # the room's view layers arrive as keys: the first takes this one over
    # Whether a window shows it or not, evaluating it writes its animation (evaluate.make_evaluable).
    make_evaluable(scene)
    return scene


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


def apply_view(scene: bpy.types.Scene, item: tuple[str, ...], doc: object, ctx: ApplyContext):
    name = item[0]
    if doc is None and name != "camera":
        return scene
    if name == "camera":
        target = ctx.resolve(doc)
        if scene.camera != target:
            scene.camera = target
    elif name == "frame" and isinstance(doc, int):
        set_changed(scene, "frame_current", doc)
    elif name == "preview" and isinstance(doc, list) and len(doc) == 3:
        set_changed(scene, "use_preview_range", bool(doc[0]))
        set_changed(scene, "frame_preview_start", doc[1])
        set_changed(scene, "frame_preview_end", doc[2])
    elif name == "shading" and doc in SHADING_TYPES:
        for space in _views_3d():
            if space.shading.type != doc:
                space.shading.type = doc
    return scene


KIND = Kind(
    name="scene",
    collection="scenes",
    rna_type="Scene",
    parts={
        "meta": apply_meta,
        "name": apply_name,
        "set": Items(apply_setting),
        scene_settings.PART: Items(scene_settings.apply, depth=2),
        markers.PART: Items(markers.apply),
        "view": Items(apply_view),
        **view_layers.PARTS,  # before the Freestyle parts, which name view layers
        **freestyle.PARTS,
    },
    create=create,
    serialise=serialise,
    describe=describe,
    remove=remove,
    embedded=("collection",),
    members=lambda scene: scene.collection,
)
