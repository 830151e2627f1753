"""A scene's render and look settings beyond its first ones (``scenes.SETTINGS``): the render engine, output,
motion blur, simplify, film, stamp and the image format; EEVEE's and Cycles' settings; colour management;
units; gravity, audio and the rigid body world (rigid_bodies.py); the Workbench render's settings
(``scene/<u>/render/<struct>/<setting>``).

One key per setting of each struct, so a lighter raising Cycles' samples and another changing the view
transform keep both. A nested struct (the output's image format, FFmpeg, baking, colour management, units)
is one setting: its members depend on each other (a look exists for one view
transform, a colour depth for one file format, a length unit for one unit system), so it is written twice,
the second pass taking what the first made possible. The view transform's curves, while they are used, go
in the colour management setting as a curve mapping document (structs.py). What belongs to one machine
(Cycles' device and debug options, threads, the compositor's device, persistent data) or to each artist's
playback and tools (current frame, preview range, sync mode, scrubbing audio, the 3D cursor, tool
settings) stays each artist's. Rendering with a render engine that is not registered here leaves its
settings to those who have it.
"""

from __future__ import annotations

import bpy

from . import rigid_bodies, rna, structs
from .context import ApplyContext, ReadContext

PART = "render"

# struct name -> (what to leave out, nested structs read as one setting each)
STRUCTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "scene": (
        (
            "camera",
            "world",
            "active_clip",
            "frame_current",
            "frame_subframe",
            "frame_float",
            "frame_start",
            "frame_end",
            "frame_step",
            "use_preview_range",
            "frame_preview_start",
            "frame_preview_end",
            "time_jump_unit",
            "time_jump_delta",
            "lock_frame_selection_to_range",
            "show_subframe",
            "show_keys_from_selected_only",
            "sync_mode",
            "use_audio",
            "use_audio_scrub",
            "use_nodes",  # deprecated: the compositor's node group says it
        ),
        (
            "view_settings",
            "display_settings",
            "sequencer_colorspace_settings",
            "unit_settings",
            "safe_areas",
        ),
    ),
    "render": (
        (
            "fps",
            "fps_base",
            "resolution_x",
            "resolution_y",
            "resolution_percentage",
            "use_freestyle",
            "line_thickness_mode",
            "line_thickness",
            "threads",
            "threads_mode",
            "preview_pixel_size",
            "use_lock_interface",
            "use_persistent_data",
            "compositor_device",
            "compositor_denoise_device",
        ),
        ("image_settings", "ffmpeg", "bake"),
    ),
    "eevee": ((), ("ray_tracing_options",)),
    "cycles": (
        (
            "device",
            "preview_pause",
            "denoising_use_gpu",
            "preview_denoising_use_gpu",
            "use_auto_tile",
            "tile_size",
        ),
        (),
    ),
    "cycles_curves": ((), ()),
    "display": ((), ("shading",)),
    "grease_pencil_settings": ((), ()),
    "hydra": ((), ()),
}


# The Workbench render's lighting, colour and options (``display.shading``) but what only a 3D view shows: its
# wireframe colour (a scene's holds 0, which matches none of its items: Blender warned on every read), the
# pass and AOV it shows and whether it runs the compositor.
SHADING = "shading"
SHADING_SKIP = ("wireframe_color_type", "render_pass", "aov_name", "use_compositor")

# Members of a nested struct that Blender derives from the others: written last, they would round those.
DERIVED = {"view_settings": ("white_balance_whitepoint",)}
VIEW_CURVES = "curve_mapping"  # the view transform's curves, in the colour management setting while used


def _struct(scene: bpy.types.Scene, name: str):
    return scene if name == "scene" else getattr(scene, name, None)


def _read_struct(scene: bpy.types.Scene, name: str, ctx: ReadContext) -> dict[str, object]:
    struct = _struct(scene, name)
    if struct is None:
        return {}
    skip, nested = STRUCTS[name]
    values = ctx.props(struct, skip=skip, nested=tuple(n for n in nested if n != SHADING))
    if SHADING in nested:
        values[SHADING] = ctx.props(struct.shading, skip=SHADING_SKIP)
    values.update(structs.read(struct, ctx))  # a curve mapping (the motion blur shutter curve...)
    for sub, derived in DERIVED.items():
        if isinstance(values.get(sub), dict):
            values[sub] = {attr: value for attr, value in values[sub].items() if attr not in derived}
    view = values.get("view_settings")
    if isinstance(view, dict) and not view.get("use_white_balance"):
        # Off, they do nothing; and a scene made by scenes.new() holds 0 there, below what can be set.
        view.pop("white_balance_temperature", None)
        view.pop("white_balance_tint", None)
    if isinstance(view, dict) and view.get("use_curve_mapping"):  # off, the curves do nothing
        view[VIEW_CURVES] = structs.read_curve_mapping(scene.view_settings.curve_mapping, ctx)
    if name == "scene" and scene.rigidbody_world is not None:  # keyed while the scene has one
        values[rigid_bodies.WORLD] = rigid_bodies.read_world(scene, ctx)
    return {attr: value for attr, value in values.items() if not attr.startswith("debug_")}


def read(scene: bpy.types.Scene, ctx: ReadContext) -> dict[tuple[str, ...], object]:
    """The ``render`` part's items: ``(struct, setting)`` -> value."""
    items: dict[tuple[str, ...], object] = {}
    for name in STRUCTS:
        for attr, value in sorted(_read_struct(scene, name, ctx).items()):
            items[(name, attr)] = value
    return items


def describe(scene: bpy.types.Scene, ctx: ReadContext) -> dict[str, dict[str, object]]:
    return {name: _read_struct(scene, name, ctx) for name in STRUCTS}


def apply(scene: bpy.types.Scene, item: tuple[str, ...], doc: object, ctx: ApplyContext) -> bpy.types.ID:
    """``scene/<u>/render/<struct>/<setting>``; a deleted key changes nothing (it goes with its scene), but
    for the rigid body world's, which removes it."""
    name, attr = item
    if (name, attr) == ("scene", rigid_bodies.WORLD):
        return rigid_bodies.apply_world(scene, None if ctx.deleting else doc, ctx)
    struct = _struct(scene, name) if name in STRUCTS else None
    if ctx.deleting or struct is None or struct.bl_rna.properties.get(attr) is None:
        return scene  # a setting of another Blender version, or of a render engine not registered here
    if attr in STRUCTS[name][0] or attr.startswith("debug_"):
        return scene  # each artist's, or a key of its own elsewhere (the frame range, the camera...)
    if structs.write(struct, attr, doc):
        return scene
    curves = doc.pop(VIEW_CURVES, None) if attr == "view_settings" and isinstance(doc, dict) else None
    rna.write_changed(struct, {attr: doc}, ctx.resolve)
    if isinstance(doc, dict):
        rna.write_changed(struct, {attr: doc}, ctx.resolve)  # what the first pass made possible
        if curves is not None:
            structs.write_curve_mapping(scene.view_settings.curve_mapping, curves)
        scene.update_tag()  # written through a nested struct: Blender's API tags nothing
    return scene
